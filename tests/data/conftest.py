"""Builders of tiny RAF-DB and manifest folders for the data tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from PIL import Image

RAFDB_LABEL_NAME = "list_patition_label.txt"

# (label-file name, emotion code, manual attribute file text). The third file has tabs and
# trailing spaces, the fifth an "unsure" gender (code 2).
RAFDB_ENTRIES: tuple[tuple[str, str, str], ...] = (
    ("train_00001.jpg", "5", "10.5 20.25\n30 20\n20 30\n12 40\n28 40\n0\n0\n2\n"),
    ("train_00002.jpg", "1", "1 2\n3 4\n5 6\n7 8\n9 10\n1\n1\n0\n"),
    ("train_00003.jpg", "7", "1\t2 \n3\t4\t\n5 \t6\n7\t8  \n9\t10\n1\t\n2 \n4\t \n"),
    ("train_00004.jpg", "4", "1 2\n3 4\n5 6\n7 8\n9 10\n0\n2\n3\n"),
    ("test_0001.jpg", "2", "1 2\n3 4\n5 6\n7 8\n9 10\n2\n0\n1\n"),
    ("test_0002.jpg", "6", "1 2\n3 4\n5 6\n7 8\n9 10\n0\n1\n2\n"),
)


def write_jpeg(path: Path, *, size: tuple[int, int] = (8, 8), mode: str = "RGB") -> Path:
    """Write a tiny real JPEG, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color=128 if mode == "L" else (200, 120, 40)).save(path, "JPEG")
    return path


def build_rafdb(
    root: Path,
    entries: Sequence[tuple[str, str, str]] = RAFDB_ENTRIES,
    *,
    label_lines: Sequence[str] | None = None,
) -> Path:
    """Write RAF-DB basic's layout under ``root/basic`` and return ``root``.

    ``label_lines`` replaces the label file's lines; by default each entry gives ``name code``.
    """
    basic = root / "basic"
    (basic / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (basic / "Annotation" / "manual").mkdir(parents=True, exist_ok=True)
    (basic / "Image" / "aligned").mkdir(parents=True, exist_ok=True)
    lines = label_lines if label_lines is not None else [f"{n} {c}" for n, c, _ in entries]
    (basic / "EmoLabel" / RAFDB_LABEL_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, _, attributes in entries:
        stem = name.removesuffix(".jpg")
        write_jpeg(basic / "Image" / "aligned" / f"{stem}_aligned.jpg")
        attribute_path = basic / "Annotation" / "manual" / f"{stem}_manu_attri.txt"
        attribute_path.write_text(attributes, encoding="utf-8")
    return root


def build_manifest(folder: Path, header: str, rows: Sequence[str]) -> Path:
    """Write ``labels.csv`` and a tiny JPEG for every ``images/*.jpg`` named in a row."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        first = row.split(",")[0]
        if first.startswith("images/") and first.endswith(".jpg"):
            write_jpeg(folder / first)
    (folder / "labels.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def rafdb_entries() -> tuple[tuple[str, str, str], ...]:
    return RAFDB_ENTRIES


@pytest.fixture
def make_rafdb(tmp_path: Path) -> Callable[..., Path]:
    """Return ``build_rafdb`` writing under ``tmp_path/rafdb``."""
    return lambda *args, **kwargs: build_rafdb(tmp_path / "rafdb", *args, **kwargs)


@pytest.fixture
def rafdb_root(make_rafdb: Callable[..., Path]) -> Path:
    return make_rafdb()


@pytest.fixture
def make_manifest(tmp_path: Path) -> Callable[[str, Sequence[str]], Path]:
    """Return ``build_manifest`` writing under ``tmp_path/manifest``."""
    return lambda header, rows: build_manifest(tmp_path / "manifest", header, rows)


@pytest.fixture
def jpeg_writer() -> Callable[..., Path]:
    return write_jpeg
