"""End-to-end test of ``fer-fairness train`` on the London faces with the FER+ replica trunk."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from fer_fairness import cli
from fer_fairness.evaluation import softmax
from fer_fairness.labels import EMOTIONS

RUN_FILES = (
    "config.json",
    "environment.json",
    "status.json",
    "history.csv",
    "model.keras",
    "saved_model/saved_model.pb",
    "metrics.json",
    "metrics_zero_shot.json",
    "report.html",
)
METRIC_KEYS = (
    "overall_accuracy",
    "per_emotion_accuracy",
    "emotion_fairness",
    "gender_fairness",
    "age_fairness",
    "gender_accuracy",
    "age_accuracy",
    "group_counts",
)


@pytest.fixture(scope="module")
def smoke_run(ferplus_replica_path, london_faces_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("runs")
    started = time.monotonic()
    status = cli.main([
        "train", "--phase", "all", "--smoke",
        "--data", str(london_faces_dir),
        "--trunk", str(ferplus_replica_path),
        "--output", str(output), "--name", "smoke",
    ])
    return {"status": status, "run_dir": output / "smoke", "seconds": time.monotonic() - started}


@pytest.mark.slow
def test_train_cli_smoke_finishes_in_time(smoke_run):
    assert smoke_run["status"] == 0
    assert smoke_run["seconds"] < 180


@pytest.mark.slow
@pytest.mark.parametrize("name", RUN_FILES)
def test_train_cli_writes_run_file(smoke_run, name):
    assert (smoke_run["run_dir"] / name).exists()


@pytest.mark.slow
def test_train_cli_tensorboard_logs_exist(smoke_run):
    events = list((smoke_run["run_dir"] / "tensorboard").rglob("events.out.tfevents.*"))
    assert events


@pytest.mark.slow
def test_train_cli_metrics_have_required_keys(smoke_run):
    metrics = json.loads((smoke_run["run_dir"] / "metrics.json").read_text())
    missing = [key for key in METRIC_KEYS if key not in metrics]
    assert not missing
    assert 0.0 <= metrics["overall_accuracy"] <= 1.0


@pytest.mark.slow
def test_train_cli_absent_emotions_are_null(smoke_run):
    metrics = json.loads((smoke_run["run_dir"] / "metrics.json").read_text())
    per_emotion = metrics["per_emotion_accuracy"]
    # The London faces hold only neutral and smiling photographs.
    for name in EMOTIONS:
        if name not in ("neutral", "happiness"):
            assert per_emotion[name] is None, name


@pytest.mark.slow
def test_train_cli_history_marks_both_phases(smoke_run):
    history = pd.read_csv(smoke_run["run_dir"] / "history.csv")
    assert list(history["phase"]) == ["heads", "finetune"]
    assert "val_emotion_accuracy" in history.columns


@pytest.mark.slow
def test_train_cli_status_is_finished(smoke_run):
    status = json.loads((smoke_run["run_dir"] / "status.json").read_text())
    assert status["status"] == "finished"


@pytest.mark.slow
def test_saved_model_matches_keras(smoke_run):
    run_dir = smoke_run["run_dir"]
    model = keras.saving.load_model(run_dir / "model.keras")
    images = np.random.default_rng(1).uniform(0, 255, (4, 64, 64, 1)).astype(np.float32)
    expected = model.predict(images, verbose=0)
    loaded = tf.saved_model.load(str(run_dir / "saved_model"))
    actual = loaded.signatures["serving_preprocessed"](image=tf.constant(images))
    for head, logits in expected.items():
        np.testing.assert_allclose(actual[head].numpy(), softmax(logits), atol=1e-5, err_msg=head)


@pytest.mark.slow
def test_train_cli_never_overwrites_run(smoke_run, ferplus_replica_path, london_faces_dir):
    output = smoke_run["run_dir"].parent
    before = (smoke_run["run_dir"] / "metrics.json").read_bytes()
    status = cli.main([
        "train", "--phase", "heads", "--smoke", "--finetune-epochs", "0",
        "--data", str(london_faces_dir), "--trunk", str(ferplus_replica_path),
        "--output", str(output), "--name", "smoke",
    ])
    assert status == 0
    assert (output / "smoke-2" / "metrics.json").is_file()
    assert (smoke_run["run_dir"] / "metrics.json").read_bytes() == before


def test_train_cli_rejects_invalid_value(tmp_path, capsys):
    status = cli.main(["train", "--data", str(tmp_path), "--batch-size", "0"])
    assert status == 2
    assert "training.batch_size=0 is invalid; expected a whole number >= 1" in capsys.readouterr().err


def test_train_cli_defaults_to_synthetic(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FER_FAIRNESS_CACHE", str(tmp_path / "cache"))
    # A missing trunk stops the job after the data step and before any training.
    missing_trunk = tmp_path / "missing.onnx"
    with caplog.at_level("INFO", logger="fer_fairness"):
        status = cli.main(["train", "--trunk", str(missing_trunk),
                           "--output", str(tmp_path / "runs")])
    synthetic = list((tmp_path / "cache" / "synthetic").glob("*/labels.csv"))
    assert status == 2
    assert "using the built-in synthetic data set" in caplog.text
    assert len(synthetic) == 1
    assert not (tmp_path / "runs").exists()


def test_console_script_help_runs():
    result = subprocess.run(
        [sys.executable, "-m", "fer_fairness.cli", "train", "--help"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0
    assert "--phase" in result.stdout


@pytest.mark.slow
def test_evaluate_cli_reproduces_metrics(smoke_run, capsys):
    run_dir = smoke_run["run_dir"]
    before = json.loads((run_dir / "metrics.json").read_text())
    status = cli.main(["evaluate", str(run_dir)])
    assert status == 0
    after = json.loads((run_dir / "metrics.json").read_text())
    assert after["overall_accuracy"] == before["overall_accuracy"]
    assert after["group_counts"] == before["group_counts"]
    assert "overall_accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_cli_other_split_keeps_run_metrics(smoke_run):
    run_dir = smoke_run["run_dir"]
    before = (run_dir / "metrics.json").read_bytes()
    status = cli.main(["evaluate", str(run_dir), "--split", "validation"])
    assert status == 0
    output = run_dir / "evaluations" / "london_faces-validation"
    assert (output / "metrics.json").is_file()
    assert (output / "report.html").is_file()
    assert (run_dir / "metrics.json").read_bytes() == before


def test_evaluate_cli_rejects_folder_without_run(tmp_path, capsys):
    status = cli.main(["evaluate", str(tmp_path)])
    assert status == 2
    assert "config.json not found" in capsys.readouterr().err


def test_train_cli_overwrite_never_deletes_from_run(tmp_path, capsys, london_faces_dir):
    previous = tmp_path / "runs" / "h1"
    (previous / "checkpoints").mkdir(parents=True)
    (previous / "checkpoints" / "heads.keras").write_bytes(b"placeholder")
    status = cli.main([
        "train", "--phase", "finetune", "--from-run", str(previous), "--overwrite",
        "--data", str(london_faces_dir), "--output", str(tmp_path / "runs"), "--name", "h1",
    ])
    assert status == 2
    assert "--overwrite would delete" in capsys.readouterr().err
    assert (previous / "checkpoints" / "heads.keras").read_bytes() == b"placeholder"


def test_train_cli_truncated_keras_trunk_named(tmp_path, capsys, london_faces_dir):
    trunk = tmp_path / "trunk.keras"
    trunk.write_bytes(b"PK\x03\x04truncated")
    status = cli.main(["train", "--data", str(london_faces_dir), "--trunk", str(trunk),
                       "--output", str(tmp_path / "runs")])
    assert status == 2
    assert f"{trunk} is not a valid .keras file" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
