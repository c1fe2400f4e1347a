"""Tests of the tf.data input pipeline: decoding, labels and sample weights."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fer_fairness.data.pipeline import load_image, make_dataset
from fer_fairness.data.records import FaceRecord
from fer_fairness.labels import UNKNOWN


def _face_pixels() -> np.ndarray:
    """A smooth 96x80 RGB gradient, so JPEG loss stays small and resizing is exercised."""
    rows = np.linspace(0, 255, 96)[:, None]
    columns = np.linspace(0, 255, 80)[None, :]
    red = (rows * 0.6 + columns * 0.4).astype(np.uint8)
    green = (255 - rows * 0.5).astype(np.uint8)
    blue = (columns * 0.8).astype(np.uint8)
    return np.stack(np.broadcast_arrays(red, green, blue), axis=-1)


def _gray_reference(pixels: np.ndarray) -> np.ndarray:
    gray = Image.fromarray(pixels).convert("L")
    return np.asarray(gray.convert("RGB"))


@pytest.fixture(scope="module")
def image_variants(tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants")
    pixels = _face_pixels()
    gray_rgb = _gray_reference(pixels)
    rgb = Image.fromarray(gray_rgb)
    variants = {
        "rgb.png": rgb,
        "gray.png": rgb.convert("L"),
        "rgba.png": rgb.convert("RGBA"),
        "palette.png": rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256),
        "rgb.jpg": rgb,
        "gray.jpg": rgb.convert("L"),
    }
    paths = {}
    for name, image in variants.items():
        paths[name] = folder / name
        image.save(paths[name], quality=95) if name.endswith(".jpg") else image.save(paths[name])
    # A PNG whose name claims JPEG: the decoder must read the bytes, not the extension.
    paths["png_named.jpg"] = folder / "png_named.jpg"
    paths["png_named.jpg"].write_bytes(paths["rgb.png"].read_bytes())
    return paths


@pytest.mark.parametrize(
    ("name", "tolerance"),
    [
        ("gray.png", 0.51),
        ("rgba.png", 0.51),
        ("palette.png", 2.0),
        ("png_named.jpg", 0.51),
        ("rgb.jpg", 3.0),
        ("gray.jpg", 3.0),
    ],
)
def test_load_image_variants_match_rgb_png(image_variants, name, tolerance):
    reference = load_image(str(image_variants["rgb.png"])).numpy()
    decoded = load_image(str(image_variants[name])).numpy()
    assert decoded.shape == (64, 64, 1)
    assert decoded.dtype == np.float32
    assert np.max(np.abs(decoded - reference)) <= tolerance


def test_load_image_keeps_0_to_255_range(image_variants):
    decoded = load_image(str(image_variants["rgb.png"])).numpy()
    assert decoded.min() >= 0.0
    assert decoded.max() > 200.0


def test_make_dataset_masks_unknown_attributes(image_variants):
    records = [
        FaceRecord(str(image_variants["rgb.png"]), "a", emotion=1, gender=1, age_group=2),
        FaceRecord(str(image_variants["gray.png"]), "b", emotion=0, gender=UNKNOWN, age_group=3),
    ]
    dataset = make_dataset(records, heads=("emotion", "gender", "age"), batch_size=2)
    images, targets, weights = next(iter(dataset))
    assert images.shape == (2, 64, 64, 1)
    np.testing.assert_array_equal(targets["gender"].numpy(), [1, 0])
    np.testing.assert_array_equal(weights["gender"].numpy(), [1.0, 0.0])
    np.testing.assert_array_equal(weights["emotion"].numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(targets["age"].numpy(), [2, 3])


def test_make_dataset_rejects_empty_split():
    with pytest.raises(ValueError, match="make_dataset got no records"):
        make_dataset([], heads=("emotion",), batch_size=4)
