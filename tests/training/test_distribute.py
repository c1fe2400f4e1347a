"""Tests of tf.distribute support: strategy choice, scaling, and mirrored training on two CPUs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fer_fairness import config as config_lib
from fer_fairness import distribute

MINI_XCEPTION = Path(__file__).resolve().parents[2] / "models" / "fer_mini_xception.onnx"

# Runs in a new interpreter: logical devices must be configured before TensorFlow starts them.
MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    import pandas as pd
    from fer_fairness.config import config_from_dict
    from fer_fairness.data.prepare import prepare_splits
    from fer_fairness.workflow import train

    faces, trunk, output = sys.argv[1:4]
    results = {}
    # One device at a global batch of 48 and doubled learning rates, against two replicas of
    # 24 each, which scale to the same. 48 is the whole training split, so every epoch is one
    # step and the shuffle order cannot matter: under a strategy, Keras draws one more order.
    runs = {
        "default": {"strategy": "default", "batch_size": 48,
                    "heads_learning_rate": 2e-2, "finetune_learning_rate": 2e-4},
        "mirrored": {"strategy": "mirrored", "batch_size": 24,
                     "heads_learning_rate": 1e-2, "finetune_learning_rate": 1e-4},
    }
    for name, training in runs.items():
        config = config_from_dict({
            "data": {"path": faces, "max_images": 48},
            "model": {"trunk": trunk},
            "training": {"heads_epochs": 3, "finetune_epochs": 1, "precision": "float32",
                         **training},
            "output_dir": output,
            "name": name,
        })
        result = train(config)
        history = pd.read_csv(result.run_dir / "history.csv")
        splits = prepare_splits(config.data, seed=config.training.seed).splits
        results[name] = {
            "train_images": len(splits["train"]),
            "replicas": len(tf.config.list_logical_devices("CPU")),
            "accuracy": result.metrics["overall_accuracy"],
            "loss": history["loss"].tolist(),
            "val_loss": history["val_loss"].tolist(),
            "val_emotion_fairness": history["val_emotion_fairness"].tolist(),
        }
    print(json.dumps(results))
""")


@pytest.mark.slow
def test_mirrored_two_cpus_matches_one_device(london_faces_dir, tmp_path):
    completed = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(london_faces_dir), str(MINI_XCEPTION),
         str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    default, mirrored = results["default"], results["mirrored"]
    assert mirrored["replicas"] == 2
    assert mirrored["train_images"] == 48
    assert len(mirrored["loss"]) == len(default["loss"]) == 4
    assert mirrored["loss"] == pytest.approx(default["loss"], rel=1e-3)
    assert mirrored["val_loss"] == pytest.approx(default["val_loss"], rel=1e-3)
    # The fairness callback and the test metrics pair predictions with labels by position,
    # so these also check that the replicas' outputs come back in input order.
    assert mirrored["val_emotion_fairness"] == pytest.approx(default["val_emotion_fairness"])
    assert mirrored["accuracy"] == pytest.approx(default["accuracy"], abs=1e-6)


def test_scale_to_replicas_multiplies_batch_and_learning_rates():
    config = config_lib.config_from_dict({
        "training": {"batch_size": 8, "heads_learning_rate": 1e-3, "finetune_learning_rate": 1e-5}
    })
    scaled = distribute.scale_to_replicas(config, 4)
    assert scaled.training.batch_size == 32
    assert scaled.training.heads_learning_rate == pytest.approx(4e-3)
    assert scaled.training.finetune_learning_rate == pytest.approx(4e-5)


def test_scale_to_one_replica_keeps_config():
    config = config_lib.RunConfig()
    assert distribute.scale_to_replicas(config, 1) is config


def test_default_strategy_has_one_replica():
    assert distribute.make_strategy("default").num_replicas_in_sync == 1


def test_config_rejects_unknown_strategy():
    message = r"training\.strategy='horovod' is invalid; expected one of default, mirrored"
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.config_from_dict({"training": {"strategy": "horovod"}})


@pytest.mark.parametrize(
    ("tf_config", "expected"),
    [
        (None, True),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}},
         False),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}},
         True),
    ],
)
def test_is_chief(tf_config, expected):
    assert distribute.is_chief(tf_config) is expected


def test_read_tf_config_rejects_missing_task(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}}')
    with pytest.raises(ValueError, match="expected a JSON object with 'cluster'"):
        distribute.read_tf_config()


def test_read_tf_config_rejects_invalid_json(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{cluster")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.read_tf_config()
