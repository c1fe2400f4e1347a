"""Resume and determinism: a run killed mid-phase-2 and resumed equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MINI_XCEPTION = REPO_ROOT / "models" / "fer_mini_xception.onnx"
HEADS_EPOCHS = 2
# The backup of the phase-2 epoch that the kill waits for: two epochs into phase 2.
KILL_AFTER_EPOCH = HEADS_EPOCHS + 2
TIMEOUT_SECONDS = 600


def _train_command(london_faces_dir: Path, output: Path, name: str) -> list[str]:
    return [
        sys.executable, "-m", "fer_fairness.cli", "train", "--phase", "all", "--deterministic",
        "--data", str(london_faces_dir), "--trunk", str(MINI_XCEPTION),
        "--output", str(output), "--name", name,
        "--heads-epochs", str(HEADS_EPOCHS), "--finetune-epochs", "8", "--patience", "3",
        "--finetune-learning-rate", "1e-3", "--batch-size", "16", "--bootstrap", "100",
        "--min-group-size", "15",
    ]


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]


def _backup_epoch(run_dir: Path) -> int:
    metadata = run_dir / "backup" / "finetune" / "training_metadata.json"
    try:
        return json.loads(metadata.read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return -1


def _kill_mid_phase_two(command: list[str], run_dir: Path) -> None:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while _backup_epoch(run_dir) < KILL_AFTER_EPOCH:
        if process.poll() is not None:
            raise AssertionError(f"training ended before the kill: {process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("phase 2 did not reach the kill epoch in time")
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def runs(london_faces_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("resume")
    _run(_train_command(london_faces_dir, output, "first"))
    _run(_train_command(london_faces_dir, output, "second"))
    interrupted = output / "interrupted"
    _kill_mid_phase_two(_train_command(london_faces_dir, output, "interrupted"), interrupted)
    status_after_kill = json.loads((interrupted / "status.json").read_text())
    _run([sys.executable, "-m", "fer_fairness.cli", "train", "--resume", str(interrupted)])
    return {
        "first": output / "first",
        "second": output / "second",
        "resumed": interrupted,
        "status_after_kill": status_after_kill,
    }


def _weights(run_dir: Path) -> list[np.ndarray]:
    return keras.saving.load_model(run_dir / "model.keras", compile=False).get_weights()


@pytest.mark.slow
def test_deterministic_runs_give_identical_metrics(runs):
    first = (runs["first"] / "metrics.json").read_bytes()
    assert first == (runs["second"] / "metrics.json").read_bytes()


@pytest.mark.slow
def test_killed_run_was_mid_phase_two(runs):
    assert runs["status_after_kill"]["status"] == "running"
    assert runs["status_after_kill"]["completed_phases"] == ["heads"]


@pytest.mark.slow
def test_resumed_run_metrics_identical(runs):
    first = (runs["first"] / "metrics.json").read_bytes()
    assert first == (runs["resumed"] / "metrics.json").read_bytes()


@pytest.mark.slow
def test_resumed_run_weights_identical(runs):
    for expected, actual in zip(_weights(runs["first"]), _weights(runs["resumed"]), strict=True):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.slow
def test_resumed_run_history_has_every_epoch(runs):
    first = (runs["first"] / "history.csv").read_text().splitlines()
    resumed = (runs["resumed"] / "history.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in resumed] == [line.split(",")[:2] for line in first]


@pytest.mark.slow
def test_resumed_run_status_finished(runs):
    status = json.loads((runs["resumed"] / "status.json").read_text())
    assert status["status"] == "finished"
    assert status["completed_phases"] == ["heads", "finetune"]


def test_resume_rejects_other_flags(tmp_path, capsys):
    from fer_fairness import cli

    status = cli.main(["train", "--resume", str(tmp_path), "--seed", "3"])
    assert status == 2
    assert "drop the other flags (--seed)" in capsys.readouterr().err
