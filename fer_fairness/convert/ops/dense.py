"""MatMul and Gemm with a constant weight matrix, mapped onto ``Dense``."""

from __future__ import annotations

import keras
import numpy as np
import onnx

from fer_fairness.convert.context import Activation, ConversionContext, NodeError
from fer_fairness.convert.ops.arithmetic import absorb_channel_affine
from fer_fairness.convert.ops.spatial import attributes


def check_gemm_attributes(node: onnx.NodeProto) -> list[str]:
    """Return the reasons why a Gemm node's attributes are unsupported."""
    if attributes(node).get("transA", 0):
        return ["transA=1 would move the batch axis of the image-dependent input A; export "
                "the model with the activation as A and transA=0"]
    return []


def convert_matmul(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert ``MatMul(x, W)`` where ``x`` is 2-D and ``W`` is a constant matrix."""
    weights = ctx.constant(node, 1, description="MatMul weights B")
    if weights.ndim != 2:
        raise NodeError(f"MatMul weights of shape {list(weights.shape)} are not a matrix")
    _build_dense(ctx, node, ctx.activation(node, 0), weights.astype(np.float32), None)


def convert_gemm(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert ``Gemm(A, B, C) = alpha * A' B' + beta * C`` with constant B and C."""
    reasons = check_gemm_attributes(node)
    if reasons:
        raise NodeError("; ".join(reasons))
    attrs = attributes(node)
    weights = ctx.constant(node, 1, description="Gemm input B").astype(np.float32)
    if attrs.get("transB", 0):
        weights = weights.T
    weights = weights * np.float32(attrs.get("alpha", 1.0))
    bias = ctx.optional_constant(node, 2)
    if bias is not None:
        units = weights.shape[1]
        if bias.size not in (1, units) or (bias.ndim == 2 and bias.shape[0] != 1):
            raise NodeError(f"Gemm input C of shape {list(bias.shape)} must broadcast as a "
                            f"bias of {units} units")
        bias = np.broadcast_to(bias.reshape(-1), (units,)).astype(np.float32)
        bias = bias * np.float32(attrs.get("beta", 1.0))
    _build_dense(ctx, node, ctx.activation(node, 0), weights, bias)


def _build_dense(ctx: ConversionContext, node: onnx.NodeProto, value: Activation,
                 weights: np.ndarray, bias: np.ndarray | None) -> None:
    """Add a Dense layer, taking the kernel rows in the input's flatten order."""
    if value.rank != 2:
        raise NodeError(f"the input of shape {value.onnx_shape} must be 2-D (batch, features)")
    features, units = weights.shape
    if value.onnx_shape[1] != features:
        raise NodeError(f"the input has {value.onnx_shape[1]} features but the weights have "
                        f"{features} rows")
    if value.row_order is not None:
        # The Keras input was flattened channels-last, so Keras feature j is ONNX feature
        # row_order[j], and the kernel rows follow the same order.
        weights = weights[value.row_order]
    absorbed, scale, shift, output_name = absorb_channel_affine(ctx, node.output[0], units,
                                                                rank=2)
    use_bias = bias is not None or bool(absorbed)
    bias = shift + scale * (bias if bias is not None else 0.0)
    layer = keras.layers.Dense(units, use_bias=use_bias, name=ctx.layer_name(node, *absorbed))
    tensor = layer(value.tensor)
    kernel = weights * scale[None, :]
    layer.set_weights([kernel, bias] if use_bias else [kernel])
    ctx.set_value(output_name, Activation(tensor, (0, 1)))
