"""Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat and the shape-vector ops.

The batch axis is always ONNX axis 0 and may have any size, even where the graph hard-codes a
batch of 1: a target shape that starts with 1, 0 or -1 is read as "keep the batch".

A reshape that keeps the element order of the Keras tensor needs at most a Keras ``Reshape``.
Flattening an NHWC tensor in ONNX (C, H, W) order does not keep it. When only MatMul or Gemm
nodes read the result, the converter flattens in Keras order and reorders the rows of their
weight matrices. Otherwise it adds a ``Permute`` back to ONNX order first.
"""

from __future__ import annotations

import keras
import numpy as np
import onnx

from fer_fairness.convert.context import (
    CHANNELS_LAST_PERM,
    Activation,
    ConversionContext,
    NodeError,
    ShapeValue,
    flat_order,
    keras_flat_order,
)
from fer_fairness.convert.ops.spatial import attributes

_DENSE_OPS = ("MatMul", "Gemm")


def _axes(ctx: ConversionContext, node: onnx.NodeProto) -> list[int] | None:
    """Return the ``axes`` attribute, or the axes input used from opset 13 on."""
    axes = attributes(node).get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = ctx.constant(node, 1, description=f"{node.op_type} axes").reshape(-1).tolist()
    return None if axes is None else [int(axis) for axis in axes]


