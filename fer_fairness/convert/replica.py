"""A node-for-node replica of the ONNX Model Zoo's emotion-ferplus-8 graph, with random weights.

The node names, tensor names, op types, attributes and initializer shapes follow public layer
dumps of ``emotion-ferplus-8.onnx``. The model is ONNX IR 3 with initializers also listed as
graph inputs, and opset 8. Its input ``Input3`` of shape ``[1, 1, 64, 64]`` takes raw 0..255
pixels, and its output ``Plus692_Output_0`` of shape ``[1, 8]`` gives logits. The replica lets
tests and benchmarks run the converter on the real graph structure without the 35 MB
download.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPLICA_OPSET = 8
REPLICA_IR_VERSION = 3
INPUT_NAME = "Input3"
OUTPUT_NAME = "Plus692_Output_0"

# (Conv node, weight, bias Add node, bias, ReLU node, output channels), block by block. Each
# block ends in (MaxPool node, Dropout node).
_CONV_BLOCKS = (
    ((("Convolution362", "Parameter3", "Plus364", "Parameter4", "ReLU366", 64),
      ("Convolution380", "Parameter23", "Plus382", "Parameter24", "ReLU384", 64)),
     ("Pooling398", "Dropout408")),
    ((("Convolution418", "Parameter63", "Plus420", "Parameter64", "ReLU422", 128),
      ("Convolution436", "Parameter83", "Plus438", "Parameter84", "ReLU440", 128)),
     ("Pooling454", "Dropout464")),
    ((("Convolution474", "Parameter575", "Plus476", "Parameter576", "ReLU478", 256),
      ("Convolution492", "Parameter595", "Plus494", "Parameter596", "ReLU496", 256),
      ("Convolution510", "Parameter615", "Plus512", "Parameter616", "ReLU514", 256)),
     ("Pooling528", "Dropout538")),
    ((("Convolution548", "Parameter655", "Plus550", "Parameter656", "ReLU552", 256),
      ("Convolution566", "Parameter675", "Plus568", "Parameter676", "ReLU570", 256),
      ("Convolution584", "Parameter695", "Plus586", "Parameter696", "ReLU588", 256)),
     ("Pooling602", "Dropout612")),
)
# (MatMul node, weight, bias Add node, bias, ReLU node, Dropout node, units); the last layer
# has no ReLU or Dropout.
_DENSE_LAYERS = (
    ("Times622", "Parameter1367_reshape1", "Plus624", "Parameter1368", "ReLU636", "Dropout646",
     1024),
    ("Times656", "Parameter1403", "Plus658", "Parameter1404", "ReLU670", "Dropout680", 1024),
    ("Times690", "Parameter1693", "Plus692", "Parameter1694", None, None, 8),
)


def _out(node_name: str) -> str:
    return f"{node_name}_Output_0"


class _GraphParts:
    """Nodes and initializers collected while the replica is built."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def add_initializer(self, name: str, array: np.ndarray) -> None:
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name=name))

    def he_normal(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        """Weights with He-normal scale, as a trained ReLU network roughly keeps."""
        return (self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def bias(self, shape: tuple[int, ...]) -> np.ndarray:
        return (self.rng.standard_normal(shape) * 0.05).astype(np.float32)


def _add_conv_blocks(parts: _GraphParts, tensor: str) -> str:
    in_channels = 1
    for convs, (pool_name, dropout_name) in _CONV_BLOCKS:
        for conv_name, weight_name, add_name, bias_name, relu_name, channels in convs:
            parts.add_initializer(weight_name, parts.he_normal((channels, in_channels, 3, 3),
                                                               fan_in=in_channels * 9))
            parts.add_initializer(bias_name, parts.bias((channels, 1, 1)))
            parts.nodes += [
                helper.make_node("Conv", [tensor, weight_name], [_out(conv_name)],
                                 name=conv_name, kernel_shape=[3, 3], strides=[1, 1],
                                 auto_pad="SAME_UPPER", group=1, dilations=[1, 1]),
                helper.make_node("Add", [_out(conv_name), bias_name], [_out(add_name)],
                                 name=add_name),
                helper.make_node("Relu", [_out(add_name)], [_out(relu_name)], name=relu_name),
            ]
            tensor, in_channels = _out(relu_name), channels
        parts.nodes += [
            helper.make_node("MaxPool", [tensor], [_out(pool_name)], name=pool_name,
                             kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]),
            helper.make_node("Dropout", [_out(pool_name)], [_out(dropout_name)],
                             name=dropout_name, ratio=0.25),
        ]
        tensor = _out(dropout_name)
    return tensor


def _add_classifier(parts: _GraphParts, tensor: str) -> str:
    # The first dense weight is stored as (C, H, W, out) and reshaped inside the graph.
    parts.add_initializer("Parameter1367", parts.he_normal((256, 4, 4, 1024), fan_in=4096))
    parts.add_initializer("Parameter1367_reshape1_shape", np.array([4096, 1024], np.int64))
    parts.add_initializer("Dropout612_Output_0_reshape0_shape", np.array([1, 4096], np.int64))
    parts.nodes += [
        helper.make_node("Reshape", ["Parameter1367", "Parameter1367_reshape1_shape"],
                         ["Parameter1367_reshape1"], name="Times622_reshape1"),
        helper.make_node("Reshape", [tensor, "Dropout612_Output_0_reshape0_shape"],
                         ["Dropout612_Output_0_reshape0"], name="Times622_reshape0"),
    ]
    tensor, fan_in = "Dropout612_Output_0_reshape0", 4096
    for matmul, weight, add, bias, relu, dropout, units in _DENSE_LAYERS:
        if weight != "Parameter1367_reshape1":
            scale_fan_in = fan_in if relu else 2 * fan_in  # Smaller logits, as after training.
            parts.add_initializer(weight, parts.he_normal((fan_in, units), scale_fan_in))
        parts.add_initializer(bias, parts.bias((units,)))
        parts.nodes += [
            helper.make_node("MatMul", [tensor, weight], [_out(matmul)], name=matmul),
            helper.make_node("Add", [_out(matmul), bias], [_out(add)], name=add),
        ]
        tensor = _out(add)
        if relu:
            parts.nodes += [
                helper.make_node("Relu", [tensor], [_out(relu)], name=relu),
                helper.make_node("Dropout", [_out(relu)], [_out(dropout)], name=dropout,
                                 ratio=0.5),
            ]
            tensor = _out(dropout)
        fan_in = units
    return tensor


def build_ferplus_replica(*, seed: int = 0) -> onnx.ModelProto:
    """Build the emotion-ferplus-8 graph with random He-normal weights.

    Args:
        seed: Seed of the NumPy generator for the weights.

    Returns:
        An ONNX model that passes ``onnx.checker`` and runs in onnxruntime, with batch size
        fixed to 1 like the original.
    """
    parts = _GraphParts(seed)
    # NOTE: public layer dumps list the two normalisation scalars like the other
    # parameters, so they are initializers here; the real file may store them differently.
    parts.add_initializer("Constant339", np.array(127.5, np.float32))
    parts.add_initializer("Constant343", np.array(255.0, np.float32))
    parts.nodes += [
        helper.make_node("Sub", [INPUT_NAME, "Constant339"], [_out("Minus340")],
                         name="Minus340"),
        helper.make_node("Div", [_out("Minus340"), "Constant343"], [_out("Block352")],
                         name="Block352"),
    ]
    _add_classifier(parts, _add_conv_blocks(parts, _out("Block352")))
    graph = helper.make_graph(
        parts.nodes,
        "emotion_ferplus_replica",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 1, 64, 64])]
        + [helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
           for init in parts.initializers],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, 8])],
        initializer=parts.initializers,
    )
    model = helper.make_model(graph, producer_name="fer_fairness.convert.replica",
                              opset_imports=[helper.make_opsetid("", REPLICA_OPSET)])
    model.ir_version = REPLICA_IR_VERSION
    onnx.checker.check_model(model)
    return model
