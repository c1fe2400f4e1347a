"""Reader of RAF-DB basic: the label file, the aligned images and the manual attributes."""

from __future__ import annotations

import logging
import re
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fer_fairness import labels
from fer_fairness.data.problems import Problems, Where, check_image_path, read_utf8_lines
from fer_fairness.data.records import FaceRecord

logger = logging.getLogger(__name__)

# RAF-DB ships the label file with this misspelled name. The correct spelling is accepted too.
RAFDB_LABEL_FILES: tuple[str, ...] = (
    "EmoLabel/list_patition_label.txt",
    "EmoLabel/list_partition_label.txt",
)
RAFDB_IMAGE_FOLDER = "Image/aligned"
RAFDB_ATTRIBUTE_FOLDER = "Annotation/manual"
_RAFDB_IMAGE_NAME = re.compile(r"(?P<split>train|test)_\d+\.jpg")
_RAFDB_ATTRIBUTE_CODES: tuple[tuple[str, dict[int, int]], ...] = (
    ("gender", labels.RAFDB_GENDER_CODES),
    ("race", labels.RAFDB_RACE_CODES),
    ("age", labels.RAFDB_AGE_CODES),
)
_RAFDB_LANDMARK_COUNT = 5


class _RafdbEntry(NamedTuple):
    name: str
    split: str
    emotion: int
    line: int


def read_rafdb(root: str | PathLike[str]) -> list[FaceRecord]:
    """Read RAF-DB basic with its manual attribute files.

    Args:
        root: RAF-DB's ``basic`` folder or the folder that contains it.

    Returns:
        One record per line of the label file, in file order. ``example_id`` is the name the
        label file lists (``train_00001.jpg``), ``image_path`` the aligned image, ``split``
        comes from the name prefix, ``subject_id`` is "" because RAF-DB has no identities,
        and gender code 2 ("unsure") becomes ``UNKNOWN``.

    Raises:
        FileNotFoundError: if the label file or the aligned image or manual annotation
            folder is missing.
        DataValidationError: listing every problem, such as emotion codes outside 1..7,
            missing images or attribute files, and malformed lines.
    """
    records, _ = _scan_rafdb(root)
    return records


def read_rafdb_landmarks(root: str | PathLike[str]) -> dict[str, np.ndarray]:
    """Read the five manual landmarks of every RAF-DB basic image.

    Returns:
        ``example_id`` to a ``(5, 2)`` float32 array of ``x, y`` pixel positions in the
        original image: left eye centre, right eye centre, nose tip, left and right mouth
        corners.

    Raises:
        FileNotFoundError, DataValidationError: as ``read_rafdb``.
    """
    _, landmarks = _scan_rafdb(root)
    return landmarks


def find_rafdb_basic(folder: Path) -> tuple[Path, Path] | None:
    """Return the ``basic`` folder and its label file, from ``folder`` or ``folder/basic``."""
    for basic in (folder, folder / "basic"):
        for name in RAFDB_LABEL_FILES:
            if (basic / name).is_file():
                return basic, basic / name
    return None


def _scan_rafdb(root: str | PathLike[str]) -> tuple[list[FaceRecord], dict[str, np.ndarray]]:
    found = find_rafdb_basic(Path(root))
    if found is None:
        raise FileNotFoundError(
            f"RAF-DB label file not found in {root}; expected {Path(root) / RAFDB_LABEL_FILES[0]} "
            f"or {Path(root) / 'basic' / RAFDB_LABEL_FILES[0]}"
        )
    basic, label_path = found
    basic = basic.resolve()
    for folder in (RAFDB_IMAGE_FOLDER, RAFDB_ATTRIBUTE_FOLDER):
        if not (basic / folder).is_dir():
            raise FileNotFoundError(
                f"RAF-DB folder {basic / folder} not found; it should contain one file per line of "
                f"{label_path.name}, such as train_00001_aligned.jpg or train_00001_manu_attri.txt"
            )

    problems = Problems()
    records: list[FaceRecord] = []
    landmarks: dict[str, np.ndarray] = {}
    for entry in _read_rafdb_labels(label_path, problems):
        stem = entry.name.removesuffix(".jpg")
        where = Where(label_path, entry.line)
        image_path = basic / RAFDB_IMAGE_FOLDER / f"{stem}_aligned.jpg"
        check_image_path(basic, image_path, where, problems)
        attributes = _read_manual_attributes(
            basic / RAFDB_ATTRIBUTE_FOLDER / f"{stem}_manu_attri.txt", problems
        )
        if attributes is None:
            continue
        points, gender, race, age_group = attributes
        landmarks[entry.name] = points
        records.append(FaceRecord(
            image_path=str(image_path), example_id=entry.name, emotion=entry.emotion,
            gender=gender, age_group=age_group, race=race, split=entry.split, source=str(where),
        ))
    if not records and not problems:
        problems.add(label_path, None, "the label file lists no images")
    problems.raise_if_any()
    logger.info("read %d RAF-DB records from %s", len(records), basic)
    return records, landmarks


