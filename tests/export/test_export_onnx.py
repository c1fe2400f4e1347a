"""The ONNX export: validity, named outputs, class-name metadata and parity with Keras."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest

from fer_fairness.export import read_onnx_labels
from fer_fairness.labels import EMOTIONS, HEAD_CLASSES

HEADS = ("emotion", "gender", "age", "race")
PARITY_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def onnx_model(exported) -> onnx.ModelProto:
    return onnx.load(str(exported["onnx"]))


@pytest.fixture(scope="module")
def session(exported) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])


def test_onnx_passes_checker(onnx_model):
    onnx.checker.check_model(onnx_model, full_check=True)


def test_onnx_uses_opset_17(onnx_model):
    default_domain = [entry.version for entry in onnx_model.opset_import if entry.domain == ""]
    assert default_domain == [17]


def test_onnx_input_is_preprocessed_image(session):
    (model_input,) = session.get_inputs()
    assert model_input.name == "image"
    assert model_input.type == "tensor(float)"
    assert model_input.shape == ["batch", 64, 64, 1]


def test_onnx_outputs_are_named(session):
    names = {output.name: output.type for output in session.get_outputs()}
    assert names == {
        "emotion": "tensor(float)",
        "gender": "tensor(float)",
        "age": "tensor(float)",
        "race": "tensor(float)",
        "emotion_label": "tensor(string)",
    }


def test_onnx_matches_keras_by_name(session, london_model_input, keras_probabilities):
    # Request the outputs in reverse canonical order, so a lookup by position would fail.
    requested = list(reversed(HEADS))
    values = session.run(requested, {"image": london_model_input})
    actual = dict(zip(requested, values))
    expected = keras_probabilities(london_model_input)
    for head in HEADS:
        np.testing.assert_allclose(
            actual[head], expected[head], rtol=0, atol=PARITY_TOLERANCE, err_msg=head
        )


def test_onnx_emotion_label_is_top_class(session, london_model_input):
    probabilities, labels = session.run(["emotion", "emotion_label"], {"image": london_model_input})
    expected = [EMOTIONS[index] for index in np.argmax(probabilities, axis=1)]
    assert list(labels) == expected


def test_onnx_metadata_names_classes(onnx_model):
    assert read_onnx_labels(onnx_model) == {head: list(HEAD_CLASSES[head]) for head in HEADS}


def test_onnx_metadata_is_json_per_head(onnx_model):
    props = {prop.key: prop.value for prop in onnx_model.metadata_props}
    assert json.loads(props["classes.emotion"]) == list(EMOTIONS)
    assert "float32 (batch, 64, 64, 1)" in props["input"]
