"""Cross-check of every per-group figure against fairlearn's MetricFrame on random data.

fairlearn is a test oracle only; the package never imports it.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    equalized_odds_difference,
    false_positive_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from fer_fairness.fairness.metrics import FairnessConfig, evaluate_predictions
from fer_fairness.labels import AGE_GROUPS, EMOTIONS, GENDERS

TOLERANCE = 1e-12
SEEDS = (0, 1, 2)


def _random_case(seed: int, n: int = 900) -> dict:
    generator = np.random.default_rng(seed)
    y_true = generator.integers(0, len(EMOTIONS), n)
    y_pred = np.where(generator.random(n) < 0.6, y_true, generator.integers(0, len(EMOTIONS), n))
    gender = generator.integers(-1, len(GENDERS), n)
    # Skewed age groups, so group sizes and accuracies differ.
    age_shares = [0.05, 0.05, 0.2, 0.4, 0.25, 0.05]
    age = generator.choice(np.arange(-1, len(AGE_GROUPS)), size=n, p=age_shares)
    # min_group_size=1 puts every non-empty group into ratios, as fairlearn does.
    result = evaluate_predictions(
        y_true,
        y_pred,
        sensitive_features={"gender": gender, "age": age},
        config=FairnessConfig(n_bootstrap=0, min_group_size=1),
    )
    return {"y_true": y_true, "y_pred": y_pred, "gender": gender, "age": age, "result": result}


@pytest.fixture(scope="module", params=SEEDS)
def case(request) -> dict:
    return _random_case(request.param)


def _names(codes: np.ndarray, vocabulary: tuple[str, ...]) -> np.ndarray:
    return np.array([vocabulary[code] for code in codes])


def _metric_frame(case: dict, attribute: str, vocabulary: tuple[str, ...]) -> MetricFrame:
    known = case[attribute] >= 0
    with warnings.catch_warnings():
        # balanced_accuracy_score warns when a group's predictions hold a class its labels lack.
        warnings.simplefilter("ignore", UserWarning)
        return MetricFrame(
            metrics={
                "accuracy": accuracy_score,
                "balanced_accuracy": balanced_accuracy_score,
                "f1": functools.partial(f1_score, average="macro"),
                "n": count,
            },
            y_true=case["y_true"][known],
            y_pred=case["y_pred"][known],
            sensitive_features=pd.Series(
                _names(case[attribute][known], vocabulary), name=attribute
            ),
        )


@pytest.mark.parametrize(("attribute", "vocabulary"), [("gender", GENDERS), ("age", AGE_GROUPS)])
@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy", "f1", "n"])
def test_crosscheck_group_metric(case, attribute, vocabulary, metric):
    frame = _metric_frame(case, attribute, vocabulary)
    table = case["result"]["groups"][attribute]
    for group, expected in frame.by_group[metric].items():
        assert table[group][metric] == pytest.approx(expected, abs=TOLERANCE), group


@pytest.mark.parametrize(("attribute", "vocabulary"), [("gender", GENDERS), ("age", AGE_GROUPS)])
def test_crosscheck_difference(case, attribute, vocabulary):
    frame = _metric_frame(case, attribute, vocabulary)
    expected = frame.difference(method="between_groups")["accuracy"]
    assert case["result"][f"{attribute}_difference"] == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize(("attribute", "vocabulary"), [("gender", GENDERS), ("age", AGE_GROUPS)])
def test_crosscheck_ratio(case, attribute, vocabulary):
    frame = _metric_frame(case, attribute, vocabulary)
    expected = frame.ratio(method="between_groups")["accuracy"]
    assert case["result"][f"{attribute}_fairness"] == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize("emotion_index", range(len(EMOTIONS)))
def test_crosscheck_one_vs_rest_rates(case, emotion_index):
    known = case["age"] >= 0
    y_true = (case["y_true"][known] == emotion_index).astype(int)
    y_pred = (case["y_pred"][known] == emotion_index).astype(int)
    groups = _names(case["age"][known], AGE_GROUPS)
    frame = MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
    )
    table = case["result"]["groups"]["age"]
    emotion = EMOTIONS[emotion_index]
    for group, row in frame.by_group.iterrows():
        tpr = table[group]["per_emotion_accuracy"][emotion]
        fpr = table[group]["per_emotion_false_positive_rate"][emotion]
        assert tpr == pytest.approx(row["tpr"], abs=TOLERANCE)
        assert fpr == pytest.approx(row["fpr"], abs=TOLERANCE)


@pytest.mark.parametrize("emotion_index", range(len(EMOTIONS)))
def test_crosscheck_equalized_odds(case, emotion_index):
    known = case["gender"] >= 0
    expected = equalized_odds_difference(
        (case["y_true"][known] == emotion_index).astype(int),
        (case["y_pred"][known] == emotion_index).astype(int),
        sensitive_features=case["gender"][known],
    )
    actual = case["result"]["equalized_odds_difference"]["gender"][EMOTIONS[emotion_index]]
    assert actual == pytest.approx(expected, abs=TOLERANCE)


def test_crosscheck_intersection_accuracy(case):
    known = (case["gender"] >= 0) & (case["age"] >= 0)
    features = pd.DataFrame(
        {
            "gender": _names(case["gender"][known], GENDERS),
            "age": _names(case["age"][known], AGE_GROUPS),
        }
    )
    frame = MetricFrame(
        metrics={"accuracy": accuracy_score, "n": count},
        y_true=case["y_true"][known],
        y_pred=case["y_pred"][known],
        sensitive_features=features,
    )
    table = case["result"]["groups"]["gender_x_age"]
    for (gender, age), row in frame.by_group.iterrows():
        assert table[f"{gender}/{age}"]["n"] == row["n"]
        assert table[f"{gender}/{age}"]["accuracy"] == pytest.approx(row["accuracy"], abs=TOLERANCE)
