"""Tests of evaluate_predictions and FairnessConfig on tiny hand-computed inputs."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from fer_fairness.fairness.metrics import FairnessConfig, evaluate_predictions
from fer_fairness.labels import AGE_GROUPS, EMOTIONS, GENDERS, RACES

NO_BOOTSTRAP = FairnessConfig(n_bootstrap=0)


def _labels(correct: int, wrong: int, emotion: int = 0) -> tuple[list[int], list[int]]:
    """Return y_true and y_pred with ``correct`` hits and ``wrong`` misses of one emotion."""
    y_true = [emotion] * (correct + wrong)
    y_pred = [emotion] * correct + [(emotion + 1) % len(EMOTIONS)] * wrong
    return y_true, y_pred


@pytest.fixture(scope="module")
def four_groups() -> dict:
    """Age groups with accuracies 0.8 (n=40) and 0.6 (n=40), a 3-sample group and an empty one.

    Group 40-69 has 3 correct samples, so including it would raise the maximum to 1.0.
    Group 0-3 is empty; 70+ is unknown-only and empty too.
    """
    parts = [(1, 32, 8), (2, 24, 16), (3, 3, 0)]
    y_true, y_pred, age = [], [], []
    for group, correct, wrong in parts:
        true, pred = _labels(correct, wrong)
        y_true += true
        y_pred += pred
        age += [group] * len(true)
    y_true += [1, 1]
    y_pred += [1, 2]
    age += [-1, -1]
    return evaluate_predictions(
        np.array(y_true),
        np.array(y_pred),
        sensitive_features={"age": np.array(age)},
        config=NO_BOOTSTRAP,
    )


def test_four_groups_difference(four_groups):
    assert four_groups["age_difference"] == pytest.approx(0.2, abs=1e-12)


def test_four_groups_ratio(four_groups):
    assert four_groups["age_fairness"] == pytest.approx(0.75, abs=1e-12)


@pytest.mark.parametrize(
    ("group", "n", "accuracy", "flagged"),
    [
        ("0-3", 0, None, True),
        ("4-19", 40, 0.8, False),
        ("20-39", 40, 0.6, False),
        ("40-69", 3, 1.0, True),
        ("70+", 0, None, True),
    ],
)
def test_four_groups_table(four_groups, group, n, accuracy, flagged):
    row = four_groups["groups"]["age"][group]
    assert row["n"] == n
    assert row["accuracy"] == (None if accuracy is None else pytest.approx(accuracy, abs=1e-12))
    assert row["flagged"] is flagged


def test_four_groups_counts(four_groups):
    expected = {"0-3": 0, "4-19": 40, "20-39": 40, "40-69": 3, "70+": 0}
    assert four_groups["group_counts"]["age"] == expected


def test_four_groups_unknown_count(four_groups):
    assert four_groups["unknown_counts"]["age"] == 2


def test_four_groups_overall_includes_unknown(four_groups):
    assert four_groups["overall_accuracy"] == pytest.approx((32 + 24 + 3 + 1) / 85, abs=1e-12)


def test_four_groups_missing_attributes_listed(four_groups):
    assert four_groups["group_counts"]["gender"] == {name: 0 for name in GENDERS}
    assert four_groups["group_counts"]["race"] == {name: 0 for name in RACES}


def test_four_groups_missing_attribute_fairness_undefined(four_groups):
    assert four_groups["gender_fairness"] is None
    assert four_groups["race_fairness"] is None


def test_four_groups_json_has_no_nan(four_groups):
    text = json.dumps(four_groups, allow_nan=False)
    assert "NaN" not in text


def test_group_below_minimum_size_kept_out_of_ratio():
    y_true, y_pred = _labels(8, 2)
    small_true, small_pred = _labels(0, 3)
    result = evaluate_predictions(
        np.array(y_true + small_true),
        np.array(y_pred + small_pred),
        sensitive_features={"gender": np.array([0] * 10 + [1] * 3)},
        config=FairnessConfig(n_bootstrap=0, min_group_size=5),
    )
    assert result["groups"]["gender"]["female"]["flagged"] is True
    assert result["groups"]["gender"]["female"]["accuracy"] == 0.0
    assert result["gender_fairness"] is None


def test_group_accuracy_zero_gives_ratio_zero():
    y_true, y_pred = _labels(5, 5)
    zero_true, zero_pred = _labels(0, 10)
    result = evaluate_predictions(
        np.array(y_true + zero_true),
        np.array(y_pred + zero_pred),
        sensitive_features={"gender": np.array([0] * 10 + [1] * 10)},
        config=FairnessConfig(n_bootstrap=0, min_group_size=10),
    )
    assert result["gender_fairness"] == 0.0
    assert result["gender_difference"] == 0.5


def test_all_groups_zero_accuracy_ratio_undefined():
    y_true, y_pred = _labels(0, 20)
    result = evaluate_predictions(
        np.array(y_true),
        np.array(y_pred),
        sensitive_features={"gender": np.array([0, 1] * 10)},
        config=FairnessConfig(n_bootstrap=0, min_group_size=10),
    )
    assert result["gender_fairness"] is None
    assert result["gender_difference"] == 0.0


def test_unknown_values_not_a_group_by_default():
    result = evaluate_predictions(
        np.zeros(4, dtype=int),
        np.zeros(4, dtype=int),
        sensitive_features={"gender": np.array([0, -1, -1, 1])},
        config=NO_BOOTSTRAP,
    )
    assert "unknown" not in result["groups"]["gender"]
    assert sum(result["group_counts"]["gender"].values()) == 2


def test_unknown_values_group_when_configured():
    result = evaluate_predictions(
        np.zeros(4, dtype=int),
        np.zeros(4, dtype=int),
        sensitive_features={"gender": np.array([0, -1, -1, 1])},
        config=FairnessConfig(n_bootstrap=0, include_unknown=True),
    )
    assert result["group_counts"]["gender"] == {"male": 1, "female": 1, "unknown": 2}


def test_absent_class_per_group_undefined():
    # Group male has only neutral images, so its happiness accuracy is undefined, not 0.
    result = evaluate_predictions(
        np.array([0, 0, 1, 1]),
        np.array([0, 1, 1, 1]),
        sensitive_features={"gender": np.array([0, 0, 1, 1])},
        config=NO_BOOTSTRAP,
    )
    male = result["groups"]["gender"]["male"]
    assert male["per_emotion_accuracy"]["happiness"] is None
    assert male["per_emotion_counts"]["happiness"] == 0
    assert male["per_emotion_accuracy"]["neutral"] == 0.5


def test_absent_class_overall_undefined():
    result = evaluate_predictions(
        np.array([0, 0, 1]), np.array([0, 1, 1]), sensitive_features={}, config=NO_BOOTSTRAP
    )
    assert result["per_emotion_accuracy"]["fear"] is None
    assert result["per_emotion_counts"]["fear"] == 0


def test_emotion_fairness_over_present_classes():
    # neutral: 1 of 2 right, happiness: 2 of 2 right, other classes absent.
    result = evaluate_predictions(
        np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]), sensitive_features={}, config=NO_BOOTSTRAP
    )
    assert result["emotion_fairness"] == 0.5
    assert result["emotion_difference"] == 0.5


def test_balanced_accuracy_and_macro_f1_hand_computed():
    # recall: neutral 1/2, happiness 2/2; F1: neutral 2/3, happiness 1, surprise 0.
    result = evaluate_predictions(
        np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]), sensitive_features={}, config=NO_BOOTSTRAP
    )
    assert result["balanced_accuracy"] == pytest.approx(0.75, abs=1e-12)
    assert result["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3, abs=1e-12)


def test_auxiliary_head_accuracy_skips_unknown():
    result = evaluate_predictions(
        np.zeros(4, dtype=int),
        np.zeros(4, dtype=int),
        sensitive_features={"gender": np.array([0, 1, -1, 1]), "age": np.array([0, 1, 2, 3])},
        attribute_predictions={"gender": np.array([0, 0, 1, 1])},
        config=NO_BOOTSTRAP,
    )
    assert result["gender_accuracy"] == pytest.approx(2 / 3, abs=1e-12)
    assert result["age_accuracy"] is None
    assert result["race_accuracy"] is None


def test_equalized_odds_hand_computed():
    # One-vs-rest for neutral: male TPR 1, FPR 0; female TPR 1/2, FPR 1/2.
    result = evaluate_predictions(
        np.array([0, 1, 0, 0, 1, 1]),
        np.array([0, 1, 0, 1, 0, 1]),
        sensitive_features={"gender": np.array([0, 0, 1, 1, 1, 1])},
        config=FairnessConfig(n_bootstrap=0, min_group_size=1),
    )
    assert result["equalized_odds_difference"]["gender"]["neutral"] == pytest.approx(0.5)
    assert result["groups"]["gender"]["female"]["per_emotion_false_positive_rate"]["neutral"] == 0.5


def test_calibration_error_hand_computed():
    # Both images fall in one bin at confidence 0.9, and one is right: |1 - 1.8| / 2 = 0.4.
    probabilities = np.full((2, 7), 0.1 / 6)
    probabilities[:, 0] = 0.9
    result = evaluate_predictions(
        np.array([0, 1]),
        np.array([0, 0]),
        probabilities=probabilities,
        sensitive_features={},
        config=NO_BOOTSTRAP,
    )
    assert result["calibration_error"] == pytest.approx(0.4, abs=1e-12)


def test_calibration_error_none_without_probabilities(four_groups):
    assert four_groups["calibration_error"] is None


def test_intersection_groups_all_listed():
    result = evaluate_predictions(
        np.zeros(2, dtype=int),
        np.zeros(2, dtype=int),
        sensitive_features={"gender": np.array([0, 1]), "age": np.array([2, 2])},
        config=NO_BOOTSTRAP,
    )
    counts = result["group_counts"]["gender_x_age"]
    assert len(counts) == len(GENDERS) * len(AGE_GROUPS)
    assert counts["male/20-39"] == 1
    assert counts["female/0-3"] == 0


def test_every_group_row_carries_n(four_groups):
    rows = [row for table in four_groups["groups"].values() for row in table.values()]
    assert all(isinstance(row["n"], int) for row in rows)


def test_ratios_within_unit_interval():
    generator = np.random.default_rng(3)
    y_true = generator.integers(0, 7, 500)
    result = evaluate_predictions(
        y_true,
        np.where(generator.random(500) < 0.5, y_true, generator.integers(0, 7, 500)),
        sensitive_features={
            "gender": generator.integers(0, 2, 500),
            "age": generator.integers(0, 5, 500),
        },
        config=FairnessConfig(n_bootstrap=50, min_group_size=10),
    )
    ratios = [value for key, value in result.items() if key.endswith("_fairness")]
    assert all(0.0 <= value <= 1.0 for value in ratios if value is not None)


def test_empty_group_logs_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="fer_fairness.fairness"):
        evaluate_predictions(
            np.zeros(2, dtype=int),
            np.zeros(2, dtype=int),
            sensitive_features={"gender": np.array([0, 0])},
            config=NO_BOOTSTRAP,
        )
    assert "gender: groups with no samples, reported as undefined: female" in caplog.text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_group_size", 0, "min_group_size=0 is invalid; expected an integer of at least 1"),
        ("n_bootstrap", -1, "n_bootstrap=-1 is invalid; expected an integer of at least 0"),
        ("n_bootstrap", 1.5, "n_bootstrap=1.5 is invalid; expected an integer of at least 0"),
        ("seed", -2, "seed=-2 is invalid; expected an integer of at least 0"),
        ("calibration_bins", 0, "calibration_bins=0 is invalid; expected an integer of at least 1"),
        ("confidence", 1.0, "confidence=1.0 is invalid; expected a number strictly between 0 and"),
        ("include_unknown", "yes", "include_unknown='yes' is invalid; expected True or False"),
        (
            "intersections",
            (("gender", "gender"),),
            r"intersections=\(\('gender', 'gender'\),\) is invalid; expected distinct pairs",
        ),
        (
            "intersections",
            (("gender", "height"),),
            r"intersections=\(\('gender', 'height'\),\) is invalid; expected distinct pairs",
        ),
    ],
)
def test_config_invalid_field_raises(field, value, message):
    with pytest.raises(ValueError, match=message):
        FairnessConfig(**{field: value})


def test_config_intersections_lists_become_tuples():
    config = FairnessConfig(intersections=[["gender", "race"]])
    assert config.intersections == (("gender", "race"),)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"y_true": np.array([], dtype=int)}, r"y_true has shape \(0,\); expected a non-empty"),
        ({"y_true": np.array([0, 7])}, "y_true contains 7; expected values from 0 to 6"),
        ({"y_pred": np.array([0])}, r"y_pred has shape \(1,\); expected \(2,\)"),
        (
            {"y_pred": np.array([0.0, 1.0])},
            "y_pred has dtype float64; expected integer class indices",
        ),
        (
            {"sensitive_features": {"height": np.array([0, 1])}},
            "sensitive_features has unknown attribute 'height'; expected names from gender, age",
        ),
        (
            {"sensitive_features": {"gender": np.array([0, 2])}},
            r"sensitive_features\['gender'\] contains 2; expected values from -1 \(unknown\) to 1",
        ),
        (
            {"sensitive_features": {"age": np.array([0])}},
            r"sensitive_features\['age'\] has shape \(1,\); expected \(2,\)",
        ),
        (
            {"attribute_predictions": {"race": np.array([0, 1])}},
            r"attribute_predictions\['race'\] has no true labels",
        ),
        (
            {"attribute_predictions": {"gender": np.array([-1, 1])}},
            r"attribute_predictions\['gender'\] contains -1; expected values from 0 to 1",
        ),
        ({"probabilities": np.ones((2, 7))}, "probabilities rows sum to 1 \\+/- 6"),
        (
            {"probabilities": np.full((2, 6), 1 / 6)},
            r"probabilities has shape \(2, 6\); expected \(2, 7\)",
        ),
        (
            {"probabilities": np.full((2, 7), -1.0)},
            r"probabilities contains values outside \[0, 1\]; pass softmax outputs",
        ),
        ({"subject_ids": np.array(["a"])}, r"subject_ids has shape \(1,\); expected \(2,\)"),
        ({"config": {"n_bootstrap": 0}}, "config is a dict; expected a FairnessConfig"),
    ],
)
def test_evaluate_invalid_input_raises(arguments, message):
    inputs = {
        "y_true": np.array([0, 1]),
        "y_pred": np.array([0, 1]),
        "sensitive_features": {"gender": np.array([0, 1])},
        "config": NO_BOOTSTRAP,
    }
    inputs.update(arguments)
    y_true = inputs.pop("y_true")
    y_pred = inputs.pop("y_pred")
    with pytest.raises(ValueError, match=message):
        evaluate_predictions(y_true, y_pred, **inputs)


def test_result_values_never_nan(four_groups):
    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)
        else:
            yield value

    assert not any(isinstance(v, float) and math.isnan(v) for v in walk(four_groups))
