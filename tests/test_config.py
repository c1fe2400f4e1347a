"""Tests of configuration validation, TOML loading and CLI-style overrides."""

from __future__ import annotations

import pytest

from fer_fairness import config as config_lib


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("training", {"batch_size": 0}, r"training\.batch_size=0 is invalid; expected a whole number >= 1"),
        ("training", {"heads_learning_rate": -1.0}, r"training\.heads_learning_rate=-1\.0 is invalid; expected a positive number"),
        ("training", {"loss_weights": {"emotion": 1.0, "gender": -0.5}}, r"training\.loss_weights\.gender=-0\.5 is invalid; expected a finite number >= 0"),
        ("training", {"loss_weights": {"emotion": 1.0, "mood": 1.0}}, r"training\.loss_weights\.mood=1\.0 is invalid"),
        ("data", {"validation_fraction": 1.5}, r"data\.validation_fraction=1\.5 is invalid; expected a number in \(0, 1\)"),
        ("data", {"data_format": "csv"}, r"data\.data_format='csv' is invalid; expected one of auto, rafdb, manifest"),
        ("model", {"heads": ("gender",)}, r"model\.heads=\['gender'\] is invalid; expected a list with 'emotion'"),
        ("model", {"heads": ("emotion", "mood")}, r"model\.heads=\['emotion', 'mood'\] is invalid"),
    ],
)
def test_config_invalid_value_names_field(section, values, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.config_from_dict({section: values})


def test_config_unknown_field_is_rejected():
    with pytest.raises(config_lib.ConfigError, match=r"unknown field\(s\) training\.epochs"):
        config_lib.config_from_dict({"training": {"epochs": 3}})


def test_config_toml_round_trip(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        '[data]\npath = "faces"\n[training]\nseed = 7\nheads_epochs = 2\n'
        '[training.loss_weights]\nemotion = 1.0\ngender = 0.25\nage = 0.5\n',
        encoding="utf-8",
    )
    loaded = config_lib.load_config(path)
    assert loaded.data.path == "faces"
    assert loaded.training.seed == 7
    assert loaded.training.loss_weights["gender"] == 0.25


def test_config_toml_error_names_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[training\nseed = 1\n", encoding="utf-8")
    with pytest.raises(config_lib.ConfigError, match="broken.toml: invalid TOML"):
        config_lib.load_config(path)


def test_config_override_ignores_unset_flags():
    base = config_lib.config_from_dict({"training": {"seed": 5}})
    changed = config_lib.override(base, {"training.seed": None, "training.batch_size": 8})
    assert changed.training.seed == 5
    assert changed.training.batch_size == 8


def test_config_smoke_shrinks_epochs_and_images():
    smoke = config_lib.smoke_config(config_lib.RunConfig())
    assert smoke.training.heads_epochs == 1
    assert smoke.training.finetune_epochs == 1
    assert smoke.data.max_images == 48
    assert smoke.smoke
