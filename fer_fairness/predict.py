"""Predict emotion, gender and age group for image files, one result per image or per face.

Without face detection, the whole image is taken as one aligned face. Images are decoded and
preprocessed with the training functions (``decode_image`` is ``tf.io.decode_image`` with 3
channels followed by ``to_model_input``), then run in batches through a ``Predictor``. A file
that cannot be read or decoded is recorded as a failure and the other files go on.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import tensorflow as tf

from fer_fairness.data.pipeline import to_model_input
from fer_fairness.faces import FaceBox, crop, detect_faces
from fer_fairness.predictors import Predictor

logger = logging.getLogger(__name__)

# Files taken from a folder; a file named on the command line is tried whatever its suffix.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp"})
DEFAULT_BATCH_SIZE = 64


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The model's output for one image, or for one face in it.

    Attributes:
        path: The image file.
        face: Index of the face in the image, left to right, or ``None`` for a whole image.
        box: Where the face is in the image, or ``None`` for a whole image.
        probabilities: float32 ``(classes,)`` probabilities keyed by head name.
        classes: Class names keyed by head name, in probability order.
    """

    path: Path
    face: int | None
    box: FaceBox | None
    probabilities: dict[str, np.ndarray]
    classes: dict[str, list[str]]

    def top(self, head: str) -> tuple[str, float]:
        """Return the most probable class of ``head`` and its probability."""
        index = int(np.argmax(self.probabilities[head]))
        return self.classes[head][index], float(self.probabilities[head][index])


@dataclasses.dataclass(frozen=True)
class PredictionResult:
    """Outcome of ``predict_images``.

    Attributes:
        predictions: One per image, or one per detected face, in input order.
        failures: ``(path, reason)`` for every file that could not be read or decoded.
        without_faces: Images in which detection found no face.
    """

    predictions: list[Prediction]
    failures: list[tuple[Path, str]]
    without_faces: list[Path]


def collect_image_paths(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand folders into their image files (recursively, sorted) and keep files as given.

    A path that does not exist is kept, so that ``predict_images`` reports it as a failure.
    """
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                path for path in item.rglob("*")
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                logger.warning("no image files (%s) in %s", ", ".join(sorted(IMAGE_SUFFIXES)), item)
            paths.extend(found)
        else:
            paths.append(item)
    return paths


@tf.function(input_signature=[tf.TensorSpec((), tf.string)])
def _decode_rgb(encoded: tf.Tensor) -> tf.Tensor:
    # The same decode call as fer_fairness.data.pipeline.decode_image, without the resize,
    # so that faces can be detected and cropped at full resolution first.
    return tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)


def read_rgb(path: Path) -> np.ndarray:
    """Read and decode an image file into uint8 ``(height, width, 3)`` RGB pixels.

    Raises:
        OSError: if the file cannot be read.
        ValueError: if the bytes are not a JPEG, PNG, GIF or BMP image.
    """
    encoded = path.read_bytes()
    try:
        return _decode_rgb(tf.constant(encoded)).numpy()
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(f"not a decodable image: {_decoder_message(error)}") from error


def _decoder_message(error: tf.errors.InvalidArgumentError) -> str:
    # TensorFlow wraps the decoder's own message, e.g. "Unknown image file format.", between a
    # traceback of the graph and a "[[{{node ...}}]]" line.
    before_node = error.message.split("[[{{node")[0].strip()
    return before_node.splitlines()[-1].strip() if before_node else error.message


def _face_inputs(
    path: Path, *, image_size: int, find_faces: bool
) -> list[tuple[int | None, FaceBox | None, np.ndarray]]:
    rgb = read_rgb(path)
    if not find_faces:
        return [(None, None, _preprocess(rgb, image_size))]
    return [
        (index, box, _preprocess(crop(rgb, box), image_size))
        for index, box in enumerate(detect_faces(rgb))
    ]


def _preprocess(rgb: np.ndarray, image_size: int) -> np.ndarray:
    return to_model_input(tf.constant(rgb), image_size).numpy()


def predict_images(
    predictor: Predictor,
    paths: Sequence[str | os.PathLike],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    find_faces: bool = False,
    progress: Callable[[int], None] | None = None,
) -> PredictionResult:
    """Run ``predictor`` on image files, in batches of ``batch_size`` faces.

    Args:
        predictor: See ``fer_fairness.predictors.load_predictor``.
        paths: Image files; see ``collect_image_paths`` for folders.
        batch_size: Faces per model call.
        find_faces: Detect faces with the Haar cascade and predict each one; otherwise the
            whole image is one aligned face.
        progress: Called with the number of files finished since its last call.

    Raises:
        ValueError: if ``batch_size`` is not positive.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} is invalid; expected a positive integer")
    image_size = predictor.image_shape[0]
    predictions: list[Prediction] = []
    failures: list[tuple[Path, str]] = []
    without_faces: list[Path] = []
    pending: list[tuple[Path, int | None, FaceBox | None, np.ndarray]] = []
    for path in map(Path, paths):
        try:
            faces = _face_inputs(path, image_size=image_size, find_faces=find_faces)
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            logger.debug("cannot read %s: %s", path, reason)
            failures.append((path, reason))
            faces = []
        else:
            if not faces:
                logger.debug("no face found in %s", path)
                without_faces.append(path)
        pending.extend((path, index, box, image) for index, box, image in faces)
        while len(pending) >= batch_size:
            predictions.extend(_run(predictor, pending[:batch_size]))
            del pending[:batch_size]
        if progress is not None:
            progress(1)
    if pending:
        predictions.extend(_run(predictor, pending))
    return PredictionResult(predictions, failures, without_faces)


