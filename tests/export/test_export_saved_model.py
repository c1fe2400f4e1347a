"""The SavedModel serving contract: signatures, parity with Keras, input checks and labels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from fer_fairness.data.pipeline import decode_image
from fer_fairness.export import read_saved_model_labels
from fer_fairness.labels import EMOTIONS, HEAD_CLASSES

HEADS = ("emotion", "gender", "age", "race")
SIGNATURES = ("serving_default", "serving_bytes", "serving_preprocessed")
PARITY_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def serving(exported):
    return tf.saved_model.load(str(exported["savedmodel"]))


def _assert_matches(actual, expected):
    for head in HEADS:
        np.testing.assert_allclose(
            actual[head].numpy(), expected[head], rtol=0, atol=PARITY_TOLERANCE, err_msg=head
        )


def test_saved_model_has_serving_signatures(serving):
    assert sorted(serving.signatures) == sorted(SIGNATURES)


@pytest.mark.parametrize("signature", SIGNATURES)
def test_saved_model_outputs_are_named(serving, signature):
    outputs = serving.signatures[signature].structured_outputs
    assert sorted(outputs) == sorted([*HEADS, "emotion_label"])


def test_saved_model_default_matches_keras(serving, london_rgb, london_model_input,
                                           keras_probabilities):
    actual = serving.signatures["serving_default"](images=tf.constant(london_rgb))
    _assert_matches(actual, keras_probabilities(london_model_input))


def test_saved_model_bytes_matches_keras(serving, london_paths, keras_probabilities):
    encoded = [path.read_bytes() for path in london_paths]
    actual = serving.signatures["serving_bytes"](images=tf.constant(encoded))
    training_input = np.stack([decode_image(tf.constant(data)).numpy() for data in encoded])
    _assert_matches(actual, keras_probabilities(training_input))


def test_saved_model_preprocessed_matches_keras(serving, london_model_input,
                                                keras_probabilities):
    actual = serving.signatures["serving_preprocessed"](image=tf.constant(london_model_input))
    _assert_matches(actual, keras_probabilities(london_model_input))


def test_saved_model_probabilities_sum_to_one(serving, london_rgb):
    actual = serving.signatures["serving_default"](images=tf.constant(london_rgb))
    for head in HEADS:
        np.testing.assert_allclose(actual[head].numpy().sum(axis=1), 1.0, atol=1e-5, err_msg=head)


def test_saved_model_emotion_label_is_top_class(serving, london_rgb):
    actual = serving.signatures["serving_default"](images=tf.constant(london_rgb))
    expected = [EMOTIONS[index] for index in np.argmax(actual["emotion"].numpy(), axis=1)]
    assert [label.decode() for label in actual["emotion_label"].numpy()] == expected


def test_saved_model_gray_input_matches_gray_file(serving, london_rgb, keras_probabilities):
    # Training decodes a grayscale file with channels=3, which tiles the gray channel.
    gray = tf.image.rgb_to_grayscale(london_rgb).numpy()
    training_input = np.stack(
        [decode_image(tf.io.encode_png(image)).numpy() for image in gray]
    )
    actual = serving.signatures["serving_default"](images=tf.constant(gray))
    _assert_matches(actual, keras_probabilities(training_input))


def test_saved_model_rgba_input_drops_alpha(serving, london_rgb, keras_probabilities):
    alpha = np.random.default_rng(0).integers(0, 256, london_rgb.shape[:3] + (1,), np.uint8)
    rgba = np.concatenate([london_rgb, alpha], axis=-1)
    training_input = np.stack(
        [decode_image(tf.io.encode_png(image)).numpy() for image in rgba]
    )
    actual = serving.signatures["serving_default"](images=tf.constant(rgba))
    _assert_matches(actual, keras_probabilities(training_input))


def test_saved_model_accepts_any_image_size(serving):
    images = np.random.default_rng(0).integers(0, 256, (3, 37, 211, 3), np.uint8)
    actual = serving.signatures["serving_default"](images=tf.constant(images))
    assert actual["emotion"].shape == (3, len(EMOTIONS))
    assert actual["emotion_label"].shape == (3,)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((2, 3, 64, 64), np.float32), "expected to be a uint8 tensor"),
        (np.zeros((2, 64, 64, 3), np.float32), "expected to be a uint8 tensor"),
        (np.zeros((2, 3, 64, 64), np.uint8), r"with 1, 3 or 4 channels \(channels last\)"),
        (np.zeros((1, 64, 64, 5), np.uint8), r"with 1, 3 or 4 channels \(channels last\)"),
        (np.zeros((64, 64, 3), np.uint8), r"is not compatible with expected shape"),
        (np.zeros((1, 1, 64, 64, 3), np.uint8), r"is not compatible with expected shape"),
    ],
    ids=["nchw-float", "nhwc-float", "nchw-uint8", "5-channels", "rank-3", "rank-5"],
)
def test_saved_model_rejects_wrong_layout(serving, images, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serving.signatures["serving_default"](images=tf.constant(images))


def test_saved_model_error_shows_received_shape(serving):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Got shape:\] \[2 3 64 64\]"):
        serving.signatures["serving_default"](
            images=tf.constant(np.zeros((2, 3, 64, 64), np.uint8))
        )


def test_saved_model_labels_file_names_classes(exported):
    labels = read_saved_model_labels(exported["savedmodel"])
    assert labels == {head: list(HEAD_CLASSES[head]) for head in HEADS}


def test_saved_model_labels_file_missing_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels.json not found"):
        read_saved_model_labels(tmp_path)


def _signature_blocks(text: str) -> dict[str, str]:
    blocks = {}
    for block in text.split("signature_def['")[1:]:
        name, _, body = block.partition("']")
        blocks[name] = body
    return blocks


def _tensor_info(block: str, kind: str, name: str) -> str:
    start = block.index(f"{kind}['{name}'] tensor_info:")
    return block[start : start + 200]


@pytest.fixture(scope="module")
def saved_model_cli_output(exported) -> str:
    command = Path(sys.executable).parent / "saved_model_cli"
    completed = subprocess.run(
        [str(command), "show", "--dir", str(exported["savedmodel"]), "--all"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return completed.stdout


@pytest.mark.parametrize(
    ("signature", "input_name", "dtype", "shape"),
    [
        ("serving_default", "images", "DT_UINT8", "(-1, -1, -1, -1)"),
        ("serving_bytes", "images", "DT_STRING", "(-1)"),
        ("serving_preprocessed", "image", "DT_FLOAT", "(-1, 64, 64, 1)"),
    ],
)
def test_saved_model_cli_lists_signature(saved_model_cli_output, signature, input_name, dtype,
                                         shape):
    block = _signature_blocks(saved_model_cli_output)[signature]
    info = _tensor_info(block, "inputs", input_name)
    assert f"dtype: {dtype}" in info
    assert f"shape: {shape}\n" in info
    assert "Method name is: tensorflow/serving/predict" in block


@pytest.mark.parametrize(
    ("output", "dtype", "shape"),
    [
        ("emotion", "DT_FLOAT", "(-1, 7)"),
        ("gender", "DT_FLOAT", "(-1, 2)"),
        ("age", "DT_FLOAT", "(-1, 5)"),
        ("race", "DT_FLOAT", "(-1, 3)"),
        ("emotion_label", "DT_STRING", "(-1)"),
    ],
)
def test_saved_model_cli_lists_output(saved_model_cli_output, output, dtype, shape):
    for signature in SIGNATURES:
        block = _signature_blocks(saved_model_cli_output)[signature]
        info = _tensor_info(block, "outputs", output)
        assert f"dtype: {dtype}" in info, signature
        assert f"shape: {shape}\n" in info, signature
