"""Conv, pooling and ONNX BatchNormalization, mapped onto channels-last Keras layers.

ONNX pads are ``[top, left, bottom, right]`` (begin values, then end values). Keras
``padding="same"`` is used only where it pads exactly like the ONNX node. Every other padding
is explicit, so a wrong padding cannot pass silently.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import onnx
from onnx import helper

from fer_fairness.convert.context import (
    CHANNELS_LAST_PERM,
    Activation,
    ConversionContext,
    NodeError,
)
from fer_fairness.convert.ops.arithmetic import absorb_channel_affine

Pads = tuple[int, int, int, int]


def attributes(node: onnx.NodeProto) -> dict:
    """Return the node's attributes as Python values."""
    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def check_window_attributes(node: onnx.NodeProto) -> list[str]:
    """Return the reasons why a Conv or pooling node's attributes are unsupported."""
    attrs = attributes(node)
    reasons = []
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER"):
        reasons.append(f"auto_pad={auto_pad} is not supported; use SAME_UPPER, VALID or "
                       "explicit pads")
    kernel = attrs.get("kernel_shape")
    if kernel is not None and len(kernel) != 2:
        reasons.append(f"kernel_shape={list(kernel)} is not 2-D; only 2-D windows are supported")
    if node.op_type != "Conv" and any(d != 1 for d in attrs.get("dilations", [1, 1])):
        reasons.append(f"dilations={list(attrs['dilations'])} on pooling is not supported")
    return reasons


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Return TensorFlow's ``same`` (ONNX SAME_UPPER) begin and end padding for one axis."""
    output = math.ceil(size / stride)
    total = max((output - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_pads(node: onnx.NodeProto, spatial: tuple[int, int], kernel: tuple[int, int],
                 strides: tuple[int, int], dilations: tuple[int, int]) -> Pads:
    """Return the node's explicit ``(top, left, bottom, right)`` padding."""
    reasons = check_window_attributes(node)
    if reasons:
        raise NodeError("; ".join(reasons))
    attrs = attributes(node)
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if auto_pad == "SAME_UPPER":
        (top, bottom), (left, right) = (
            _same_pads(spatial[axis], kernel[axis], strides[axis], dilations[axis])
            for axis in range(2))
        return (top, left, bottom, right)
    pads = tuple(int(pad) for pad in attrs.get("pads", (0, 0, 0, 0)))
    if len(pads) != 4:
        raise NodeError(f"pads={list(pads)} must have 4 entries for a 2-D window")
    return pads


def _is_same(pads: Pads, spatial: tuple[int, int], kernel: tuple[int, int],
             strides: tuple[int, int], dilations: tuple[int, int]) -> bool:
    """Return whether Keras ``padding="same"`` pads exactly ``pads``."""
    (top, bottom), (left, right) = (
        _same_pads(spatial[axis], kernel[axis], strides[axis], dilations[axis])
        for axis in range(2))
    return pads == (top, left, bottom, right)


def _window(node: onnx.NodeProto, value: Activation, kernel: tuple[int, int]
            ) -> tuple[Pads, tuple[int, int], tuple[int, int], tuple[int, int]]:
    attrs = attributes(node)
    strides = tuple(attrs.get("strides", (1, 1)))
    dilations = tuple(attrs.get("dilations", (1, 1)))
    spatial = value.onnx_shape[2:]
    return resolve_pads(node, spatial, kernel, strides, dilations), strides, dilations, spatial


def _zero_pad(ctx: ConversionContext, node: onnx.NodeProto, tensor, pads: Pads):
    top, left, bottom, right = pads
    layer = keras.layers.ZeroPadding2D(((top, bottom), (left, right)),
                                       name=ctx.layer_name(node, suffix="_pad"))
    return layer(tensor)


def convert_conv(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert Conv (group 1 or depthwise) and fold its bias and following affine ops."""
    value = ctx.channels_last(ctx.activation(node, 0), node)
    weights = ctx.constant(node, 1, description="Conv weights")
    bias = ctx.optional_constant(node, 2)
    if weights.ndim != 4:
        raise NodeError(f"Conv weights of shape {list(weights.shape)} are not 2-D convolution "
                        "weights; only 2-D convolutions are supported")
    out_channels, group_channels, kernel_h, kernel_w = weights.shape
    in_channels = value.onnx_shape[1]
    group = attributes(node).get("group", 1)
    depthwise = group > 1 and group == in_channels and group_channels == 1
    if group_channels * group != in_channels or (group > 1 and not depthwise):
        raise NodeError(f"group={group} with {in_channels} input channels and weights of shape "
                        f"{list(weights.shape)}: only group 1 and depthwise are supported")

    pads, strides, dilations, spatial = _window(node, value, (kernel_h, kernel_w))
    if max(strides) > 1 and max(dilations) > 1:
        raise NodeError(f"strides={list(strides)} together with dilations={list(dilations)} "
                        "is not supported by Keras convolutions")
    use_same = pads != (0, 0, 0, 0) and max(strides) == 1 and _is_same(
        pads, spatial, (kernel_h, kernel_w), strides, dilations)
    tensor = value.tensor
    if pads != (0, 0, 0, 0) and not use_same:
        tensor = _zero_pad(ctx, node, tensor, pads)
    if (kernel_h, kernel_w) == (1, 1) and max(strides) > 1:
        tensor, strides = _subsample(ctx, node, tensor, strides)

    absorbed, scale, shift, output_name = absorb_channel_affine(ctx, node.output[0],
                                                                out_channels, rank=4)
    use_bias = bias is not None or bool(absorbed)
    bias = shift + scale * (bias if bias is not None else 0.0)
    weights = weights * scale[:, None, None, None]
    options = dict(kernel_size=(kernel_h, kernel_w), strides=strides, dilation_rate=dilations,
                   padding="same" if use_same else "valid", use_bias=use_bias,
                   name=ctx.layer_name(node, *absorbed))
    layer, kernel = _conv_layer(weights, in_channels, depthwise, options)
    output = layer(tensor)
    layer.set_weights([kernel, bias] if use_bias else [kernel])
    ctx.set_value(output_name, Activation(output, CHANNELS_LAST_PERM))


def _subsample(ctx: ConversionContext, node: onnx.NodeProto, tensor, strides):
    """Turn a strided 1x1 convolution into 1x1 pooling with that stride plus an unstrided one.

    Both forms compute the same values. The split exists because TensorFlow 2.21's oneDNN
    kernels crash the process (segmentation fault) in the backward pass of a strided 1x1
    Conv2D on some input sizes, e.g. 60x60 with stride 2, as measured on an AVX-512 CPU.
    """
    layer = keras.layers.MaxPooling2D(pool_size=1, strides=strides, padding="valid",
                                      name=ctx.layer_name(node, suffix="_subsample"))
    return layer(tensor), (1, 1)


def _conv_layer(weights: np.ndarray, in_channels: int, depthwise: bool, options: dict
                ) -> tuple[keras.layers.Layer, np.ndarray]:
    """Return the Keras convolution and its kernel for ONNX weights ``[out, in/group, h, w]``."""
    out_channels, _, kernel_h, kernel_w = weights.shape
    if depthwise:
        # ONNX output channel c * multiplier + j is Keras kernel[:, :, c, j].
        multiplier = out_channels // in_channels
        layer = keras.layers.DepthwiseConv2D(depth_multiplier=multiplier, **options)
        kernel = weights.reshape(in_channels, multiplier, kernel_h, kernel_w).transpose(2, 3, 0, 1)
        return layer, kernel
    return keras.layers.Conv2D(out_channels, **options), weights.transpose(2, 3, 1, 0)


def _ceil_mode_pads(node: onnx.NodeProto, pads: Pads, spatial, kernel, strides) -> Pads:
    """Extend the end pads so that floor-mode pooling gives the ceil-mode output size."""
    if not attributes(node).get("ceil_mode", 0):
        return pads
    extended = list(pads)
    for axis in range(2):
        padded = spatial[axis] + pads[axis] + pads[axis + 2]
        output = math.ceil((padded - kernel[axis]) / strides[axis]) + 1
        # ONNX drops a last window that would start inside the end padding.
        if (output - 1) * strides[axis] >= spatial[axis] + pads[axis]:
            output -= 1
        extended[axis + 2] += max((output - 1) * strides[axis] + kernel[axis] - padded, 0)
    return tuple(extended)


def _edge_pad(ctx: ConversionContext, node: onnx.NodeProto, tensor, pads: Pads):
    """Pad by repeating the edge rows and columns, built from Cropping2D and Concatenate.

    For max pooling this equals padding with -infinity. ONNX requires every pad to be smaller
    than the window, so each window that covers a padded cell also covers the edge cell that
    the pad repeats. The repeated value therefore never changes the maximum.
    """
    top, left, bottom, right = pads
    for axis, before, after in ((1, top, bottom), (2, left, right)):
        if not before and not after:
            continue
        size = tensor.shape[axis]
        side = "rows" if axis == 1 else "columns"

        def crop(first: int, last: int, label: str):
            cropping = ((first, last), (0, 0)) if axis == 1 else ((0, 0), (first, last))
            return keras.layers.Cropping2D(cropping, name=ctx.layer_name(
                node, suffix=f"_edge_{label}"))(tensor)

        parts = [crop(0, size - 1, f"first_{side}")] * before + [tensor]
        parts += [crop(size - 1, 0, f"last_{side}")] * after
        tensor = keras.layers.Concatenate(axis=axis, name=ctx.layer_name(
            node, suffix=f"_pad_{side}"))(parts)
    return tensor


def convert_pool(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert MaxPool and AveragePool with exact padding semantics."""
    value = ctx.channels_last(ctx.activation(node, 0), node)
    if len(node.output) > 1 and node.output[1]:
        raise NodeError("the Indices output of MaxPool is not supported")
    attrs = attributes(node)
    kernel = tuple(attrs.get("kernel_shape", ()))
    if len(kernel) != 2:
        raise NodeError(f"kernel_shape={list(kernel)} must give a 2-D window")
    pads, strides, _, spatial = _window(node, value, kernel)
    if any(pads[axis] >= kernel[axis % 2] for axis in range(4)):
        raise NodeError(f"pads={list(pads)} must be smaller than kernel_shape={list(kernel)}")

    is_max = node.op_type == "MaxPool"
    count_include_pad = bool(attrs.get("count_include_pad", 0))
    ceil_pads = _ceil_mode_pads(node, pads, spatial, kernel, strides)
    tensor = value.tensor
    if ceil_pads == (0, 0, 0, 0):
        padding = "valid"
    elif pads == ceil_pads and _is_same(pads, spatial, kernel, strides, (1, 1)) and (
            is_max or not count_include_pad):
        padding = "same"  # TensorFlow's same pooling ignores padded cells, as ONNX does here.
    elif is_max:
        tensor, padding = _edge_pad(ctx, node, tensor, ceil_pads), "valid"
    elif count_include_pad and pads == ceil_pads:
        tensor, padding = _zero_pad(ctx, node, tensor, pads), "valid"
    else:
        raise NodeError(f"AveragePool with pads={list(pads)}, ceil_mode="
                        f"{attrs.get('ceil_mode', 0)} and count_include_pad=0 has no exact "
                        "Keras equivalent")

    layer_class = keras.layers.MaxPooling2D if is_max else keras.layers.AveragePooling2D
    layer = layer_class(pool_size=kernel, strides=strides, padding=padding,
                        name=ctx.layer_name(node))
    ctx.set_value(node.output[0], Activation(layer(tensor), CHANNELS_LAST_PERM))


def convert_global_pool(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert GlobalAveragePool, GlobalMaxPool and ReduceMean over the two spatial axes."""
    value = ctx.channels_last(ctx.activation(node, 0), node)
    keepdims = True
    if node.op_type == "ReduceMean":
        attrs = attributes(node)
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = ctx.constant(node, 1, description="ReduceMean axes").tolist()
        if axes is None or sorted(axis % 4 for axis in axes) != [2, 3]:
            raise NodeError(f"ReduceMean over axes={axes} is not supported; only the spatial "
                            "axes [2, 3] of an NCHW tensor are")
        keepdims = bool(attrs.get("keepdims", 1))
    layer_class = (keras.layers.GlobalMaxPooling2D if node.op_type == "GlobalMaxPool"
                   else keras.layers.GlobalAveragePooling2D)
    tensor = layer_class(keepdims=keepdims, name=ctx.layer_name(node))(value.tensor)
    ctx.set_value(node.output[0], Activation(tensor, CHANNELS_LAST_PERM if keepdims else (0, 1)))


def convert_batch_normalization(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    """Convert inference-mode BatchNormalization onto Keras ``BatchNormalization``."""
    value = ctx.activation(node, 0)
    attrs = attributes(node)
    if any(node.output[1:]) or attrs.get("training_mode", 0) or not attrs.get("spatial", 1):
        raise NodeError("only inference-mode, spatial BatchNormalization with one output is "
                        "supported")
    if value.row_order is not None:
        raise NodeError("BatchNormalization after a reordered flatten is not supported")
    gamma, beta, mean, variance = (
        ctx.constant(node, index, description=label).astype(np.float32)
        for index, label in enumerate(("scale", "B", "mean", "var"), start=1))
    layer = keras.layers.BatchNormalization(
        axis=value.keras_axis(1), epsilon=float(attrs.get("epsilon", 1e-5)),
        momentum=float(attrs.get("momentum", 0.9)), name=ctx.layer_name(node))
    tensor = layer(value.tensor)
    layer.set_weights([gamma, beta, mean, variance])
    ctx.set_value(node.output[0], Activation(tensor, value.perm))