def _read_rafdb_labels(label_path: Path, problems: Problems) -> list[_RafdbEntry]:
    """Parse ``train_00001.jpg 5`` lines, reporting bad names, codes and duplicates."""
    entries: list[_RafdbEntry] = []
    first_line: dict[str, int] = {}
    for line, text in read_utf8_lines(label_path, problems):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 2:
            problems.add(label_path, line, f"expected 2 fields (image name and emotion code), "
                                           f"found {len(fields)}: {text.strip()!r}")
            continue
        name, code = fields
        match = _RAFDB_IMAGE_NAME.fullmatch(name)
        if match is None:
            problems.add(label_path, line, f"image name {name!r} is invalid; expected a name "
                                           "like train_00001.jpg or test_0001.jpg")
            continue
        if name in first_line:
            problems.add(label_path, line, f"duplicate entry: {name} is also listed on line "
                                           f"{first_line[name]}; remove one of the lines")
            continue
        first_line[name] = line
        emotion = _parse_rafdb_code(code, "emotion", labels.RAFDB_EMOTION_CODES,
                                    label_path, line, problems)
        if emotion is not None:
            entries.append(_RafdbEntry(name, match["split"], emotion, line))
    return entries


def _read_manual_attributes(
    path: Path, problems: Problems
) -> tuple[np.ndarray, int, int, int] | None:
    """Parse a ``*_manu_attri.txt`` file: 5 landmark lines ``x y``, then gender, race, age."""
    if not path.is_file():
        problems.add(path, None, "manual attribute file not found; RAF-DB basic has one for "
                                 "every image, in Annotation/manual")
        return None
    lines = [(line, text) for line, text in read_utf8_lines(path, problems) if text.strip()]
    expected = _RAFDB_LANDMARK_COUNT + len(_RAFDB_ATTRIBUTE_CODES)
    if len(lines) != expected:
        problems.add(path, None, f"expected {expected} non-empty lines (5 landmark lines 'x y', "
                                 f"then gender, race and age), found {len(lines)}")
        return None

    problem_count = len(problems)
    points = np.zeros((_RAFDB_LANDMARK_COUNT, 2), dtype=np.float32)
    for index, (line, text) in enumerate(lines[:_RAFDB_LANDMARK_COUNT]):
        fields = text.split()
        try:
            if len(fields) != 2:
                raise ValueError
            points[index] = [float(fields[0]), float(fields[1])]
        except ValueError:
            problems.add(path, line, f"landmark {text.strip()!r} is invalid; expected two "
                                     "numbers 'x y'")
    codes = [
        _parse_rafdb_code(text, name, mapping, path, line, problems)
        for (line, text), (name, mapping) in zip(lines[_RAFDB_LANDMARK_COUNT:],
                                                 _RAFDB_ATTRIBUTE_CODES)
    ]
    if len(problems) > problem_count:
        return None
    gender, race, age_group = codes
    return points, gender, race, age_group


def _parse_rafdb_code(
    text: str, name: str, mapping: dict[int, int], path: Path, line: int, problems: Problems
) -> int | None:
    """Map one RAF-DB code through ``mapping``, or report it and return None."""
    allowed = ", ".join(str(code) for code in sorted(mapping))
    value = text.strip()
    try:
        return mapping[int(value)]
    except (KeyError, ValueError):
        problems.add(path, line, f"{name} code {value!r} is invalid; expected one of {allowed}")
        return None
