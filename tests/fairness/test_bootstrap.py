"""Tests of the bootstrap: resampling units, weights, intervals and speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fer_fairness.fairness import bootstrap
from fer_fairness.fairness.metrics import FairnessConfig, evaluate_predictions


def test_resampling_units_without_ids_are_images():
    units, n_units, kind = bootstrap.resampling_units(4, None)
    np.testing.assert_array_equal(units, [0, 1, 2, 3])
    assert n_units == 4
    assert kind == "image"


def test_resampling_units_group_subjects():
    units, n_units, kind = bootstrap.resampling_units(5, np.array(["b", "a", "b", "", ""]))
    np.testing.assert_array_equal(units, [1, 0, 1, 2, 3])
    assert n_units == 4
    assert kind == "subject"


def test_resampling_units_all_unknown_ids_are_images():
    _, n_units, kind = bootstrap.resampling_units(3, np.array(["", "", ""]))
    assert n_units == 3
    assert kind == "image"


def test_resample_weights_sum_to_n():
    units = np.arange(50)
    chunks = bootstrap.iterate_resample_weights(units, 50, n_resamples=30, seed=0)
    weights = np.concatenate(list(chunks))
    assert weights.shape == (30, 50)
    np.testing.assert_array_equal(weights.sum(axis=1), np.full(30, 50.0))


def test_resample_weights_keep_subjects_whole():
    # Subject 0 owns images 0-2, subject 1 images 3-4: images of a subject share a weight.
    units = np.array([0, 0, 0, 1, 1])
    for weights in bootstrap.iterate_resample_weights(units, 2, n_resamples=20, seed=1):
        np.testing.assert_array_equal(weights[:, 0], weights[:, 2])
        np.testing.assert_array_equal(weights[:, 3], weights[:, 4])


def test_resample_weights_chunked_over_memory_bound():
    units = np.arange(600_000)
    chunks = list(bootstrap.iterate_resample_weights(units, units.size, n_resamples=3, seed=0))
    assert [chunk.shape[0] for chunk in chunks] == [1, 1, 1]


def test_resample_weights_repeat_with_seed():
    units = np.arange(10)
    first = next(bootstrap.iterate_resample_weights(units, 10, n_resamples=5, seed=7))
    second = next(bootstrap.iterate_resample_weights(units, 10, n_resamples=5, seed=7))
    np.testing.assert_array_equal(first, second)


def test_percentile_interval_bounds():
    samples = np.arange(101, dtype=np.float64)
    low, high = bootstrap.percentile_interval(samples, 0.9)
    assert low == pytest.approx(5.0)
    assert high == pytest.approx(95.0)


def test_percentile_interval_mostly_undefined_is_nan():
    samples = np.array([1.0, np.nan, np.nan, np.nan])
    low, high = bootstrap.percentile_interval(samples, 0.95)
    assert np.isnan(low)
    assert np.isnan(high)


def _case(n: int, seed: int = 0) -> dict:
    generator = np.random.default_rng(seed)
    y_true = generator.integers(0, 7, n)
    return {
        "y_true": y_true,
        "y_pred": np.where(generator.random(n) < 0.7, y_true, generator.integers(0, 7, n)),
        "probabilities": generator.dirichlet(np.ones(7), n),
        "sensitive_features": {
            "gender": generator.integers(-1, 2, n),
            "age": generator.integers(-1, 5, n),
            "race": generator.integers(-1, 3, n),
        },
        "attribute_predictions": {"gender": generator.integers(0, 2, n)},
    }


@pytest.fixture(scope="module")
def bootstrapped() -> dict:
    case = _case(600)
    return evaluate_predictions(
        case.pop("y_true"), case.pop("y_pred"), config=FairnessConfig(n_bootstrap=200), **case
    )


@pytest.mark.parametrize(
    "metric",
    ["overall_accuracy", "balanced_accuracy", "macro_f1", "calibration_error", "emotion_fairness",
     "gender_fairness", "age_fairness", "race_fairness", "gender_difference", "gender_accuracy"],
)
def test_interval_brackets_point_estimate(bootstrapped, metric):
    low, high = bootstrapped["confidence_intervals"][metric]
    assert low <= bootstrapped[metric] <= high


def test_interval_for_every_group_accuracy(bootstrapped):
    tables = bootstrapped["groups"].values()
    rows = [row for table in tables for row in table.values() if row["n"] >= 30]
    assert all(row["accuracy_ci"] is not None for row in rows)


def test_interval_undefined_metric_is_none(bootstrapped):
    assert bootstrapped["confidence_intervals"]["age_accuracy"] is None


def test_bootstrap_description(bootstrapped):
    assert bootstrapped["bootstrap"] == {
        "method": "percentile",
        "unit": "image",
        "n_units": 600,
        "n_resamples": 200,
        "confidence": 0.95,
        "seed": 0,
    }


def test_bootstrap_by_subject_reported():
    case = _case(60)
    subjects = np.array([f"s{i // 3}" for i in range(60)])
    result = evaluate_predictions(
        case.pop("y_true"),
        case.pop("y_pred"),
        subject_ids=subjects,
        config=FairnessConfig(n_bootstrap=20, min_group_size=5),
        **case,
    )
    assert result["bootstrap"]["unit"] == "subject"
    assert result["bootstrap"]["n_units"] == 20


def test_bootstrap_disabled_has_no_intervals():
    case = _case(60)
    result = evaluate_predictions(
        case.pop("y_true"), case.pop("y_pred"), config=FairnessConfig(n_bootstrap=0), **case
    )
    assert result["confidence_intervals"] == {}
    assert result["bootstrap"] is None


def test_bootstrap_speed_3000_images():
    case = _case(3000)
    start = time.perf_counter()
    evaluate_predictions(case.pop("y_true"), case.pop("y_pred"), config=FairnessConfig(), **case)
    elapsed = time.perf_counter() - start
    # About 0.4 s on a shared 2-core VM; the bound leaves room for slower machines.
    assert elapsed < 5.0
