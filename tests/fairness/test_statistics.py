"""Tests of the confusion-matrix statistics against scikit-learn and hand-computed values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

from fer_fairness.fairness import statistics as st

SEEDS = (0, 1, 2, 3)


def _random_labels(seed: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    y_true = generator.integers(0, 5, n)  # classes 5 and 6 absent from y_true
    y_pred = np.where(generator.random(n) < 0.5, y_true, generator.integers(0, 7, n))
    return y_true, y_pred


def _confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    cells = y_true * 7 + y_pred
    return st.weighted_bincount(np.ones((1, y_true.size)), cells, 49).reshape(1, 7, 7)[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_weighted_bincount_matches_confusion_matrix(seed):
    y_true, y_pred = _random_labels(seed)
    expected = confusion_matrix(y_true, y_pred, labels=range(7))
    np.testing.assert_array_equal(_confusion(y_true, y_pred), expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_balanced_accuracy_matches_sklearn(seed):
    y_true, y_pred = _random_labels(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = balanced_accuracy_score(y_true, y_pred)
    assert st.balanced_accuracy(_confusion(y_true, y_pred)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_macro_f1_matches_sklearn(seed):
    y_true, y_pred = _random_labels(seed)
    expected = f1_score(y_true, y_pred, average="macro")
    assert st.macro_f1(_confusion(y_true, y_pred)) == pytest.approx(expected, abs=1e-12)


def test_weighted_bincount_skips_negative_index():
    sums = st.weighted_bincount(np.array([[1.0, 2.0, 4.0]]), np.array([0, -1, 1]), 2)
    np.testing.assert_array_equal(sums, [[1.0, 4.0]])


def test_weighted_bincount_rows_independent():
    weights = np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    sums = st.weighted_bincount(weights, np.array([0, 1, 1]), 2, values=np.array([1.0, 1.0, 0.5]))
    np.testing.assert_array_equal(sums, [[1.0, 1.0], [0.0, 3.0]])


@pytest.mark.parametrize(
    ("values", "eligible", "ratio", "difference"),
    [
        ([0.8, 0.6], [True, True], 0.75, 0.2),
        ([0.8, 0.6, 1.0], [True, True, False], 0.75, 0.2),
        ([0.8, np.nan, 0.6], [True, True, True], 0.75, 0.2),
        ([0.8, 0.6], [True, False], np.nan, np.nan),
        ([0.0, 0.0], [True, True], np.nan, 0.0),
        ([0.0, 0.5], [True, True], 0.0, 0.5),
        ([0.5, 0.5], [True, True], 1.0, 0.0),
    ],
)
def test_group_spread_table(values, eligible, ratio, difference):
    actual_ratio, actual_difference = st.group_spread(np.array(values), np.array(eligible))
    np.testing.assert_allclose(actual_ratio, ratio, atol=1e-12)
    np.testing.assert_allclose(actual_difference, difference, atol=1e-12)


def test_group_spread_batched_rows():
    values = np.array([[0.8, 0.6], [np.nan, 0.5]])
    ratio, difference = st.group_spread(values, np.array([True, True]))
    np.testing.assert_allclose(ratio, [0.75, np.nan])
    np.testing.assert_allclose(difference, [0.2, np.nan])


def test_accuracy_empty_confusion_is_nan():
    assert np.isnan(st.accuracy(np.zeros((7, 7))))


def test_class_recall_absent_class_is_nan():
    confusion = np.zeros((7, 7))
    confusion[0, 0] = 3
    recall = st.class_recall(confusion)
    assert recall[0] == 1.0
    assert np.isnan(recall[1:]).all()


def test_false_positive_rate_hand_computed():
    confusion = np.zeros((7, 7))
    confusion[0, 0] = 2  # neutral right
    confusion[1, 0] = 1  # happiness predicted as neutral
    confusion[1, 1] = 3
    fpr = st.class_false_positive_rate(confusion)
    assert fpr[0] == 0.25
    assert fpr[1] == 0.0


def test_safe_divide_zero_denominator_is_nan():
    result = st.safe_divide(np.array([1.0, 0.0]), np.array([0.0, 0.0]))
    assert np.isnan(result).all()
