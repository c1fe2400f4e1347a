"""Rejected models: unsupported ops and attributes, invalid files, unsafe external data."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from fer_fairness.convert import UnsupportedModelError, convert_onnx, load_onnx_model

RNG = np.random.default_rng(11)


def _weights(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.3).astype(np.float32)


def _head(tensor: str, features: int) -> tuple[list, dict]:
    nodes = [
        helper.make_node("Flatten", [tensor], ["flat"], name="head_flatten"),
        helper.make_node("MatMul", ["flat", "head_w"], ["logits"], name="head_matmul"),
    ]
    return nodes, {"head_w": _weights(features, 2)}


def _build(factory, nodes, tensor, features, initializers, input_shape=(1, 2, 6, 6)):
    head_nodes, head_inits = _head(tensor, features)
    return factory(nodes + head_nodes, input_shape=list(input_shape), output_name="logits",
                   initializers={**initializers, **head_inits})


def _problems(model) -> list[tuple[str, str, str]]:
    with pytest.raises(UnsupportedModelError) as caught:
        convert_onnx(model)
    return caught.value.problems


def test_error_lists_every_offending_node(onnx_model_factory):
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["centred"], name="subtract_mean"),
        helper.make_node("LRN", ["centred"], ["lrn"], name="local_norm", size=3),
        helper.make_node("Conv", ["lrn", "w"], ["conv"], name="conv_lower",
                         kernel_shape=[3, 3], auto_pad="SAME_LOWER"),
    ]
    inits = {"mean": _weights(1, 2, 1, 1), "w": _weights(2, 2, 3, 3)}
    model = _build(onnx_model_factory, nodes, "conv", 2 * 6 * 6, inits)
    with pytest.raises(UnsupportedModelError) as caught:
        convert_onnx(model)
    names = {(op_type, name) for op_type, name, _ in caught.value.problems}
    assert names == {("Sub", "subtract_mean"), ("LRN", "local_norm"), ("Conv", "conv_lower")}
    message = str(caught.value)
    assert "LRN node 'local_norm'" in message
    assert "auto_pad=SAME_LOWER" in message
    assert "is not a scalar" in message


def test_error_same_lower_rejected(onnx_model_factory):
    nodes = [helper.make_node("Conv", ["x", "w"], ["conv"], name="conv", kernel_shape=[2, 2],
                              auto_pad="SAME_LOWER")]
    model = _build(onnx_model_factory, nodes, "conv", 2 * 6 * 6, {"w": _weights(2, 2, 2, 2)})
    problems = _problems(model)
    assert [(op, name) for op, name, _ in problems] == [("Conv", "conv")]
    assert "auto_pad=SAME_LOWER" in problems[0][2]


def test_error_non_scalar_normalisation(onnx_model_factory):
    nodes = [helper.make_node("Div", ["x", "std"], ["scaled"], name="divide_std"),
             helper.make_node("Conv", ["scaled", "w"], ["conv"], name="conv",
                              kernel_shape=[1, 1])]
    model = _build(onnx_model_factory, nodes, "conv", 2 * 6 * 6,
                   {"std": np.full((1, 2, 1, 1), 2.0, np.float32), "w": _weights(2, 2, 1, 1)})
    problems = _problems(model)
    assert [(op, name) for op, name, _ in problems] == [("Div", "divide_std")]
    assert "constant of shape [1, 2, 1, 1] is not a scalar" in problems[0][2]


@pytest.mark.parametrize("case, node, reason", [
    ("grouped_conv",
     helper.make_node("Conv", ["x", "w_grouped"], ["out"], name="grouped", group=2,
                      kernel_shape=[1, 1]),
     "only group 1 and depthwise"),
    ("average_pool_exclude_pads",
     helper.make_node("AveragePool", ["x"], ["out"], name="avg", kernel_shape=[3, 3],
                      pads=[1, 1, 0, 0]),
     "no exact Keras equivalent"),
    ("max_pool_dilated",
     helper.make_node("MaxPool", ["x"], ["out"], name="dilated", kernel_shape=[2, 2],
                      dilations=[2, 2]),
     "dilations=[2, 2] on pooling"),
])
def test_error_unsupported_attributes(case, node, reason, onnx_model_factory):
    inits = {"w_grouped": _weights(4, 2, 1, 1)} if case == "grouped_conv" else {}
    probe = onnx_model_factory([node], input_shape=[1, 4, 6, 6], output_name="out",
                               initializers=inits)
    features = int(np.prod([d.dim_value for d in probe.graph.output[0].type.tensor_type
                            .shape.dim][1:]))
    problems = _problems(_build(onnx_model_factory, [node], "out", features, inits,
                                input_shape=(1, 4, 6, 6)))
    assert [name for _, name, _ in problems] == [node.name]
    assert reason in problems[0][2]


def test_error_gemm_trans_a(onnx_model_factory):
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "w"], ["logits"], name="gemm", transA=1)]
    model = onnx_model_factory(nodes, input_shape=[72, 2, 6, 1], output_name="logits",
                               initializers={"w": _weights(72, 3)})
    problems = _problems(model)
    assert ("Gemm", "gemm") in [(op, name) for op, name, _ in problems]


def test_error_nonlinear_classifier_path(onnx_model_factory):
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], name="flatten"),
             helper.make_node("MatMul", ["flat", "w"], ["dense"], name="dense"),
             helper.make_node("Relu", ["dense"], ["logits"], name="final_relu")]
    model = onnx_model_factory(nodes, input_shape=[1, 2, 6, 6], output_name="logits",
                               initializers={"w": _weights(72, 3)})
    problems = _problems(model)
    assert [(op, name) for op, name, _ in problems] == [("Relu", "final_relu")]


def _external_data_model(location: str) -> onnx.ModelProto:
    tensor = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[2, 2, 1, 1])
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        tensor.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "external",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 4, 4])],
        initializer=[tensor])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/hostname", "inner/../../up.bin"])
def test_error_external_data_outside_folder(location, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "model.onnx"
    path.write_bytes(_external_data_model(location).SerializeToString())
    with pytest.raises(ValueError, match="outside the model folder"):
        load_onnx_model(path)
    with pytest.raises(ValueError, match=f"location={location!r}"):
        convert_onnx(path)


def test_error_external_data_symlink_outside(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(np.ones(4, np.float32).tobytes())
    os.symlink(tmp_path / "secret.bin", folder / "weights.bin")
    path = folder / "model.onnx"
    path.write_bytes(_external_data_model("weights.bin").SerializeToString())
    with pytest.raises(ValueError, match="outside the model folder"):
        load_onnx_model(path)


def test_external_data_inside_folder_loads(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(_external_data_model("weights.bin").SerializeToString())
    (tmp_path / "weights.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    model = load_onnx_model(path)
    weights = numpy_helper.to_array(model.graph.initializer[0])
    np.testing.assert_array_equal(weights.reshape(-1), np.arange(4, dtype=np.float32))


def test_error_truncated_file(ferplus_replica_path, tmp_path):
    path = tmp_path / "truncated.onnx"
    data = ferplus_replica_path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"{path} is not a valid ONNX model.*truncated"):
        convert_onnx(path)


def test_error_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        convert_onnx(tmp_path / "missing.onnx")


def test_error_opset_out_of_range(onnx_model_factory):
    nodes, inits = _head("x", 72)
    model = onnx_model_factory(nodes, input_shape=[1, 2, 6, 6], output_name="logits",
                               initializers=inits, opset=6)
    with pytest.raises(ValueError, match="opset=6"):
        convert_onnx(model)
