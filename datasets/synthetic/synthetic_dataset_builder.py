"""Synthetic faces with known attributes and optionally planted bias, drawn by fer-fairness.

Nothing is downloaded and no manual folder is read: every example comes from
``fer_fairness.data.synthetic``, so a builder config gives byte-identical images on every
build.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
from etils import epath
import tensorflow_datasets as tfds

from fer_fairness import labels
from fer_fairness.data import synthetic
from fer_fairness.data.records import SPLITS
from fer_fairness.data.synthetic_metadata import build_metadata
from fer_fairness.data.synthetic_plan import PlannedImage
from fer_fairness.data.tfds_features import label_features


@dataclasses.dataclass(eq=False)
class SyntheticBuilderConfig(tfds.core.BuilderConfig):
    """A builder config that carries the generator's settings.

    Attributes:
        synthetic: Size, seed, attribute weights and planted gaps of the data set.
    """

    synthetic: synthetic.SyntheticConfig = dataclasses.field(
        default_factory=synthetic.SyntheticConfig)


BUILDER_CONFIGS = [
    SyntheticBuilderConfig(
        name="unbiased",
        description="2,000 balanced faces without planted gaps, seed 0.",
        synthetic=synthetic.unbiased(),
    ),
    SyntheticBuilderConfig(
        name="harder_expressions_female",
        description="2,000 faces, seed 0; female faces show their expressions at 0.3 times "
        "the normal change from neutral in every split.",
        synthetic=synthetic.planted_gap(attribute="gender", group="female",
                                        kind="harder_expressions", strength=0.3),
    ),
]


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for the synthetic faces; the data are generated, not downloaded."""

    # README.md lies beside this file, which need not be inside a package.
    pkg_dir_path = epath.Path(__file__).parent
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = BUILDER_CONFIGS

    def _info(self) -> tfds.core.DatasetInfo:
        side = self.builder_config.synthetic.image_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(side, side, 1), encoding_format="png"),
                "id": tfds.features.Text(),
                "index": tfds.features.Scalar(dtype=np.int64),
                "subject_id": tfds.features.Text(),
                **label_features(),
                "drawn_emotion": tfds.features.ClassLabel(names=list(labels.EMOTIONS)),
                "intensity": tfds.features.Scalar(dtype=np.float32),
            }),
            supervised_keys=("image", "emotion"),
            # Filled in _split_generators with the counts and the measured planted gaps.
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # Nothing is downloaded.
        config = self.builder_config.synthetic
        planned = synthetic.plan_images(config)
        self.info.metadata.update({
            **build_metadata(config, planned),
            "generator_version": synthetic.GENERATOR_VERSION,
        })
        return {split: self._generate_examples([image for image in planned
                                                if image.subject.split == split])
                for split in SPLITS}

    def _generate_examples(
        self, planned: list[PlannedImage]
    ) -> Iterator[tuple[str, dict]]:
        side = self.builder_config.synthetic.image_size
        for image in planned:
            example = synthetic.render_example(image, image_size=side)
            identity = image.subject.identity
            # The image path that generate_synthetic writes is unique and stable.
            yield image.image, {
                "image": example.png,
                "id": image.image,
                "index": image.index,
                "subject_id": image.subject.subject_id,
                "emotion": image.emotion,
                "gender": identity.gender,
                "age_group": identity.age_group,
                "race": identity.race,
                "drawn_emotion": image.drawn_emotion,
                "intensity": np.float32(image.intensity),
            }
