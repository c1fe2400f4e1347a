"""Tests of split assignment: determinism, subject grouping, stratification and errors."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, defaultdict

import pytest

from fer_fairness import labels
from fer_fairness.data.readers import read_manifest
from fer_fairness.data.records import SPLITS, FaceRecord
from fer_fairness.data.splits import assign_splits, split_summary


def _records(count: int, *, subjects: int | None = None, split: str = "") -> list[FaceRecord]:
    """Build records cycling through the 7 emotions; ``subjects`` groups them by subject."""
    return [
        FaceRecord(
            image_path=f"/faces/{index}.jpg", example_id=f"{index}.jpg", emotion=index % 7,
            subject_id=f"s{index % subjects}" if subjects else "", split=split,
        )
        for index in range(count)
    ]


def _subject_splits(records: list[FaceRecord]) -> dict[str, set[str]]:
    splits: dict[str, set[str]] = defaultdict(set)
    for record in records:
        splits[record.subject_id].add(record.split)
    return splits


@pytest.fixture(scope="module")
def london_records(london_faces_dir):
    return read_manifest(london_faces_dir)


def test_assign_splits_same_seed_same_splits(london_records) -> None:
    first = assign_splits(london_records, seed=7)

    assert assign_splits(london_records, seed=7) == first


def test_assign_splits_other_seed_other_splits(london_records) -> None:
    first = [record.split for record in assign_splits(london_records, seed=7)]

    assert [record.split for record in assign_splits(london_records, seed=8)] != first


def test_assign_splits_input_order_ignored(london_records) -> None:
    forward = {r.example_id: r.split for r in assign_splits(london_records, seed=3)}
    backward = {r.example_id: r.split for r in assign_splits(london_records[::-1], seed=3)}

    assert backward == forward


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_assign_splits_subject_in_one_split(london_records, seed) -> None:
    splits = _subject_splits(assign_splits(london_records, seed=seed))

    assert [subject for subject, names in splits.items() if len(names) > 1] == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_assign_splits_every_split_non_empty(london_records, seed) -> None:
    counts = Counter(record.split for record in assign_splits(london_records, seed=seed))

    assert set(counts) == set(SPLITS)


@pytest.mark.parametrize(("split", "expected"), [("train", 132), ("validation", 30), ("test", 42)])
def test_assign_splits_london_sizes(london_records, split, expected) -> None:
    """Targets are 65%, 15% and 20% of 204 images, in whole subjects of two images each."""
    counts = Counter(record.split for record in assign_splits(london_records, seed=0))

    assert abs(counts[split] - expected) <= 4


@pytest.mark.parametrize("split", SPLITS)
def test_assign_splits_stratified_by_emotion(split) -> None:
    """700 records, 100 per emotion: each split contains about the same count of each emotion."""
    summary = split_summary(assign_splits(_records(700), seed=0))[split]
    emotion_counts = [summary[name] for name in labels.EMOTIONS]

    assert max(emotion_counts) - min(emotion_counts) <= 3


@pytest.mark.parametrize(("split", "expected"), [("train", 26), ("validation", 6), ("test", 8)])
def test_assign_splits_records_without_subject_are_units(split, expected) -> None:
    counts = Counter(record.split for record in assign_splits(_records(40), seed=0))

    assert abs(counts[split] - expected) <= 1


def test_assign_splits_keeps_given_splits() -> None:
    records = _records(60, split="train") + _records(20, split="test")
    records = [dataclasses.replace(r, example_id=f"{i}.jpg") for i, r in enumerate(records)]

    result = assign_splits(records, seed=0)

    assert [r.split for r in result[60:]] == ["test"] * 20


def test_assign_splits_carves_validation_from_train() -> None:
    """Validation is 20% of all 175 records, in subjects of 4 records each."""
    records = _records(140, subjects=36, split="train") + _records(35, split="test")

    result = assign_splits(records, seed=0, validation_fraction=0.2)

    assert abs(Counter(r.split for r in result)["validation"] - 35) <= 4


def test_assign_splits_carving_keeps_subjects_together() -> None:
    records = _records(140, subjects=36, split="train") + _records(35, split="test")

    splits = _subject_splits(assign_splits(records, seed=0)[:140])

    assert [subject for subject, names in splits.items() if len(names) > 1] == []


def test_assign_splits_carves_missing_test() -> None:
    records = _records(80, split="train") + _records(20, split="validation")

    counts = Counter(r.split for r in assign_splits(records, seed=0, test_fraction=0.2))

    assert abs(counts["test"] - 20) <= 1


def test_assign_splits_warns_on_shared_subjects(caplog) -> None:
    records = _records(14, subjects=7, split="train") + _records(7, subjects=7, split="test")
    records += _records(7, split="validation")

    with caplog.at_level(logging.WARNING, logger="fer_fairness.data.splits"):
        assign_splits(records, seed=0)

    assert "7 subjects appear in more than one split" in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [({"validation_fraction": 0}, "validation_fraction=0 is out of range"),
     ({"validation_fraction": 1.0}, "validation_fraction=1.0 is out of range"),
     ({"test_fraction": -0.1}, "test_fraction=-0.1 is out of range"),
     ({"test_fraction": float("nan")}, "test_fraction=nan is out of range"),
     ({"validation_fraction": 0.5, "test_fraction": 0.5}, "leaves no records for train")],
)
def test_assign_splits_fraction_invalid(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        assign_splits(_records(100), seed=0, **options)


@pytest.mark.parametrize(
    ("records", "message"),
    [([], "records is empty"),
     (_records(2, subjects=2), r"split\(s\) \['validation', 'test'\] would be empty: 2 "
                               "records in 2 groups"),
     (_records(30, subjects=2), "would be empty"),
     (_records(5, split="train") + _records(5), "5 of 10 records have no split"),
     (_records(5, split="holdout"), r"split names \['holdout'\] are invalid"),
     (_records(5, split="test"), "no record has the split 'train'"),
     (_records(1, split="train") + _records(9, split="test"), "too few to carve")],
)
def test_assign_splits_records_invalid(records, message) -> None:
    with pytest.raises(ValueError, match=message):
        assign_splits(records, seed=0)


def test_split_summary_counts() -> None:
    records = [dataclasses.replace(r, split="test" if r.emotion == 1 else "train")
               for r in _records(14)]

    assert split_summary(records) == {
        "train": {"total": 12, "neutral": 2, "happiness": 0, "surprise": 2, "sadness": 2,
                  "anger": 2, "disgust": 2, "fear": 2},
        "test": {"total": 2, "neutral": 0, "happiness": 2, "surprise": 0, "sadness": 0,
                 "anger": 0, "disgust": 0, "fear": 0},
    }


def test_split_summary_order() -> None:
    records = [dataclasses.replace(r, split=split) for r, split in
               zip(_records(3), ["test", "validation", "train"])]

    assert list(split_summary(records)) == ["train", "validation", "test"]
