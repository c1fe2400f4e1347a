"""Builds synthetic from small builder configs; the data are generated, so dummy_data is empty."""

import tensorflow_datasets as tfds

import synthetic_dataset_builder
from fer_fairness.data import synthetic

# 7 subjects with 3 images each: 5 train, 1 validation and 1 test subject.
TINY_SETTINGS = {"n_images": 21, "n_subjects": 7}


class SyntheticTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = synthetic_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = [
        synthetic_dataset_builder.SyntheticBuilderConfig(
            name="tiny_unbiased", synthetic=synthetic.unbiased(**TINY_SETTINGS)),
        synthetic_dataset_builder.SyntheticBuilderConfig(
            name="tiny_label_noise",
            synthetic=synthetic.planted_gap(attribute="race", group="asian", kind="label_noise",
                                            strength=0.5, **TINY_SETTINGS)),
    ]
    SPLITS = {"train": 15, "validation": 3, "test": 3}


if __name__ == "__main__":
    tfds.testing.test_main()
