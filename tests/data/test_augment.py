"""Tests of the balanced augmented set: the plan, the transforms, the output folder and the CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_fairness.cli import main
from fer_fairness.config import DataConfig
from fer_fairness.data.augment import (
    augment_image,
    plan_copies,
    write_augmented_set,
)
from fer_fairness.data.prepare import prepare_splits
from fer_fairness.data.records import FaceRecord
from fer_fairness.labels import UNKNOWN


def _records(groups: list[tuple[int, int]]) -> list[FaceRecord]:
    """One train record per ``(gender, age_group)`` entry, pointing at no file."""
    return [FaceRecord(f"/faces/{index}.jpg", f"{index}.jpg", emotion=0, gender=gender,
                       age_group=age_group, split="train")
            for index, (gender, age_group) in enumerate(groups)]


@pytest.fixture(scope="module")
def london_train(london_faces_dir) -> list[FaceRecord]:
    return prepare_splits(DataConfig(path=str(london_faces_dir)), seed=0).splits["train"]


@pytest.fixture(scope="module")
def augmented(london_train, tmp_path_factory):
    output = tmp_path_factory.mktemp("augment") / "out"
    result = write_augmented_set(london_train, output, group_by=("gender", "race"), seed=0)
    return result, output


def test_plan_copies_fills_groups_to_largest():
    # Group (0, 2) has 4 faces, (1, 2) has 1, (1, 3) has 2: targets are 4 each.
    records = _records([(0, 2)] * 4 + [(1, 2)] + [(1, 3)] * 2)
    copies = plan_copies(records, group_by=("gender", "age"), seed=0)
    assert copies[:4] == [0, 0, 0, 0]
    assert copies[4] == 3
    assert sorted(copies[5:]) == [1, 1]


def test_plan_copies_max_factor_caps_growth():
    records = _records([(0, 2)] * 10 + [(1, 2)] * 2)
    copies = plan_copies(records, group_by=("gender",), max_factor=2.0, seed=0)
    assert sum(copies[10:]) == 2


def test_plan_copies_target_count():
    records = _records([(0, 2)] * 3 + [(1, 2)] * 2)
    copies = plan_copies(records, group_by=("gender",), target_count=7, seed=0)
    assert sum(copies[:3]) == 4
    assert sum(copies[3:]) == 5
    assert sorted(copies[3:]) == [2, 3]


def test_plan_copies_unknown_never_copied():
    records = _records([(0, 2)] * 5 + [(UNKNOWN, 2)])
    copies = plan_copies(records, group_by=("gender",), seed=0)
    assert copies[5] == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target_count": 0}, "target_count=0 is invalid"),
        ({"max_factor": 0.5}, "max_factor=0.5 is invalid"),
    ],
)
def test_plan_copies_invalid_options(options, message):
    with pytest.raises(ValueError, match=message):
        plan_copies(_records([(0, 2)]), group_by=("gender",), **options)


def test_plan_copies_no_known_group():
    with pytest.raises(ValueError, match="no training face has a known value"):
        plan_copies(_records([(UNKNOWN, 2)]), group_by=("gender",))


def test_augment_image_deterministic_per_source_and_copy():
    source = Image.fromarray(np.linspace(0, 255, 32 * 32 * 3).reshape(32, 32, 3).astype(np.uint8))
    first, description = augment_image(source, seed=1, source_id="a.jpg", copy_index=1)
    again, _ = augment_image(source, seed=1, source_id="a.jpg", copy_index=1)
    other_copy, _ = augment_image(source, seed=1, source_id="a.jpg", copy_index=2)
    other_source, _ = augment_image(source, seed=1, source_id="b.jpg", copy_index=1)
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other_copy))
    assert not np.array_equal(np.asarray(first), np.asarray(other_source))
    assert first.size == (32, 32)
    assert description.startswith("flip=")


def test_write_augmented_set_balances_groups(augmented):
    result, _ = augmented
    largest = max(count for name, count in result.before.items() if name != "unknown")
    for name, count in result.before.items():
        if name != "unknown":
            assert result.after[name] == min(largest, 5 * count), name
    assert result.after["unknown"] == result.before["unknown"]
    assert result.copies == sum(result.after.values()) - sum(result.before.values())


def test_write_augmented_set_manifest_columns(augmented):
    result, output = augmented
    with (output / "labels.csv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == result.copies
    assert list(rows[0]) == ["image", "emotion", "gender", "age_group", "race", "subject_id",
                             "split", "source_image", "augmentation"]
    assert {row["split"] for row in rows} == {"train"}
    assert all((output / row["image"]).is_file() for row in rows)


def test_write_augmented_set_copies_only_train(augmented, london_train, london_faces_dir):
    _, output = augmented
    with (output / "labels.csv").open(encoding="utf-8") as file:
        sources = {row["source_image"] for row in csv.DictReader(file)}
    splits = prepare_splits(DataConfig(path=str(london_faces_dir)), seed=0).splits
    held_out = {r.example_id for name in ("validation", "test") for r in splits[name]}
    assert sources <= {record.example_id for record in london_train}
    assert not sources & held_out


def test_write_augmented_set_copies_keep_labels(augmented, london_train):
    _, output = augmented
    by_id = {record.example_id: record for record in london_train}
    with (output / "labels.csv").open(encoding="utf-8") as file:
        row = next(csv.DictReader(file))
    source = by_id[row["source_image"]]
    assert row["subject_id"] == source.subject_id
    assert row["emotion"] in ("neutral", "happiness")


def test_write_augmented_set_counts_files(augmented):
    result, output = augmented
    counts = json.loads((output / "group_counts.json").read_text(encoding="utf-8"))
    assert counts["before"] == result.before
    assert counts["after"] == result.after
    assert counts["group_by"] == ["gender", "race"]
    assert (output / "group_counts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_augmented_set_deterministic(augmented, london_train, tmp_path):
    _, output = augmented
    write_augmented_set(london_train, tmp_path / "again", group_by=("gender", "race"), seed=0)
    assert (tmp_path / "again" / "labels.csv").read_bytes() == (output / "labels.csv").read_bytes()
    first = sorted((output / "augmented").rglob("*.jpg"))[0]
    again = tmp_path / "again" / first.relative_to(output)
    assert again.read_bytes() == first.read_bytes()


def test_write_augmented_set_rejects_non_train(london_train, tmp_path):
    records = [dataclasses.replace(london_train[0], split="test")]
    with pytest.raises(ValueError, match="1 records are not in the train split"):
        write_augmented_set(records, tmp_path / "out", group_by=("gender",))


def test_write_augmented_set_refuses_non_empty(london_train, tmp_path):
    (tmp_path / "notes.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(FileExistsError, match="is not empty"):
        write_augmented_set(london_train[:4], tmp_path, group_by=("gender",))


def test_write_augmented_set_overwrite_needs_previous_output(london_train, tmp_path):
    (tmp_path / "notes.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(FileExistsError, match="has no group_counts.json"):
        write_augmented_set(london_train[:4], tmp_path, group_by=("gender",), overwrite=True)
    assert (tmp_path / "notes.txt").is_file()


def test_write_augmented_set_overwrite_stays_inside(london_train, tmp_path):
    output = tmp_path / "out"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.jpg").write_bytes(b"keep")
    write_augmented_set(london_train, output, group_by=("gender",))
    (output / "notes.txt").write_text("keep", encoding="utf-8")
    # Replace the image folder by a link to a folder outside the output.
    for path in sorted((output / "augmented").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (output / "augmented").rmdir()
    (output / "augmented").symlink_to(outside, target_is_directory=True)

    write_augmented_set(london_train, output, group_by=("gender",), overwrite=True)
    assert (outside / "precious.jpg").read_bytes() == b"keep"
    assert (output / "notes.txt").is_file()
    assert not (output / "augmented").is_symlink()


def test_cli_augment_writes_outputs(london_faces_dir, tmp_path, capsys):
    output = tmp_path / "out"
    status = main(["augment", "--data", str(london_faces_dir), "--output", str(output),
                   "--group-by", "gender", "--target-count", "100", "--seed", "0"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "wrote " in printed
    counts = json.loads((output / "group_counts.json").read_text(encoding="utf-8"))
    assert counts["after"]["female"] == 100
    assert counts["after"]["male"] == 100
    assert (output / "group_counts.png").is_file()


def test_cli_augment_non_empty_output_fails(london_faces_dir, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep", encoding="utf-8")
    status = main(["augment", "--data", str(london_faces_dir), "--output", str(tmp_path)])
    assert status == 2
    assert "is not empty" in capsys.readouterr().err


def test_augmented_copies_per_group(augmented):
    _, output = augmented
    with (output / "labels.csv").open(encoding="utf-8") as file:
        copies = Counter(row["race"] for row in csv.DictReader(file))
    assert copies["caucasian"] > 0
    assert "" not in copies


def test_augmented_images_are_real_jpegs(augmented):
    _, output = augmented
    first = sorted((output / "augmented").rglob("*.jpg"))[0]
    with Image.open(first) as image:
        assert image.format == "JPEG"
        assert image.size == (100, 100)
    assert Path(first).stat().st_size > 1000
