"""Problem collection shared by the data readers.

A reader adds every problem it finds to a ``Problems`` list as ``path:line: message`` and
raises them together in one ``DataValidationError``, so a bad data set fails before training
starts and one run shows everything to fix.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

MAX_LISTED_PROBLEMS = 50


class DataValidationError(ValueError):
    """Error listing every problem found in a data set, one ``path:line: message`` per line.

    The message lists at most ``max_listed`` problems and counts the rest.

    Attributes:
        problems: Every problem found, sorted by file and line.
    """

    def __init__(self, problems: Sequence[str], *, max_listed: int = MAX_LISTED_PROBLEMS):
        self.problems = list(problems)
        lines = [f"  {problem}" for problem in self.problems[:max_listed]]
        if len(self.problems) > max_listed:
            lines.append(f"  and {len(self.problems) - max_listed} more")
        super().__init__(
            f"{len(self.problems)} problem(s) in the data set; fix them and run again:\n"
            + "\n".join(lines)
        )


class Where(NamedTuple):
    """File and 1-based line of an entry; ``str()`` gives ``path:line``."""

    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


class Problems(list):
    """Problems found so far, as ``(path, line, message)``. Line 0 means the whole file."""

    def add(self, path: Path, line: int | None, message: str) -> None:
        self.append((str(path), line or 0, message))

    def raise_if_any(self) -> None:
        """Raise ``DataValidationError`` listing the problems sorted by file and line."""
        if self:
            raise DataValidationError([
                f"{path}:{line}: {message}" if line else f"{path}: {message}"
                for path, line, message in sorted(self, key=lambda problem: problem[:2])
            ])


def read_utf8_lines(path: Path, problems: Problems) -> list[tuple[int, str]]:
    """Return ``(line number, text)`` for each line, reporting lines that are not UTF-8."""
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    lines = []
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            lines.append((number, raw.decode("utf-8")))
        except UnicodeDecodeError as err:
            problems.add(path, number, f"invalid UTF-8 byte 0x{raw[err.start]:02x} at column "
                                       f"{err.start + 1}; save the file as UTF-8")
    return lines


def check_image_path(root: Path, image_path: Path, where: Where, problems: Problems) -> None:
    """Report an image that is missing or that resolves (through a symlink) outside ``root``."""
    resolved = image_path.resolve()
    if not resolved.is_relative_to(root):
        problems.add(*where, f"image {image_path} resolves to {resolved}, outside the data "
                                  f"folder {root}; copy the file into the folder")
    elif not resolved.is_file():
        problems.add(*where, f"image not found: {image_path}")
