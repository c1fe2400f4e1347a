"""Add, Sub, Mul and Div: normalisation, bias folding, batch-norm pairs and residual sums.

A binary op with one constant operand is mapped as follows:

* a scalar (one element) starts a chain of scalar ops, folded into one ``Rescaling``;
* a per-channel constant that follows a Conv, MatMul or Gemm is folded into that layer by
  :func:`absorb_channel_affine`, called from the layer's converter;
* a per-channel ``Mul`` followed by a per-channel ``Add`` (how tf2onnx writes an inference-mode
  batch normalisation) becomes a ``BatchNormalization`` layer;
* any other non-scalar constant, such as a per-channel mean subtracted from the input, is
  rejected.
"""

from __future__ import annotations

import keras
import numpy as np
import onnx

from fer_fairness.convert.context import Activation, ConversionContext, NodeError

AFFINE_OPS = ("Add", "Sub", "Mul", "Div")
_MERGE_LAYERS = {"Add": keras.layers.Add, "Sub": keras.layers.Subtract,
                 "Mul": keras.layers.Multiply}


def _split_operands(ctx: ConversionContext, node: onnx.NodeProto
                    ) -> tuple[np.ndarray | None, bool]:
    """Return the constant operand (None if both depend on the image) and whether it is first."""
    first, second = (ctx.values.get(name) for name in node.input[:2])
    if isinstance(first, np.ndarray):
        return first, True
    if isinstance(second, np.ndarray):
        return second, False
    return None, False


