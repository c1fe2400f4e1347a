"""Best-epoch selection with a fairness floor."""

from __future__ import annotations

import math

import pytest

from fer_fairness.config import ConfigError, TrainingConfig
from fer_fairness.selection import (
    ACCURACY_KEY,
    SELECTION_SCORE_KEY,
    FairnessFloorScore,
    selection_callbacks,
    selection_monitor,
)


@pytest.mark.parametrize(
    ("fairness", "expected"),
    [(0.9, 0.7), (0.8, 0.7), (0.5, 0.7 - 2.0), (math.nan, 0.7 - 2.0)],
)
def test_floor_score_penalises_below_floor(fairness, expected):
    callback = FairnessFloorScore(floor=0.8, attribute="gender")
    logs = {ACCURACY_KEY: 0.7, "val_gender_fairness": fairness}
    callback.on_epoch_end(0, logs)
    assert logs[SELECTION_SCORE_KEY] == pytest.approx(expected)


def test_floor_score_ranks_fair_epoch_first():
    callback = FairnessFloorScore(floor=0.9, attribute="age")
    fair = {ACCURACY_KEY: 0.10, "val_age_fairness": 0.95}
    unfair = {ACCURACY_KEY: 0.99, "val_age_fairness": 0.50}
    callback.on_epoch_end(0, fair)
    callback.on_epoch_end(1, unfair)
    assert fair[SELECTION_SCORE_KEY] > unfair[SELECTION_SCORE_KEY]


def test_floor_score_skips_missing_keys():
    logs = {ACCURACY_KEY: 0.7}
    FairnessFloorScore(floor=0.8).on_epoch_end(0, logs)
    assert SELECTION_SCORE_KEY not in logs


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"floor": 1.5}, "floor=1.5 is invalid"),
     ({"floor": 0.5, "attribute": "height"}, "attribute='height' is invalid")],
)
def test_floor_score_rejects_invalid_argument(arguments, message):
    with pytest.raises(ValueError, match=message):
        FairnessFloorScore(**arguments)


def test_selection_monitor_default_is_accuracy():
    assert selection_monitor(TrainingConfig()) == ACCURACY_KEY
    assert selection_callbacks(TrainingConfig()) == []


def test_selection_monitor_fairness_floor():
    training = TrainingConfig(selection="accuracy_with_fairness_floor", fairness_floor=0.9,
                              fairness_floor_attribute="race")
    callbacks = selection_callbacks(training)
    assert selection_monitor(training) == SELECTION_SCORE_KEY
    assert len(callbacks) == 1
    assert callbacks[0].fairness_key == "val_race_fairness"
    assert callbacks[0].floor == 0.9


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"selection": "loss"}, "training.selection='loss' is invalid"),
     ({"fairness_floor": -0.1}, "training.fairness_floor=-0.1 is invalid"),
     ({"fairness_floor_attribute": "height"}, "training.fairness_floor_attribute='height'")],
)
def test_training_config_rejects_invalid_selection(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainingConfig(**changes)
