"""Entry point of the data readers: ``read_dataset`` detects the layout and calls its reader.

``rafdb`` reads RAF-DB basic and ``manifest`` reads ``labels.csv`` folders. Every reader checks
the whole data set before it returns and raises every problem together in one
``DataValidationError`` (see ``problems``). This module re-exports their public names, so
callers import from here.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Literal

from fer_fairness.data.manifest import (
    MANIFEST_FILE,
    MANIFEST_OPTIONAL_COLUMNS,
    MANIFEST_REQUIRED_COLUMNS,
    MANIFEST_SPLITS,
    UNMAPPED_ETHNICITIES,
    read_manifest,
)
from fer_fairness.data.problems import MAX_LISTED_PROBLEMS, DataValidationError
from fer_fairness.data.rafdb import (
    RAFDB_ATTRIBUTE_FOLDER,
    RAFDB_IMAGE_FOLDER,
    RAFDB_LABEL_FILES,
    find_rafdb_basic,
    read_rafdb,
    read_rafdb_landmarks,
)
from fer_fairness.data.records import FaceRecord

__all__ = [
    "DATA_FORMATS",
    "MANIFEST_FILE",
    "MANIFEST_OPTIONAL_COLUMNS",
    "MANIFEST_REQUIRED_COLUMNS",
    "MANIFEST_SPLITS",
    "MAX_LISTED_PROBLEMS",
    "RAFDB_ATTRIBUTE_FOLDER",
    "RAFDB_IMAGE_FOLDER",
    "RAFDB_LABEL_FILES",
    "UNMAPPED_ETHNICITIES",
    "DataValidationError",
    "detect_format",
    "read_dataset",
    "read_manifest",
    "read_rafdb",
    "read_rafdb_landmarks",
]

DATA_FORMATS: tuple[str, ...] = ("auto", "rafdb", "manifest")


def read_dataset(
    path: str | PathLike[str],
    *,
    data_format: Literal["auto", "rafdb", "manifest"] = "auto",
) -> list[FaceRecord]:
    """Read a RAF-DB folder or a manifest folder into records, checking every entry.

    Args:
        path: The data folder: RAF-DB's ``basic`` folder or its parent, or a folder with
            ``labels.csv``.
        data_format: "rafdb", "manifest", or "auto" to detect it with ``detect_format``.

    Raises:
        ValueError: if ``data_format`` is not one of ``DATA_FORMATS``.
        FileNotFoundError: if the folder or its annotation files are missing.
        DataValidationError: listing every problem in the data set.
    """
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format={data_format!r} is invalid; expected one of {DATA_FORMATS}")
    if data_format == "auto":
        data_format = detect_format(path)
    if data_format == "rafdb":
        return read_rafdb(path)
    return read_manifest(path)


def detect_format(path: str | PathLike[str]) -> Literal["rafdb", "manifest"]:
    """Detect whether a folder contains RAF-DB (basic) or a ``labels.csv`` manifest.

    Raises:
        FileNotFoundError: naming the path and the files expected there, if it is neither.
        ValueError: if the folder contains both, so the format must be given explicitly.
    """
    folder = Path(path)
    is_rafdb = folder.is_dir() and find_rafdb_basic(folder) is not None
    is_manifest = (folder / MANIFEST_FILE).is_file()
    if is_rafdb and is_manifest:
        raise ValueError(
            f"{folder} contains both RAF-DB and {MANIFEST_FILE}; pass data_format='rafdb' or "
            "data_format='manifest'"
        )
    if is_rafdb:
        return "rafdb"
    if is_manifest:
        return "manifest"
    raise FileNotFoundError(
        f"{folder} is not a data folder; expected {folder / 'basic' / RAFDB_LABEL_FILES[0]} "
        f"(RAF-DB's parent folder), {folder / RAFDB_LABEL_FILES[0]} (RAF-DB's basic folder) "
        f"or {folder / MANIFEST_FILE} (a manifest)"
    )
