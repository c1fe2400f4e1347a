"""Tests of the plots written to a run folder and to TensorBoard."""

from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from matplotlib.container import BarContainer

from fer_fairness.reports import charts
from fer_fairness.reports.plots import _history_epochs, log_confusion_matrix, write_plots

EXPECTED_PLOTS = [
    "history.png",
    "confusion_matrix.png",
    "group_accuracy_gender.png",
    "emotion_by_gender.png",
    "group_accuracy_age.png",
    "emotion_by_age.png",
    "group_accuracy_gender_x_age.png",
    "fairness_over_epochs.png",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def written(plotted_run) -> list:
    return plotted_run["written"]


@pytest.fixture(scope="module")
def run_dir(plotted_run):
    return plotted_run["run_dir"]


def test_write_plots_names(written):
    assert [path.name for path in written] == EXPECTED_PLOTS


@pytest.mark.parametrize("name", EXPECTED_PLOTS)
def test_write_plots_file_is_png(written, run_dir, name):
    assert (run_dir / "plots" / name).read_bytes().startswith(PNG_SIGNATURE)


def test_write_plots_closes_figures(written):
    assert plt.get_fignums() == []


def test_write_plots_skips_race_without_labels(written, run_dir):
    assert not (run_dir / "plots" / "group_accuracy_race.png").exists()


def test_write_plots_missing_inputs_warn(tmp_path, metrics, caplog):
    with caplog.at_level(logging.WARNING, logger="fer_fairness.reports"):
        written = write_plots(tmp_path, metrics=metrics)
    assert "skipping the history plot" in caplog.text
    assert "skipping the confusion matrix" in caplog.text
    assert "skipping the fairness plot" in caplog.text
    assert "history.png" not in [path.name for path in written]


def test_write_plots_empty_metrics_warn(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="fer_fairness.reports"):
        written = write_plots(tmp_path, metrics={})
    assert written == []
    assert "skipping the group plots: metrics has no 'groups' table" in caplog.text


def test_confusion_counts_always_square():
    counts = charts.confusion_counts(np.array([0, 0]), np.array([0, 1]))
    assert counts.shape == (7, 7)


def test_confusion_figure_has_no_nan():
    figure = charts.confusion_matrix_figure(np.array([0, 0]), np.array([0, 1]))
    arrays = [image.get_array() for axes in figure.axes for image in axes.get_images()]
    assert len(arrays) == 2
    assert not any(np.isnan(np.asarray(array, dtype=float)).any() for array in arrays)


def test_heatmap_marks_undefined_cells(metrics):
    figure = charts.emotion_heatmap_figure("age", metrics["groups"]["age"])
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert "n/a\nn=0" in texts


def test_group_chart_marks_empty_group(metrics):
    figure = charts.group_accuracy_figure("age", metrics["groups"]["age"])
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert "undefined" in texts


def test_group_chart_draws_intervals(metrics):
    figure = charts.group_accuracy_figure("gender", metrics["groups"]["gender"])
    bars = next(c for c in figure.axes[0].containers if isinstance(c, BarContainer))
    segments = bars.errorbar.lines[2][0].get_segments()
    spans = [segment[1][1] - segment[0][1] for segment in segments]
    assert len(spans) == 2
    assert all(span > 0 for span in spans)


def test_log_confusion_matrix_writes_image(tmp_path, predictions):
    log_confusion_matrix(tmp_path, predictions["y_true"], predictions["y_pred"], step=3)
    events = []
    for path in tmp_path.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            events.extend((value.tag, event.step) for value in event.summary.value)
    assert events == [("confusion_matrix", 3)]


@pytest.mark.parametrize(
    ("column", "expected"),
    [([1, 2, 3], [1.0, 2.0, 3.0]), ([0, 1, 0], [1.0, 2.0, 3.0]), (None, [1.0, 2.0, 3.0])],
)
def test_history_epochs_table(column, expected):
    history = pd.DataFrame({"loss": [3.0, 2.0, 1.0]})
    if column is not None:
        history.insert(0, "epoch", column)
    assert _history_epochs(history).tolist() == expected


def test_history_epochs_keep_increasing_column():
    history = pd.DataFrame({"epoch": [0, 1, 5], "loss": [3.0, 2.0, 1.0]})
    assert _history_epochs(history).tolist() == [0.0, 1.0, 5.0]
