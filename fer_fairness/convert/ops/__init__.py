"""One converter function per ONNX op family, and the table that dispatches to them.

Each converter reads its inputs from a :class:`~fer_fairness.convert.context.ConversionContext`,
adds built-in Keras layers and stores its outputs there. It raises
:class:`~fer_fairness.convert.context.NodeError` for anything it cannot map exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx

from fer_fairness.convert.context import ConversionContext
from fer_fairness.convert.ops.activations import (
    convert_dropout,
    convert_identity,
    convert_leaky_relu,
    convert_relu,
    convert_sigmoid_tanh,
    convert_softmax,
)
from fer_fairness.convert.ops.arithmetic import convert_arithmetic
from fer_fairness.convert.ops.dense import check_gemm_attributes, convert_gemm, convert_matmul
from fer_fairness.convert.ops.shape_vectors import SHAPE_VECTOR_OPS, convert_shape_vector
from fer_fairness.convert.ops.shapes import (
    convert_concat,
    convert_flatten,
    convert_reshape,
    convert_shape,
    convert_squeeze_unsqueeze,
    convert_transpose,
)
from fer_fairness.convert.ops.spatial import (
    check_window_attributes,
    convert_batch_normalization,
    convert_conv,
    convert_global_pool,
    convert_pool,
)

Converter = Callable[[ConversionContext, onnx.NodeProto], None]

# Converters for nodes with at least one image-dependent input.
ACTIVATION_CONVERTERS: dict[str, Converter] = {
    "Add": convert_arithmetic,
    "Sub": convert_arithmetic,
    "Mul": convert_arithmetic,
    "Div": convert_arithmetic,
    "Conv": convert_conv,
    "MaxPool": convert_pool,
    "AveragePool": convert_pool,
    "GlobalAveragePool": convert_global_pool,
    "GlobalMaxPool": convert_global_pool,
    "ReduceMean": convert_global_pool,
    "BatchNormalization": convert_batch_normalization,
    "MatMul": convert_matmul,
    "Gemm": convert_gemm,
    "Relu": convert_relu,
    "LeakyRelu": convert_leaky_relu,
    "Sigmoid": convert_sigmoid_tanh,
    "Tanh": convert_sigmoid_tanh,
    "Softmax": convert_softmax,
    "Dropout": convert_dropout,
    "Identity": convert_identity,
    "Reshape": convert_reshape,
    "Flatten": convert_flatten,
    "Squeeze": convert_squeeze_unsqueeze,
    "Unsqueeze": convert_squeeze_unsqueeze,
    "Transpose": convert_transpose,
    "Concat": convert_concat,
    "Shape": convert_shape,
}

# Attribute checks that need no tensor values, run on every node before conversion so that one
# error lists every unsupported attribute, even behind another unsupported node.
ATTRIBUTE_CHECKS: dict[str, Callable[[onnx.NodeProto], list[str]]] = {
    "Conv": check_window_attributes,
    "MaxPool": check_window_attributes,
    "AveragePool": check_window_attributes,
    "Gemm": check_gemm_attributes,
}

# Op types accepted on image-dependent tensors or shape vectors. A node whose inputs are all
# constants may have any op type: the converter evaluates it with the ONNX reference evaluator.
SUPPORTED_OPS: frozenset[str] = frozenset({*ACTIVATION_CONVERTERS, *SHAPE_VECTOR_OPS})

__all__ = [
    "ACTIVATION_CONVERTERS",
    "ATTRIBUTE_CHECKS",
    "SHAPE_VECTOR_OPS",
    "SUPPORTED_OPS",
    "convert_shape_vector",
]
