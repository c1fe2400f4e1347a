"""Any CSV manifest folder (``labels.csv`` plus images), such as the London faces."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from etils import epath
import tensorflow_datasets as tfds
from PIL import Image

from fer_fairness.data import images, readers
from fer_fairness.data.records import SPLITS, FaceRecord
from fer_fairness.data.tfds_features import label_features, label_values

# The Image feature decodes JPEG, PNG and BMP bytes as they are. A GIF would decode to a stack
# of frames, so its first frame is stored as PNG instead.
_STORED_AS_IS = ("JPEG", "MPO", "PNG", "BMP")


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for a manifest folder given as the manual folder."""

    # README.md and CITATIONS.bib lie beside this file, which need not be inside a package.
    pkg_dir_path = epath.Path(__file__).parent
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    manual_dir is a manifest folder: labels.csv with the columns image (a path relative to
    the folder) and emotion, and optionally gender, age or age_group, race or ethnicity,
    subject_id and split, plus the images it lists. The London faces folder
    (shared/data/london_faces) is one. Build each manifest folder into its own data_dir,
    because every folder becomes the same data set name and version.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "id": tfds.features.Text(),
                "index": tfds.features.Scalar(dtype=np.int64),
                "subject_id": tfds.features.Text(),
                "split": tfds.features.Text(),
                **label_features(),
            }),
            supervised_keys=("image", "emotion"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        try:
            manual_dir = Path(dl_manager.manual_dir)
        except AssertionError as err:
            raise FileNotFoundError(
                f"manifest folder not found or empty; the manual folder must contain "
                f"{readers.MANIFEST_FILE} and the images it lists. TFDS reported: {err}"
            ) from err
        records = readers.read_manifest(manual_dir)
        images.raise_for_invalid_images(images.check_image_files(records))
        # A manifest without a split column becomes one train split; fer-fairness then splits
        # it by subject, because each example keeps the manifest's (empty) split.
        by_split = {split: [(index, record) for index, record in enumerate(records)
                            if (record.split or "train") == split]
                    for split in SPLITS}
        return {split: self._generate_examples(items) for split, items in by_split.items()
                if items}

    def _generate_examples(
        self, records: list[tuple[int, FaceRecord]]
    ) -> Iterator[tuple[str, dict]]:
        for index, record in records:
            # The image path relative to the manifest folder is unique and stable.
            yield record.example_id, {
                "image": _image_bytes(Path(record.image_path)),
                "id": record.example_id,
                "index": index,
                "subject_id": record.subject_id,
                "split": record.split,
                **label_values(record),
            }


def _image_bytes(path: Path) -> bytes:
    """Return the file's bytes, or its first frame as PNG when TFDS cannot decode the format."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        if image.format in _STORED_AS_IS:
            return data
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
