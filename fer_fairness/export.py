"""Serving exports of a trained multi-task model: a TensorFlow SavedModel and an ONNX file.

Both exports return probabilities (the softmax of each head's logits), keyed by head name
(``emotion``, ``gender``, ``age`` and ``race`` when trained), plus ``emotion_label``, a string
tensor with the canonical name of the most probable emotion.

SavedModel signatures:

- ``serving_default``: ``images`` uint8 ``(batch, height, width, channels)`` with any height and
  width and 1, 3 or 4 channels. Grayscale conversion and resizing run inside the graph with the
  training functions of ``fer_fairness.data.pipeline``.
- ``serving_bytes``: ``images`` string ``(batch,)`` of encoded JPEG, PNG, GIF or BMP files,
  decoded exactly as in training. One undecodable string fails the whole call.
- ``serving_preprocessed``: ``image`` float32 ``(batch, 64, 64, 1)`` grayscale pixels in 0..255,
  the model's own input.

The class names of every head are written to ``assets.extra/labels.json`` inside the SavedModel
folder, the SavedModel place for files that the graph does not load.

The ONNX file takes the ``serving_preprocessed`` input, because tf2onnx 1.17 cannot convert the
antialiased resize (TensorFlow's ``ScaleAndTranslate`` op). It stores the class names in its
metadata as ``classes.<head>`` keys with JSON lists.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import keras
import tensorflow as tf

from fer_fairness.data.pipeline import decode_image, to_model_input
from fer_fairness.io import write_bytes_atomic, write_json_atomic
from fer_fairness.labels import EMOTIONS, HEAD_CLASSES
from fer_fairness.model import head_names, load_keras_file

logger = logging.getLogger(__name__)

SERVING_DEFAULT = "serving_default"
SERVING_BYTES = "serving_bytes"
SERVING_PREPROCESSED = "serving_preprocessed"
LABELS_FILE = Path("assets.extra") / "labels.json"
EMOTION_LABEL = "emotion_label"
ONNX_INPUT = "image"
ONNX_OPSET = 17
ONNX_CLASSES_PREFIX = "classes."
IMAGE_LAYOUT_ERROR = (
    "serving_default expects uint8 images of shape (batch, height, width, channels) with 1, 3 "
    "or 4 channels (channels last). Channels-first input is never transposed. Got shape:"
)

ExportFormat = Literal["savedmodel", "onnx", "both"]
EXPORT_FORMATS: tuple[str, ...] = ("savedmodel", "onnx", "both")


def class_names(model: keras.Model) -> dict[str, list[str]]:
    """Return the class names of each head of ``model``, in output-index order."""
    return {head: list(HEAD_CLASSES[head]) for head in head_names(model)}


def serving_outputs(model: keras.Model, image: tf.Tensor) -> dict[str, tf.Tensor]:
    """Run ``model`` on its input and return the serving outputs.

    Args:
        model: A multi-task model with dict outputs of logits.
        image: float32 ``(batch, 64, 64, 1)`` grayscale pixels in 0..255.

    Returns:
        float32 ``(batch, classes)`` probabilities keyed by head name, and ``emotion_label``,
        a string ``(batch,)`` tensor with the most probable emotion's name.
    """
    logits = model(image, training=False)
    outputs = {head: tf.nn.softmax(logits[head], axis=-1) for head in head_names(model)}
    # The names are a constant created inside the traced function, so tf2onnx embeds them in
    # the ONNX graph instead of turning a captured tensor into an extra input.
    names = tf.constant(list(EMOTIONS))
    outputs[EMOTION_LABEL] = tf.gather(names, tf.argmax(outputs["emotion"], axis=-1))
    return outputs


def images_to_rgb(images: tf.Tensor) -> tf.Tensor:
    """Validate uint8 ``(batch, height, width, channels)`` images and return 3 channels.

    One channel is tiled to three, which is what ``decode_image`` does for grayscale files in
    training, so a gray pixel ``g`` reaches the model as ``0.9999 * g`` (the ITU-R 601 weights
    of ``tf.image.rgb_to_grayscale`` sum to 0.9999). Four channels lose the alpha channel, as
    ``decode_image`` does for RGBA PNG files.

    Raises:
        tf.errors.InvalidArgumentError: at call time, if the input is not rank 4 or its last
            dimension is not 1, 3 or 4.
    """
    # ensure_shape checks the rank at run time. A check on tf.rank would be folded away,
    # because the signature already declares rank 4.
    images = tf.ensure_shape(
        images, [None, None, None, None], name="images_batch_height_width_channels"
    )
    shape = tf.shape(images)
    channels = shape[-1]
    valid = tf.reduce_any(tf.equal(channels, tf.constant([1, 3, 4])))
    check = tf.debugging.Assert(valid, [IMAGE_LAYOUT_ERROR, shape], summarize=4)
    with tf.control_dependencies([check]):
        return tf.cond(
            tf.equal(channels, 1),
            lambda: tf.tile(images, [1, 1, 1, 3]),
            lambda: images[..., :3],
        )


def _add_serving_endpoints(archive, model: keras.Model) -> None:
    image_shape = tuple(model.input_shape[1:])
    image_size = int(image_shape[0])

    def serve_images(images):
        return serving_outputs(model, to_model_input(images_to_rgb(images), image_size))

    def serve_bytes(images):
        decoded = tf.map_fn(
            lambda encoded: decode_image(encoded, image_size),
            images,
            fn_output_signature=tf.TensorSpec(image_shape, tf.float32),
        )
        return serving_outputs(model, decoded)

    def serve_preprocessed(image):
        return serving_outputs(model, image)

    archive.add_endpoint(
        SERVING_DEFAULT,
        serve_images,
        input_signature=[tf.TensorSpec((None, None, None, None), tf.uint8, name="images")],
    )
    archive.add_endpoint(
        SERVING_BYTES,
        serve_bytes,
        input_signature=[tf.TensorSpec((None,), tf.string, name="images")],
    )
    archive.add_endpoint(
        SERVING_PREPROCESSED,
        serve_preprocessed,
        input_signature=[tf.TensorSpec((None, *image_shape), tf.float32, name=ONNX_INPUT)],
    )


def export_saved_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Write a TensorFlow SavedModel with the serving signatures and return its folder.

    The signatures are described in this module's docstring. The folder is written under a
    temporary name and renamed into place, so an interrupted export leaves no half-written
    folder, and an existing folder at ``path`` is replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        target = staging / "saved_model"
        archive = keras.export.ExportArchive()
        archive.track(model)
        _add_serving_endpoints(archive, model)
        archive.write_out(target, verbose=False)
        write_json_atomic(target / LABELS_FILE, class_names(model))
        if path.exists():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("SavedModel written to %s", path)
    return path


def read_saved_model_labels(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read the class names of each head from a SavedModel folder written by this module.

    Raises:
        FileNotFoundError: if the folder has no ``assets.extra/labels.json``.
    """
    labels_path = Path(path) / LABELS_FILE
    if not labels_path.is_file():
        raise FileNotFoundError(
            f"{labels_path} not found; re-export the run with fer-fairness export RUN_DIR, "
            "which writes the class names there"
        )
    return json.loads(labels_path.read_text(encoding="utf-8"))


