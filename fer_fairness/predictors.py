"""Callable wrappers around a trained model, a SavedModel or an ONNX file, for prediction.

Every predictor takes float32 ``(batch, 64, 64, 1)`` grayscale pixels in 0..255, the model's
own input, and returns float32 ``(batch, classes)`` probabilities keyed by head name. Each runs
a compiled graph (a ``tf.function``, a SavedModel signature or an onnxruntime session), never
``model.predict``, which costs several times more per call at small batch sizes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np
import tensorflow as tf

from fer_fairness.export import (
    EMOTION_LABEL,
    SERVING_PREPROCESSED,
    class_names,
    load_run_model,
    read_onnx_labels,
    read_saved_model_labels,
    serving_outputs,
)
from fer_fairness.model import load_keras_file


class Predictor(Protocol):
    """A model that maps preprocessed face images to probabilities per head."""

    classes: dict[str, list[str]]
    image_shape: tuple[int, int, int]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]: ...


class KerasPredictor:
    """A Keras multi-task model called through one compiled ``tf.function``."""

    def __init__(self, model) -> None:
        self.classes = class_names(model)
        self.image_shape = tuple(int(size) for size in model.input_shape[1:])
        spec = tf.TensorSpec((None, *self.image_shape), tf.float32)
        self._function = tf.function(
            lambda images: serving_outputs(model, images), input_signature=[spec]
        )

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._function(tf.convert_to_tensor(images, tf.float32))
        return {head: outputs[head].numpy() for head in self.classes}


class SavedModelPredictor:
    """A SavedModel written by ``export_saved_model``, called through ``serving_preprocessed``."""

    def __init__(self, path: Path) -> None:
        self._loaded = tf.saved_model.load(str(path))
        if SERVING_PREPROCESSED not in self._loaded.signatures:
            raise ValueError(
                f"the SavedModel {path} has no {SERVING_PREPROCESSED!r} signature (it has "
                f"{sorted(self._loaded.signatures)}); re-export it with fer-fairness export RUN_DIR"
            )
        self._signature = self._loaded.signatures[SERVING_PREPROCESSED]
        self.classes = read_saved_model_labels(path)
        spec = self._signature.structured_input_signature[1]["image"]
        self.image_shape = tuple(int(size) for size in spec.shape[1:])

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._signature(image=tf.convert_to_tensor(images, tf.float32))
        return {head: outputs[head].numpy() for head in self.classes}


class OnnxPredictor:
    """An ONNX file written by ``export_onnx``, run with onnxruntime on the CPU.

    Outputs are requested by name, so the order of the graph's outputs does not matter.
    """

    def __init__(self, path: Path) -> None:
        import onnxruntime

        from fer_fairness.convert.graph import load_onnx_model

        # load_onnx_model names the file when it is truncated or not ONNX, and rejects
        # external data outside the model's folder.
        self.classes = read_onnx_labels(load_onnx_model(path))
        if not self.classes:
            raise ValueError(
                f"{path} has no classes.<head> metadata; export it with fer-fairness export"
            )
        self._session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
        session_input = self._session.get_inputs()[0]
        self._input_name = session_input.name
        self.image_shape = tuple(int(size) for size in session_input.shape[1:])
        self._output_names = [name for name in self.classes if name != EMOTION_LABEL]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        feed = {self._input_name: np.asarray(images, np.float32)}
        values = self._session.run(self._output_names, feed)
        return dict(zip(self._output_names, values))


def load_predictor(path: str | os.PathLike) -> Predictor:
    """Load a run folder (its ``model.keras``), a SavedModel folder or an ``.onnx`` file.

    Raises:
        FileNotFoundError: if ``path`` is not one of these, naming the files it looked for.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".onnx":
        return OnnxPredictor(path)
    if path.is_file() and path.suffix == ".keras":
        return KerasPredictor(load_keras_file(path))
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return SavedModelPredictor(path)
    if path.is_dir() and (path / "model.keras").is_file():
        return KerasPredictor(load_run_model(path))
    raise FileNotFoundError(
        f"no model found at {path}; expected a run folder with model.keras, a .keras file, "
        "a SavedModel folder with saved_model.pb, or an .onnx file"
    )
