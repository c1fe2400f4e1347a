"""Tests of the RAF-DB reader, format detection and read_dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_fairness import labels
from fer_fairness.data.readers import (
    DataValidationError,
    detect_format,
    read_dataset,
    read_rafdb,
    read_rafdb_landmarks,
)

UNKNOWN = labels.UNKNOWN

# example_id, emotion, gender, age group, race, split, label-file line
EXPECTED_RECORDS = [
    ("train_00001.jpg", "sadness", "male", "20-39", "caucasian", "train", 1),
    ("train_00002.jpg", "surprise", "female", "0-3", "african_american", "train", 2),
    ("train_00003.jpg", "neutral", "female", "70+", "asian", "train", 3),
    ("train_00004.jpg", "happiness", "male", "40-69", "asian", "train", 4),
    ("test_0001.jpg", "fear", None, "4-19", "caucasian", "test", 5),
    ("test_0002.jpg", "anger", "male", "20-39", "african_american", "test", 6),
]


def _index(vocabulary: tuple[str, ...], name: str | None) -> int:
    return UNKNOWN if name is None else vocabulary.index(name)


@pytest.mark.parametrize("position", range(len(EXPECTED_RECORDS)))
def test_read_rafdb_record_fields(rafdb_root: Path, position: int) -> None:
    example_id, emotion, gender, age, race, split, line = EXPECTED_RECORDS[position]
    basic = (rafdb_root / "basic").resolve()
    record = read_rafdb(rafdb_root)[position]

    assert record.example_id == example_id
    assert record.image_path == str(
        basic / "Image" / "aligned" / example_id.replace(".jpg", "_aligned.jpg")
    )
    assert record.emotion == labels.EMOTIONS.index(emotion)
    assert record.gender == _index(labels.GENDERS, gender)
    assert record.age_group == labels.AGE_GROUPS.index(age)
    assert record.race == labels.RACES.index(race)
    assert record.split == split
    assert record.subject_id == ""
    assert record.source == f"{basic / 'EmoLabel' / 'list_patition_label.txt'}:{line}"


def test_read_rafdb_record_count(rafdb_root: Path) -> None:
    assert len(read_rafdb(rafdb_root)) == 6


def test_read_rafdb_basic_folder_as_root(rafdb_root: Path) -> None:
    assert read_rafdb(rafdb_root / "basic") == read_rafdb(rafdb_root)


@pytest.mark.parametrize(
    ("code", "emotion"),
    [("1", "surprise"), ("2", "fear"), ("3", "disgust"), ("4", "happiness"),
     ("5", "sadness"), ("6", "anger"), ("7", "neutral"), (" 7\t", "neutral")],
)
def test_read_rafdb_emotion_code_mapping(make_rafdb, rafdb_entries, code, emotion) -> None:
    name, _, attributes = rafdb_entries[0]
    root = make_rafdb([(name, code, attributes)], label_lines=[f"{name} {code}"])

    assert read_rafdb(root)[0].emotion == labels.EMOTIONS.index(emotion)


@pytest.mark.parametrize("code", ["0", "8", "x", "-1", "4.0"])
def test_read_rafdb_emotion_code_invalid(make_rafdb, rafdb_entries, code) -> None:
    lines = [f"{name} {original}" for name, original, _ in rafdb_entries]
    lines[1] = f"train_00002.jpg {code}"
    root = make_rafdb(label_lines=lines)
    expected = f"list_patition_label.txt:2: emotion code '{code}' is invalid; expected one of 1, "

    with pytest.raises(DataValidationError, match=expected):
        read_rafdb(root)


@pytest.mark.parametrize(
    ("attribute_line", "name", "value"),
    [(6, "gender", "3"), (7, "race", "3"), (8, "age", "5"), (8, "age", "adult")],
)
def test_read_rafdb_attribute_code_invalid(make_rafdb, attribute_line, name, value) -> None:
    lines = ["1 2", "3 4", "5 6", "7 8", "9 10", "0", "0", "2"]
    lines[attribute_line - 1] = value
    root = make_rafdb([("train_00001.jpg", "4", "\n".join(lines) + "\n")])

    with pytest.raises(DataValidationError, match=f"train_00001_manu_attri.txt:"
                                                  f"{attribute_line}: {name} code '{value}'"):
        read_rafdb(root)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [("1 2\n3 4\n5 6\n7 8\n0\n0\n2\n", r"manu_attri.txt: expected 8 non-empty lines .* found 7"),
     ("1 2\n3 4 5\n5 6\n7 8\n9 10\n0\n0\n2\n", r"manu_attri.txt:2: landmark '3 4 5' is invalid"),
     ("1 2\n3 y\n5 6\n7 8\n9 10\n0\n0\n2\n", r"manu_attri.txt:2: landmark '3 y' is invalid")],
)
def test_read_rafdb_attribute_file_malformed(make_rafdb, attributes, message) -> None:
    root = make_rafdb([("train_00001.jpg", "4", attributes)])

    with pytest.raises(DataValidationError, match=message):
        read_rafdb(root)


def test_read_rafdb_attribute_file_missing(rafdb_root: Path) -> None:
    attribute_path = rafdb_root / "basic" / "Annotation" / "manual" / "test_0002_manu_attri.txt"
    attribute_path.unlink()

    with pytest.raises(DataValidationError, match="test_0002_manu_attri.txt: manual attribute "
                                                  "file not found"):
        read_rafdb(rafdb_root)


@pytest.mark.parametrize(
    ("line", "message"),
    [("train_00002.jpg 1 extra", "expected 2 fields .* found 3"),
     ("train_00002.jpg", "expected 2 fields .* found 1"),
     ("train_2.png 1", "image name 'train_2.png' is invalid"),
     ("train_00001.jpg 5", "duplicate entry: train_00001.jpg is also listed on line 1")],
)
def test_read_rafdb_label_line_malformed(make_rafdb, rafdb_entries, line, message) -> None:
    lines = [f"{name} {code}" for name, code, _ in rafdb_entries]
    lines[1] = line
    root = make_rafdb(label_lines=lines)

    with pytest.raises(DataValidationError, match=f"list_patition_label.txt:2: {message}"):
        read_rafdb(root)


def test_read_rafdb_image_missing(rafdb_root: Path) -> None:
    (rafdb_root / "basic" / "Image" / "aligned" / "test_0001_aligned.jpg").unlink()

    with pytest.raises(DataValidationError, match=r"label.txt:5: image not found: .*"
                                                  "test_0001_aligned.jpg"):
        read_rafdb(rafdb_root)


def test_read_rafdb_problems_reported_together(make_rafdb, rafdb_entries) -> None:
    lines = [f"{name} {code}" for name, code, _ in rafdb_entries]
    lines[0] = "train_00001.jpg 0"
    lines[2] = "train_00003.jpg 9"
    lines[4] = "test_0001.jpg 2 2"
    root = make_rafdb(label_lines=lines)

    with pytest.raises(DataValidationError) as caught:
        read_rafdb(root)

    assert [problem.split("list_patition_label.txt:")[1][:2] for problem in
            caught.value.problems] == ["1:", "3:", "5:"]


def test_read_rafdb_folder_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="list_patition_label.txt"):
        read_rafdb(tmp_path)


def test_read_rafdb_landmarks_values(rafdb_root: Path) -> None:
    landmarks = read_rafdb_landmarks(rafdb_root)

    np.testing.assert_array_equal(
        landmarks["train_00001.jpg"],
        np.array([[10.5, 20.25], [30, 20], [20, 30], [12, 40], [28, 40]], dtype=np.float32),
    )


def test_read_rafdb_landmarks_tabs(rafdb_root: Path) -> None:
    landmarks = read_rafdb_landmarks(rafdb_root)

    np.testing.assert_array_equal(landmarks["train_00003.jpg"], [[1, 2], [3, 4], [5, 6],
                                                                 [7, 8], [9, 10]])


def test_read_rafdb_landmarks_keys(rafdb_root: Path) -> None:
    assert sorted(read_rafdb_landmarks(rafdb_root)) == sorted(e[0] for e in EXPECTED_RECORDS)


@pytest.mark.parametrize("subfolder", ["", "basic"])
def test_detect_format_rafdb(rafdb_root: Path, subfolder: str) -> None:
    assert detect_format(rafdb_root / subfolder) == "rafdb"


def test_detect_format_manifest(make_manifest) -> None:
    folder = make_manifest("image,emotion", ["images/a.jpg,happy"])

    assert detect_format(folder) == "manifest"


@pytest.mark.parametrize("exists", [True, False])
def test_detect_format_neither(tmp_path: Path, exists: bool) -> None:
    folder = tmp_path / "faces"
    if exists:
        folder.mkdir()

    with pytest.raises(FileNotFoundError, match=r"faces is not a data folder; expected .*"
                                                r"list_patition_label.txt.*labels.csv"):
        detect_format(folder)


def test_detect_format_both(rafdb_root: Path) -> None:
    (rafdb_root / "labels.csv").write_text("image,emotion\n", encoding="utf-8")

    with pytest.raises(ValueError, match="pass data_format='rafdb' or data_format='manifest'"):
        detect_format(rafdb_root)


def test_read_dataset_auto_rafdb(rafdb_root: Path) -> None:
    assert read_dataset(rafdb_root) == read_rafdb(rafdb_root)


def test_read_dataset_format_invalid(rafdb_root: Path) -> None:
    with pytest.raises(ValueError, match="data_format='tfds' is invalid"):
        read_dataset(rafdb_root, data_format="tfds")