def channel_vector(constant: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """Return ``constant`` as a ``[channels]`` vector if it varies along ONNX axis 1 only.

    A one-element constant is broadcast to every channel. Returns None for other shapes,
    including constants of a higher rank than the activation.
    """
    if constant.size == 1:
        return np.full(channels, constant.reshape(()), dtype=np.float32)
    if constant.ndim > rank or rank < 2:
        return None
    shape = (1,) * (rank - constant.ndim) + constant.shape
    expected = tuple(channels if axis == 1 else 1 for axis in range(rank))
    if shape != expected:
        return None
    return constant.reshape(channels).astype(np.float32)


def _compose(op_type: str, vector: np.ndarray, constant_first: bool,
             scale: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Apply one affine op to ``y = scale * x + shift``; None if the result is not affine."""
    if op_type == "Add":
        return scale, shift + vector
    if op_type == "Sub":
        return (-scale, vector - shift) if constant_first else (scale, shift - vector)
    if op_type == "Mul":
        return scale * vector, shift * vector
    if constant_first:  # Div(c, x) is not affine in x.
        return None
    return scale / vector, shift / vector


def absorb_channel_affine(ctx: ConversionContext, output_name: str, channels: int, rank: int,
                          ) -> tuple[list[onnx.NodeProto], np.ndarray, np.ndarray, str]:
    """Fuse the chain of per-channel affine ops that follows a weighted layer.

    Walks forward from ``output_name`` while the only reader is Add, Sub, Mul or Div with a
    constant that is scalar or varies along the channel axis only.

    Returns:
        The absorbed nodes, the per-channel ``scale`` and ``shift`` to apply to the layer's
        output, and the name of the last tensor of the chain.
    """
    scale = np.ones(channels, dtype=np.float32)
    shift = np.zeros(channels, dtype=np.float32)
    absorbed: list[onnx.NodeProto] = []
    while True:
        consumer = ctx.single_consumer(output_name)
        if consumer is None or consumer.op_type not in AFFINE_OPS:
            break
        constant, constant_first = _split_operands(ctx, consumer)
        vector = None if constant is None else channel_vector(constant, channels, rank)
        if vector is None:
            break
        composed = _compose(consumer.op_type, vector, constant_first, scale, shift)
        if composed is None:
            break
        scale, shift = composed
        absorbed.append(consumer)
        ctx.absorbed.add(consumer.name)
        output_name = consumer.output[0]
    return absorbed, scale, shift, output_name


def convert_arithmetic(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert Add, Sub, Mul or Div with at least one input that depends on the image."""
    constant, constant_first = _split_operands(ctx, node)
    if constant is None:
        _convert_merge(ctx, node)
    elif constant.size == 1:
        _convert_scalar_chain(ctx, node, float(constant.reshape(())), constant_first)
    else:
        _convert_batch_norm_pair(ctx, node, constant)


def _convert_merge(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    if node.op_type not in _MERGE_LAYERS:
        raise NodeError(f"{node.op_type} of two image-dependent tensors is not supported")
    first, second = ctx.activation(node, 0), ctx.activation(node, 1)
    if first.onnx_shape[1:] != second.onnx_shape[1:]:
        raise NodeError(
            f"broadcasting between shapes {first.onnx_shape} and {second.onnx_shape} is not "
            "supported; the two inputs must have the same shape"
        )
    if first.row_order is not None or second.row_order is not None:
        raise NodeError("inputs that were flattened with reordered features cannot be combined")
    second = ctx.to_perm(second, first.perm, name=ctx.layer_name(node, suffix="_align"))
    layer = _MERGE_LAYERS[node.op_type](name=ctx.layer_name(node))
    ctx.set_value(node.output[0], Activation(layer([first.tensor, second.tensor]), first.perm))


def _convert_scalar_chain(ctx: ConversionContext, node: onnx.NodeProto, constant: float,
                          constant_first: bool) -> None:
    """Fold this scalar op and the scalar ops that follow it into one ``Rescaling``."""
    value = ctx.activation(node, 1 if constant_first else 0)
    composed = _compose(node.op_type, np.float32(constant), constant_first,
                        np.float32(1.0), np.float32(0.0))
    if composed is None:
        raise NodeError("Div with the image-dependent tensor as divisor is not supported")
    scale, shift = composed
    nodes = [node]
    output_name = node.output[0]
    while (consumer := ctx.single_consumer(output_name)) is not None:
        if consumer.op_type not in AFFINE_OPS:
            break
        next_constant, next_first = _split_operands(ctx, consumer)
        if next_constant is None or next_constant.size != 1:
            break
        composed = _compose(consumer.op_type, next_constant.reshape(()).astype(np.float32),
                            next_first, scale, shift)
        if composed is None:
            break
        scale, shift = composed
        nodes.append(consumer)
        ctx.absorbed.add(consumer.name)
        output_name = consumer.output[0]
    layer = keras.layers.Rescaling(float(scale), offset=float(shift), name=ctx.layer_name(*nodes))
    ctx.set_value(output_name, Activation(layer(value.tensor), value.perm, value.row_order))


def _convert_batch_norm_pair(ctx: ConversionContext, node: onnx.NodeProto,
                             constant: np.ndarray) -> None:
    """Map a per-channel Mul followed by a per-channel Add onto ``BatchNormalization``."""
    value = ctx.activation(node, 0 if isinstance(ctx.values.get(node.input[1]), np.ndarray)
                           else 1)
    channels = value.onnx_shape[1] if value.rank >= 2 else None
    vector = None if channels is None else channel_vector(constant, channels, value.rank)
    follower = ctx.single_consumer(node.output[0])
    if node.op_type != "Mul" or vector is None or follower is None or follower.op_type != "Add":
        raise NodeError(
            f"constant of shape {list(constant.shape)} is not a scalar; only scalar "
            "normalisation constants, per-channel biases after Conv, MatMul or Gemm, and "
            "per-channel Mul followed by Add (batch normalisation) are supported"
        )
    nodes, scale, shift, output_name = absorb_channel_affine(ctx, node.output[0], channels,
                                                             value.rank)
    if not nodes:
        raise NodeError(f"the Add after this per-channel Mul ({follower.name!r}) does not add "
                        "a per-channel constant, so the pair is not a batch normalisation")
    scale = scale * vector
    if value.row_order is not None:
        scale, shift = scale[value.row_order], shift[value.row_order]
    # Zero mean, unit variance and epsilon 0 make the layer compute exactly scale * x + shift
    # in inference mode. In training mode it normalises with batch statistics, like any
    # BatchNormalization layer.
    layer = keras.layers.BatchNormalization(axis=value.keras_axis(1), epsilon=0.0,
                                            name=ctx.layer_name(node, *nodes))
    tensor = layer(value.tensor)
    layer.set_weights([scale, shift, np.zeros_like(scale), np.ones_like(scale)])
    ctx.set_value(output_name, Activation(tensor, value.perm, value.row_order))
