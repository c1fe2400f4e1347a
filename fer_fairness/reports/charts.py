"""Matplotlib figures of a fairness evaluation.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas, never with pyplot, so
they keep no global state and need no display. Each function returns a figure, and
``figure_png`` renders it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import confusion_matrix

from fer_fairness.labels import EMOTIONS

_UNDEFINED_COLOR = "#d9d9d9"


def figure_png(figure: Figure, *, dpi: int = 110) -> bytes:
    """Render ``figure`` to PNG bytes with the Agg backend."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Return the K x K confusion matrix in the canonical emotion order, rows = true class."""
    return confusion_matrix(y_true, y_pred, labels=np.arange(len(EMOTIONS)))


def _annotate_cells(axes: Axes, image: AxesImage, values: np.ndarray, texts: np.ndarray) -> None:
    """Write ``texts`` on the cells of ``image``, white on dark colours and black elsewhere."""
    for (row, column), value in np.ndenumerate(values):
        color = "black"
        if np.isfinite(value):
            red, green, blue, _ = image.cmap(image.norm(value))
            if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5:
                color = "white"
        axes.text(
            column, row, texts[row, column], ha="center", va="center", fontsize=7, color=color
        )


def confusion_matrix_figure(y_true: np.ndarray, y_pred: np.ndarray) -> Figure:
    """Draw the confusion matrix as counts and as row-normalised rates, side by side.

    Always K x K in the canonical emotion order. A row without true samples is drawn as zeros
    and labelled n=0, so the figure contains no NaN.
    """
    counts = confusion_counts(y_true, y_pred)
    support = counts.sum(axis=1)
    rates = np.divide(
        counts, support[:, None], out=np.zeros(counts.shape), where=support[:, None] > 0
    )
    row_labels = [f"{emotion} (n={n})" for emotion, n in zip(EMOTIONS, support)]

    figure = Figure(figsize=(13, 5.5), layout="constrained")
    panels = (
        (counts, counts.astype(str), "counts", max(int(counts.max()), 1)),
        (rates, np.vectorize(lambda value: f"{value:.2f}")(rates), "row-normalised (recall)", 1.0),
    )
    for axes, (values, texts, title, vmax) in zip(figure.subplots(1, 2), panels):
        image = axes.imshow(values, cmap="Blues", vmin=0, vmax=vmax)
        _annotate_cells(axes, image, values, texts)
        axes.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
        axes.set_yticks(range(len(EMOTIONS)), row_labels)
        axes.set_xlabel("predicted emotion")
        axes.set_ylabel("true emotion")
        axes.set_title(f"Confusion matrix, {title}")
        figure.colorbar(image, ax=axes, shrink=0.8)
    return figure


def group_accuracy_figure(grouping: str, table: Mapping[str, Mapping]) -> Figure:
    """Draw the accuracy of each group as a bar with its confidence interval and n.

    Each bar is labelled with its value. A group with an undefined accuracy gets no bar and the
    label "undefined". A flagged group, smaller than the minimum group size, is hatched and
    marked "flagged" under its name.
    """
    names = list(table)
    rows = [table[name] for name in names]
    accuracies = np.array([np.nan if row["accuracy"] is None else row["accuracy"] for row in rows])
    defined = ~np.isnan(accuracies)
    errors = np.zeros((2, len(rows)))
    for index, row in enumerate(rows):
        if row.get("accuracy_ci") is not None and defined[index]:
            errors[0, index] = accuracies[index] - row["accuracy_ci"][0]
            errors[1, index] = row["accuracy_ci"][1] - accuracies[index]

    figure = Figure(figsize=(max(5.0, 0.8 * len(names) + 2), 4.5), layout="constrained")
    axes = figure.subplots()
    positions = np.arange(len(names))
    heights = np.nan_to_num(accuracies)
    bars = axes.bar(positions, heights, yerr=errors, capsize=4, color="#4c72b0")
    for bar, row, ok, top in zip(bars, rows, defined, heights + errors[1]):
        if row["flagged"]:
            bar.set_hatch("//")
            bar.set_alpha(0.5)
        label = f"{bar.get_height():.2f}" if ok else "undefined"
        center = bar.get_x() + bar.get_width() / 2
        axes.text(center, top + 0.01, label, ha="center", va="bottom", fontsize=7)
    tick_labels = [
        f"{name}\nn={row['n']}" + ("\nflagged" if row["flagged"] else "")
        for name, row in zip(names, rows)
    ]
    rotation = 45 if len(names) > 5 else 0
    axes.set_xticks(positions, tick_labels, rotation=rotation, ha="right" if rotation else "center")
    axes.set_ylim(0, 1.1)
    axes.set_ylabel("emotion accuracy")
    axes.set_title(f"Emotion accuracy by {grouping}, with confidence intervals")
    return figure


def emotion_heatmap_figure(grouping: str, table: Mapping[str, Mapping]) -> Figure:
    """Draw per-emotion accuracy for each group as an emotion x group heatmap.

    Cells whose emotion is absent from the group are undefined, so they are grey and labelled
    "n/a" instead of being drawn as 0.
    """
    names = list(table)
    accuracies = [table[name]["per_emotion_accuracy"] for name in names]
    values = np.array(
        [
            [np.nan if row[emotion] is None else row[emotion] for row in accuracies]
            for emotion in EMOTIONS
        ]
    )
    counts = np.array(
        [[table[name]["per_emotion_counts"][emotion] for name in names] for emotion in EMOTIONS]
    )
    texts = np.where(
        np.isnan(values),
        "n/a",
        np.vectorize(lambda value: f"{value:.2f}")(np.nan_to_num(values)),
    )
    texts = np.char.add(np.char.add(texts.astype(str), "\nn="), counts.astype(str))

    figure = Figure(figsize=(max(5.0, 0.9 * len(names) + 3), 5.5), layout="constrained")
    axes = figure.subplots()
    colormap = _colormap_with_undefined()
    image = axes.imshow(np.ma.masked_invalid(values), cmap=colormap, vmin=0, vmax=1, aspect="auto")
    _annotate_cells(axes, image, values, texts)
    column_labels = [f"{name}\n(n={table[name]['n']})" for name in names]
    axes.set_xticks(range(len(names)), column_labels, rotation=45 if len(names) > 5 else 0)
    axes.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    axes.set_title(f"Accuracy per emotion and {grouping} (grey: undefined)")
    figure.colorbar(image, ax=axes, shrink=0.8, label="accuracy")
    return figure


def _colormap_with_undefined() -> Colormap:
    return colormaps["viridis"].with_extremes(bad=_UNDEFINED_COLOR)


def draw_lines(
    axes: Axes,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str,
    boundaries: Sequence[tuple[float, str]] = (),
) -> None:
    """Draw one line per series against ``x`` on ``axes``, where NaN values leave gaps.

    Args:
        axes: The axes to draw on.
        x: The x values, e.g. epochs.
        series: Label to y values. Labels starting with "val_" are dashed.
        title: Axes title.
        ylabel: Label of the y axis.
        boundaries: ``(x, label)`` pairs drawn as vertical dotted lines, e.g. a phase change.
    """
    for label, values in series.items():
        style = "--" if label.startswith("val_") else "-"
        values = np.asarray(values, dtype=np.float64)
        axes.plot(x, values, style, marker="o", markersize=3, label=label)
    for position, label in boundaries:
        axes.axvline(position, color="black", linestyle=":", linewidth=1)
        axes.annotate(
            label,
            (position, 0.98),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
        )
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if series:
        axes.legend(fontsize=7)
