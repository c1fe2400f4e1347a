"""Fixtures for the serving tests: one trained-model run folder, exported once per session.

The model is the pretrained mini-Xception trunk from ``models/`` with emotion, gender, age and
race heads, so the emotion predictions on the London faces are real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from fer_fairness import model as model_lib
from fer_fairness.convert import convert_onnx
from fer_fairness.data.pipeline import to_model_input
from fer_fairness.evaluation import softmax
from fer_fairness.export import export_run

REPO_ROOT = Path(__file__).resolve().parents[2]
MINI_XCEPTION = REPO_ROOT / "models" / "fer_mini_xception.onnx"
HEADS = ("emotion", "gender", "age", "race")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A run folder with ``model.keras`` and ``config.json``, as ``fer-fairness train`` writes."""
    trunk = convert_onnx(MINI_XCEPTION)
    extractor = model_lib.feature_extractor(trunk)
    heads = model_lib.build_heads(trunk, heads=HEADS, seed=0)
    model = model_lib.assemble(extractor, heads, trunk_inference=True)
    folder = tmp_path_factory.mktemp("run")
    model.save(folder / "model.keras")
    (folder / "config.json").write_text(json.dumps({"model": {"heads": list(HEADS)}}))
    return folder


@pytest.fixture(scope="session")
def exported(run_dir) -> dict[str, Path]:
    """Both exports of ``run_dir``, written into the run folder."""
    return export_run(run_dir, export_format="both")


@pytest.fixture(scope="session")
def keras_model(run_dir) -> keras.Model:
    return keras.saving.load_model(run_dir / "model.keras", compile=False)


@pytest.fixture(scope="session")
def london_paths(london_faces_dir) -> list[Path]:
    """Eight London face files, both expressions of four people."""
    paths = sorted((london_faces_dir / "images").glob("*.jpg"))
    return paths[:4] + paths[-4:]


@pytest.fixture(scope="session")
def london_rgb(london_paths) -> np.ndarray:
    """``london_paths`` decoded as uint8 ``(8, 100, 100, 3)``."""
    images = [tf.io.decode_jpeg(path.read_bytes(), channels=3).numpy() for path in london_paths]
    return np.stack(images)


@pytest.fixture(scope="session")
def keras_probabilities(keras_model):
    """Return a function from preprocessed input to the softmax of the Keras logits by head."""

    def probabilities(model_input: np.ndarray) -> dict[str, np.ndarray]:
        logits = keras_model(tf.constant(model_input, tf.float32), training=False)
        return {head: softmax(np.asarray(values)) for head, values in logits.items()}

    return probabilities


@pytest.fixture(scope="session")
def london_model_input(london_rgb) -> np.ndarray:
    """``london_rgb`` through the training preprocessing: float32 ``(8, 64, 64, 1)``."""
    return to_model_input(tf.constant(london_rgb)).numpy()
