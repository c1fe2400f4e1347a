"""Tests of the image file checks, on tiny images written with Pillow and by hand."""

from __future__ import annotations

import csv
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_fairness.data.images import (
    ImageCheckError,
    check_image_files,
    raise_for_invalid_images,
    write_invalid_images,
)
from fer_fairness.data.readers import read_manifest
from fer_fairness.data.records import FaceRecord


def _record(path: Path) -> FaceRecord:
    return FaceRecord(image_path=str(path), example_id=path.name, emotion=0)


def _noise(mode: str, size: tuple[int, int] = (16, 16)) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB").convert(mode)


def _save(path: Path, image: Image.Image, image_format: str) -> Path:
    image.save(path, image_format)
    return path


def _png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(chunk_type + data)
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", crc)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """Write a PNG whose IHDR declares ``width`` x ``height`` but whose data is a few bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def mixed_folder(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    """Write 7 valid images and 3 broken files; return (valid paths, broken paths)."""
    valid = [
        _save(tmp_path / "rgb.jpg", _noise("RGB"), "JPEG"),
        _save(tmp_path / "gray.jpg", _noise("L"), "JPEG"),
        _save(tmp_path / "rgb.png", _noise("RGB"), "PNG"),
        _save(tmp_path / "rgba.png", _noise("RGBA"), "PNG"),
        _save(tmp_path / "palette.png", _noise("P"), "PNG"),
        _save(tmp_path / "png_named.jpg", _noise("RGB"), "PNG"),
        _save(tmp_path / "rgb.bmp", _noise("RGB"), "BMP"),
    ]
    full_jpeg = _save(tmp_path / "full.jpg", _noise("RGB", (64, 64)), "JPEG").read_bytes()
    (tmp_path / "full.jpg").unlink()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(full_jpeg[: len(full_jpeg) // 2])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image\n", encoding="utf-8")
    return valid, [truncated, empty, text]


def test_check_image_files_valid_count(mixed_folder) -> None:
    valid, broken = mixed_folder
    result = check_image_files([_record(path) for path in sorted(valid + broken)])

    assert len(result.valid) == 7


def test_check_image_files_invalid_paths(mixed_folder) -> None:
    valid, broken = mixed_folder
    result = check_image_files([_record(path) for path in sorted(valid + broken)])

    assert sorted(path for path, _ in result.invalid) == sorted(str(path) for path in broken)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("truncated.jpg", "cannot decode the image: image file is truncated"),
     ("empty.jpg", "file is empty (0 bytes)"),
     ("notes.jpg", "not an image in a format TensorFlow decodes (JPEG, PNG, GIF, BMP)")],
)
def test_check_image_files_reasons(mixed_folder, name, reason) -> None:
    _, broken = mixed_folder
    result = check_image_files([_record(path) for path in broken])

    assert dict(result.invalid)[str(broken[0].parent / name)].startswith(reason)


@pytest.mark.parametrize(
    ("mode", "image_format", "suffix"),
    [("RGB", "PNG", ".png"), ("L", "PNG", ".png"), ("RGBA", "PNG", ".png"),
     ("P", "PNG", ".png"), ("I;16", "PNG", ".png"), ("RGB", "PNG", ".jpg"),
     ("RGB", "JPEG", ".png"), ("P", "GIF", ".gif"), ("RGB", "BMP", ".bmp")],
)
def test_check_image_files_valid_formats(tmp_path, mode, image_format, suffix) -> None:
    image = _noise("L").convert(mode) if mode == "I;16" else _noise(mode)
    path = _save(tmp_path / f"face{suffix}", image, image_format)

    assert check_image_files([_record(path)]).invalid == []


@pytest.mark.parametrize("image_format", ["TIFF", "WEBP", "PPM"])
def test_check_image_files_unsupported_format(tmp_path, image_format) -> None:
    path = _save(tmp_path / "face.jpg", _noise("RGB"), image_format)

    reason = dict(check_image_files([_record(path)]).invalid)[str(path)]

    assert reason.startswith("not an image in a format TensorFlow decodes")


@pytest.mark.parametrize(("mode", "kind"), [("1", "1-bit"), ("P", "palette")])
def test_check_image_files_rejects_bmp_tensorflow_misreads(tmp_path, mode, kind) -> None:
    path = _save(tmp_path / "face.bmp", _noise("RGB").convert(mode), "BMP")

    reason = dict(check_image_files([_record(path)]).invalid)[str(path)]

    assert reason.startswith(f"{kind} BMP, which TensorFlow cannot decode")


def test_check_image_files_bomb_message_names_size(tmp_path) -> None:
    path = _png_header_only(tmp_path / "bomb.png", 50_000, 50_000)

    reason = check_image_files([_record(path)]).invalid[0][1]

    assert "50000 x 50000 pixels" in reason


def test_check_image_files_missing_file(tmp_path) -> None:
    path = tmp_path / "gone.jpg"

    assert check_image_files([_record(path)]).invalid == [(str(path), "file not found")]


def test_check_image_files_bomb_rejected_from_header(tmp_path) -> None:
    path = _png_header_only(tmp_path / "bomb.png", 50_000, 50_000)
    start = time.perf_counter()

    result = check_image_files([_record(path)])

    assert time.perf_counter() - start < 1.0
    assert result.valid == []
    assert "above max_pixels=40000000" in result.invalid[0][1]
    assert "was not decoded" in result.invalid[0][1]


@pytest.mark.parametrize(("width", "height"), [(11, 11), (40, 40)])
def test_check_image_files_above_max_pixels(tmp_path, width, height) -> None:
    """11x11 is just above max_pixels and 40x40 far above it."""
    path = _save(tmp_path / "big.png", _noise("RGB", (height, width)), "PNG")

    reason = check_image_files([_record(path)], max_pixels=100).invalid[0][1]

    assert "above max_pixels=100" in reason


def test_check_image_files_restores_pillow_limit(tmp_path) -> None:
    before = Image.MAX_IMAGE_PIXELS
    path = _png_header_only(tmp_path / "bomb.png", 50_000, 50_000)

    check_image_files([_record(path)], max_pixels=1000)

    assert Image.MAX_IMAGE_PIXELS == before


@pytest.mark.parametrize("max_pixels", [0, -5])
def test_check_image_files_max_pixels_invalid(max_pixels) -> None:
    with pytest.raises(ValueError, match=f"max_pixels={max_pixels} is invalid"):
        check_image_files([], max_pixels=max_pixels)


def test_check_image_files_london_fast(london_faces_dir) -> None:
    records = read_manifest(london_faces_dir)
    start = time.perf_counter()

    result = check_image_files(records)

    assert time.perf_counter() - start < 2.0
    assert len(result.valid) == 204


def test_raise_for_invalid_images_lists_all(mixed_folder) -> None:
    _, broken = mixed_folder
    result = check_image_files([_record(path) for path in broken])

    with pytest.raises(ImageCheckError, match=r"3 image file\(s\) cannot be decoded") as caught:
        raise_for_invalid_images(result)

    assert all(str(path) in str(caught.value) for path in broken)


def test_raise_for_invalid_images_none_invalid(mixed_folder) -> None:
    valid, _ = mixed_folder

    raise_for_invalid_images(check_image_files([_record(valid[0])]))


def test_write_invalid_images_rows(mixed_folder, tmp_path) -> None:
    _, broken = mixed_folder
    result = check_image_files([_record(path) for path in broken])
    output = tmp_path / "skipped.csv"

    write_invalid_images(result.invalid, output)

    with open(output, encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["image_path"] for row in rows] == [str(path) for path in broken]
