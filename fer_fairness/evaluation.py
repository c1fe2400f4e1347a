"""Predict a split with a trained model and compute its fairness metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from fer_fairness.data.pipeline import label_arrays, make_dataset
from fer_fairness.data.records import FaceRecord
from fer_fairness.fairness.metrics import FairnessConfig, evaluate_predictions
from fer_fairness.io import write_json_atomic, write_text_atomic
from fer_fairness.labels import ATTRIBUTES, EMOTIONS
from fer_fairness.reports.html import write_report
from fer_fairness.reports.plots import write_plots


@dataclasses.dataclass(frozen=True)
class Predictions:
    """Model outputs for one split, aligned with its records.

    Attributes:
        probabilities: Softmax of each head's logits, ``(n, classes)`` float32, keyed by head.
        labels: True labels per head and attribute, ``UNKNOWN`` (-1) where missing.
        subject_ids: Subject id per image, "" where unknown.
    """

    probabilities: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    subject_ids: np.ndarray

    def predicted(self, head: str) -> np.ndarray:
        """Return the arg-max class of ``head`` per image."""
        return np.argmax(self.probabilities[head], axis=1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Return the row-wise softmax of ``logits`` ``(n, classes)``, computed stably in float64."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return (exponentials / exponentials.sum(axis=1, keepdims=True)).astype(np.float32)


def predict_records(
    model: keras.Model,
    records: Sequence[FaceRecord],
    *,
    batch_size: int = 64,
    image_size: int = 64,
) -> Predictions:
    """Run ``model`` once over ``records`` and collect probabilities and true labels."""
    images = make_dataset(
        records, heads=(), batch_size=batch_size, image_size=image_size, with_labels=False
    )
    outputs = model.predict(images, verbose=0)
    probabilities = {head: softmax(np.asarray(logits)) for head, logits in outputs.items()}
    labels = label_arrays(records, ("emotion", *ATTRIBUTES))
    subject_ids = np.array([record.subject_id for record in records], dtype=object)
    return Predictions(probabilities, labels, subject_ids)


def predictions_table(records: Sequence[FaceRecord], predictions: Predictions) -> pd.DataFrame:
    """Return one row per image: id, subject, true labels and predicted class of each head.

    Unknown labels stay -1. Written as ``predictions.csv``, this is what paired comparisons
    between runs on the same test split resample.
    """
    table = pd.DataFrame(
        {
            "example_id": [record.example_id for record in records],
            "subject_id": predictions.subject_ids.astype(str),
        }
    )
    for name, values in predictions.labels.items():
        table[f"true_{name}"] = values
    for head in predictions.probabilities:
        table[f"predicted_{head}"] = predictions.predicted(head)
    emotion = predictions.probabilities["emotion"]
    for index, name in enumerate(EMOTIONS):
        table[f"probability_{name}"] = emotion[:, index]
    return table


def compute_metrics(predictions: Predictions, *, config: FairnessConfig) -> dict:
    """Compute the metrics.json payload of one split from its predictions."""
    attribute_predictions = {
        head: predictions.predicted(head) for head in ATTRIBUTES if head in predictions.probabilities
    }
    subject_ids = predictions.subject_ids
    has_subjects = bool(np.all(subject_ids != ""))
    return evaluate_predictions(
        predictions.labels["emotion"],
        predictions.predicted("emotion"),
        probabilities=predictions.probabilities["emotion"],
        sensitive_features={name: predictions.labels[name] for name in ATTRIBUTES},
        attribute_predictions=attribute_predictions,
        subject_ids=subject_ids.astype(str) if has_subjects else None,
        config=config,
    )


def write_evaluation(
    output_dir: Path,
    records: Sequence[FaceRecord],
    predictions: Predictions,
    metrics: dict,
) -> None:
    """Write ``predictions.csv``, ``metrics.json``, ``plots/`` and ``report.html``."""
    table = predictions_table(records, predictions)
    write_text_atomic(output_dir / "predictions.csv", table.to_csv(index=False))
    write_json_atomic(output_dir / "metrics.json", metrics)
    write_plots(
        output_dir,
        metrics=metrics,
        y_true=predictions.labels["emotion"],
        y_pred=predictions.predicted("emotion"),
    )
    write_report(output_dir)