def _resolve_target(value: Activation, target: np.ndarray | ShapeValue,
                    allow_zero: bool) -> list[int]:
    """Return the target shape without its batch axis, with 0 and -1 resolved."""
    source = value.onnx_shape
    dims = list(target.dims) if isinstance(target, ShapeValue) else target.reshape(-1).tolist()
    if not dims or dims[0] not in (None, 0, 1, -1) or None in dims[1:]:
        raise NodeError(f"target shape {dims} moves the batch axis; the first entry must be "
                        "the batch size")
    rest = [source[axis + 1] if dim == 0 and not allow_zero and axis + 1 < len(source) else dim
            for axis, dim in enumerate(dims[1:])]
    known = int(np.prod([dim for dim in rest if dim != -1], dtype=np.int64))
    total = int(np.prod(source[1:], dtype=np.int64))
    if rest.count(-1) > 1 or (rest.count(-1) == 1 and (known == 0 or total % known)):
        raise NodeError(f"target shape {dims} cannot be resolved for input {source}")
    rest = [total // known if dim == -1 else dim for dim in rest]
    if int(np.prod(rest, dtype=np.int64)) != total:
        raise NodeError(f"target shape {dims} does not keep the batch axis of input {source}; "
                        "only reshapes of the non-batch axes are supported")
    return rest


def reshape_activation(ctx: ConversionContext, node: onnx.NodeProto, value: Activation,
                       target: list[int]) -> None:
    """Reshape ``value`` to ONNX shape ``(batch, *target)`` with the fewest Keras layers."""
    source_order = keras_flat_order(value)
    candidates = [CHANNELS_LAST_PERM, (0, 1, 2, 3)] if len(target) == 3 else [
        tuple(range(len(target) + 1))]
    for perm in candidates:
        if np.array_equal(source_order, flat_order(target, perm)):
            keras_shape = tuple(target[axis - 1] for axis in perm[1:])
            ctx.set_value(node.output[0], Activation(_keras_reshape(ctx, node, value.tensor,
                                                                    keras_shape), perm))
            return
    readers = ctx.consumers(node.output[0])
    if len(target) == 1 and readers and all(
            reader.op_type in _DENSE_OPS and reader.input[0] == node.output[0]
            for reader in readers) and node.output[0] != ctx.logits_name:
        tensor = _keras_reshape(ctx, node, value.tensor, tuple(target))
        ctx.set_value(node.output[0], Activation(tensor, (0, 1), row_order=source_order))
        return
    identity = tuple(range(value.rank))
    ordered = ctx.to_perm(value, identity, name=ctx.layer_name(node, suffix="_onnx_order"))
    tensor = _keras_reshape(ctx, node, ordered.tensor, tuple(target))
    ctx.set_value(node.output[0], Activation(tensor, tuple(range(len(target) + 1))))


def _keras_reshape(ctx: ConversionContext, node: onnx.NodeProto, tensor, shape: tuple):
    if tuple(tensor.shape[1:]) == shape:
        return tensor
    if len(shape) == 1:
        return keras.layers.Flatten(name=ctx.layer_name(node))(tensor)
    return keras.layers.Reshape(shape, name=ctx.layer_name(node))(tensor)


def convert_reshape(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert Reshape with a constant target or one computed from the input's shape."""
    value = ctx.activation(node, 0)
    target = ctx.values.get(node.input[1])
    if not isinstance(target, (np.ndarray, ShapeValue)):
        raise NodeError("the target shape must be a constant or computed from input shapes")
    allow_zero = bool(attributes(node).get("allowzero", 0))
    reshape_activation(ctx, node, value, _resolve_target(value, target, allow_zero))


def convert_flatten(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert Flatten with axis 1 (the default), which keeps the batch axis."""
    value = ctx.activation(node, 0)
    axis = int(attributes(node).get("axis", 1)) % max(value.rank, 1)
    if axis != 1:
        raise NodeError(f"Flatten with axis={axis} merges the batch axis; only axis=1 is "
                        "supported")
    total = int(np.prod(value.onnx_shape[1:], dtype=np.int64))
    reshape_activation(ctx, node, value, [total])


def convert_squeeze_unsqueeze(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert Squeeze and Unsqueeze of non-batch axes."""
    value = ctx.activation(node, 0)
    shape = list(value.onnx_shape)
    axes = _axes(ctx, node)
    if node.op_type == "Squeeze":
        axes = [axis for axis, size in enumerate(shape) if size == 1] if axes is None else [
            axis % len(shape) for axis in axes]
        if 0 in axes or any(shape[axis] != 1 for axis in axes):
            raise NodeError(f"Squeeze axes={axes} of shape {shape} must be non-batch axes of "
                            "size 1")
        target = [size for axis, size in enumerate(shape) if axis not in axes]
    else:
        if axes is None:
            raise NodeError("Unsqueeze needs axes")
        rank = len(shape) + len(axes)
        axes = sorted(axis % rank for axis in axes)
        if 0 in axes:
            raise NodeError("Unsqueeze at axis 0 would add an axis before the batch")
        for axis in axes:
            shape.insert(axis, 1)
        target = shape
    reshape_activation(ctx, node, value, target[1:])


def convert_transpose(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Record a transpose that keeps the batch axis first; it adds no layer."""
    value = ctx.activation(node, 0)
    perm = attributes(node).get("perm", list(reversed(range(value.rank))))
    if perm[0] != 0:
        raise NodeError(f"perm={list(perm)} moves the batch axis")
    if value.row_order is not None and list(perm) != [0, 1]:
        raise NodeError("a flattened activation with reordered features cannot be transposed")
    inverse = np.argsort(perm)
    new_perm = tuple(int(inverse[axis]) for axis in value.perm)
    ctx.set_value(node.output[0], Activation(value.tensor, new_perm, value.row_order))


def convert_concat(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert Concat of image-dependent tensors along a non-batch axis."""
    inputs = [ctx.values.get(name) for name in node.input]
    if not all(isinstance(value, Activation) for value in inputs):
        raise NodeError("Concat of constants and image-dependent tensors is not supported")
    first = inputs[0]
    axis = int(attributes(node)["axis"]) % first.rank
    if axis == 0 or any(value.row_order is not None for value in inputs):
        raise NodeError(f"Concat along axis={axis} of these inputs is not supported")
    aligned = [ctx.to_perm(value, first.perm, name=ctx.layer_name(node, suffix=f"_align{i}"))
               for i, value in enumerate(inputs)]
    layer = keras.layers.Concatenate(axis=first.keras_axis(axis), name=ctx.layer_name(node))
    ctx.set_value(node.output[0], Activation(layer([v.tensor for v in aligned]), first.perm))


def convert_shape(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert Shape of an activation into a shape vector whose batch entry is symbolic."""
    dims = ctx.activation(node, 0).onnx_shape
    attrs = attributes(node)
    dims = dims[attrs.get("start", 0):attrs.get("end", len(dims))]
    ctx.set_value(node.output[0], ShapeValue(tuple(dims)).simplified())
