"""Loading, validating and indexing an ONNX graph before conversion.

Loading checks the external-data locations of every tensor before any tensor data is read, so a
model cannot make the converter read files outside its own folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

logger = logging.getLogger(__name__)

# Opsets of the default ONNX domain whose operator semantics the converter implements. The
# FER+ model uses opset 8 and the mini-Xception export uses opset 17.
MIN_OPSET = 7
MAX_OPSET = 21
MIN_IR_VERSION = 3


class UnsupportedModelError(ValueError):
    """An ONNX model that contains operators or attributes the converter cannot map exactly.

    Attributes:
        problems: One ``(op_type, node_name, reason)`` tuple per offending node, in graph order.
    """

    def __init__(self, problems: Iterable[tuple[str, str, str]]) -> None:
        self.problems: list[tuple[str, str, str]] = list(dict.fromkeys(problems))
        lines = [f"  {op_type} node {name!r}: {reason}" for op_type, name, reason in self.problems]
        super().__init__(
            f"the ONNX model has {len(self.problems)} unsupported node(s):\n"
            + "\n".join(lines)
            + "\nreplace these nodes with supported ones (see fer_fairness.convert.SUPPORTED_OPS)"
            " or export the model again"
        )


def _iter_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                yield attribute.t
            elif attribute.type == onnx.AttributeProto.TENSORS:
                yield from attribute.tensors
            elif attribute.type == onnx.AttributeProto.GRAPH:
                yield from _iter_tensors(attribute.g)


def check_external_data_paths(model: onnx.ModelProto, base_dir: Path) -> None:
    """Reject external-data locations that resolve outside ``base_dir``.

    Only the locations stored in the model are inspected; no external file is opened.

    Raises:
        ValueError: naming the tensor and its location, for an absolute location or one that
            leaves ``base_dir`` (for example through ``..`` or a symbolic link).
    """
    root = base_dir.resolve()
    for tensor in _iter_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location", "")
        resolved = (root / location).resolve()
        if not location or os.path.isabs(location) or not resolved.is_relative_to(root):
            raise ValueError(
                f"tensor {tensor.name!r} stores its data at location={location!r}, which is "
                f"outside the model folder {root}; external data must be a relative path inside "
                "the folder that holds the .onnx file"
            )


def load_onnx_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Load an ONNX file, including external data from its own folder, and validate it.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is truncated or not an ONNX model, if external data points
            outside the model folder, or if the IR version or opset is not supported.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}; expected an .onnx file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as error:
        raise ValueError(
            f"{path} is not a valid ONNX model ({error}); the file may be truncated or of "
            "another format, so download or export it again"
        ) from error
    check_external_data_paths(model, path.parent)
    onnx.load_external_data_for_model(model, str(path.parent))
    validate_model(model, source=str(path))
    logger.debug("loaded %s: IR %d, opset %d, %d nodes", path, model.ir_version,
                 default_opset(model), len(model.graph.node))
    return model


def validate_model(model: onnx.ModelProto, *, source: str = "the ONNX model") -> None:
    """Check the model with the ONNX checker and against the supported IR and opset range.

    Raises:
        ValueError: naming ``source``, the failed check and the supported range.
    """
    for tensor in _iter_tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ValueError(
                f"{source} has tensor {tensor.name!r} with external data that is not loaded; "
                "pass the .onnx path instead of a ModelProto"
            )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise ValueError(f"{source} is not a valid ONNX model: {error}") from error
    if model.ir_version < MIN_IR_VERSION:
        raise ValueError(
            f"{source} has ir_version={model.ir_version}; expected {MIN_IR_VERSION} or later"
        )
    opset = default_opset(model)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(
            f"{source} uses opset={opset} of the default ONNX domain; the converter supports "
            f"opsets {MIN_OPSET} to {MAX_OPSET}, so convert it with onnx.version_converter first"
        )


def default_opset(model: onnx.ModelProto) -> int:
    """Return the opset version of the default ONNX domain, or 0 if the model imports none."""
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return opset.version
    return 0


@dataclass
class GraphIndex:
    """An ONNX graph with its nodes named, its constants decoded and its edges indexed.

    Nodes without a name get ``<op_type>_<index>``. ``activation_names`` contains every tensor
    that depends on the graph input through data, not only through a ``Shape`` node.
    """

    model: onnx.ModelProto
    opset: int = 0
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)
    activation_names: set[str] = field(default_factory=set)
    input: onnx.ValueInfoProto | None = None
    output_name: str = ""

    @classmethod
    def build(cls, model: onnx.ModelProto) -> GraphIndex:
        """Index ``model``, which must have one data input and one output.

        Raises:
            ValueError: if the graph has no data input, several, or other than one output.
        """
        index = cls(model=model, opset=default_opset(model))
        graph = model.graph
        index.initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        data_inputs = [value for value in graph.input if value.name not in index.initializers]
        if len(data_inputs) != 1 or len(graph.output) != 1:
            raise ValueError(
                f"the ONNX graph has {len(data_inputs)} data input(s) and {len(graph.output)} "
                "output(s); expected one image input and one logits output"
            )
        index.input = data_inputs[0]
        index.output_name = graph.output[0].name
        index._index_nodes(graph.node)
        return index

    def _index_nodes(self, nodes: Iterable[onnx.NodeProto]) -> None:
        used_names: set[str] = set()
        self.activation_names = {self.input.name}
        for position, original in enumerate(nodes):
            node = onnx.NodeProto()
            node.CopyFrom(original)
            if not node.name or node.name in used_names:
                node.name = f"{node.name or node.op_type}_{position}"
            used_names.add(node.name)
            self.nodes.append(node)
            for name in node.output:
                self.producers[name] = node
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
            if node.op_type != "Shape" and any(i in self.activation_names for i in node.input):
                self.activation_names.update(node.output)

    def producer(self, name: str) -> onnx.NodeProto | None:
        """Return the node that outputs tensor ``name``, or None for inputs and initializers."""
        return self.producers.get(name)
