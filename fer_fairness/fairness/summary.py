"""Assembly of the JSON result of ``evaluate_predictions`` from the computed statistics."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from fer_fairness.fairness.estimates import PreparedInputs
from fer_fairness.fairness.groups import Grouping
from fer_fairness.labels import ATTRIBUTES, EMOTIONS, UNKNOWN

if TYPE_CHECKING:
    from fer_fairness.fairness.metrics import FairnessConfig

logger = logging.getLogger(__name__)

_PER_EMOTION_KEYS = ("per_emotion_accuracy", "per_emotion_f1", "per_emotion_n")


def _number(value: float | np.floating | None) -> float | None:
    """Return ``value`` as a float, or None when it is undefined (NaN or absent)."""
    if value is None or math.isnan(float(value)):
        return None
    return float(value)


def _count(value: float | np.floating) -> int:
    # Counts are sums of weights 1.0, hence exact integers in float64.
    return int(round(float(value)))


def _interval(bounds: tuple[np.ndarray, np.ndarray], index: tuple = ()) -> list[float] | None:
    low, high = (_number(bound[index]) for bound in bounds)
    if low is None or high is None:
        return None
    return [low, high]


def headline_keys(point: Mapping[str, np.ndarray], groupings: list[Grouping]) -> list[str]:
    """Return the statistics that get a confidence interval.

    These are the scalar figures (accuracies, ratios, differences, calibration errors) and the
    accuracy of every group, which the group charts draw with error bars.
    """
    keys = [
        key
        for key, value in point.items()
        if "/" not in key and key != "n" and key not in _PER_EMOTION_KEYS and np.ndim(value) == 0
    ]
    return keys + [f"{grouping.name}/accuracy" for grouping in groupings]


def _scalar_keys(groupings: list[Grouping]) -> list[str]:
    keys = [
        "overall_accuracy",
        "balanced_accuracy",
        "macro_f1",
        "calibration_error",
        "emotion_fairness",
        "emotion_difference",
    ]
    for grouping in groupings:
        keys += [f"{grouping.name}_fairness", f"{grouping.name}_difference"]
    keys += [f"{attribute}_accuracy" for attribute in ATTRIBUTES]
    for grouping in groupings:
        keys += [
            f"{grouping.name}_equalized_odds_difference",
            f"{grouping.name}_calibration_difference",
        ]
    return keys


def _per_emotion(values: np.ndarray, *, counts: bool = False) -> dict[str, float | int | None]:
    convert = _count if counts else _number
    return {emotion: convert(values[k]) for k, emotion in enumerate(EMOTIONS)}


def _group_table(
    point: Mapping[str, np.ndarray],
    intervals: Mapping[str, tuple[np.ndarray, np.ndarray]],
    grouping: Grouping,
    eligible: np.ndarray,
) -> dict[str, dict]:
    name = grouping.name
    accuracy_bounds = intervals.get(f"{name}/accuracy")
    calibration = point.get(f"{name}/calibration_error")
    table = {}
    for index, group in enumerate(grouping.group_names):
        table[group] = {
            "n": _count(point[f"{name}/n"][index]),
            "flagged": not bool(eligible[index]),
            "accuracy": _number(point[f"{name}/accuracy"][index]),
            "accuracy_ci": (
                None if accuracy_bounds is None else _interval(accuracy_bounds, (index,))
            ),
            "balanced_accuracy": _number(point[f"{name}/balanced_accuracy"][index]),
            "f1": _number(point[f"{name}/f1"][index]),
            "calibration_error": None if calibration is None else _number(calibration[index]),
            "per_emotion_accuracy": _per_emotion(point[f"{name}/per_emotion_accuracy"][index]),
            "per_emotion_counts": _per_emotion(point[f"{name}/per_emotion_n"][index], counts=True),
            "per_emotion_false_positive_rate": _per_emotion(
                point[f"{name}/per_emotion_false_positive_rate"][index]
            ),
        }
    return table


def _log_degraded_results(result: Mapping, inputs: PreparedInputs, config: FairnessConfig) -> None:
    """Log a warning for each empty group set and each undefined fairness ratio."""
    for grouping in inputs.groupings:
        if not grouping.annotated:
            logger.info(
                "%s is not annotated in sensitive_features; its groups are empty", grouping.name
            )
            continue
        counts = result["group_counts"][grouping.name]
        empty = [group for group, n in counts.items() if n == 0]
        if empty:
            logger.warning(
                "%s: groups with no samples, reported as undefined: %s",
                grouping.name,
                ", ".join(empty),
            )
        if result[f"{grouping.name}_fairness"] is None:
            logger.warning(
                "%s_fairness is undefined: it needs two groups with at least min_group_size=%d "
                "samples and a non-zero accuracy; group sizes: %s",
                grouping.name,
                config.min_group_size,
                ", ".join(f"{group}={n}" for group, n in counts.items()),
            )


def summarize(
    point: Mapping[str, np.ndarray],
    intervals: Mapping[str, tuple[np.ndarray, np.ndarray]],
    inputs: PreparedInputs,
    features: Mapping[str, np.ndarray],
    config: FairnessConfig,
) -> dict:
    """Build the JSON-serialisable result of ``evaluate_predictions``.

    Keys, with None for every undefined value:

    * "n", the number of images.
    * Scalar figures: overall_accuracy, balanced_accuracy, macro_f1, calibration_error,
      emotion_fairness, emotion_difference, and for each grouping "<grouping>_fairness",
      "<grouping>_difference", "<grouping>_equalized_odds_difference" and
      "<grouping>_calibration_difference", and for each attribute head
      "<attribute>_accuracy".
    * "per_emotion_accuracy", "per_emotion_f1" and "per_emotion_counts", keyed by emotion.
    * "group_counts" and "groups", keyed by grouping and group name.
    * "unknown_counts", keyed by attribute.
    * "equalized_odds_difference", keyed by grouping and emotion.
    * "confidence_intervals", keyed by scalar figure, as [low, high] or None. It is empty
      when the bootstrap is disabled.
    """
    n = _count(point["n"])
    result: dict = {"n": n}
    for key in _scalar_keys(inputs.groupings):
        result[key] = _number(point[key]) if key in point else None
    result["per_emotion_accuracy"] = _per_emotion(point["per_emotion_accuracy"])
    result["per_emotion_f1"] = _per_emotion(point["per_emotion_f1"])
    result["per_emotion_counts"] = _per_emotion(point["per_emotion_n"], counts=True)
    result["group_counts"] = {
        g.name: {name: _count(n) for name, n in zip(g.group_names, point[f"{g.name}/n"])}
        for g in inputs.groupings
    }
    result["unknown_counts"] = {
        attribute: int((features[attribute] == UNKNOWN).sum()) if attribute in features else n
        for attribute in ATTRIBUTES
    }
    result["groups"] = {
        g.name: _group_table(point, intervals, g, inputs.eligible[g.name]) for g in inputs.groupings
    }
    result["equalized_odds_difference"] = {
        g.name: _per_emotion(point[f"{g.name}/equalized_odds_difference"]) for g in inputs.groupings
    }
    # Once the bootstrap ran, every scalar figure gets an entry, and None marks an undefined one.
    result["confidence_intervals"] = {
        key: _interval(intervals[key]) if key in intervals else None
        for key in _scalar_keys(inputs.groupings)
        if intervals
    }
    _log_degraded_results(result, inputs, config)
    return result
