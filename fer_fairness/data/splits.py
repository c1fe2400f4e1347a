"""Train, validation and test splits that keep each subject in one split.

A record's group is its subject, or the record alone when it has no ``subject_id``. Groups are
placed whole, so no person's face is both trained on and evaluated. The placement is a greedy
stratification: groups are visited in a seeded random order, largest first, and each goes to
the split whose emotion counts and size are furthest below their targets.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from fer_fairness import labels
from fer_fairness.data.records import SPLITS, FaceRecord

logger = logging.getLogger(__name__)


def assign_splits(
    records: Sequence[FaceRecord],
    *,
    seed: int,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.2,
) -> list[FaceRecord]:
    """Give every record a split, keeping the splits that the source already assigns.

    - No record has a split: groups are split into train, validation and test with the given
      fractions.
    - Every record has a split: the splits are kept. A split that is missing (RAF-DB has no
      validation split) is carved from train with its fraction, by group and stratified by
      emotion.

    Both fractions are fractions of all records, and the result matches them only as closely
    as whole groups allow.

    Args:
        records: Records from a reader; ``split`` is "" or one of ``SPLITS``.
        seed: Seed of the group order, so the same seed and records give the same splits.
        validation_fraction: Share of all records for validation, greater than 0 and below 1.
        test_fraction: Share of all records for test, greater than 0 and below 1. Used only
            when the records carry no test split.

    Returns:
        The records in input order, each with ``split`` set through ``dataclasses.replace``.

    Raises:
        ValueError: for a fraction out of range, records that mix given and missing splits,
            an unknown split name, no train records, or a split that ends empty because there
            are too few groups.
    """
    _check_fraction("validation_fraction", validation_fraction)
    _check_fraction("test_fraction", test_fraction)
    if validation_fraction + test_fraction >= 1:
        raise ValueError(
            f"validation_fraction={validation_fraction} plus test_fraction={test_fraction} "
            "leaves no records for train; make their sum less than 1"
        )
    if not records:
        raise ValueError("records is empty; read a data set before assigning splits")
    split_counts = Counter(record.split for record in records)
    unknown = sorted(set(split_counts) - set(SPLITS) - {""})
    if unknown:
        raise ValueError(f"split names {unknown} are invalid; expected one of {SPLITS}")
    if "" in split_counts and len(split_counts) > 1:
        raise ValueError(
            f"{split_counts['']} of {len(records)} records have no split while the others "
            "have one; give every record a split, or none so that assign_splits chooses them"
        )

    fractions = {"validation": validation_fraction, "test": test_fraction}
    if "" in split_counts:
        fractions["train"] = 1 - validation_fraction - test_fraction
        splits = _grouped_split(records, fractions, seed)
    else:
        splits = _carve_from_train(records, fractions, split_counts, seed)
    result = [dataclasses.replace(record, split=split) for record, split in zip(records, splits)]
    _check_not_empty(result)
    _warn_on_shared_subjects(result)
    return result


def split_summary(records: Sequence[FaceRecord]) -> dict[str, dict[str, int]]:
    """Count records per split: ``{split: {"total": n, <emotion name>: n, ...}}``.

    Splits come in the order "", train, validation, test. Every emotion of
    ``labels.EMOTIONS`` appears, with 0 where a split has none. Records
    without a split are counted under "".
    """
    summary: dict[str, dict[str, int]] = {}
    for record in records:
        counts = summary.setdefault(
            record.split, {"total": 0, **{name: 0 for name in labels.EMOTIONS}}
        )
        counts["total"] += 1
        counts[labels.EMOTIONS[record.emotion]] += 1
    order = {split: index for index, split in enumerate(("",) + SPLITS)}
    return dict(sorted(summary.items(), key=lambda item: order.get(item[0], len(order))))


def _check_fraction(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name}={value} is out of range; expected a number greater than 0 "
                         "and less than 1")


def _carve_from_train(
    records: Sequence[FaceRecord],
    fractions: Mapping[str, float],
    split_counts: Counter[str],
    seed: int,
) -> list[str]:
    """Keep the given splits and move groups of train records into the missing splits."""
    splits = [record.split for record in records]
    missing = [split for split in ("validation", "test") if split_counts[split] == 0]
    if not missing:
        return splits
    train = [index for index, record in enumerate(records) if record.split == "train"]
    if not train:
        raise ValueError(f"no record has the split 'train', so {missing} cannot be carved from "
                         "it; give some records the split train")
    # The fractions are of all records; within train they are larger.
    carved = {split: fractions[split] * len(records) / len(train) for split in missing}
    if sum(carved.values()) >= 1:
        raise ValueError(
            f"train has {len(train)} of {len(records)} records, too few to carve "
            + ", ".join(f"{split}_fraction={fractions[split]}" for split in missing)
            + "; lower the fractions"
        )
    carved["train"] = 1 - sum(carved.values())
    train_splits = _grouped_split([records[index] for index in train], carved, seed)
    for index, split in zip(train, train_splits):
        splits[index] = split
    logger.info("carved %s from %d train records", ", ".join(missing), len(train))
    return splits


def _grouped_split(
    records: Sequence[FaceRecord], fractions: Mapping[str, float], seed: int
) -> list[str]:
    """Assign whole groups to splits so each split's emotion counts approach its fraction."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        key = f"subject {record.subject_id}" if record.subject_id else f"record {index}"
        groups[key].append(index)
    # Sorting the keys first makes the order depend on the seed and the data only, not on the
    # input order. Largest groups go first so small ones can even out the counts at the end.
    keys = sorted(groups)
    shuffled = [keys[i] for i in np.random.default_rng(seed).permutation(len(keys))]
    ordered = sorted(shuffled, key=lambda key: -len(groups[key]))

    totals = Counter(record.emotion for record in records)
    names = sorted(fractions, key=lambda split: SPLITS.index(split))
    targets = {s: {e: fractions[s] * count for e, count in totals.items()} for s in names}
    counts: dict[str, Counter[int]] = {split: Counter() for split in names}
    splits = [""] * len(records)
    for key in ordered:
        emotions = Counter(records[index].emotion for index in groups[key])

        def shortfall(split: str) -> float:
            # The group's emotions weigh each split's per-emotion shortfall, and the group's
            # size weighs its overall shortfall, so splits match in both mix and size.
            per_emotion = sum(n * (targets[split][e] - counts[split][e])
                              for e, n in emotions.items())
            overall = fractions[split] * len(records) - counts[split].total()
            return per_emotion + len(groups[key]) * overall

        best = max(names, key=shortfall)
        counts[best].update(emotions)
        for index in groups[key]:
            splits[index] = best
    return splits


def _check_not_empty(records: Sequence[FaceRecord]) -> None:
    counts = Counter(record.split for record in records)
    empty = [split for split in SPLITS if counts[split] == 0]
    if empty:
        groups = len({record.subject_id or f"record {i}" for i, record in enumerate(records)})
        raise ValueError(
            f"split(s) {empty} would be empty: {len(records)} records in {groups} groups "
            "(subjects, or records without a subject_id) are too few for the fractions; "
            "add data or raise validation_fraction and test_fraction"
        )


def _warn_on_shared_subjects(records: Sequence[FaceRecord]) -> None:
    """Warn when the source's own splits put one subject in more than one split."""
    subject_splits: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record.subject_id:
            subject_splits[record.subject_id].add(record.split)
    shared = sorted(subject for subject, splits in subject_splits.items() if len(splits) > 1)
    if shared:
        logger.warning("%d subjects appear in more than one split, so their faces are both "
                       "trained on and evaluated; first: %s", len(shared), shared[:5])
