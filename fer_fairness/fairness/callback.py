"""Keras callback that tracks fairness on a validation set during training."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fer_fairness.fairness import groups
from fer_fairness.fairness.metrics import FairnessConfig, evaluate_predictions
from fer_fairness.labels import ATTRIBUTES, EMOTIONS, HEAD_CLASSES
from fer_fairness.io import write_json_atomic
from fer_fairness.reports.plots import confusion_matrix_image

logger = logging.getLogger(__name__)
_SUMMARY_LOGGER = logging.getLogger("fer_fairness.fairness.summary")


@contextlib.contextmanager
def _raised_level(target: logging.Logger, level: int = logging.ERROR) -> Iterator[None]:
    """Drop ``target``'s records below ``level`` inside the block."""
    previous = target.level
    target.setLevel(level)
    try:
        yield
    finally:
        target.setLevel(previous)

FAIRNESS_FOLDER = "fairness"
# Scalars written to TensorBoard under "fairness/<name>" when defined.
_SCALAR_PREFIX = "fairness/"


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid; expected an integer of at least {minimum}")


def _validate_images(images: object) -> tf.data.Dataset:
    if not isinstance(images, tf.data.Dataset):
        raise ValueError(
            f"images is a {type(images).__name__}; expected a batched tf.data.Dataset of images"
        )
    if not isinstance(images.element_spec, tf.TensorSpec):
        raise ValueError(
            f"images yields {images.element_spec}; expected image batches only, without labels"
        )
    if images.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError("images is an infinite dataset; remove .repeat() so one pass ends")
    return images


def _validate_labels(labels: object) -> dict[str, np.ndarray]:
    if not isinstance(labels, Mapping) or "emotion" not in labels:
        raise ValueError(
            "labels must be a mapping with an 'emotion' entry and optional "
            f"{', '.join(ATTRIBUTES)} entries, each a (n,) int array"
        )
    if np.ndim(labels["emotion"]) != 1:
        raise ValueError(
            f"labels['emotion'] has shape {np.shape(labels['emotion'])}; expected (n,), one "
            "emotion index per image"
        )
    n = int(np.shape(labels["emotion"])[0])
    validated = {}
    for name, values in labels.items():
        if name not in HEAD_CLASSES:
            raise ValueError(
                f"labels has unknown entry {name!r}; expected names from {', '.join(HEAD_CLASSES)}"
            )
        validated[name] = groups.validate_labels(
            f"labels[{name!r}]",
            values,
            n=n,
            n_classes=len(HEAD_CLASSES[name]),
            allow_unknown=name != "emotion",
        )
    return validated


