"""Label vocabularies shared by every part of fer-fairness.

The canonical emotion order is the FER+ order without contempt, so FER+ logits 0..6 map one to
one onto the canonical classes. Every attribute uses ``UNKNOWN`` (-1) for a missing value; an
unknown value is missing data, never a group of its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

UNKNOWN = -1

EMOTIONS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
)
GENDERS: tuple[str, ...] = ("male", "female")
# RAF-DB's age bins, in years: 0-3, 4-19, 20-39, 40-69 and 70 or older.
AGE_GROUPS: tuple[str, ...] = ("0-3", "4-19", "20-39", "40-69", "70+")
AGE_GROUP_LOWER_BOUNDS: tuple[int, ...] = (0, 4, 20, 40, 70)
RACES: tuple[str, ...] = ("caucasian", "african_american", "asian")

# Vocabulary of each attribute head, keyed by the output name used everywhere else.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "gender": GENDERS,
    "age": AGE_GROUPS,
    "race": RACES,
}
HEAD_CLASSES: dict[str, tuple[str, ...]] = {"emotion": EMOTIONS, **ATTRIBUTES}

# Class orders of pretrained trunks, as their authors publish them.
FERPLUS_CLASSES: tuple[str, ...] = EMOTIONS + ("contempt",)
FER2013_CLASSES: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
    "neutral",
)

# RAF-DB basic codes, from the data set's README.
RAFDB_EMOTION_CODES: dict[int, int] = {
    1: EMOTIONS.index("surprise"),
    2: EMOTIONS.index("fear"),
    3: EMOTIONS.index("disgust"),
    4: EMOTIONS.index("happiness"),
    5: EMOTIONS.index("sadness"),
    6: EMOTIONS.index("anger"),
    7: EMOTIONS.index("neutral"),
}
# Gender code 2 means "unsure" and is missing data.
RAFDB_GENDER_CODES: dict[int, int] = {0: 0, 1: 1, 2: UNKNOWN}
RAFDB_RACE_CODES: dict[int, int] = {0: 0, 1: 1, 2: 2}
RAFDB_AGE_CODES: dict[int, int] = {code: code for code in range(len(AGE_GROUPS))}

# Other spellings accepted in manifests, mapped to the canonical names.
EMOTION_ALIASES: dict[str, str] = {
    "happy": "happiness",
    "smiling": "happiness",
    "surprised": "surprise",
    "sad": "sadness",
    "angry": "anger",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "calm": "neutral",
}
GENDER_ALIASES: dict[str, str] = {
    "m": "male",
    "man": "male",
    "f": "female",
    "woman": "female",
}
# Self-reported ethnicity labels mapped onto RAF-DB's three race groups. Labels that RAF-DB's
# groups do not cover (west Asian, mixed) stay unknown instead of being forced into a group.
ETHNICITY_TO_RACE: dict[str, str] = {
    "white": "caucasian",
    "caucasian": "caucasian",
    "black": "african_american",
    "african_american": "african_american",
    "african-american": "african_american",
    "east_asian": "asian",
    "asian": "asian",
}
UNKNOWN_SPELLINGS: frozenset[str] = frozenset({"", "unknown", "unsure", "na", "n/a", "nan", "none"})


def age_group_from_years(age: float) -> int:
    """Return the RAF-DB age-group index for an age in years.

    Raises:
        ValueError: if ``age`` is negative, above 130 or not a finite number.
    """
    if not math.isfinite(age) or age < 0 or age > 130:
        raise ValueError(f"age={age!r} is not an age in years; expected a number from 0 to 130")
    group = 0
    for index, lower_bound in enumerate(AGE_GROUP_LOWER_BOUNDS):
        if age >= lower_bound:
            group = index
    return group


def parse_label(
    value: str,
    vocabulary: Sequence[str],
    *,
    aliases: Mapping[str, str] | None = None,
    allow_unknown: bool = True,
) -> int:
    """Parse a class name or index into an index of ``vocabulary``.

    Names are matched case-insensitively, after ``aliases``. A whole number is taken as an
    index. An empty or "unknown" value returns ``UNKNOWN`` when ``allow_unknown`` is set.

    Raises:
        ValueError: naming the value and the accepted names.
    """
    text = value.strip().lower().replace(" ", "_")
    if text in UNKNOWN_SPELLINGS:
        if allow_unknown:
            return UNKNOWN
        raise ValueError(f"value is missing; expected one of {', '.join(vocabulary)}")
    if aliases:
        text = aliases.get(text, text)
    if text in vocabulary:
        return vocabulary.index(text)
    if text.lstrip("-").isdigit():
        index = int(text)
        if 0 <= index < len(vocabulary):
            return index
        raise ValueError(
            f"index {index} is out of range; expected 0 to {len(vocabulary) - 1} "
            f"({', '.join(vocabulary)})"
        )
    raise ValueError(f"unknown value {value!r}; expected one of {', '.join(vocabulary)}")


def class_mapping(source_classes: Sequence[str], target_classes: Sequence[str]) -> list[int]:
    """Return, for each target class, the index of the same class in ``source_classes``.

    Used to take the rows of a pretrained classifier that match the canonical emotions.

    Raises:
        ValueError: if a target class is missing from ``source_classes``.
    """
    normalized = [EMOTION_ALIASES.get(name.lower(), name.lower()) for name in source_classes]
    missing = [name for name in target_classes if name not in normalized]
    if missing:
        raise ValueError(
            f"trunk class order {list(source_classes)} lacks {missing}; "
            f"set trunk_classes to the trunk's output order, using the names {list(target_classes)}"
        )
    return [normalized.index(name) for name in target_classes]
