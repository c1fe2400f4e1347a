"""Reader of CSV manifest folders: a ``labels.csv`` that lists images and their labels."""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Sequence
from os import PathLike
from pathlib import Path, PurePosixPath, PureWindowsPath

from fer_fairness import labels
from fer_fairness.data.problems import Problems, Where, check_image_path, read_utf8_lines
from fer_fairness.data.records import FaceRecord

logger = logging.getLogger(__name__)

MANIFEST_FILE = "labels.csv"

MANIFEST_REQUIRED_COLUMNS: tuple[str, ...] = ("image", "emotion")
MANIFEST_OPTIONAL_COLUMNS: tuple[str, ...] = (
    "gender", "age", "age_group", "race", "ethnicity", "subject_id", "split",
)
MANIFEST_SPLITS: dict[str, str] = {
    "train": "train", "validation": "validation", "val": "validation", "test": "test",
}
# Ethnicity labels of real groups that RAF-DB's three race groups do not cover. They become
# UNKNOWN and are counted in one INFO log line. Any other unrecognised value is a problem.
UNMAPPED_ETHNICITIES: frozenset[str] = frozenset({
    "west_asian", "south_asian", "southeast_asian", "central_asian", "middle_eastern", "arab",
    "indian", "hispanic", "latino", "latina", "latinx", "native_american", "indigenous",
    "pacific_islander", "mixed", "multiracial", "other",
})
_MIXED_ETHNICITY_SEPARATORS = re.compile(r"[/+,;&]")


def read_manifest(folder: str | PathLike[str]) -> list[FaceRecord]:
    """Read a folder whose ``labels.csv`` lists images and their labels.

    The file is UTF-8, with or without a byte order mark. Required columns:

    - ``image``: path relative to the folder, with ``/`` or ``\\`` separators. Absolute
      paths, ``..`` and symlinks that resolve outside the folder are rejected.
    - ``emotion``: a name of ``labels.EMOTIONS``, an alias of ``labels.EMOTION_ALIASES`` or a
      canonical index 0..6. Numbers are canonical indices, not RAF-DB codes.

    Optional columns: ``gender``, ``age`` in years and/or ``age_group`` (a name or index of
    ``labels.AGE_GROUPS``), ``race`` or ``ethnicity``, ``subject_id`` and ``split`` (train,
    validation, val or test). Other columns are ignored. An empty or "unknown" attribute is
    ``UNKNOWN``. Ethnicity labels map through ``labels.ETHNICITY_TO_RACE``. Labels in
    ``UNMAPPED_ETHNICITIES`` and mixes of known labels such as "east_asian/white" become
    ``UNKNOWN``; any other value is a problem.

    Raises:
        FileNotFoundError: if ``folder/labels.csv`` does not exist.
        DataValidationError: listing every problem with its line.
    """
    root = Path(folder).resolve()
    csv_path = root / MANIFEST_FILE
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"manifest {csv_path} not found; expected a {MANIFEST_FILE} with at least the "
            f"columns {', '.join(MANIFEST_REQUIRED_COLUMNS)} in {root}"
        )
    problems = Problems()
    header, rows = _read_manifest_rows(csv_path, problems)
    if not set(MANIFEST_REQUIRED_COLUMNS) <= set(header):
        problems.raise_if_any()

    unmapped: Counter[str] = Counter()
    records: list[FaceRecord] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        record = _manifest_record(root, Where(csv_path, line), row, problems, unmapped)
        if record is None:
            continue
        if record.example_id in first_line:
            problems.add(csv_path, line, f"duplicate entry: image {record.example_id} is also "
                                         f"listed on line {first_line[record.example_id]}; "
                                         "remove one of the lines")
            continue
        first_line[record.example_id] = line
        records.append(record)
    if not records and not problems:
        problems.add(csv_path, None, "the manifest lists no images")
    problems.raise_if_any()

    if unmapped:
        counts = ", ".join(f"{label} ({count})" for label, count in unmapped.most_common())
        logger.info("%s: %d ethnicity labels outside RAF-DB's race groups set to unknown: %s",
                    csv_path, sum(unmapped.values()), counts)
    logger.info("read %d manifest records from %s", len(records), csv_path)
    return records