def _run(predictor: Predictor, batch: list) -> list[Prediction]:
    images = np.stack([image for _, _, _, image in batch])
    outputs = predictor(images)
    return [
        Prediction(
            path=path,
            face=index,
            box=box,
            probabilities={head: values[row] for head, values in outputs.items()},
            classes=predictor.classes,
        )
        for row, (path, index, box, _) in enumerate(batch)
    ]


OutputFormat = Literal["table", "json", "csv"]
OUTPUT_FORMATS: tuple[str, ...] = ("table", "json", "csv")


def prediction_rows(predictions: Sequence[Prediction]) -> list[dict]:
    """Flatten predictions into rows: path, face, box and each head's top class and probability."""
    rows = []
    for prediction in predictions:
        box = prediction.box
        row = {
            "path": str(prediction.path),
            "face": prediction.face,
            "box_x": box.x if box else None,
            "box_y": box.y if box else None,
            "box_width": box.width if box else None,
            "box_height": box.height if box else None,
        }
        for head in prediction.classes:
            label, probability = prediction.top(head)
            row[head] = label
            row[f"{head}_probability"] = round(probability, 4)
        rows.append(row)
    return rows


def format_predictions(predictions: Sequence[Prediction], output_format: OutputFormat) -> str:
    """Render predictions as an aligned text table, a JSON list or CSV with a header row.

    JSON carries every class probability; the table and CSV carry each head's top class.

    Raises:
        ValueError: if ``output_format`` is not one of ``OUTPUT_FORMATS``.
    """
    if output_format == "json":
        return json.dumps([_json_record(prediction) for prediction in predictions], indent=2)
    if output_format == "csv":
        return _csv_text(prediction_rows(predictions))
    if output_format == "table":
        return _table_text(predictions)
    raise ValueError(
        f"output_format={output_format!r} is invalid; expected one of {OUTPUT_FORMATS}"
    )


def _json_record(prediction: Prediction) -> dict:
    record = {
        "path": str(prediction.path),
        "face": prediction.face,
        "box": prediction.box._asdict() if prediction.box else None,
    }
    for head, names in prediction.classes.items():
        label, probability = prediction.top(head)
        values = prediction.probabilities[head]
        record[head] = {
            "label": label,
            "probability": round(probability, 6),
            "probabilities": {name: round(float(value), 6) for name, value in zip(names, values)},
        }
    return record


def _csv_text(rows: list[dict]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().rstrip("\n")


def _table_text(predictions: Sequence[Prediction]) -> str:
    if not predictions:
        return "no predictions"
    heads = list(predictions[0].classes)
    header = ["path", "face", *heads]
    lines = [header]
    for prediction in predictions:
        cells = [str(prediction.path), "-" if prediction.face is None else str(prediction.face)]
        for head in heads:
            label, probability = prediction.top(head)
            cells.append(f"{label} {probability:.2f}")
        lines.append(cells)
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
        for line in lines
    )
