"""All fairness statistics as functions of per-image weights.

``compute_statistics`` evaluates every statistic for each row of a weight matrix. A single row
of ones gives the point estimates, and rows of bootstrap counts give the resamples, so the
confidence intervals use exactly the formulas of the reported values.

Keys of the returned dict: top-level statistics such as "overall_accuracy" or
"gender_fairness", and per-grouping arrays named "<grouping>/<statistic>", such as
"gender/accuracy" of shape (rows, groups).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fer_fairness.fairness import statistics as st
from fer_fairness.fairness.groups import Grouping
from fer_fairness.labels import EMOTIONS

NUM_EMOTIONS = len(EMOTIONS)


@dataclasses.dataclass(frozen=True)
class PreparedInputs:
    """Validated inputs, encoded for ``compute_statistics``.

    Attributes:
        cells: (n,) confusion cell of each image, true * K + predicted.
        groupings: The groupings to evaluate.
        eligible: Per grouping name, (groups,) bool mask of the groups with at least the
            minimum group size, the only groups that enter ratios and differences.
        emotion_present: (K,) bool mask of the emotions with at least one true sample.
        calibration_bins: (n,) confidence bin per image, or None without probabilities.
        n_bins: Number of equal-width confidence bins.
        correct: (n,) float 1.0 where the predicted emotion is right.
        confidence: (n,) probability of the predicted emotion, or None.
        attribute_heads: Per attribute, ``(known, correct)``: (n,) int 0 where the true
            attribute is known and -1 elsewhere, and (n,) float 1.0 where the auxiliary
            head predicted it right.
    """

    cells: np.ndarray
    groupings: list[Grouping]
    eligible: dict[str, np.ndarray]
    emotion_present: np.ndarray
    calibration_bins: np.ndarray | None
    n_bins: int
    correct: np.ndarray
    confidence: np.ndarray | None
    attribute_heads: dict[str, tuple[np.ndarray, np.ndarray]]


def confidence_bins(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Return the equal-width bin of each confidence in [0, 1], with 1.0 in the last bin."""
    return np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)


def _nan_max(values: np.ndarray) -> np.ndarray:
    defined = ~np.isnan(values)
    maximum = np.where(defined, values, -np.inf).max(axis=-1)
    return np.where(defined.any(axis=-1), maximum, np.nan)


def _calibration_error(
    weights: np.ndarray, group_codes: np.ndarray, n_groups: int, inputs: PreparedInputs
) -> np.ndarray:
    """Return the expected calibration error per group, (rows, groups).

    ECE = sum over bins b of |correct_b - confidence_b| / n, where correct_b and confidence_b
    are the (weighted) sums over the images of bin b. This equals the usual
    sum_b (n_b / n) |accuracy_b - mean confidence_b|.
    """
    n_bins = inputs.n_bins
    index = np.where(group_codes >= 0, group_codes * n_bins + inputs.calibration_bins, -1)
    size = n_groups * n_bins
    shape = (-1, n_groups, n_bins)
    count = st.weighted_bincount(weights, index, size).reshape(shape)
    correct = st.weighted_bincount(weights, index, size, values=inputs.correct).reshape(shape)
    confidence = st.weighted_bincount(weights, index, size, values=inputs.confidence)
    gap = np.abs(correct - confidence.reshape(shape)).sum(axis=-1)
    return st.safe_divide(gap, count.sum(axis=-1))


def _overall_statistics(weights: np.ndarray, inputs: PreparedInputs) -> dict[str, np.ndarray]:
    confusion = st.weighted_bincount(weights, inputs.cells, NUM_EMOTIONS**2)
    confusion = confusion.reshape(-1, NUM_EMOTIONS, NUM_EMOTIONS)
    recall = st.class_recall(confusion)
    emotion_fairness, emotion_difference = st.group_spread(recall, inputs.emotion_present)
    stats = {
        "n": st.sample_count(confusion),
        "overall_accuracy": st.accuracy(confusion),
        "balanced_accuracy": st.balanced_accuracy(confusion),
        "macro_f1": st.macro_f1(confusion),
        "per_emotion_accuracy": recall,
        "per_emotion_f1": st.class_f1(confusion),
        "per_emotion_n": st.class_support(confusion),
        "emotion_fairness": emotion_fairness,
        "emotion_difference": emotion_difference,
    }
    if inputs.confidence is not None:
        everyone = np.zeros(inputs.cells.shape[0], dtype=np.int64)
        stats["calibration_error"] = _calibration_error(weights, everyone, 1, inputs)[:, 0]
    return stats


def _grouping_statistics(
    weights: np.ndarray, grouping: Grouping, inputs: PreparedInputs
) -> dict[str, np.ndarray]:
    cells_per_group = NUM_EMOTIONS**2
    index = np.where(grouping.codes >= 0, grouping.codes * cells_per_group + inputs.cells, -1)
    confusion = st.weighted_bincount(weights, index, grouping.size * cells_per_group)
    confusion = confusion.reshape(-1, grouping.size, NUM_EMOTIONS, NUM_EMOTIONS)
    eligible = inputs.eligible[grouping.name]

    accuracy = st.accuracy(confusion)
    recall = st.class_recall(confusion)
    false_positive_rate = st.class_false_positive_rate(confusion)
    ratio, difference = st.group_spread(accuracy, eligible)
    # Equalized odds of emotion k: the larger of the TPR and FPR differences across groups.
    # np.maximum keeps NaN, so the value is undefined when either difference is.
    _, tpr_difference = st.group_spread(np.swapaxes(recall, -1, -2), eligible)
    _, fpr_difference = st.group_spread(np.swapaxes(false_positive_rate, -1, -2), eligible)
    equalized_odds = np.maximum(tpr_difference, fpr_difference)

    name = grouping.name
    stats = {
        f"{name}/n": st.sample_count(confusion),
        f"{name}/accuracy": accuracy,
        f"{name}/balanced_accuracy": st.balanced_accuracy(confusion),
        f"{name}/f1": st.macro_f1(confusion),
        f"{name}/per_emotion_accuracy": recall,
        f"{name}/per_emotion_n": st.class_support(confusion),
        f"{name}/per_emotion_false_positive_rate": false_positive_rate,
        f"{name}/equalized_odds_difference": equalized_odds,
        f"{name}_fairness": ratio,
        f"{name}_difference": difference,
        f"{name}_equalized_odds_difference": _nan_max(equalized_odds),
    }
    if inputs.confidence is not None:
        calibration = _calibration_error(weights, grouping.codes, grouping.size, inputs)
        stats[f"{name}/calibration_error"] = calibration
        stats[f"{name}_calibration_difference"] = st.group_spread(calibration, eligible)[1]
    return stats


def compute_statistics(weights: np.ndarray, inputs: PreparedInputs) -> dict[str, np.ndarray]:
    """Evaluate every statistic for each row of ``weights``.

    Args:
        weights: (rows, n) float weight per image. A row of ones gives the plain estimates.
        inputs: The encoded inputs.

    Returns:
        A dict of arrays whose first axis has one entry per row of ``weights``.
    """
    stats = _overall_statistics(weights, inputs)
    for grouping in inputs.groupings:
        stats.update(_grouping_statistics(weights, grouping, inputs))
    for attribute, (known, correct) in inputs.attribute_heads.items():
        hits = st.weighted_bincount(weights, known, 1, values=correct)[:, 0]
        total = st.weighted_bincount(weights, known, 1)[:, 0]
        stats[f"{attribute}_accuracy"] = st.safe_divide(hits, total)
    return stats
