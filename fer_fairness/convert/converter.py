"""Convert an ONNX image classifier into a Keras model built only from built-in layers.

The converted model has one input named ``image``: float32 raw pixels, 0..255 for the FER+ and
mini-Xception graphs, which normalise internally. Its spatial size comes from the graph, and any
batch size works. Its one output is the logits tensor. Two ``Identity`` layers named
``features`` and ``logits`` mark the cut points for a multi-task model; see
:func:`locate_named_points` for how they are chosen.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from fer_fairness.convert.context import (
    CHANNELS_LAST_PERM,
    FEATURES_LAYER,
    INPUT_NAME,
    Activation,
    ConversionContext,
    NodeError,
    ShapeValue,
)
from fer_fairness.convert.graph import (
    GraphIndex,
    UnsupportedModelError,
    load_onnx_model,
    validate_model,
)
from fer_fairness.convert.ops import (
    ACTIVATION_CONVERTERS,
    ATTRIBUTE_CHECKS,
    SHAPE_VECTOR_OPS,
    convert_shape_vector,
)

logger = logging.getLogger(__name__)

DataFormat = Literal["channels_last", "channels_first"]
DATA_FORMATS: tuple[str, ...] = ("channels_last", "channels_first")

# Ops that the walk from the logits back to the features point may cross: each is linear in its
# image-dependent input at inference time.
_LINEAR_OPS = ("Add", "Sub", "Mul", "Div", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
               "GlobalAveragePool", "ReduceMean", "AveragePool", "Identity", "Dropout",
               "Transpose")
_WEIGHTED_OPS = ("Conv", "MatMul", "Gemm")

Problem = tuple[str, str, str]


def convert_onnx(
    model: str | os.PathLike | onnx.ModelProto,
    *,
    data_format: DataFormat = "channels_last",
    name: str | None = None,
) -> keras.Model:
    """Convert an ONNX image classifier into a ``keras.Model`` of built-in layers.

    Args:
        model: Path to an ``.onnx`` file, or a loaded ``onnx.ModelProto`` without external
            data.
        data_format: Layout of the Keras input. ``"channels_last"`` takes
            ``(batch, height, width, channels)``, for example ``(batch, 64, 64, 1)``;
            ``"channels_first"`` takes ``(batch, channels, height, width)``. The layers
            inside always run channels-last.
        name: Name of the Keras model; defaults to the file name or the graph name.

    Returns:
        A model from ``image`` to the logits, float32. A Softmax that ends the graph is
        dropped, so the output is the Softmax input. ``model.get_layer("features")`` and
        ``model.get_layer("logits")`` are the two named points. Every other layer name is
        built from the ONNX node names it came from (see ``ConversionContext.layer_name``).

    Raises:
        UnsupportedModelError: listing every node whose op type or attributes cannot be
            converted exactly.
        ValueError: for an invalid ``data_format``, an invalid or truncated file, external data
            outside the model folder, or an input that is not a 4-D float32 image.
        FileNotFoundError: if ``model`` is a path that does not exist.
    """
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format={data_format!r} is not supported; use one of "
                         f"{', '.join(DATA_FORMATS)}")
    if isinstance(model, onnx.ModelProto):
        validate_model(model)
        proto, default_name = model, model.graph.name or "onnx_model"
    else:
        proto, default_name = load_onnx_model(model), Path(model).stem
    graph = GraphIndex.build(proto)
    problems = _check_op_support(graph)
    try:
        features_name, logits_name = locate_named_points(graph)
    except UnsupportedModelError as error:
        raise UnsupportedModelError(problems + error.problems) from None
    ctx = ConversionContext(graph, features_name=features_name, logits_name=logits_name)
    inputs = _add_input(ctx, data_format)
    reported = {node_name for _, node_name, _ in problems}
    problems += [problem for problem in _convert_nodes(ctx) if problem[1] not in reported]
    if problems:
        raise UnsupportedModelError(problems)
    outputs = _logits_tensor(ctx)
    keras_model = keras.Model(inputs, outputs, name=_model_name(name or default_name))
    logger.info("converted %s: %d ONNX nodes into %d Keras layers, %d parameters",
                default_name, len(graph.nodes), len(keras_model.layers),
                keras_model.count_params())
    return keras_model


def _model_name(name: str) -> str:
    return "".join(char if char.isalnum() or char in "_.-" else "_" for char in name)


def _check_op_support(graph: GraphIndex) -> list[Problem]:
    """List nodes whose op type or attributes are unsupported, without converting anything."""
    problems: list[Problem] = []
    shape_names: set[str] = set()
    for node in graph.nodes:
        image_input = any(name in graph.activation_names for name in node.input)
        shape_input = any(name in shape_names for name in node.input)
        if node.op_type == "Shape" and image_input:
            shape_names.update(node.output)
        elif shape_input and not image_input:
            shape_names.update(node.output)
        if node.domain not in ("", "ai.onnx"):
            problems.append((node.op_type, node.name, f"domain {node.domain!r} is not supported"))
        elif image_input and node.op_type not in ACTIVATION_CONVERTERS:
            problems.append((node.op_type, node.name, "op type is not supported"))
        elif shape_input and not image_input and node.op_type not in SHAPE_VECTOR_OPS:
            problems.append((node.op_type, node.name, "op type is not supported on shapes"))
        for reason in ATTRIBUTE_CHECKS.get(node.op_type, lambda _: [])(node):
            problems.append((node.op_type, node.name, reason))
    return problems


def locate_named_points(graph: GraphIndex) -> tuple[str, str]:
    """Return the ONNX tensor names of the ``features`` and ``logits`` points.

    The logits are the graph output, or the input of a final Softmax (Identity nodes after it
    are skipped too). The features are found by walking back from the logits through linear
    ops (bias Add, Reshape, Flatten, Squeeze, global average pooling, Identity, Dropout) to the
    first Conv, MatMul or Gemm, and taking its input. So the map from features to logits is
    linear: for FER+ it is the last MatMul and Add, for the mini-Xception the last Conv and
    the global average pooling.

    Raises:
        UnsupportedModelError: if the walk meets a non-linear op or a merge of two tensors
            before it reaches a weighted op.
    """
    logits = graph.output_name
    producer = graph.producer(logits)
    while producer is not None and producer.op_type in ("Identity", "Softmax"):
        logits = producer.input[0]
        producer = graph.producer(logits)
    node = producer
    while node is not None:
        if node.op_type in _WEIGHTED_OPS:
            return node.input[0], logits
        image_inputs = [name for name in node.input if name in graph.activation_names]
        if node.op_type not in _LINEAR_OPS or len(image_inputs) != 1:
            break
        node = graph.producer(image_inputs[0])
    op_type, node_name = (node.op_type, node.name) if node is not None else ("Input", logits)
    raise UnsupportedModelError([(op_type, node_name, (
        "the path from the logits back to the last Conv, MatMul or Gemm must be linear (bias "
        "Add, Reshape, Flatten, Squeeze, global average pooling, Identity, Dropout), so that "
        "the features point can be placed before the classifier"))])


def _add_input(ctx: ConversionContext, data_format: str) -> keras.KerasTensor:
    """Create the Keras input and store its ONNX value; return the Keras input tensor."""
    value_info = ctx.graph.input
    tensor_type = value_info.type.tensor_type
    dims = [dim.dim_value if dim.HasField("dim_value") else None
            for dim in tensor_type.shape.dim]
    if tensor_type.elem_type != onnx.TensorProto.FLOAT or len(dims) != 4 or None in dims[1:]:
        raise ValueError(
            f"ONNX input {value_info.name!r} has type "
            f"{onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)} and shape {dims}; "
            "expected a float32 image of fixed size, NCHW or NHWC"
        )
    # The input is NHWC when its last axis is smaller than the first non-batch axis, as in
    # (N, 64, 64, 1), and NCHW otherwise, as in (N, 1, 64, 64). A wrong guess cannot pass
    # silently: the first Conv would then find the wrong number of input channels.
    onnx_nhwc = dims[3] < dims[1]
    perm = (0, 1, 2, 3) if onnx_nhwc else CHANNELS_LAST_PERM
    height_width_channels = tuple(dims[axis] for axis in perm[1:])
    if data_format == "channels_last":
        inputs = keras.Input(height_width_channels, name=INPUT_NAME, dtype="float32")
        tensor = inputs
    else:
        channels, height, width = (height_width_channels[2], *height_width_channels[:2])
        inputs = keras.Input((channels, height, width), name=INPUT_NAME, dtype="float32")
        layer_name = ctx.layer_name(value_info.name, suffix="_channels_last")
        tensor = keras.layers.Permute((2, 3, 1), name=layer_name)(inputs)
    ctx.set_value(value_info.name, Activation(tensor, perm))
    return inputs


def _convert_nodes(ctx: ConversionContext) -> list[Problem]:
    """Convert every node in graph order and return the problems found."""
    problems: list[Problem] = []
    for node in ctx.graph.nodes:
        if node.name in ctx.absorbed or node.input and node.input[0] == ctx.logits_name and (
                node.op_type in ("Softmax", "Identity")):
            continue
        values = [ctx.values.get(name) for name in node.input]
        if any(name not in ctx.values for name in node.input):
            continue  # An input failed to convert, and that node is already reported.
        try:
            _convert_node(ctx, node, values)
        except NodeError as error:
            problems.append((node.op_type, node.name, str(error)))
    return problems


def _convert_node(ctx: ConversionContext, node: onnx.NodeProto, values: list) -> None:
    if any(isinstance(value, Activation) for value in values):
        converter = ACTIVATION_CONVERTERS.get(node.op_type)
        if converter is None:
            raise NodeError("op type is not supported")
        converter(ctx, node)
    elif any(isinstance(value, ShapeValue) for value in values):
        if node.op_type not in SHAPE_VECTOR_OPS:
            raise NodeError("op type is not supported on shapes")
        convert_shape_vector(ctx, node)
    else:
        _evaluate_constant_node(ctx, node, values)


def _evaluate_constant_node(ctx: ConversionContext, node: onnx.NodeProto, values: list) -> None:
    """Compute a node whose inputs are all constants with the ONNX reference evaluator."""
    feeds = {name: value for name, value in zip(node.input, values) if name}
    try:
        evaluator = ReferenceEvaluator(node, opsets={"": ctx.graph.opset})
        outputs = evaluator.run(None, feeds)
    except Exception as error:  # The reference evaluator raises many exception types.
        raise NodeError(f"evaluating this constant node failed: {error}") from error
    for name, output in zip(node.output, outputs):
        if name:
            ctx.set_value(name, np.asarray(output))


def _logits_tensor(ctx: ConversionContext) -> keras.KerasTensor:
    if FEATURES_LAYER not in ctx.marked_points:
        raise ValueError(f"the features tensor {ctx.features_name!r} does not depend on the "
                         "image, so the model has no features point")
    value = ctx.values.get(ctx.logits_name)
    if not isinstance(value, Activation) or value.rank != 2 or value.row_order is not None:
        shape = value.onnx_shape if isinstance(value, Activation) else None
        raise ValueError(f"the logits tensor {ctx.logits_name!r} has shape {shape}; expected "
                         "an image-dependent (batch, classes) tensor")
    return value.tensor
