"""Tests of the precision policy: resolution, loss scaling and a bfloat16 training run."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from fer_fairness import config as config_lib
from fer_fairness import precision, training
from fer_fairness.export import SERVING_PREPROCESSED
from fer_fairness.workflow import train

MINI_XCEPTION = Path(__file__).resolve().parents[2] / "models" / "fer_mini_xception.onnx"
LOSS_WEIGHTS = {"emotion": 1.0}


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("has_gpu", "flags", "expected"),
    [
        (True, "avx512_bf16", "mixed_float16"),
        (False, "avx512f avx512_bf16", "mixed_bfloat16"),
        (False, "amx_tile amx_bf16", "mixed_bfloat16"),
        (False, "avx512f avx512_vnni", "float32"),
    ],
)
def test_resolve_precision_auto(tmp_path, has_gpu, flags, expected):
    cpuinfo = _cpuinfo(tmp_path, flags)
    assert precision.resolve_precision("auto", has_gpu=has_gpu, cpuinfo=cpuinfo) == expected


def test_resolve_precision_auto_without_cpuinfo(tmp_path):
    resolved = precision.resolve_precision("auto", has_gpu=False, cpuinfo=tmp_path / "missing")
    assert resolved == "float32"


@pytest.mark.parametrize("name", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_resolve_precision_keeps_explicit_policy(name):
    assert precision.resolve_precision(name, has_gpu=True) == name


def test_config_rejects_unknown_precision():
    message = r"training\.precision='bfloat16' is invalid; expected one of auto, float32"
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.config_from_dict({"training": {"precision": "bfloat16"}})


def _tiny_model(trunk_policy: str) -> keras.Model:
    image = keras.Input((4,), name="image")
    features = keras.layers.Dense(8, name="features", dtype=trunk_policy)(image)
    emotion = keras.layers.Dense(7, name="emotion", dtype="float32")(features)
    return keras.Model(image, {"emotion": emotion})


def test_compile_float16_wraps_loss_scale_optimizer():
    model = _tiny_model("mixed_float16")
    training.compile_model(model, learning_rate=1e-3, loss_weights=LOSS_WEIGHTS)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_compile_bfloat16_keeps_plain_optimizer():
    model = _tiny_model("mixed_bfloat16")
    training.compile_model(model, learning_rate=1e-3, loss_weights=LOSS_WEIGHTS)
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_compile_disables_xla():
    model = _tiny_model("float32")
    training.compile_model(model, learning_rate=1e-3, loss_weights=LOSS_WEIGHTS)
    assert model.jit_compile is False


def test_apply_policy_keeps_float32_variables():
    model = _tiny_model("float32")
    changed = precision.apply_policy(model, "mixed_bfloat16")
    assert changed > 0
    assert model.get_layer("features").compute_dtype == "bfloat16"
    assert all(weight.dtype == "float32" for weight in model.weights)


@pytest.fixture(scope="module")
def bfloat16_run(london_faces_dir, tmp_path_factory):
    config = config_lib.config_from_dict({
        "data": {"path": str(london_faces_dir), "max_images": 24},
        "model": {"trunk": str(MINI_XCEPTION)},
        "training": {
            "batch_size": 8,
            "heads_epochs": 1,
            "finetune_epochs": 1,
            "precision": "mixed_bfloat16",
            "cache_features": "disk",
        },
        "output_dir": str(tmp_path_factory.mktemp("runs")),
        "name": "bf16",
    })
    return train(config).run_dir


@pytest.mark.slow
def test_bfloat16_run_serving_signature_is_float32(bfloat16_run):
    loaded = tf.saved_model.load(str(bfloat16_run / "saved_model"))
    signature = loaded.signatures[SERVING_PREPROCESSED]
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 1)).astype(np.float32)
    outputs = signature(image=tf.constant(images))
    for name in ("emotion", "gender", "age"):
        assert outputs[name].dtype == tf.float32, name
    input_spec = signature.structured_input_signature[1]["image"]
    assert input_spec.dtype == tf.float32


@pytest.mark.slow
def test_bfloat16_run_saves_float32_model(bfloat16_run):
    model = keras.saving.load_model(bfloat16_run / "model.keras", compile=False)
    trunk = model.get_layer("trunk")
    assert {layer.compute_dtype for layer in trunk.layers} == {"float32"}
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 1)).astype(np.float32)
    assert model.predict(images, verbose=0)["emotion"].dtype == np.float32


@pytest.mark.slow
def test_bfloat16_run_removes_disk_cache(bfloat16_run):
    assert not (bfloat16_run / "feature_cache").exists()
    assert (bfloat16_run / "checkpoints" / "heads.keras").is_file()
