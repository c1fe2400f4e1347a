"""Checks that every image file decodes before training starts.

``tf.io.decode_image`` fails in the middle of an epoch on a broken file, so Pillow checks the
files up front. Reading the header rejects non-images, and images that declare more than
``max_pixels`` pixels, without decoding them. A full decode then finds truncated and corrupt
files.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path

from PIL import Image, ImageFile, UnidentifiedImageError

from fer_fairness.data.records import FaceRecord

logger = logging.getLogger(__name__)

# Pillow format ids of the formats that tf.io.decode_image reads. Pillow reports some
# camera JPEGs as MPO, a JPEG with extra pictures appended, which TensorFlow decodes as JPEG.
TF_IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "BMP")
_ACCEPTED_PIL_FORMATS = frozenset(TF_IMAGE_FORMATS + ("MPO",))
MAX_LISTED_IMAGES = 50
# BMP modes that tf.io.decode_image (TensorFlow 2.21) mishandles: it rejects 1-bit BMPs and
# returns the palette indices of palette BMPs instead of their colours.
_UNDECODABLE_BMP_MODES = {"1": "1-bit", "P": "palette"}


@dataclasses.dataclass(frozen=True)
class ImageCheckResult:
    """Outcome of ``check_image_files``.

    Attributes:
        valid: Records whose image decodes, in input order.
        invalid: ``(image path, reason)`` for every image that does not, in input order.
    """

    valid: list[FaceRecord]
    invalid: list[tuple[str, str]]


class ImageCheckError(ValueError):
    """Error listing every image that failed ``check_image_files``.

    Attributes:
        invalid: Every ``(image path, reason)`` pair, including those the message leaves out.
    """

    def __init__(self, invalid: Sequence[tuple[str, str]], *, max_listed: int = MAX_LISTED_IMAGES):
        self.invalid = list(invalid)
        lines = [f"  {path}: {reason}" for path, reason in self.invalid[:max_listed]]
        if len(self.invalid) > max_listed:
            lines.append(f"  and {len(self.invalid) - max_listed} more")
        super().__init__(
            f"{len(self.invalid)} image file(s) cannot be decoded; fix or remove them, or leave "
            "them out with --bad-images skip ([data] bad_images = \"skip\"):\n" + "\n".join(lines)
        )


def raise_for_invalid_images(result: ImageCheckResult) -> None:
    """Raise ``ImageCheckError`` listing all invalid images, if ``result`` has any."""
    if result.invalid:
        raise ImageCheckError(result.invalid)


def write_invalid_images(invalid: Sequence[tuple[str, str]], path: str | PathLike[str]) -> None:
    """Write skipped images as a CSV file with the columns ``image_path`` and ``reason``."""
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["image_path", "reason"])
        writer.writerows(invalid)


def check_image_files(
    records: Sequence[FaceRecord], *, max_pixels: int = 40_000_000
) -> ImageCheckResult:
    """Open and fully decode every record's image to find files that TensorFlow cannot read.

    An image is valid when its content is JPEG, PNG, GIF or BMP, whatever its extension, it
    declares at most ``max_pixels`` pixels (width times height) and it decodes completely.

    Args:
        records: Records whose ``image_path`` to check.
        max_pixels: Largest accepted width times height. Larger images are rejected from the
            header alone, so a decompression bomb is never decoded.

    Returns:
        The valid records and ``(image path, reason)`` for the others. The caller either
        raises with ``raise_for_invalid_images`` or skips them and records the list with
        ``write_invalid_images``.

    Raises:
        ValueError: if ``max_pixels`` is less than 1.
    """
    if max_pixels < 1:
        raise ValueError(
            f"max_pixels={max_pixels} is invalid; expected a positive number of pixels"
        )
    valid: list[FaceRecord] = []
    invalid: list[tuple[str, str]] = []
    with _pillow_limits(max_pixels):
        for record in records:
            reason = _image_problem(Path(record.image_path), max_pixels)
            if reason is None:
                valid.append(record)
            else:
                invalid.append((record.image_path, reason))
    if invalid:
        logger.warning("%d of %d image files cannot be decoded", len(invalid), len(records))
    return ImageCheckResult(valid=valid, invalid=invalid)


@contextlib.contextmanager
def _pillow_limits(max_pixels: int) -> Iterator[None]:
    """Turn off Pillow's own pixel limit and reject truncated files, then restore both.

    ``Image.open`` reads only the header, so with Pillow's limit off the caller can read the
    declared width and height, report them, and reject the image before ``load`` decodes it.
    """
    # NOTE: both settings are Pillow module globals, so another thread that opens images while
    # this check runs also uses them. Both are restored on exit.
    saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS = None
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _image_problem(path: Path, max_pixels: int) -> str | None:
    """Return why the image at ``path`` is invalid, or None if it decodes."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "file not found"
    except OSError as err:
        return f"cannot read the file: {err.strerror}"
    if size == 0:
        return "file is empty (0 bytes)"
    try:
        with Image.open(path, formats=TF_IMAGE_FORMATS) as image:
            width, height = image.size
            if width * height > max_pixels:
                return _too_large(f"{width} x {height} pixels", max_pixels)
            if image.format not in _ACCEPTED_PIL_FORMATS:
                return f"format {image.format} is not one of {', '.join(TF_IMAGE_FORMATS)}"
            if image.format == "BMP" and image.mode in _UNDECODABLE_BMP_MODES:
                return (
                    f"{_UNDECODABLE_BMP_MODES[image.mode]} BMP, which TensorFlow cannot decode "
                    "into pixel values; convert it to PNG"
                )
            image.load()
    except UnidentifiedImageError:
        return f"not an image in a format TensorFlow decodes ({', '.join(TF_IMAGE_FORMATS)})"
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        return f"cannot decode the image: {err}"
    return None


def _too_large(size: str, max_pixels: int) -> str:
    return (f"the header declares {size}, above max_pixels={max_pixels}; the image may be a "
            "decompression bomb, so it was not decoded")