def export_onnx(model: keras.Model, path: str | os.PathLike, *, opset: int = ONNX_OPSET) -> Path:
    """Convert ``model`` with tf2onnx, check it with ``onnx.checker`` and write it to ``path``.

    The ONNX graph has one input, ``image`` float32 ``(batch, 64, 64, 1)`` in 0..255, already
    converted to grayscale and resized as in training. Its outputs are the probabilities keyed
    by head name and ``emotion_label``. The metadata maps ``classes.<head>`` to a JSON list of
    that head's class names.

    Raises:
        onnx.checker.ValidationError: if the converted graph is not a valid ONNX model.
    """
    import onnx
    import tf2onnx

    image_shape = tuple(model.input_shape[1:])

    @tf.function
    def probabilities(image):
        return serving_outputs(model, image)

    spec = tf.TensorSpec((None, *image_shape), tf.float32, name=ONNX_INPUT)
    proto, _ = tf2onnx.convert.from_function(probabilities, input_signature=(spec,), opset=opset)
    _name_batch_dimension(proto.graph)
    metadata = {
        f"{ONNX_CLASSES_PREFIX}{head}": json.dumps(names)
        for head, names in class_names(model).items()
    }
    metadata["input"] = (
        f"{ONNX_INPUT}: float32 (batch, {', '.join(map(str, image_shape))}) grayscale pixels in "
        "0..255, converted with ITU-R 601 luma weights and resized with antialiased bilinear "
        "interpolation"
    )
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto)
    path = write_bytes_atomic(path, proto.SerializeToString())
    logger.info("ONNX model written to %s (opset %d)", path, opset)
    return path


def _name_batch_dimension(graph) -> None:
    """Name the first dimension of every input and output ``batch`` instead of ``unk__N``."""
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"


def read_onnx_labels(model_proto) -> dict[str, list[str]]:
    """Return the class names of each head from an ONNX model's ``classes.<head>`` metadata."""
    return {
        prop.key[len(ONNX_CLASSES_PREFIX):]: json.loads(prop.value)
        for prop in model_proto.metadata_props
        if prop.key.startswith(ONNX_CLASSES_PREFIX)
    }


def export_run(
    run_dir: str | os.PathLike,
    *,
    export_format: ExportFormat = "both",
    output_dir: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Export the ``model.keras`` of a run folder and return the written paths by format.

    Args:
        run_dir: A run folder written by ``fer-fairness train``.
        export_format: ``savedmodel``, ``onnx`` or ``both``.
        output_dir: Folder that receives ``saved_model/`` and ``model.onnx``; default
            ``run_dir``.

    Raises:
        FileNotFoundError: if ``run_dir`` has no ``model.keras``.
        ValueError: if ``export_format`` is not one of ``EXPORT_FORMATS``.
    """
    if export_format not in EXPORT_FORMATS:
        raise ValueError(
            f"export_format={export_format!r} is invalid; expected one of {EXPORT_FORMATS}"
        )
    run_dir = Path(run_dir)
    model = load_run_model(run_dir)
    output_dir = Path(output_dir) if output_dir is not None else run_dir
    written = {}
    if export_format in ("savedmodel", "both"):
        written["savedmodel"] = export_saved_model(model, output_dir / "saved_model")
    if export_format in ("onnx", "both"):
        written["onnx"] = export_onnx(model, output_dir / "model.onnx")
    return written


def load_run_model(run_dir: Path) -> keras.Model:
    """Load ``run_dir/model.keras`` without its optimizer state.

    Raises:
        FileNotFoundError: if the file does not exist.
    """
    model_path = Path(run_dir) / "model.keras"
    if not model_path.is_file():
        raise FileNotFoundError(
            f"{model_path} not found; pass a run folder written by fer-fairness train, which "
            "contains model.keras, config.json and saved_model/"
        )
    return load_keras_file(model_path)

