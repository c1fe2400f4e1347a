"""Tests of the manifest reader, on the London faces and on tiny hand-written manifests."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

import pytest

from fer_fairness import labels
from fer_fairness.data.readers import DataValidationError, read_dataset, read_manifest

UNKNOWN = labels.UNKNOWN
HEADER = "image,subject_id,emotion,gender,age,ethnicity"
GOOD_ROW = "images/a.jpg,s1,happy,f,30,white"


@pytest.fixture(scope="module")
def london_records(london_faces_dir: Path):
    return read_manifest(london_faces_dir)


@pytest.fixture(scope="module")
def london_rows(london_faces_dir: Path) -> list[dict[str, str]]:
    with open(london_faces_dir / "labels.csv", encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_read_manifest_london_count(london_records) -> None:
    assert len(london_records) == 204


def test_read_manifest_london_subjects(london_records) -> None:
    assert len({record.subject_id for record in london_records}) == 102


def test_read_manifest_london_emotions(london_records) -> None:
    emotions = Counter(labels.EMOTIONS[record.emotion] for record in london_records)

    assert emotions == {"neutral": 102, "happiness": 102}


def test_read_manifest_london_genders(london_records) -> None:
    genders = Counter(labels.GENDERS[record.gender] for record in london_records)

    assert genders == {"female": 98, "male": 106}


def test_read_manifest_london_unknown_ages(london_records) -> None:
    assert sum(record.age_group == UNKNOWN for record in london_records) == 4


def test_read_manifest_london_age_groups(london_records, london_rows) -> None:
    expected = [labels.age_group_from_years(float(row["age"])) if row["age"] else UNKNOWN
                for row in london_rows]

    assert [record.age_group for record in london_records] == expected


def test_read_manifest_london_races(london_records) -> None:
    races = Counter(record.race for record in london_records)

    assert races == {0: 138, 1: 26, 2: 18, UNKNOWN: 22}


def test_read_manifest_london_unmapped_logged(london_faces_dir, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="fer_fairness.data.manifest"):
        read_manifest(london_faces_dir)

    assert "22 ethnicity labels outside RAF-DB's race groups set to unknown: west_asian (20), " \
           "east_asian/white (2)" in caplog.text


def test_read_manifest_london_paths(london_records, london_faces_dir) -> None:
    record = london_records[0]

    assert record.image_path == str(london_faces_dir.resolve() / record.example_id)


def test_read_manifest_london_source(london_records, london_faces_dir) -> None:
    assert london_records[3].source == f"{london_faces_dir.resolve() / 'labels.csv'}:5"


def test_read_dataset_auto_manifest(london_faces_dir, london_records) -> None:
    assert read_dataset(london_faces_dir) == london_records


# (column values after image, field, expected index)
FIELD_CASES = [
    ("emotion", "Happy", "emotion", 1),
    ("emotion", "6", "emotion", 6),
    ("emotion", "FEARFUL", "emotion", 6),
    ("gender", "Woman", "gender", 1),
    ("gender", "unknown", "gender", UNKNOWN),
    ("gender", "", "gender", UNKNOWN),
    ("age", "3", "age_group", 0),
    ("age", "19.5", "age_group", 1),
    ("age", "70", "age_group", 4),
    ("age", "n/a", "age_group", UNKNOWN),
    ("age_group", "40-69", "age_group", 3),
    ("age_group", "2", "age_group", 2),
    ("race", "Asian", "race", 2),
    ("race", "1", "race", 1),
    ("ethnicity", "African-American", "race", 1),
    ("ethnicity", "Middle Eastern", "race", UNKNOWN),
    ("ethnicity", "black/white", "race", UNKNOWN),
    ("split", "val", "split", "validation"),
    ("split", "TEST", "split", "test"),
    ("split", "", "split", ""),
    ("subject_id", " 42 ", "subject_id", "42"),
]


@pytest.mark.parametrize(("column", "value", "field", "expected"), FIELD_CASES)
def test_read_manifest_field_values(make_manifest, column, value, field, expected) -> None:
    header = "image,emotion" if column == "emotion" else f"image,emotion,{column}"
    row = f"images/a.jpg,{value}" if column == "emotion" else f"images/a.jpg,happy,{value}"
    folder = make_manifest(header, [row])

    assert getattr(read_manifest(folder)[0], field) == expected


def test_read_manifest_optional_columns_absent(make_manifest) -> None:
    record = read_manifest(make_manifest("image,emotion", ["images/a.jpg,sad"]))[0]

    assert (record.gender, record.age_group, record.race, record.subject_id, record.split) == (
        UNKNOWN, UNKNOWN, UNKNOWN, "", "")


def test_read_manifest_extra_column_ignored(make_manifest) -> None:
    folder = make_manifest("image,emotion,photographer", ["images/a.jpg,sad,Ann"])

    assert read_manifest(folder)[0].emotion == labels.EMOTIONS.index("sadness")


def test_read_manifest_byte_order_mark(make_manifest) -> None:
    folder = make_manifest("image,emotion", ["images/a.jpg,sad"])
    csv_path = folder / "labels.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf" + csv_path.read_bytes())

    assert read_manifest(folder)[0].example_id == "images/a.jpg"


def test_read_manifest_backslash_path(make_manifest) -> None:
    folder = make_manifest("image,emotion", ["images/a.jpg,sad"])
    (folder / "labels.csv").write_text("image,emotion\nimages\\a.jpg,sad\n", encoding="utf-8")

    assert read_manifest(folder)[0].example_id == "images/a.jpg"


def test_read_manifest_symlink_inside_folder(make_manifest) -> None:
    folder = make_manifest("image,emotion", ["images/a.jpg,sad"])
    (folder / "link.jpg").symlink_to(folder / "images" / "a.jpg")
    (folder / "labels.csv").write_text("image,emotion\nlink.jpg,sad\n", encoding="utf-8")

    assert read_manifest(folder)[0].image_path == str(folder.resolve() / "link.jpg")


def test_read_manifest_labels_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"labels.csv not found; expected a labels.csv "
                                                "with at least the columns image, emotion"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("column", ["image", "emotion"])
def test_read_manifest_required_column_missing(make_manifest, column) -> None:
    header = "image,gender" if column == "emotion" else "file,emotion"
    folder = make_manifest(header, ["images/a.jpg,f"])

    with pytest.raises(DataValidationError, match=f"labels.csv:1: required column '{column}' "
                                                  "is missing"):
        read_manifest(folder)


def test_read_manifest_empty_file(make_manifest) -> None:
    folder = make_manifest("", [])

    with pytest.raises(DataValidationError, match="labels.csv: the file is empty"):
        read_manifest(folder)