class FairnessReport(keras.callbacks.Callback):
    """Evaluate accuracy and fairness on a validation set every few epochs.

    Each evaluation runs one ``model.predict`` pass over ``images``, applies a softmax to the
    emotion logits, takes the argmax of every head, and calls ``evaluate_predictions``. The
    model's outputs are addressed by name ("emotion", "gender", "age", "race"). The callback
    writes the result to ``<output_dir>/fairness/epoch_NNN.json``, logs the fairness scores,
    per-emotion and per-group accuracies and the confusion matrix to TensorBoard, and adds
    ``val_emotion_fairness``, ``val_gender_fairness`` and ``val_age_fairness`` (and
    ``val_race_fairness`` when race labels are given) to the epoch logs. An undefined score is
    NaN in the logs. Place this callback before ``EarlyStopping`` or ``ModelCheckpoint`` in the
    callback list, so they see these keys. On epochs without an evaluation the keys are
    absent, and ``EarlyStopping`` skips its check with a warning.

    Epochs are numbered from 1: evaluation after Keras epoch ``e`` (0-based) is epoch
    ``epoch_offset + e + 1``. Set ``epoch_offset`` to the number of epochs of earlier phases
    when a later phase starts ``fit`` again from epoch 0. Keep it 0 when the later phase
    passes ``initial_epoch`` to ``fit``, because Keras then continues the numbering itself.

    Args:
        images: Batched images only, float32 (batch, 64, 64, 1) in 0..255, not repeated, in
            the order of ``labels``.
        labels: "emotion" and optional "gender", "age", "race" to (n,) int codes, where -1 marks an
            unknown attribute.
        output_dir: The run folder.
        every_n_epochs: Evaluate after every this many epochs, at least 1.
        tensorboard_dir: Folder for the TensorBoard events, or None for no events.
        subject_ids: Optional (n,) str subject id per image for the bootstrap.
        config: Evaluation options. The default disables the bootstrap, which costs time.
        epoch_offset: Added to the epoch number, at least 0.

    Example:
        ```python
        report = FairnessReport(val_images, val_labels, run_dir, tensorboard_dir=run_dir / "tb")
        stop = keras.callbacks.EarlyStopping("val_gender_fairness", mode="max", patience=5)
        model.fit(train_data, epochs=30, callbacks=[report, stop])
        ```
    """

    def __init__(
        self,
        images: tf.data.Dataset,
        labels: Mapping[str, np.ndarray],
        output_dir: str | os.PathLike,
        *,
        every_n_epochs: int = 1,
        tensorboard_dir: str | os.PathLike | None = None,
        subject_ids: np.ndarray | None = None,
        config: FairnessConfig = FairnessConfig(n_bootstrap=0),
        epoch_offset: int = 0,
    ) -> None:
        super().__init__()
        self._images = _validate_images(images)
        self._labels = _validate_labels(labels)
        n = self._labels["emotion"].shape[0]
        _check_int("every_n_epochs", every_n_epochs, 1)
        _check_int("epoch_offset", epoch_offset, 0)
        if subject_ids is not None and np.shape(subject_ids) != (n,):
            raise ValueError(
                f"subject_ids has shape {np.shape(subject_ids)}; expected ({n},), one id per image"
            )
        if not isinstance(config, FairnessConfig):
            raise ValueError(f"config is a {type(config).__name__}; expected a FairnessConfig")
        self.every_n_epochs = every_n_epochs
        self.epoch_offset = epoch_offset
        self.config = config
        self._subject_ids = subject_ids
        self._output_dir = Path(output_dir)
        self._tensorboard_dir = None if tensorboard_dir is None else Path(tensorboard_dir)
        self._writer = None
        self.evaluations: list[dict] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.evaluations = []
        if self._tensorboard_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self._tensorboard_dir))

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every_n_epochs != 0:
            return
        step = self.epoch_offset + epoch + 1
        metrics, y_pred = self.evaluate(step)
        if logs is not None:
            for key in self._log_keys():
                value = metrics[key]
                logs[f"val_{key}"] = math.nan if value is None else value
        if self._writer is not None:
            self._write_summaries(metrics, y_pred, step)

    def _log_keys(self) -> list[str]:
        attributes = ["emotion", "gender", "age"] + (["race"] if "race" in self._labels else [])
        return [f"{attribute}_fairness" for attribute in attributes]

    def _predict(self) -> dict[str, np.ndarray]:
        outputs = self.model.predict(self._images, verbose=0)
        if not isinstance(outputs, Mapping):
            outputs = dict(zip(self.model.output_names, outputs))
        if "emotion" not in outputs:
            raise ValueError(
                f"the model has outputs {sorted(outputs)}; expected an 'emotion' output"
            )
        n = self._labels["emotion"].shape[0]
        logits = np.asarray(outputs["emotion"])
        if logits.shape != (n, len(EMOTIONS)):
            raise ValueError(
                f"the emotion output has shape {logits.shape} over the images; expected "
                f"({n}, {len(EMOTIONS)}), one row per label; check that images contains exactly "
                "the labelled images"
            )
        return {name: np.asarray(value) for name, value in outputs.items()}

    def evaluate(self, epoch: int) -> tuple[dict, np.ndarray]:
        """Predict once, evaluate, and write ``fairness/epoch_NNN.json``.

        Returns:
            ``(metrics, y_pred)``: the evaluation with an added "epoch" key, and the predicted
            emotion indices.
        """
        outputs = self._predict()
        probabilities = _softmax(outputs["emotion"].astype(np.float64))
        y_pred = probabilities.argmax(axis=1)
        features = {name: values for name, values in self._labels.items() if name in ATTRIBUTES}
        heads = {name: outputs[name].argmax(axis=1) for name in features if name in outputs}
        # Undefined ratios and empty groups rarely change between epochs, so only the first
        # evaluation of a fit logs its warnings. Every epoch's JSON file still records them.
        quiet = _raised_level(_SUMMARY_LOGGER) if self.evaluations else contextlib.nullcontext()
        with quiet:
            metrics = evaluate_predictions(
                self._labels["emotion"],
                y_pred,
                probabilities=probabilities,
                sensitive_features=features,
                attribute_predictions=heads,
                subject_ids=self._subject_ids,
                config=self.config,
            )
        metrics = {"epoch": epoch, **metrics}
        write_json_atomic(self._output_dir / FAIRNESS_FOLDER / f"epoch_{epoch:03d}.json", metrics)
        self.evaluations.append(metrics)
        logger.info(
            "epoch %d: emotion accuracy %s, fairness emotion %s, gender %s, age %s",
            epoch,
            metrics["overall_accuracy"],
            metrics["emotion_fairness"],
            metrics["gender_fairness"],
            metrics["age_fairness"],
        )
        return metrics, y_pred

    def _write_summaries(self, metrics: Mapping, y_pred: np.ndarray, step: int) -> None:
        with self._writer.as_default():
            for tag, value in summary_scalars(metrics).items():
                tf.summary.scalar(tag, value, step=step)
            image = confusion_matrix_image(self._labels["emotion"], y_pred)
            tf.summary.image("confusion_matrix", image, step=step)
        self._writer.flush()


def summary_scalars(metrics: Mapping) -> dict[str, float]:
    """Return the TensorBoard tag and value of every defined scalar of ``metrics``.

    Tags: "fairness/<figure>" for the top-level figures (ratios, differences, accuracies),
    "emotion_accuracy/<emotion>" and "group_accuracy/<grouping>/<group>". Group names are
    unique within a grouping, so the tags are unique. Undefined values are left out.
    """
    scalars = {}
    for key, value in metrics.items():
        if key not in ("n", "epoch") and isinstance(value, float):
            scalars[f"{_SCALAR_PREFIX}{key}"] = value
    for emotion, value in metrics["per_emotion_accuracy"].items():
        if value is not None:
            scalars[f"emotion_accuracy/{emotion}"] = value
    for grouping, table in metrics["groups"].items():
        for group, row in table.items():
            if row["accuracy"] is not None:
                scalars[f"group_accuracy/{grouping}/{group}"] = row["accuracy"]
    return scalars
