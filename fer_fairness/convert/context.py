"""State shared by the op converters: tensor values, layer names and layout bookkeeping.

Every ONNX tensor maps to one of three values:

* a NumPy array, for initializers and tensors computed from constants only;
* a :class:`ShapeValue`, for shape vectors that contain the batch size, such as the output of
  ``Shape`` in tf2onnx's flatten subgraph;
* an :class:`Activation`, for tensors that depend on the image.

Activations keep ONNX semantics but may store their axes in another order in Keras. A 4-D ONNX
activation is NCHW, and its Keras tensor is usually NHWC, so that built-in channels-last layers
apply directly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import keras
import numpy as np
import onnx

from fer_fairness.convert.graph import GraphIndex

# Keras axis j of a 4-D activation is ONNX axis CHANNELS_LAST_PERM[j], so NCHW is stored NHWC.
CHANNELS_LAST_PERM = (0, 2, 3, 1)
FEATURES_LAYER = "features"
LOGITS_LAYER = "logits"
INPUT_NAME = "image"
_RESERVED_NAMES = {FEATURES_LAYER, LOGITS_LAYER, INPUT_NAME}


class NodeError(Exception):
    """A node that cannot be converted exactly; the converter collects these into one error."""


@dataclass(frozen=True)
class Activation:
    """A Keras tensor standing for an ONNX activation.

    Attributes:
        tensor: The Keras tensor. Axis 0 is always the batch.
        perm: Keras axis ``j`` is ONNX axis ``perm[j]``.
        row_order: Only for a 2-D tensor made by flattening without reordering its elements:
            Keras feature ``j`` is ONNX feature ``row_order[j]``. The next dense layer takes
            its kernel rows in this order instead of moving the activations.
    """

    tensor: Any
    perm: tuple[int, ...]
    row_order: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return len(self.perm)

    @property
    def onnx_shape(self) -> tuple[int | None, ...]:
        """Shape in ONNX axis order; None marks the batch axis."""
        shape: list[int | None] = [None] * self.rank
        for keras_axis, onnx_axis in enumerate(self.perm):
            shape[onnx_axis] = self.tensor.shape[keras_axis]
        return tuple(shape)

    def keras_axis(self, onnx_axis: int) -> int:
        """Return the Keras axis of ONNX axis ``onnx_axis``; a negative axis counts from the end."""
        return self.perm.index(onnx_axis % self.rank)


@dataclass(frozen=True)
class ShapeValue:
    """A shape vector (or a scalar taken from one) in which None stands for the batch size."""

    dims: tuple[int | None, ...]
    scalar: bool = False

    def simplified(self) -> ShapeValue | np.ndarray:
        """Return an int64 array when no entry depends on the batch size, else ``self``."""
        if None in self.dims:
            return self
        array = np.asarray(self.dims, dtype=np.int64)
        return array.reshape(()) if self.scalar else array


def flat_order(shape: Sequence[int], perm: Sequence[int]) -> np.ndarray:
    """Return, for each element of the flattened Keras tensor, its ONNX flat index.

    Args:
        shape: ONNX shape without the batch axis.
        perm: The activation's ``perm``, including the batch axis 0.
    """
    indices = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(tuple(shape))
    return indices.transpose([axis - 1 for axis in perm[1:]]).reshape(-1)


def keras_flat_order(value: Activation) -> np.ndarray:
    """Return the ONNX flat index of each element of ``value`` flattened in Keras order."""
    if value.row_order is not None:
        return value.row_order
    return flat_order(value.onnx_shape[1:], value.perm)


class ConversionContext:
    """Values, names and helpers shared by the op converters for one conversion."""

    def __init__(self, graph: GraphIndex, *, features_name: str, logits_name: str) -> None:
        self.graph = graph
        self.features_name = features_name
        self.logits_name = logits_name
        self.values: dict[str, Any] = dict(graph.initializers)
        self.values[""] = None
        self.absorbed: set[str] = set()
        self.marked_points: set[str] = set()
        self._layer_names: set[str] = set(_RESERVED_NAMES)

    # Values -----------------------------------------------------------------------------

    def constant(self, node: onnx.NodeProto, index: int, *, description: str) -> np.ndarray:
        """Return input ``index`` of ``node`` as an array, or raise NodeError naming it."""
        value = self.values.get(node.input[index]) if index < len(node.input) else None
        if not isinstance(value, np.ndarray):
            raise NodeError(f"{description} ({node.input[index]!r}) must be a constant")
        return value

    def optional_constant(self, node: onnx.NodeProto, index: int) -> np.ndarray | None:
        """Return input ``index`` as an array, or None when the input is absent or empty."""
        if index >= len(node.input) or not node.input[index]:
            return None
        return self.constant(node, index, description=f"input {index}")

    def activation(self, node: onnx.NodeProto, index: int = 0) -> Activation:
        """Return input ``index`` of ``node`` as an activation, or raise NodeError."""
        value = self.values.get(node.input[index])
        if not isinstance(value, Activation):
            raise NodeError(f"input {index} ({node.input[index]!r}) must depend on the image")
        return value

    def set_value(self, name: str, value: Any) -> None:
        """Store the value of tensor ``name``, marking the features and logits points."""
        if isinstance(value, Activation):
            for point, layer_name in ((self.features_name, FEATURES_LAYER),
                                      (self.logits_name, LOGITS_LAYER)):
                if name == point:
                    marked = keras.layers.Identity(name=layer_name)(value.tensor)
                    value = replace(value, tensor=marked)
                    self.marked_points.add(layer_name)
        self.values[name] = value

    # Graph structure --------------------------------------------------------------------

    def single_consumer(self, name: str) -> onnx.NodeProto | None:
        """Return the only node that reads tensor ``name``, if another node may be fused into it.

        Returns None when several nodes read the tensor, or when the tensor is the graph output
        or one of the named points, which must stay visible.
        """
        if name in (self.graph.output_name, self.features_name, self.logits_name):
            return None
        consumers = self.graph.consumers.get(name, [])
        return consumers[0] if len(consumers) == 1 else None

    def consumers(self, name: str) -> list[onnx.NodeProto]:
        """Return the nodes that read tensor ``name``."""
        return self.graph.consumers.get(name, [])

    # Keras layers ---------------------------------------------------------------------------

    def layer_name(self, *nodes: onnx.NodeProto | str, suffix: str = "") -> str:
        """Return a unique Keras layer name made from ONNX node (or tensor) names.

        Keras rejects ``/`` in layer names, so characters other than letters, digits, ``_``,
        ``.`` and ``-`` become ``_``. Fused nodes are joined with ``__``.
        """
        names = [node if isinstance(node, str) else node.name for node in nodes]
        base = "__".join(re.sub(r"[^A-Za-z0-9_.\-]", "_", name) for name in names) + suffix
        name, counter = base, 1
        while name in self._layer_names:
            name = f"{base}_{counter}"
            counter += 1
        self._layer_names.add(name)
        return name

    def to_perm(self, value: Activation, perm: Sequence[int], *, name: str) -> Activation:
        """Return ``value`` with its Keras axes in order ``perm``, adding a Permute if needed."""
        perm = tuple(perm)
        if value.perm == perm:
            return value
        if value.row_order is not None:
            raise NodeError("a flattened activation with reordered features cannot be permuted")
        dims = tuple(value.perm.index(onnx_axis) for onnx_axis in perm[1:])
        tensor = keras.layers.Permute(dims, name=name)(value.tensor)
        return Activation(tensor, perm)

    def channels_last(self, value: Activation, node: onnx.NodeProto) -> Activation:
        """Return a 4-D activation stored NHWC, or raise NodeError for another rank."""
        if value.rank != 4:
            raise NodeError(f"expected a 4-D NCHW input, got shape {value.onnx_shape}")
        return self.to_perm(value, CHANNELS_LAST_PERM, name=self.layer_name(node, suffix="_nhwc"))
