"""Tests of prepare_splits with an augmented set and with unreadable images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fer_fairness.config import DataConfig
from fer_fairness.data.augment import read_augmented, write_augmented_set
from fer_fairness.data.images import ImageCheckError
from fer_fairness.data.prepare import prepare_splits


@pytest.fixture(scope="module")
def augmented_folder(london_faces_dir, tmp_path_factory) -> Path:
    train = prepare_splits(DataConfig(path=str(london_faces_dir)), seed=0).splits["train"]
    output = tmp_path_factory.mktemp("augment") / "out"
    write_augmented_set(train, output, group_by=("gender", "race"), seed=0)
    return output


def test_prepare_adds_copies_to_train_only(london_faces_dir, augmented_folder):
    plain = prepare_splits(DataConfig(path=str(london_faces_dir)), seed=0)
    config = DataConfig(path=str(london_faces_dir), augmented_path=str(augmented_folder))
    prepared = prepare_splits(config, seed=0)
    copies = [r for r in prepared.splits["train"] if r.example_id.startswith("augmented/")]
    assert len(copies) > 0
    assert len(prepared.splits["train"]) == len(plain.splits["train"]) + len(copies)
    assert prepared.splits["validation"] == plain.splits["validation"]
    assert prepared.splits["test"] == plain.splits["test"]


def test_prepare_no_held_out_face_has_copy(london_faces_dir, augmented_folder):
    config = DataConfig(path=str(london_faces_dir), augmented_path=str(augmented_folder))
    prepared = prepare_splits(config, seed=0)
    held_out = {r.image_path for name in ("validation", "test") for r in prepared.splits[name]}
    # A copy keeps the file name of its source, plus _augN.
    copied = {Path(r.image_path).name.rsplit("_aug", 1)[0] + ".jpg"
              for r in prepared.splits["train"] if "_aug" in Path(r.image_path).name}
    assert not copied & {Path(path).name for path in held_out}


def test_prepare_other_seed_rejects_augmented_set(london_faces_dir, augmented_folder):
    config = DataConfig(path=str(london_faces_dir), augmented_path=str(augmented_folder))
    with pytest.raises(ValueError, match="does not match this run's train split: [1-9][0-9]* "
                                         "copies of validation or test faces"):
        prepare_splits(config, seed=1)


def test_read_augmented_unknown_source(augmented_folder):
    with pytest.raises(ValueError, match="copies of faces in no split"):
        read_augmented(augmented_folder, {"train": [], "validation": [], "test": []})


def test_read_augmented_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels.csv not found"):
        read_augmented(tmp_path, {"train": []})


def _folder_with_broken_images(tmp_path: Path) -> tuple[Path, list[str]]:
    """A 10-image manifest without splits whose images 2, 5 and 8 are not images."""
    from PIL import Image

    folder = tmp_path / "faces"
    (folder / "images").mkdir(parents=True)
    rows, broken = [], []
    for index in range(10):
        path = folder / "images" / f"{index}.jpg"
        if index in (2, 5, 8):
            path.write_bytes(b"not a jpeg" if index != 5 else b"")
            broken.append(str(path))
        else:
            Image.new("RGB", (8, 8), (120, 90, 60)).save(path, "JPEG")
        rows.append(f"images/{index}.jpg,s{index},neutral,female,30")
    header = "image,subject_id,emotion,gender,age\n"
    (folder / "labels.csv").write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    return folder, broken


def test_prepare_skip_bad_images_keeps_seven(tmp_path):
    folder, broken = _folder_with_broken_images(tmp_path)
    config = DataConfig(path=str(folder), bad_images="skip", validation_fraction=0.2,
                        test_fraction=0.2)
    prepared = prepare_splits(config, seed=0)
    assert len(prepared.all_records) == 7
    assert sorted(path for path, _ in prepared.skipped) == sorted(broken)


def test_prepare_stop_on_bad_images_names_all(tmp_path):
    folder, broken = _folder_with_broken_images(tmp_path)
    with pytest.raises(ImageCheckError) as caught:
        prepare_splits(DataConfig(path=str(folder)), seed=0)
    assert sorted(path for path, _ in caught.value.invalid) == sorted(broken)


def test_prepare_skip_bad_augmented_copy(london_faces_dir, augmented_folder, tmp_path):
    import shutil

    copy = tmp_path / "augmented_copy"
    shutil.copytree(augmented_folder, copy)
    victim = sorted((copy / "augmented").rglob("*.jpg"))[0]
    victim.write_bytes(b"broken")
    config = DataConfig(path=str(london_faces_dir), augmented_path=str(copy), bad_images="skip")
    prepared = prepare_splits(config, seed=0)
    assert [path for path, _ in prepared.skipped] == [str(victim)]
    stop = dataclasses.replace(config, bad_images="stop")
    with pytest.raises(ImageCheckError, match="1 image file"):
        prepare_splits(stop, seed=0)


def test_read_augmented_without_copies(london_faces_dir, tmp_path):
    # Target 1 is below every group's size, so no group gets copies.
    train = prepare_splits(DataConfig(path=str(london_faces_dir)), seed=0).splits["train"]
    result = write_augmented_set(train, tmp_path / "out", group_by=("gender",), target_count=1)
    assert result.copies == 0
    assert read_augmented(tmp_path / "out", {"train": train}) == []
