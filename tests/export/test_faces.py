"""Face detection with OpenCV's Haar cascade on London faces."""

from __future__ import annotations

import numpy as np

from fer_fairness.faces import FaceBox, crop, detect_faces


def test_detect_faces_finds_face_in_padded_crop(london_rgb):
    border = 40
    padded = np.pad(london_rgb[0], ((border, border), (border, border), (0, 0)), mode="edge")
    boxes = detect_faces(padded)
    assert len(boxes) == 1
    box = boxes[0]
    # The face lies in the original 100x100 crop, inside the border.
    assert border - 20 <= box.x <= border + 40
    assert border - 20 <= box.y <= border + 40
    assert 50 <= box.width <= 130


def test_detect_faces_handles_face_touching_border(london_rgb):
    boxes = detect_faces(london_rgb[1])
    assert len(boxes) == 1
    height, width = london_rgb.shape[1:3]
    assert boxes[0].x + boxes[0].width <= width
    assert boxes[0].y + boxes[0].height <= height


def test_detect_faces_blank_image_finds_none():
    assert detect_faces(np.full((120, 160, 3), 128, np.uint8)) == []


def test_crop_returns_box_pixels():
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    patch = crop(image, FaceBox(x=2, y=3, width=4, height=5))
    np.testing.assert_array_equal(patch, image[3:8, 2:6])
