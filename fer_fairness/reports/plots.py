"""Plots of a training run, written to ``<run_dir>/plots/`` and to TensorBoard.

``write_plots`` reads the run folder's ``history.csv`` and ``fairness/epoch_*.json`` and the
given metrics, and writes one PNG per plot. A plot whose input is absent is skipped with a
logged warning. Every PNG is written atomically.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from matplotlib.figure import Figure

from fer_fairness.reports import charts
from fer_fairness.io import write_bytes_atomic

logger = logging.getLogger(__name__)

PLOTS_FOLDER = "plots"
HISTORY_FILE = "history.csv"
FAIRNESS_FOLDER = "fairness"
# Columns of history.csv that are neither losses nor metrics.
_HISTORY_INDEX_COLUMNS = {"epoch", "phase", "learning_rate", "lr"}
# Scores drawn by the fairness-over-epochs plot, in legend order.
FAIRNESS_SCORES = ("emotion_fairness", "gender_fairness", "age_fairness", "race_fairness")
DIFFERENCE_SCORES = tuple(score.replace("fairness", "difference") for score in FAIRNESS_SCORES)
_HEATMAP_ATTRIBUTES = ("gender", "age", "race")


def _save(figure: Figure, path: Path) -> Path:
    return write_bytes_atomic(path, charts.figure_png(figure))


def _phase_boundaries(history: pd.DataFrame, epochs: np.ndarray) -> list[tuple[float, str]]:
    """Return an (x, label) pair halfway between the last epoch of a phase and the next."""
    if "phase" not in history.columns:
        return []
    phases = history["phase"].astype(str).to_numpy()
    changes = np.flatnonzero(phases[1:] != phases[:-1]) + 1
    return [((epochs[i - 1] + epochs[i]) / 2.0, f"{phases[i]} starts") for i in changes]


def _history_epochs(history: pd.DataFrame) -> np.ndarray:
    """Return the x value of each row: the "epoch" column, or the row number from 1.

    The row number is used when the column is missing or does not increase, as when each
    phase of a run counts its epochs from 0 again.
    """
    if "epoch" in history.columns:
        epochs = history["epoch"].to_numpy(dtype=np.float64)
        if np.all(np.diff(epochs) > 0):
            return epochs
    return np.arange(1, len(history) + 1, dtype=np.float64)


def plot_history(history_path: Path, output_path: Path) -> Path:
    """Plot the per-head losses and metrics of ``history.csv``, marking phase changes.

    Training columns are solid lines and ``val_`` columns dashed. Fairness columns, which the
    fairness plot shows, are left out.
    """
    history = pd.read_csv(history_path)
    epochs = _history_epochs(history)
    numeric = [
        column
        for column in history.columns
        if column not in _HISTORY_INDEX_COLUMNS
        and "fairness" not in column
        and pd.api.types.is_numeric_dtype(history[column])
    ]
    losses = {column: history[column] for column in numeric if column.endswith("loss")}
    metrics = {column: history[column] for column in numeric if not column.endswith("loss")}
    boundaries = _phase_boundaries(history, epochs)

    figure = Figure(figsize=(13, 4.5), layout="constrained")
    panels = ((losses, "loss", "Losses per head"), (metrics, "metric", "Metrics per head"))
    for axes, (series, ylabel, title) in zip(figure.subplots(1, 2), panels):
        charts.draw_lines(axes, epochs, series, title=title, ylabel=ylabel, boundaries=boundaries)
    return _save(figure, output_path)


def read_fairness_history(fairness_dir: Path) -> pd.DataFrame:
    """Read ``epoch_*.json`` into one row of fairness scores per epoch, with NaN for None."""
    rows = []
    for path in sorted(fairness_dir.glob("epoch_*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        row = {"epoch": record.get("epoch")}
        for score in FAIRNESS_SCORES + DIFFERENCE_SCORES:
            value = record.get(score)
            row[score] = np.nan if value is None else float(value)
        rows.append(row)
    return pd.DataFrame(rows).sort_values("epoch") if rows else pd.DataFrame()


def plot_fairness_over_epochs(fairness_dir: Path, output_path: Path) -> Path | None:
    """Plot the fairness ratios and differences recorded by ``FairnessReport``."""
    table = read_fairness_history(fairness_dir)
    if table.empty:
        logger.warning("skipping the fairness plot: no epoch_*.json in %s", fairness_dir)
        return None
    epochs = table["epoch"].to_numpy(dtype=np.float64)
    ratios = {score: table[score] for score in FAIRNESS_SCORES if table[score].notna().any()}
    differences = {
        score: table[score] for score in DIFFERENCE_SCORES if table[score].notna().any()
    }
    figure = Figure(figsize=(13, 4.5), layout="constrained")
    left, right = figure.subplots(1, 2)
    ratio_title = "Fairness ratio (min / max, 1 = parity)"
    charts.draw_lines(left, epochs, ratios, title=ratio_title, ylabel="ratio")
    left.set_ylim(0, 1.05)
    difference_title = "Difference (max - min, 0 = parity)"
    charts.draw_lines(right, epochs, differences, title=difference_title, ylabel="difference")
    return _save(figure, output_path)


def _group_plots(metrics: Mapping, plots_dir: Path) -> list[Path]:
    written = []
    groups = metrics.get("groups")
    if not groups:
        logger.warning("skipping the group plots: metrics has no 'groups' table")
        return written
    for grouping, table in groups.items():
        if not any(row["n"] > 0 for row in table.values()):
            logger.warning("skipping the %s plots: every %s group is empty", grouping, grouping)
            continue
        figure = charts.group_accuracy_figure(grouping, table)
        written.append(_save(figure, plots_dir / f"group_accuracy_{grouping}.png"))
        if grouping in _HEATMAP_ATTRIBUTES:
            figure = charts.emotion_heatmap_figure(grouping, table)
            written.append(_save(figure, plots_dir / f"emotion_by_{grouping}.png"))
    return written


def write_plots(
    run_dir: str | os.PathLike,
    *,
    metrics: Mapping,
    y_true: np.ndarray | None = None,
    y_pred: np.ndarray | None = None,
) -> list[Path]:
    """Write every plot whose inputs exist to ``<run_dir>/plots/``.

    Plots: ``history.png`` (from ``history.csv``), ``confusion_matrix.png`` (from ``y_true``
    and ``y_pred``), ``group_accuracy_<grouping>.png`` and ``emotion_by_<attribute>.png``
    (from ``metrics["groups"]``), and ``fairness_over_epochs.png`` (from
    ``fairness/epoch_*.json``).

    Args:
        run_dir: The run folder.
        metrics: The result of ``evaluate_predictions``.
        y_true: Optional (n,) int true emotion indices for the confusion matrix.
        y_pred: Optional (n,) int predicted emotion indices.

    Returns:
        The paths written, in the order above.
    """
    run_dir = Path(run_dir)
    plots_dir = run_dir / PLOTS_FOLDER
    written = []

    history_path = run_dir / HISTORY_FILE
    if history_path.is_file():
        written.append(plot_history(history_path, plots_dir / "history.png"))
    else:
        logger.warning("skipping the history plot: %s not found", history_path)

    if y_true is not None and y_pred is not None:
        figure = charts.confusion_matrix_figure(np.asarray(y_true), np.asarray(y_pred))
        written.append(_save(figure, plots_dir / "confusion_matrix.png"))
    else:
        logger.warning("skipping the confusion matrix: y_true and y_pred were not given")

    written.extend(_group_plots(metrics, plots_dir))

    fairness_plot = plot_fairness_over_epochs(
        run_dir / FAIRNESS_FOLDER, plots_dir / "fairness_over_epochs.png"
    )
    if fairness_plot is not None:
        written.append(fairness_plot)
    return written


def confusion_matrix_image(y_true: np.ndarray, y_pred: np.ndarray) -> tf.Tensor:
    """Return the confusion-matrix figure as a (1, height, width, 4) uint8 image tensor."""
    png = charts.figure_png(charts.confusion_matrix_figure(y_true, y_pred), dpi=80)
    return tf.expand_dims(tf.io.decode_png(png, channels=4), 0)


def log_confusion_matrix(
    writer_dir: str | os.PathLike, y_true: np.ndarray, y_pred: np.ndarray, *, step: int
) -> None:
    """Write the confusion matrix as the TensorBoard image "confusion_matrix" at ``step``.

    Opens a file writer on ``writer_dir`` for this one image. ``FairnessReport`` writes the
    same image through its own writer each time it evaluates.
    """
    writer = tf.summary.create_file_writer(str(writer_dir))
    with writer.as_default():
        tf.summary.image("confusion_matrix", confusion_matrix_image(y_true, y_pred), step=step)
    writer.close()
