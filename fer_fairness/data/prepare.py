"""From a data folder to checked, split records: the data step of every job."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from fer_fairness.config import DataConfig
from fer_fairness.data import images, readers, splits
from fer_fairness.data.records import SPLITS, FaceRecord
from fer_fairness.io import write_text_atomic

logger = logging.getLogger(__name__)

SKIPPED_IMAGES_FILE = "skipped_images.txt"


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """Checked records per split, and the images left out as unreadable.

    Attributes:
        splits: Records keyed by split name (train, validation, test).
        skipped: ``(path, reason)`` of each unreadable image that was left out.
    """

    splits: dict[str, list[FaceRecord]]
    skipped: list[tuple[str, str]]

    @property
    def all_records(self) -> list[FaceRecord]:
        """Return the records of every split."""
        return [record for records in self.splits.values() for record in records]

    def write_skipped(self, run_dir: Path) -> None:
        """List the skipped images in ``run_dir/skipped_images.txt``, one ``path<TAB>reason``."""
        if self.skipped:
            lines = "".join(f"{path}\t{reason}\n" for path, reason in self.skipped)
            write_text_atomic(run_dir / SKIPPED_IMAGES_FILE, lines)


def prepare_splits(config: DataConfig, *, seed: int) -> PreparedData:
    """Read, check and split a data folder or a prepared TFDS data set.

    Every annotation and image problem is found here, before any training starts. With
    ``config.bad_images == "skip"``, unreadable images are left out and returned in
    ``skipped``; otherwise they raise ``ImageCheckError`` listing every bad path. The images
    of ``config.augmented_path`` join the train split after the split is drawn, and only if
    they copy training faces.
    """
    records, skipped = _keep_readable(_read_records(config), config)
    records = splits.assign_splits(
        records,
        seed=seed,
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
    )
    by_split = {name: [record for record in records if record.split == name] for name in SPLITS}
    if config.augmented_path:
        # Imported here because the augment module pulls in TensorFlow.
        from fer_fairness.data.augment import read_augmented

        augmented, bad_copies = _keep_readable(
            read_augmented(config.augmented_path, by_split), config
        )
        by_split["train"] = by_split["train"] + augmented
        skipped += bad_copies
    if config.max_images:
        by_split = {name: _subset(items, config.max_images, seed) for name, items in by_split.items()}
    logger.info(
        "data %s: %s",
        config.path,
        ", ".join(f"{name} {len(items)}" for name, items in by_split.items()),
    )
    return PreparedData(by_split, skipped)


def _read_records(config: DataConfig) -> list[FaceRecord]:
    if config.source == "tfds":
        # Imported here because TFDS is slow to import and only this source needs it.
        from fer_fairness.data.tfds_source import read_tfds

        return read_tfds(config.path, image_dir=config.tfds_image_dir or None)
    return readers.read_dataset(config.path, data_format=config.data_format)


def _keep_readable(
    records: list[FaceRecord], config: DataConfig
) -> tuple[list[FaceRecord], list[tuple[str, str]]]:
    """Return the records whose image decodes and ``(path, reason)`` of the others."""
    checked = images.check_image_files(records)
    if checked.invalid:
        if config.bad_images == "stop":
            raise images.ImageCheckError(checked.invalid)
        logger.warning("leaving out %d unreadable image(s)", len(checked.invalid))
    return checked.valid, list(checked.invalid)


def _subset(records: list[FaceRecord], size: int, seed: int) -> list[FaceRecord]:
    if len(records) <= size:
        return records
    order = np.random.default_rng(seed).permutation(len(records))[:size]
    return [records[index] for index in sorted(order)]
