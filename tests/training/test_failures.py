"""A training run that fails mid-way stops at once and records why, keeping earlier work."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import pytest

from fer_fairness import cli

REPO_ROOT = Path(__file__).resolve().parents[2]
MINI_XCEPTION = REPO_ROOT / "models" / "fer_mini_xception.onnx"


@pytest.fixture(scope="module")
def diverged_run(london_faces_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("diverged")
    # A learning rate of 1e38 overflows float32 weights within a few Adam steps.
    status = cli.main([
        "train", "--data", str(london_faces_dir), "--trunk", str(MINI_XCEPTION),
        "--output", str(output), "--name", "nan", "--heads-epochs", "1",
        "--finetune-epochs", "2", "--finetune-learning-rate", "1e38", "--bootstrap", "0",
        "--precision", "float32",
    ])
    return {"status": status, "run_dir": output / "nan"}


@pytest.mark.slow
def test_non_finite_loss_exits_with_status_1(diverged_run):
    assert diverged_run["status"] == 1


@pytest.mark.slow
def test_non_finite_loss_recorded_in_status(diverged_run):
    status = json.loads((diverged_run["run_dir"] / "status.json").read_text())
    assert status["status"] == "failed"
    assert "NonFiniteLossError" in status["reason"]
    assert "phase finetune, epoch 2" in status["reason"]


@pytest.mark.slow
def test_non_finite_loss_keeps_phase_one_checkpoint(diverged_run):
    checkpoint = diverged_run["run_dir"] / "checkpoints" / "heads.keras"
    model = keras.saving.load_model(checkpoint, compile=False)
    assert sorted(model.output_names) == ["age", "emotion", "gender"]


@pytest.mark.slow
def test_non_finite_loss_writes_no_metrics(diverged_run):
    assert not (diverged_run["run_dir"] / "metrics.json").exists()
