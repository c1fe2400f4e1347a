"""Validation of sensitive features and their encoding into groupings.

A grouping splits the images into the groups of one attribute (gender, age, race) or of an
intersection of two attributes (gender x age). Every group of the vocabulary appears, empty or
not. An unknown value (``UNKNOWN`` = -1) leaves the image out of the grouping unless
``include_unknown`` is set, in which case "unknown" is a group of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from fer_fairness.labels import ATTRIBUTES, EMOTIONS, UNKNOWN

UNKNOWN_GROUP = "unknown"
# Joins the two group names of an intersectional group, as in "female/20-39".
INTERSECTION_SEPARATOR = "/"


@dataclasses.dataclass(frozen=True)
class Grouping:
    """A partition of the images into named groups.

    Attributes:
        name: "gender", "age", "race", or "<first>_x_<second>" for an intersection.
        group_names: Names of the groups, in vocabulary order.
        codes: (n,) int group index per image, where -1 leaves the image out.
        annotated: False when an attribute of the grouping is missing from the input.
    """

    name: str
    group_names: tuple[str, ...]
    codes: np.ndarray
    annotated: bool = True

    @property
    def size(self) -> int:
        """Number of groups."""
        return len(self.group_names)


def intersection_name(first: str, second: str) -> str:
    """Return the grouping name of an intersection, e.g. "gender_x_age"."""
    return f"{first}_x_{second}"


def validate_labels(name: str, values: object, *, n: int, n_classes: int, allow_unknown: bool):
    """Return ``values`` as a (n,) int64 array after checking its shape and range.

    Raises:
        ValueError: naming the argument, the offending value and the expected range.
    """
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(
            f"{name} has shape {array.shape}; expected ({n},), one value per sample of y_true"
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} has dtype {array.dtype}; expected integer class indices")
    array = array.astype(np.int64)
    low = UNKNOWN if allow_unknown else 0
    invalid = (array < low) | (array >= n_classes)
    if invalid.any():
        value = int(array[invalid][0])
        top = n_classes - 1
        allowed = f"{low} (unknown) to {top}" if allow_unknown else f"0 to {top}"
        raise ValueError(f"{name} contains {value}; expected values from {allowed}")
    return array


def validate_sensitive_features(
    sensitive_features: Mapping[str, object], *, n: int
) -> dict[str, np.ndarray]:
    """Validate the names, lengths and codes of the sensitive features, as int64 arrays.

    Raises:
        ValueError: for a name outside ``ATTRIBUTES``, a length other than ``n`` or a code
            outside -1..len(vocabulary)-1.
    """
    if not isinstance(sensitive_features, Mapping):
        raise ValueError(
            f"sensitive_features is a {type(sensitive_features).__name__}; expected a mapping "
            f"from attribute name ({', '.join(ATTRIBUTES)}) to a (n,) array of int codes"
        )
    validated = {}
    for name, values in sensitive_features.items():
        if name not in ATTRIBUTES:
            raise ValueError(
                f"sensitive_features has unknown attribute {name!r}; "
                f"expected names from {', '.join(ATTRIBUTES)}"
            )
        validated[name] = validate_labels(
            f"sensitive_features[{name!r}]",
            values,
            n=n,
            n_classes=len(ATTRIBUTES[name]),
            allow_unknown=True,
        )
    return validated


def _attribute_grouping(
    name: str, features: Mapping[str, np.ndarray], *, n: int, include_unknown: bool
) -> Grouping:
    group_names = ATTRIBUTES[name]
    annotated = name in features
    # A missing attribute is unknown for every image.
    codes = features[name].copy() if annotated else np.full(n, UNKNOWN, dtype=np.int64)
    if include_unknown:
        codes[codes == UNKNOWN] = len(group_names)
        group_names = group_names + (UNKNOWN_GROUP,)
    return Grouping(name, group_names, codes, annotated)


def _intersection_grouping(first: Grouping, second: Grouping) -> Grouping:
    codes = np.where(
        (first.codes >= 0) & (second.codes >= 0), first.codes * second.size + second.codes, -1
    )
    group_names = tuple(
        f"{a}{INTERSECTION_SEPARATOR}{b}" for a in first.group_names for b in second.group_names
    )
    return Grouping(
        intersection_name(first.name, second.name),
        group_names,
        codes,
        first.annotated and second.annotated,
    )


def build_groupings(
    features: Mapping[str, np.ndarray],
    *,
    n: int,
    include_unknown: bool,
    intersections: tuple[tuple[str, str], ...],
) -> list[Grouping]:
    """Return one grouping per attribute of ``ATTRIBUTES`` and one per intersection.

    Attributes missing from ``features`` get a grouping whose groups are all empty, so every
    output lists every group of the vocabulary.
    """
    single = {
        name: _attribute_grouping(name, features, n=n, include_unknown=include_unknown)
        for name in ATTRIBUTES
    }
    crossed = [_intersection_grouping(single[a], single[b]) for a, b in intersections]
    return [*single.values(), *crossed]


def group_sizes(grouping: Grouping) -> np.ndarray:
    """Return the (groups,) number of images in each group, zeros included."""
    return np.bincount(grouping.codes[grouping.codes >= 0], minlength=grouping.size)


def emotion_codes(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Return the flat confusion cell of each image, true * K + predicted."""
    return y_true * len(EMOTIONS) + y_pred
