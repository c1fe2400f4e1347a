"""Element-wise activations, Softmax, Dropout and Identity."""

from __future__ import annotations

import keras
import onnx

from fer_fairness.convert.context import Activation, ConversionContext, NodeError
from fer_fairness.convert.ops.spatial import attributes


def _apply(ctx: ConversionContext, node: onnx.NodeProto, layer: keras.layers.Layer) -> None:
    value = ctx.activation(node, 0)
    ctx.set_value(node.output[0], Activation(layer(value.tensor), value.perm, value.row_order))


def convert_relu(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert Relu onto ``ReLU``."""
    _apply(ctx, node, keras.layers.ReLU(name=ctx.layer_name(node)))


def convert_leaky_relu(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert LeakyRelu onto ``LeakyReLU``; ONNX's default alpha is 0.01."""
    alpha = float(attributes(node).get("alpha", 0.01))
    _apply(ctx, node, keras.layers.LeakyReLU(negative_slope=alpha, name=ctx.layer_name(node)))


def convert_sigmoid_tanh(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert Sigmoid and Tanh onto ``Activation``."""
    activation = "sigmoid" if node.op_type == "Sigmoid" else "tanh"
    _apply(ctx, node, keras.layers.Activation(activation, name=ctx.layer_name(node)))


def convert_softmax(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert a Softmax inside the graph over the last axis, in ONNX order.

    A Softmax that produces the graph output is dropped before conversion instead, so that the
    model outputs logits.
    """
    value = ctx.activation(node, 0)
    default_axis = -1 if ctx.graph.opset >= 13 else 1
    axis = int(attributes(node).get("axis", default_axis)) % value.rank
    if axis != value.rank - 1 or value.keras_axis(axis) != value.rank - 1 or (
            value.row_order is not None):
        raise NodeError(f"Softmax over axis={axis} of shape {value.onnx_shape} is not "
                        "supported; only the last axis, stored last, is")
    _apply(ctx, node, keras.layers.Softmax(axis=-1, name=ctx.layer_name(node)))


def convert_dropout(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert Dropout onto ``Dropout`` with the same rate; ONNX's default rate is 0.5."""
    if len(node.output) > 1 and node.output[1] and ctx.consumers(node.output[1]):
        raise NodeError("the mask output of Dropout is not supported")
    rate = attributes(node).get("ratio")
    if rate is None:
        constant = ctx.optional_constant(node, 1)
        rate = 0.5 if constant is None else float(constant.reshape(()))
    _apply(ctx, node, keras.layers.Dropout(float(rate), name=ctx.layer_name(node)))


def convert_identity(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Pass the input through; Identity adds no layer."""
    ctx.set_value(node.output[0], ctx.activation(node, 0))
