"""Op coverage: small ONNX graphs converted and compared with onnxruntime."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf2onnx
from onnx import helper

from fer_fairness.convert import convert_onnx

MAX_ABS_TOLERANCE = 1e-4
RNG = np.random.default_rng(7)


def _weights(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.3).astype(np.float32)


def _classifier(tensor: str, features: int, units: int = 3) -> tuple[list, dict]:
    """Flatten, MatMul and bias Add after ``tensor``, ending in output ``logits_out``."""
    nodes = [
        helper.make_node("Flatten", [tensor], ["flat"], name="head_flatten"),
        helper.make_node("MatMul", ["flat", "head_w"], ["head_mm"], name="head_matmul"),
        helper.make_node("Add", ["head_mm", "head_b"], ["logits_out"], name="head_bias"),
    ]
    return nodes, {"head_w": _weights(features, units), "head_b": _weights(units)}


def _model_with_head(factory, nodes, tensor, features, initializers, input_shape, opset=13):
    head_nodes, head_inits = _classifier(tensor, features)
    return factory(nodes + head_nodes, input_shape=input_shape, output_name="logits_out",
                   initializers={**initializers, **head_inits}, opset=opset)


def _assert_parity(model, inputs_nchw, runner) -> keras.Model:
    converted = convert_onnx(model)
    expected = runner(model, inputs_nchw)
    actual = converted.predict(inputs_nchw.transpose(0, 2, 3, 1), verbose=0)
    assert np.abs(actual - expected).max() < MAX_ABS_TOLERANCE
    return converted


def _conv_case(**attributes):
    def build(factory):
        weights = _weights(4, 2, *attributes["kernel_shape"])
        nodes = [helper.make_node("Conv", ["x", "w"], ["conv"], name="conv", **attributes)]
        probe = factory(nodes, input_shape=[1, 2, 9, 9], output_name="conv",
                        initializers={"w": weights})
        return nodes, {"w": weights}, probe
    return build


CONV_CASES = {
    "asymmetric_pads": dict(kernel_shape=[3, 3], pads=[1, 0, 2, 1]),
    "same_upper_stride_2": dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2]),
    "same_upper_stride_1": dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
    "same_upper_even_kernel": dict(kernel_shape=[2, 2], auto_pad="SAME_UPPER"),
    "valid_dilated": dict(kernel_shape=[3, 3], auto_pad="VALID", dilations=[2, 2]),
    "notset_stride_2_pads": dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_padding_stride_dilation(case, onnx_model_factory, onnxruntime_runner):
    nodes, inits, probe = _conv_case(**CONV_CASES[case])(onnx_model_factory)
    features = int(np.prod(onnxruntime_runner(probe, np.zeros((1, 2, 9, 9), np.float32))
                           .shape[1:]))
    model = _model_with_head(onnx_model_factory, nodes, "conv", features, inits,
                             [1, 2, 9, 9])
    pixels = RNG.uniform(-1, 1, (1, 2, 9, 9)).astype(np.float32)
    _assert_parity(model, pixels, onnxruntime_runner)


def test_conv_depthwise_bias_folded(onnx_model_factory, onnxruntime_runner):
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv"], name="dw", group=3, kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["conv", "bias"], ["biased"], name="dw_bias"),
        helper.make_node("Relu", ["biased"], ["act"], name="act"),
    ]
    inits = {"w": _weights(6, 1, 3, 3), "bias": _weights(6, 1, 1)}
    model = _model_with_head(onnx_model_factory, nodes, "act", 6 * 8 * 8, inits, [2, 3, 8, 8])
    converted = _assert_parity(model, RNG.uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32),
                               onnxruntime_runner)
    layer = converted.get_layer("dw__dw_bias")
    assert isinstance(layer, keras.layers.DepthwiseConv2D)
    assert layer.depth_multiplier == 2


def test_conv_mul_add_folded_into_kernel(onnx_model_factory, onnxruntime_runner):
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["conv"], name="conv", kernel_shape=[1, 1]),
        helper.make_node("Mul", ["conv", "gamma"], ["scaled"], name="bn_mul"),
        helper.make_node("Add", ["scaled", "beta"], ["shifted"], name="bn_add"),
    ]
    inits = {"w": _weights(4, 2, 1, 1), "b": _weights(4), "gamma": _weights(1, 4, 1, 1),
             "beta": _weights(1, 4, 1, 1)}
    model = _model_with_head(onnx_model_factory, nodes, "shifted", 4 * 5 * 5, inits,
                             [1, 2, 5, 5])
    converted = _assert_parity(model, RNG.uniform(-1, 1, (1, 2, 5, 5)).astype(np.float32),
                               onnxruntime_runner)
    assert converted.get_layer("conv__bn_mul__bn_add").use_bias


POOL_CASES = {
    "max_same_equivalent": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2],
                                            pads=[0, 0, 1, 1])),
    "max_symmetric_pads": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2],
                                           pads=[1, 1, 1, 1])),
    "max_begin_pads_only": ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2],
                                            pads=[1, 1, 0, 0])),
    "max_ceil_mode": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    "max_same_upper": ("MaxPool", dict(kernel_shape=[2, 2], strides=[1, 1],
                                       auto_pad="SAME_UPPER")),
    "average_count_pads": ("AveragePool", dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                               count_include_pad=1)),
    "average_exclude_pads": ("AveragePool", dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    "average_valid_stride_2": ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2])),
}


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pool_all_negative_input(case, onnx_model_factory, onnxruntime_runner):
    op_type, attributes = POOL_CASES[case]
    nodes = [helper.make_node(op_type, ["x"], ["pool"], name="pool", **attributes)]
    probe = onnx_model_factory(nodes, input_shape=[2, 3, 8, 8], output_name="pool")
    pixels = -RNG.uniform(1, 5, (2, 3, 8, 8)).astype(np.float32)
    expected_pool = onnxruntime_runner(probe, pixels)
    features = int(np.prod(expected_pool.shape[1:]))
    model = _model_with_head(onnx_model_factory, nodes, "pool", features, {}, [2, 3, 8, 8])
    converted = _assert_parity(model, pixels, onnxruntime_runner)
    pool_output = keras.Model(converted.input, converted.get_layer("pool").output)
    actual_pool = pool_output.predict(pixels.transpose(0, 2, 3, 1), verbose=0)
    assert (actual_pool < 0).all()
    np.testing.assert_allclose(actual_pool, expected_pool.transpose(0, 2, 3, 1), atol=1e-6)


def _batch_norm_gemm_nodes(with_softmax: bool) -> list:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["conv", "gamma", "beta", "mean", "var"],
                         ["bn"], name="bn", epsilon=1e-3),
        helper.make_node("LeakyRelu", ["bn"], ["leaky"], name="leaky", alpha=0.2),
        helper.make_node("GlobalAveragePool", ["leaky"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "gemm_w", "gemm_c"], ["gemm"], name="gemm",
                         transB=1, alpha=0.5, beta=2.0),
    ]
    if with_softmax:
        nodes.append(helper.make_node("Softmax", ["gemm"], ["probabilities"], name="softmax"))
    return nodes


def test_batch_norm_gemm_softmax_dropped(onnx_model_factory, onnxruntime_runner):
    inits = {"w": _weights(4, 2, 3, 3), "gamma": _weights(4), "beta": _weights(4),
             "mean": _weights(4), "var": RNG.uniform(0.5, 2, 4).astype(np.float32),
             "gemm_w": _weights(5, 4), "gemm_c": _weights(1, 5)}
    with_softmax = onnx_model_factory(_batch_norm_gemm_nodes(True), input_shape=["N", 2, 7, 7],
                                      output_name="probabilities", initializers=inits)
    logits_only = onnx_model_factory(_batch_norm_gemm_nodes(False), input_shape=["N", 2, 7, 7],
                                     output_name="gemm", initializers=inits)
    pixels = RNG.uniform(-1, 1, (3, 2, 7, 7)).astype(np.float32)
    converted = convert_onnx(with_softmax)
    actual = converted.predict(pixels.transpose(0, 2, 3, 1), verbose=0)
    assert np.abs(actual - onnxruntime_runner(logits_only, pixels)).max() < MAX_ABS_TOLERANCE
    assert not any(isinstance(layer, keras.layers.Softmax) for layer in converted.layers)
    assert tuple(converted.get_layer("features").output.shape) == (None, 4)


def test_nhwc_transpose_shape_flatten_subgraph(onnx_model_factory, onnxruntime_runner):
    # The pattern tf2onnx writes for a channels-last Keras CNN ending in Flatten and Dense.
    nodes = [
        helper.make_node("Transpose", ["x"], ["nchw"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w", "b"], ["conv"], name="conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("Transpose", ["relu"], ["nhwc"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Shape", ["nhwc"], ["shape"], name="shape"),
        helper.make_node("Cast", ["shape"], ["shape32"], name="cast", to=6),
        helper.make_node("Slice", ["shape32", "zero", "one"], ["batch"], name="slice"),
        helper.make_node("Concat", ["batch", "flat_size"], ["target32"], name="concat", axis=0),
        helper.make_node("Cast", ["target32"], ["target"], name="cast_back", to=7),
        helper.make_node("Reshape", ["nhwc", "target"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "dense_w"], ["dense"], name="dense"),
        helper.make_node("Add", ["dense", "dense_b"], ["logits"], name="dense_bias"),
    ]
    inits = {"w": _weights(3, 2, 3, 3), "b": _weights(3), "zero": np.array([0], np.int32),
             "one": np.array([1], np.int32), "flat_size": np.array([3 * 6 * 6], np.int32),
             "dense_w": _weights(108, 4), "dense_b": _weights(4)}
    model = onnx_model_factory(nodes, input_shape=["N", 6, 6, 2], output_name="logits",
                               initializers=inits, output_shape=["N", 4])
    pixels = RNG.uniform(-1, 1, (3, 6, 6, 2)).astype(np.float32)
    converted = convert_onnx(model)
    actual = converted.predict(pixels, verbose=0)
    assert tuple(converted.input.shape) == (None, 6, 6, 2)
    assert np.abs(actual - onnxruntime_runner(model, pixels)).max() < MAX_ABS_TOLERANCE
    assert not any(isinstance(layer, keras.layers.Permute) for layer in converted.layers)


def test_residual_concat_reduce_mean(onnx_model_factory, onnxruntime_runner):
    nodes = [
        helper.make_node("Constant", [], ["scale"], name="scale_const",
                         value=helper.make_tensor("scale_value", 1, [], [0.5])),
        helper.make_node("Mul", ["x", "scale"], ["scaled"], name="normalise"),
        helper.make_node("Identity", ["scaled"], ["same"], name="identity"),
        helper.make_node("Conv", ["same", "w"], ["conv"], name="conv", kernel_shape=[3, 3],
                         auto_pad="SAME_UPPER"),
        helper.make_node("Add", ["conv", "same"], ["residual"], name="residual"),
        helper.make_node("Concat", ["residual", "same"], ["both"], name="concat", axis=1),
        helper.make_node("ReduceMean", ["both"], ["mean"], name="mean", axes=[2, 3],
                         keepdims=0),
        helper.make_node("MatMul", ["mean", "dense_w"], ["logits"], name="dense"),
    ]
    inits = {"w": _weights(2, 2, 3, 3), "dense_w": _weights(4, 3)}
    model = onnx_model_factory(nodes, input_shape=["N", 2, 6, 6], output_name="logits",
                               initializers=inits, opset=13)
    converted = _assert_parity(model, RNG.uniform(-1, 1, (2, 2, 6, 6)).astype(np.float32),
                               onnxruntime_runner)
    assert converted.get_layer("normalise").scale == pytest.approx(0.5)


def _tiny_keras_cnn() -> keras.Model:
    layers = keras.layers
    image = keras.Input((16, 16, 1), name="image")
    x = layers.Rescaling(1 / 255.0)(image)
    x = layers.BatchNormalization()(x)
    x = layers.Conv2D(4, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(0.1)(x)
    y = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = layers.Add()([x, y])
    x = layers.AveragePooling2D(2)(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    pooled = layers.GlobalAveragePooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(6)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Concatenate()([x, pooled])
    logits = layers.Dense(3, name="dense_logits")(x)
    return keras.Model(image, layers.Softmax()(logits))


def test_tf2onnx_keras_cnn_round_trip():
    model = _tiny_keras_cnn()
    for layer in model.layers:  # Non-trivial batch-norm statistics and biases.
        weights = [_weights(*w.shape) for w in layer.get_weights()]
        if isinstance(layer, keras.layers.BatchNormalization):
            weights[0] = RNG.uniform(0.5, 1.5, weights[0].shape).astype(np.float32)
            weights[3] = RNG.uniform(0.5, 1.5, weights[3].shape).astype(np.float32)
        layer.set_weights(weights)
    signature = (tf.TensorSpec((None, 16, 16, 1), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    converted = convert_onnx(proto)
    pixels = RNG.integers(0, 256, (4, 16, 16, 1)).astype(np.float32)
    expected = keras.Model(model.input, model.get_layer("dense_logits").output).predict(
        pixels, verbose=0)
    actual = converted.predict(pixels, verbose=0)
    assert np.abs(actual - expected).max() < MAX_ABS_TOLERANCE
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in converted.layers)
