"""Ops on shape vectors whose batch entry is unknown, as in tf2onnx's flatten subgraph.

tf2onnx writes a Keras ``Flatten`` as ``Shape -> Gather/Slice -> Concat -> Reshape``. The
converter evaluates that chain on :class:`ShapeValue` vectors, in which None is the batch size,
so the final Reshape gets a target such as ``[None, 4096]``.
"""

from __future__ import annotations

import numpy as np
import onnx

from fer_fairness.convert.context import ConversionContext, NodeError, ShapeValue
from fer_fairness.convert.ops.spatial import attributes

SHAPE_VECTOR_OPS = ("Gather", "Slice", "Concat", "Cast", "Unsqueeze", "Squeeze", "Identity")


def _as_dims(value) -> tuple[tuple[int | None, ...], bool]:
    if isinstance(value, ShapeValue):
        return value.dims, value.scalar
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise NodeError(f"cannot combine a shape vector with a {array.dtype} constant")
    return tuple(int(item) for item in array.reshape(-1)), array.ndim == 0


def _slice_arguments(ctx: ConversionContext, node: onnx.NodeProto) -> tuple[int, int, int]:
    attrs = attributes(node)
    if "starts" in attrs:  # Before opset 10, Slice takes its arguments as attributes.
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = (ctx.constant(node, index, description=label).tolist()
                        for index, label in ((1, "starts"), (2, "ends")))
        axes, steps = ctx.optional_constant(node, 3), ctx.optional_constant(node, 4)
        axes = None if axes is None else axes.tolist()
        steps = None if steps is None else steps.tolist()
    if len(starts) != 1 or (axes is not None and list(axes) not in ([0], [-1])):
        raise NodeError("only 1-D slices of a shape vector are supported")
    return int(starts[0]), int(ends[0]), 1 if steps is None else int(steps[0])


def convert_shape_vector(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Evaluate one of SHAPE_VECTOR_OPS on shape vectors and integer constants."""
    dims, scalar = _as_dims(ctx.values[node.input[0]])
    op_type = node.op_type
    if op_type == "Gather":
        indices = ctx.constant(node, 1, description="Gather indices")
        if int(attributes(node).get("axis", 0)) != 0 or indices.ndim > 1:
            raise NodeError("only Gather along axis 0 with scalar or 1-D indices is supported")
        picked = tuple(dims[int(index)] for index in indices.reshape(-1))
        result = ShapeValue(picked, scalar=indices.ndim == 0)
    elif op_type == "Slice":
        start, end, step = _slice_arguments(ctx, node)
        result = ShapeValue(dims[start:end:step])
    elif op_type == "Concat":
        parts = [_as_dims(ctx.values[name])[0] for name in node.input]
        result = ShapeValue(tuple(dim for part in parts for dim in part))
    elif op_type == "Unsqueeze":
        if not scalar:
            raise NodeError("only Unsqueeze of a scalar shape entry is supported")
        result = ShapeValue(dims)
    elif op_type == "Squeeze":
        if len(dims) != 1:
            raise NodeError("only Squeeze of a one-entry shape vector is supported")
        result = ShapeValue(dims, scalar=True)
    else:  # Cast and Identity keep the values; shape vectors are integers throughout.
        result = ShapeValue(dims, scalar=scalar)
    ctx.set_value(node.output[0], result.simplified())
