"""RAF-DB basic: aligned faces with emotion, gender, race, age group and five landmarks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from etils import epath
import tensorflow_datasets as tfds

from fer_fairness.data import images, readers
from fer_fairness.data.records import FaceRecord
from fer_fairness.data.tfds_features import label_features, label_values


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for RAF-DB basic, read from a manual download."""

    # README.md and CITATIONS.bib lie beside this file, which need not be inside a package.
    pkg_dir_path = epath.Path(__file__).parent
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    RAF-DB is licensed for non-commercial research only and may not be redistributed.
    Request it from its authors, Shan Li and Weihong Deng of Beijing University of Posts
    and Telecommunications (the RAF data sets' pages are under http://whdeng.cn/RAF/).
    Put the `basic` folder, as distributed, into manual_dir, or pass the `basic` folder
    itself as manual_dir. The builder reads:

      basic/EmoLabel/list_patition_label.txt       (sic; lines like `train_00001.jpg 5`)
      basic/Image/aligned/train_00001_aligned.jpg  (one per label line, 100x100 RGB)
      basic/Annotation/manual/train_00001_manu_attri.txt
                                                   (5 landmark lines, gender, race, age)
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                "id": tfds.features.Text(),
                "index": tfds.features.Scalar(dtype=np.int64),
                **label_features(),
                "landmarks": tfds.features.Tensor(shape=(5, 2), dtype=np.float32),
            }),
            supervised_keys=("image", "emotion"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        try:
            manual_dir = Path(dl_manager.manual_dir)
        except AssertionError as err:
            raise FileNotFoundError(
                "RAF-DB manual folder not found or empty; put RAF-DB's basic folder into it "
                f"({readers.RAFDB_LABEL_FILES[0]}, {readers.RAFDB_IMAGE_FOLDER}/, "
                f"{readers.RAFDB_ATTRIBUTE_FOLDER}/). TFDS reported: {err}"
            ) from err
        records = readers.read_rafdb(manual_dir)
        images.raise_for_invalid_images(images.check_image_files(records))
        landmarks = readers.read_rafdb_landmarks(manual_dir)
        indexed = list(enumerate(records))
        splits = sorted({record.split for record in records})
        return {
            split: self._generate_examples(
                [(index, record) for index, record in indexed if record.split == split], landmarks
            )
            for split in splits
        }

    def _generate_examples(
        self, records: list[tuple[int, FaceRecord]], landmarks: dict[str, np.ndarray]
    ) -> Iterator[tuple[str, dict]]:
        for index, record in records:
            # The label file's image name (train_00001.jpg) is stable across copies of the
            # data set, so it keys the example.
            yield record.example_id, {
                "image": record.image_path,
                "id": record.example_id,
                "index": index,
                **label_values(record),
                "landmarks": landmarks[record.example_id],
            }
