"""Classification statistics computed from stacks of weighted confusion matrices.

Every function takes arrays whose leading axes are free (bootstrap resamples, groups) and whose
last two axes form a K x K confusion matrix, rows being the true class and columns the
predicted class. A weight of 1 per image gives the plain counts, so the point estimates and the
bootstrap resamples share one set of formulas. An undefined value (a division by zero) is NaN,
never 0.
"""

from __future__ import annotations

import numpy as np


def weighted_bincount(
    weights: np.ndarray, index: np.ndarray, size: int, *, values: np.ndarray | None = None
) -> np.ndarray:
    """Sum ``weights * values`` per index value, separately for each row of ``weights``.

    Args:
        weights: (rows, n) float weight of each sample in each row, e.g. bootstrap counts.
        index: (n,) int bin of each sample in 0..size-1. A negative bin leaves the sample out.
        size: Number of bins.
        values: Optional (n,) value of each sample, 1 when omitted.

    Returns:
        (rows, size) float64 array of per-bin sums.
    """
    keep = index >= 0
    kept_index = index[keep]
    kept_weights = weights[:, keep]
    if values is not None:
        kept_weights = kept_weights * values[keep]
    rows = weights.shape[0]
    flat_index = (np.arange(rows)[:, None] * size + kept_index[None, :]).ravel()
    sums = np.bincount(flat_index, weights=kept_weights.ravel(), minlength=rows * size)
    return sums.reshape(rows, size)


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Divide elementwise, returning NaN where ``denominator`` is 0."""
    numerator, denominator = np.broadcast_arrays(
        np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    )
    result = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return result


def nan_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Return the mean over ``axis`` of the defined values, NaN where none is defined."""
    defined = ~np.isnan(values)
    total = np.where(defined, values, 0.0).sum(axis=axis)
    return safe_divide(total, defined.sum(axis=axis))


def sample_count(confusion: np.ndarray) -> np.ndarray:
    """Return the (weighted) number of samples, n = sum of all cells."""
    return confusion.sum(axis=(-2, -1))


def accuracy(confusion: np.ndarray) -> np.ndarray:
    """Return accuracy = trace / n, in [0, 1], or NaN when n = 0."""
    return safe_divide(np.trace(confusion, axis1=-2, axis2=-1), sample_count(confusion))


def class_support(confusion: np.ndarray) -> np.ndarray:
    """Return the (weighted) number of samples of each true class, (..., K)."""
    return confusion.sum(axis=-1)


def class_recall(confusion: np.ndarray) -> np.ndarray:
    """Return recall_k = TP_k / support_k, (..., K) in [0, 1], NaN for an absent class.

    Recall of class k is also the per-class accuracy and the one-vs-rest true positive rate.
    """
    return safe_divide(np.diagonal(confusion, axis1=-2, axis2=-1), class_support(confusion))


def class_false_positive_rate(confusion: np.ndarray) -> np.ndarray:
    """Return the one-vs-rest FPR_k = FP_k / (n - support_k), (..., K) in [0, 1].

    NaN where no sample belongs to another class than k.
    """
    false_positives = confusion.sum(axis=-2) - np.diagonal(confusion, axis1=-2, axis2=-1)
    negatives = sample_count(confusion)[..., None] - class_support(confusion)
    return safe_divide(false_positives, negatives)


def class_f1(confusion: np.ndarray) -> np.ndarray:
    """Return F1_k = 2 TP_k / (2 TP_k + FP_k + FN_k), (..., K) in [0, 1].

    NaN for a class that is neither true nor predicted for any sample.
    """
    true_positives = np.diagonal(confusion, axis1=-2, axis2=-1)
    denominator = class_support(confusion) + confusion.sum(axis=-2)
    return safe_divide(2.0 * true_positives, denominator)


def balanced_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Return the mean recall over the classes present, in [0, 1], or NaN when n = 0.

    Matches ``sklearn.metrics.balanced_accuracy_score``, which also averages over the classes
    of ``y_true`` only.
    """
    return nan_mean(class_recall(confusion))


def macro_f1(confusion: np.ndarray) -> np.ndarray:
    """Return the unweighted mean of F1_k over classes that are true or predicted, in [0, 1].

    Matches ``sklearn.metrics.f1_score(average="macro")`` with its default labels.
    """
    return nan_mean(class_f1(confusion))


def group_spread(values: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the ratio min / max and the difference max - min over eligible groups.

    The ratio lies in [0, 1], and 1 means parity. The difference lies in [0, 1] for rates,
    and 0 means parity. Both are NaN when fewer than two eligible groups have a defined value.
    The ratio is also NaN when the maximum is 0, because 0 / 0 is undefined.

    Args:
        values: (..., groups) per-group values, NaN where undefined. Values must be >= 0.
        eligible: (groups,) bool mask of the groups that may enter the comparison.

    Returns:
        ``(ratio, difference)``, each of shape ``values.shape[:-1]``.
    """
    defined = eligible & ~np.isnan(values)
    enough = defined.sum(axis=-1) >= 2
    maximum = np.where(defined, values, -np.inf).max(axis=-1, initial=-np.inf)
    minimum = np.where(defined, values, np.inf).min(axis=-1, initial=np.inf)
    difference = np.where(enough, maximum - minimum, np.nan)
    ratio = np.where(enough, safe_divide(np.where(enough, minimum, 0.0), maximum), np.nan)
    return ratio, difference
