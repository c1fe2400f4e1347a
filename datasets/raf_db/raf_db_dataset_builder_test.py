"""Builds raf_db from its dummy data, which mirrors RAF-DB basic with tiny generated images."""

import tensorflow_datasets as tfds

import raf_db_dataset_builder


class RafDbTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = raf_db_dataset_builder.Builder
    SPLITS = {"train": 4, "test": 2}


if __name__ == "__main__":
    tfds.testing.test_main()