def _read_manifest_rows(
    csv_path: Path, problems: Problems
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Parse the CSV into its header and ``(line number, row)`` pairs, checking the header."""
    lines = read_utf8_lines(csv_path, problems)
    # csv.reader counts the lines it consumes, and this list maps that count back to file
    # line numbers, because lines that are not UTF-8 were left out.
    numbers = [number for number, _ in lines]
    reader = csv.reader(text + "\n" for _, text in lines)
    header: list[str] = []
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for fields in reader:
            line = numbers[reader.line_num - 1]
            if not any(field.strip() for field in fields):
                continue
            if not header:
                header = [field.strip().lower() for field in fields]
                _check_manifest_header(header, csv_path, line, problems)
            elif len(fields) != len(header):
                problems.add(csv_path, line, f"expected {len(header)} fields "
                                             f"({','.join(header)}), found {len(fields)}")
            else:
                rows.append((line, dict(zip(header, fields))))
    except csv.Error as err:
        problems.add(csv_path, numbers[reader.line_num - 1], f"invalid CSV: {err}")
    if not header:
        problems.add(csv_path, None, "the file is empty; expected a header line with the "
                                     f"columns {', '.join(MANIFEST_REQUIRED_COLUMNS)}")
    return header, rows


def _check_manifest_header(
    header: list[str], csv_path: Path, line: int, problems: Problems
) -> None:
    for column in MANIFEST_REQUIRED_COLUMNS:
        if column not in header:
            problems.add(csv_path, line, f"required column {column!r} is missing; the header "
                                         f"has {','.join(header)}")
    for column, count in Counter(header).items():
        if count > 1:
            problems.add(csv_path, line, f"column {column!r} appears {count} times; keep one")
    ignored = [c for c in header if c not in MANIFEST_REQUIRED_COLUMNS + MANIFEST_OPTIONAL_COLUMNS]
    if ignored:
        logger.debug("%s: ignoring columns %s", csv_path, ignored)


def _manifest_record(
    root: Path, where: Where, row: dict[str, str], problems: Problems, unmapped: Counter[str]
) -> FaceRecord | None:
    problem_count = len(problems)
    image = _manifest_image_path(root, row["image"], where, problems)
    emotion = _parse_column(row, "emotion", labels.EMOTIONS, where, problems,
                            aliases=labels.EMOTION_ALIASES, allow_unknown=False)
    gender = _parse_column(row, "gender", labels.GENDERS, where, problems,
                           aliases=labels.GENDER_ALIASES)
    age_group = _parse_age(row, where, problems)
    race = _parse_race(row, where, problems, unmapped)
    split = _parse_split(row.get("split", ""), where, problems)
    if image is None or len(problems) > problem_count:
        return None
    image_path, example_id = image
    return FaceRecord(
        image_path=str(image_path), example_id=example_id, emotion=emotion, gender=gender,
        age_group=age_group, race=race, subject_id=row.get("subject_id", "").strip(),
        split=split, source=str(where),
    )


def _manifest_image_path(
    root: Path, value: str, where: Where, problems: Problems
) -> tuple[Path, str] | None:
    """Return the image's absolute path and its relative POSIX path, or report why not."""
    text = value.strip()
    if not text:
        problems.add(*where, f"image is empty; expected a path relative to {root}")
        return None
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute():
        problems.add(*where, f"image path {text!r} is absolute; give it relative to {root}")
        return None
    relative = PurePosixPath(text.replace("\\", "/"))
    if ".." in relative.parts:
        problems.add(*where, f"image path {text!r} contains '..'; give a path inside {root}")
        return None
    image_path = root / relative
    check_image_path(root, image_path, where, problems)
    return image_path, relative.as_posix()


def _parse_column(
    row: dict[str, str],
    column: str,
    vocabulary: Sequence[str],
    where: Where,
    problems: Problems,
    *,
    aliases: dict[str, str] | None = None,
    allow_unknown: bool = True,
) -> int:
    """Parse an optional label column with ``labels.parse_label``; a missing column is UNKNOWN."""
    value = row.get(column)
    if value is None:
        return labels.UNKNOWN
    try:
        return labels.parse_label(value, vocabulary, aliases=aliases, allow_unknown=allow_unknown)
    except ValueError as err:
        problems.add(*where, f"column {column}: {err}")
        return labels.UNKNOWN


def _parse_age(row: dict[str, str], where: Where, problems: Problems) -> int:
    """Return the age group from ``age_group`` and/or ``age`` (years), reporting conflicts."""
    group = _parse_column(row, "age_group", labels.AGE_GROUPS, where, problems)
    years = row.get("age", "").strip()
    if years.lower() in labels.UNKNOWN_SPELLINGS:
        return group
    try:
        group_from_years = labels.age_group_from_years(float(years))
    except ValueError:
        problems.add(*where, f"column age: {years!r} is not an age in years; expected a "
                                  "number from 0 to 130, or empty if unknown")
        return labels.UNKNOWN
    if group not in (labels.UNKNOWN, group_from_years):
        problems.add(*where, f"age {years} is in group {labels.AGE_GROUPS[group_from_years]} "
                                  f"but age_group is {labels.AGE_GROUPS[group]}; fix one of them")
    return group_from_years


def _parse_race(
    row: dict[str, str], where: Where, problems: Problems, unmapped: Counter[str]
) -> int:
    """Return the race group from ``race`` (preferred) or ``ethnicity``."""
    column = "race" if "race" in row else "ethnicity"
    value = row.get(column)
    if value is None:
        return labels.UNKNOWN
    try:
        return labels.parse_label(value, labels.RACES, aliases=labels.ETHNICITY_TO_RACE)
    except ValueError:
        pass
    text = value.strip().lower().replace(" ", "_")
    parts = [part.strip().replace("-", "_") for part in _MIXED_ETHNICITY_SEPARATORS.split(text)]
    known = set(labels.ETHNICITY_TO_RACE) | UNMAPPED_ETHNICITIES
    if all(part in known for part in parts):
        unmapped[text] += 1
        return labels.UNKNOWN
    problems.add(*where, f"column {column}: unknown value {value!r}; expected one of "
                              f"{', '.join(sorted(labels.ETHNICITY_TO_RACE))}, a label outside "
                              "RAF-DB's groups such as west_asian or mixed, or empty if unknown")
    return labels.UNKNOWN


def _parse_split(value: str, where: Where, problems: Problems) -> str:
    text = value.strip().lower()
    if not text or text in MANIFEST_SPLITS:
        return MANIFEST_SPLITS.get(text, "")
    problems.add(*where, f"split {value!r} is invalid; expected one of "
                              f"{', '.join(MANIFEST_SPLITS)}, or empty")
    return ""
