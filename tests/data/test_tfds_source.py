"""Tests of building the TFDS data sets offline and training input read from them."""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from fer_fairness.cli import main
from fer_fairness.config import DataConfig
from fer_fairness.data import readers
from fer_fairness.data.pipeline import make_dataset
from fer_fairness.data.prepare import prepare_splits
from fer_fairness.data.tfds_features import check_label_features, prepare_dataset
from fer_fairness.data.tfds_source import load_prepared, make_tfds_dataset, read_tfds

HEADS = ("emotion", "gender", "age", "race")


@contextlib.contextmanager
def _no_network():
    """Make every attempt to open a network connection fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "create_connection", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        yield


@pytest.fixture(scope="module")
def london_tfds(london_faces_dir, tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("tfds")
    with _no_network():
        return prepare_dataset("face_manifest", manual_dir=london_faces_dir, data_dir=data_dir)


@pytest.fixture(scope="module")
def london_records(london_tfds, tmp_path_factory):
    with _no_network():
        return read_tfds(london_tfds, image_dir=tmp_path_factory.mktemp("images"))


def _labels(record) -> tuple:
    return (record.example_id, record.emotion, record.gender, record.age_group, record.race,
            record.subject_id, record.split)


def test_london_build_one_train_split(london_tfds):
    builder = load_prepared(london_tfds)
    assert {name: split.num_examples for name, split in builder.info.splits.items()} == {
        "train": 204}


def test_read_tfds_matches_folder_reader(london_records, london_faces_dir):
    folder = readers.read_manifest(london_faces_dir)
    assert [_labels(record) for record in london_records] == [_labels(r) for r in folder]


def test_read_tfds_image_bytes_unchanged(london_records, london_faces_dir):
    folder = {record.example_id: record.image_path for record in
              readers.read_manifest(london_faces_dir)}
    for record in london_records[:20]:
        assert Path(record.image_path).read_bytes() == Path(folder[record.example_id]).read_bytes()


def test_read_tfds_reuses_image_folder(london_tfds, london_records, caplog):
    image_dir = Path(london_records[0].image_path).parents[1]
    with caplog.at_level(logging.INFO, logger="fer_fairness.data.tfds_source"):
        again = read_tfds(london_tfds, image_dir=image_dir)
    assert "(0 image files written" in caplog.text
    assert [_labels(record) for record in again] == [_labels(r) for r in london_records]


def test_prepare_splits_tfds_same_splits(london_tfds, london_faces_dir, tmp_path):
    from_folder = prepare_splits(DataConfig(path=str(london_faces_dir)), seed=7)
    config = DataConfig(path=str(london_tfds), source="tfds", tfds_image_dir=str(tmp_path))
    from_tfds = prepare_splits(config, seed=7)
    for split in ("train", "validation", "test"):
        assert [_labels(r) for r in from_tfds.splits[split]] == [
            _labels(r) for r in from_folder.splits[split]], split


def test_make_tfds_dataset_matches_folder_pipeline(london_tfds, london_faces_dir):
    builder = load_prepared(london_tfds)
    ids = [example["id"].decode() for example in tfds.as_numpy(
        builder.as_dataset(split="train", shuffle_files=False))]
    by_id = {record.example_id: record for record in readers.read_manifest(london_faces_dir)}
    folder = make_dataset([by_id[i] for i in ids], heads=HEADS, batch_size=64)
    streamed, steps = make_tfds_dataset(london_tfds, "train", heads=HEADS, batch_size=64)
    assert steps == 4
    for (image_a, targets_a, weights_a), (image_b, targets_b, weights_b) in zip(folder, streamed):
        np.testing.assert_array_equal(image_a.numpy(), image_b.numpy())
        for head in HEADS:
            np.testing.assert_array_equal(targets_a[head].numpy(), targets_b[head].numpy())
            np.testing.assert_array_equal(weights_a[head].numpy(), weights_b[head].numpy())


def test_make_tfds_dataset_balanced_by_race(london_tfds):
    dataset, steps = make_tfds_dataset(london_tfds, "train", heads=HEADS, batch_size=100,
                                       sampling="uniform", group_by=("race",), seed=0)
    races, known = [], []
    for _, targets, weights in dataset.take(20):
        races.append(targets["race"].numpy())
        known.append(weights["race"].numpy() > 0)
    races, known = np.concatenate(races), np.concatenate(known)
    counts = np.bincount(races[known], minlength=3)
    # 22 of 204 faces have no race group; the three groups share the rest equally.
    expected = 2000 * (1 - 22 / 204) / 3
    assert steps == 3
    assert counts.min() >= 0.85 * expected
    assert counts.max() <= 1.15 * expected


def test_rafdb_build_and_read(rafdb_root, tmp_path):
    with _no_network():
        prepared = prepare_dataset("raf_db", manual_dir=rafdb_root, data_dir=tmp_path / "data")
        records = read_tfds(prepared, image_dir=tmp_path / "images")
    assert [_labels(record) for record in records] == [
        _labels(record) for record in readers.read_rafdb(rafdb_root)]


def test_rafdb_build_keeps_landmarks_and_unknown(rafdb_root, tmp_path):
    prepared = prepare_dataset("raf_db", manual_dir=rafdb_root, data_dir=tmp_path)
    builder = load_prepared(prepared)
    examples = {example["id"].decode(): example for split in ("train", "test")
                for example in tfds.as_numpy(builder.as_dataset(split=split))}
    landmarks = readers.read_rafdb_landmarks(rafdb_root)
    np.testing.assert_array_equal(examples["train_00001.jpg"]["landmarks"],
                                  landmarks["train_00001.jpg"])
    # Gender code 2 ("unsure") is stored as -1, the ClassLabel value for no label.
    assert examples["test_0001.jpg"]["gender"] == -1
    assert examples["test_0001.jpg"]["image"].shape == (8, 8, 3)


def test_rafdb_build_empty_manual_dir(tmp_path):
    (tmp_path / "manual").mkdir()
    with pytest.raises(FileNotFoundError, match="RAF-DB manual folder not found or empty"):
        prepare_dataset("raf_db", manual_dir=tmp_path / "manual", data_dir=tmp_path / "data")


def test_rafdb_build_missing_label_file(tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "readme.txt").write_text("not RAF-DB", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="RAF-DB label file not found"):
        prepare_dataset("raf_db", manual_dir=tmp_path / "manual", data_dir=tmp_path / "data")


def test_load_prepared_not_a_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a prepared TFDS data set"):
        load_prepared(tmp_path)


def test_check_label_features_other_order():
    features = tfds.features.FeaturesDict({
        "emotion": tfds.features.ClassLabel(names=["happiness", "neutral"]),
    })
    with pytest.raises(ValueError, match="feature 'emotion' has the classes"):
        check_label_features(features, "somewhere")


def test_cli_prepare_tfds(tmp_path, capsys):
    dummy = Path(__file__).resolve().parents[2] / "datasets" / "face_manifest" / "dummy_data"
    status = main(["prepare-tfds", "face_manifest", "--manual-dir", str(dummy),
                   "--data-dir", str(tmp_path)])
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert status == 0
    assert Path(printed) == tmp_path / "face_manifest" / "1.0.0"
    assert load_prepared(printed).info.splits["train"].num_examples == 3
