"""A small run folder shared by the report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_fairness.fairness.metrics import FairnessConfig, evaluate_predictions
from fer_fairness.io import write_json_atomic
from fer_fairness.reports.plots import write_plots

N_IMAGES = 240


def make_predictions(seed: int = 0) -> dict:
    generator = np.random.default_rng(seed)
    y_true = generator.integers(0, 6, N_IMAGES)  # fear (6) is absent: an undefined class
    y_pred = np.where(generator.random(N_IMAGES) < 0.6, y_true, generator.integers(0, 7, N_IMAGES))
    # No image aged 70+: an empty group.
    age = generator.choice([-1, 0, 1, 2, 3], size=N_IMAGES, p=[0.05, 0.05, 0.3, 0.4, 0.2])
    return {
        "y_true": y_true,
        "y_pred": y_pred,
        "probabilities": generator.dirichlet(np.ones(7), N_IMAGES),
        "sensitive_features": {"gender": generator.integers(-1, 2, N_IMAGES), "age": age},
    }


def write_history(run_dir: Path) -> None:
    epochs = np.arange(1, 7)
    history = pd.DataFrame(
        {
            "epoch": epochs,
            "phase": ["heads"] * 3 + ["finetune"] * 3,
            "loss": 3.0 / epochs,
            "emotion_loss": 2.0 / epochs,
            "gender_loss": 0.5 / epochs,
            "age_loss": 0.5 / epochs,
            "emotion_accuracy": 0.3 + 0.05 * epochs,
            "gender_accuracy": 0.6 + 0.03 * epochs,
            "age_accuracy": 0.4 + 0.02 * epochs,
            "val_loss": 3.2 / epochs,
            "val_emotion_accuracy": 0.28 + 0.05 * epochs,
            "val_emotion_fairness": 0.5 + 0.01 * epochs,
            "learning_rate": [1e-3] * 3 + [1e-5] * 3,
        }
    )
    history.to_csv(run_dir / "history.csv", index=False)


def write_fairness_epochs(run_dir: Path, metrics: dict) -> None:
    for epoch in (1, 2, 3):
        record = {"epoch": epoch, **metrics, "race_fairness": None}
        record["gender_fairness"] = 0.8 + 0.05 * epoch
        write_json_atomic(run_dir / "fairness" / f"epoch_{epoch:03d}.json", record)


@pytest.fixture(scope="session")
def predictions() -> dict:
    return make_predictions()


@pytest.fixture(scope="session")
def metrics(predictions) -> dict:
    arguments = dict(predictions)
    return evaluate_predictions(
        arguments.pop("y_true"),
        arguments.pop("y_pred"),
        config=FairnessConfig(n_bootstrap=100, min_group_size=20),
        **arguments,
    )


def fill_run_dir(run_dir: Path, metrics: dict) -> Path:
    """Write history.csv, fairness/epoch_*.json, metrics.json and config.json to ``run_dir``."""
    write_history(run_dir)
    write_fairness_epochs(run_dir, metrics)
    write_json_atomic(run_dir / "metrics.json", metrics)
    write_json_atomic(
        run_dir / "config.json",
        {"model": {"trunk": "ferplus", "input_size": 64}, "training": {"epochs": 6}, "seed": 0},
    )
    return run_dir


@pytest.fixture()
def run_dir(tmp_path, metrics) -> Path:
    return fill_run_dir(tmp_path, metrics)


@pytest.fixture(scope="module")
def plotted_run(tmp_path_factory, metrics, predictions) -> dict:
    """A filled run folder after ``write_plots``, shared by the tests of one module."""
    run_dir = fill_run_dir(tmp_path_factory.mktemp("run"), metrics)
    written = write_plots(
        run_dir, metrics=metrics, y_true=predictions["y_true"], y_pred=predictions["y_pred"]
    )
    return {"run_dir": run_dir, "written": written}
