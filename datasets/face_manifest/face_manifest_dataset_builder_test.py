"""Builds face_manifest from its dummy data: a manifest with a split column and tiny images."""

import tensorflow_datasets as tfds

import face_manifest_dataset_builder


class FaceManifestTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = face_manifest_dataset_builder.Builder
    SPLITS = {"train": 3, "validation": 1, "test": 1}


if __name__ == "__main__":
    tfds.testing.test_main()
