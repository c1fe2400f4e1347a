"""The converter on the emotion-ferplus-8 replica, checked against onnxruntime."""

from __future__ import annotations

import keras
import numpy as np
import onnx
import pytest

from fer_fairness.convert import build_ferplus_replica, convert_onnx

MAX_ABS_TOLERANCE = 1e-4


def _onnxruntime_one_by_one(runner, replica: onnx.ModelProto, pixels: np.ndarray) -> np.ndarray:
    # The graph fixes a batch of 1, so onnxruntime takes one NCHW image per run.
    return np.concatenate([runner(replica, image.transpose(2, 0, 1)[None]) for image in pixels])


@pytest.fixture(scope="module")
def reference_logits(ferplus_replica, random_pixels, onnxruntime_runner) -> np.ndarray:
    return _onnxruntime_one_by_one(onnxruntime_runner, ferplus_replica, random_pixels)


def test_replica_follows_ferplus_graph(ferplus_replica):
    graph = ferplus_replica.graph
    op_counts = {op: sum(node.op_type == op for node in graph.node)
                 for op in ("Conv", "MaxPool", "Dropout", "MatMul", "Reshape")}
    initializer_names = {init.name for init in graph.initializer}
    parameters = sum(int(np.prod(init.dims)) for init in graph.initializer
                     if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) > 0)
    assert ferplus_replica.ir_version == 3
    assert ferplus_replica.opset_import[0].version == 8
    assert op_counts == {"Conv": 10, "MaxPool": 4, "Dropout": 6, "MatMul": 3, "Reshape": 2}
    assert initializer_names <= {value.name for value in graph.input}
    assert [value.name for value in graph.output] == ["Plus692_Output_0"]
    assert [node.name for node in graph.node[:2]] == ["Minus340", "Block352"]
    assert 8_700_000 < parameters < 8_800_000


def test_replica_same_seed_same_weights():
    first, second = build_ferplus_replica(seed=3), build_ferplus_replica(seed=3)
    assert first.SerializeToString() == second.SerializeToString()


def test_replica_parity_batch_16(converted_replica, random_pixels, reference_logits):
    logits = converted_replica.predict(random_pixels, batch_size=16, verbose=0)
    assert np.abs(logits - reference_logits).max() < MAX_ABS_TOLERANCE
    assert np.array_equal(logits.argmax(axis=1), reference_logits.argmax(axis=1))
    # Random weights favour one class on noise images, so the full class ranking is compared too.
    assert np.array_equal(logits.argsort(axis=1), reference_logits.argsort(axis=1))


def test_replica_parity_batch_1(converted_replica, random_pixels, reference_logits):
    logits = converted_replica.predict(random_pixels, batch_size=1, verbose=0)
    assert np.abs(logits - reference_logits).max() < MAX_ABS_TOLERANCE
    assert np.array_equal(logits.argmax(axis=1), reference_logits.argmax(axis=1))
    # Random weights favour one class on noise images, so the full class ranking is compared too.
    assert np.array_equal(logits.argsort(axis=1), reference_logits.argsort(axis=1))


def test_replica_logits_realistic_magnitude(reference_logits):
    spread = reference_logits.max(axis=1) - reference_logits.min(axis=1)
    assert 0.5 < spread.mean() < 20


def test_replica_block_output_shapes(converted_replica):
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in converted_replica.layers}
    block_outputs = [shapes[name] for name in
                     ("ReLU384", "ReLU440", "ReLU514", "ReLU588", "Dropout612")]
    dense_outputs = [shapes[name] for name in
                     ("Times622__Plus624", "Times656__Plus658", "Times690__Plus692")]
    assert block_outputs == [(64, 64, 64), (32, 32, 128), (16, 16, 256), (8, 8, 256),
                             (4, 4, 256)]
    assert dense_outputs == [(1024,), (1024,), (8,)]
    assert tuple(converted_replica.input.shape) == (None, 64, 64, 1)
    assert tuple(converted_replica.output.shape) == (None, 8)


def test_replica_weights_trainable_no_lambda(converted_replica):
    assert converted_replica.non_trainable_weights == []
    assert len(converted_replica.trainable_weights) == 2 * 13
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in converted_replica.layers)
    assert converted_replica.count_params() == 8_757_704


def test_replica_layer_names_carry_node_names(converted_replica, ferplus_replica):
    layer_names = "|".join(layer.name for layer in converted_replica.layers)
    weighted_nodes = [node.name for node in ferplus_replica.graph.node
                      if node.op_type in ("Conv", "MatMul", "Relu", "MaxPool", "Dropout")]
    missing = [name for name in weighted_nodes if name not in layer_names]
    assert missing == []
    assert converted_replica.get_layer("Minus340__Block352") is not None


def test_replica_named_points(converted_replica):
    features = converted_replica.get_layer("features").output
    logits = converted_replica.get_layer("logits").output
    assert tuple(features.shape) == (None, 1024)
    assert tuple(logits.shape) == (None, 8)
    assert converted_replica.output is logits


def test_replica_features_to_logits_linear(converted_replica, random_pixels):
    head = keras.Model(converted_replica.get_layer("features").output,
                       converted_replica.output)
    trunk = keras.Model(converted_replica.input, converted_replica.get_layer("features").output)
    features = trunk.predict(random_pixels[:8], verbose=0)
    bias = head.predict(np.zeros((1, 1024), np.float32), verbose=0)
    doubled = head.predict(2 * features, verbose=0)
    single = head.predict(features, verbose=0)
    np.testing.assert_allclose(doubled - bias, 2 * (single - bias), atol=1e-4)


def test_replica_flatten_reorders_dense_rows(converted_replica, ferplus_replica):
    stored = {init.name: onnx.numpy_helper.to_array(init)
              for init in ferplus_replica.graph.initializer}["Parameter1367"]
    expected = stored.transpose(1, 2, 0, 3).reshape(4096, 1024)
    kernel = converted_replica.get_layer("Times622__Plus624").kernel.numpy()
    assert not any(isinstance(layer, keras.layers.Permute) for layer in converted_replica.layers)
    np.testing.assert_array_equal(kernel, expected)


def test_replica_unreordered_flatten_fails_parity(converted_replica, ferplus_replica,
                                                  random_pixels, reference_logits):
    # Guard: loading the ONNX (C, H, W) row order into the Keras kernel must break parity.
    clone = keras.models.clone_model(converted_replica)
    clone.set_weights(converted_replica.get_weights())
    stored = {init.name: onnx.numpy_helper.to_array(init)
              for init in ferplus_replica.graph.initializer}["Parameter1367"]
    layer = clone.get_layer("Times622__Plus624")
    layer.kernel.assign(stored.reshape(4096, 1024))
    logits = clone.predict(random_pixels[:8], verbose=0)
    assert np.abs(logits - reference_logits[:8]).max() > 1e-2


def test_replica_channels_first_input(ferplus_replica, random_pixels, reference_logits):
    model = convert_onnx(ferplus_replica, data_format="channels_first")
    logits = model.predict(random_pixels[:4].transpose(0, 3, 1, 2), verbose=0)
    assert tuple(model.input.shape) == (None, 1, 64, 64)
    assert np.abs(logits - reference_logits[:4]).max() < MAX_ABS_TOLERANCE


def test_convert_invalid_data_format(ferplus_replica):
    with pytest.raises(ValueError, match="data_format='nhwc' is not supported"):
        convert_onnx(ferplus_replica, data_format="nhwc")
