"""Group counts of an augmented set, before and after augmentation: JSON and a bar chart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fer_fairness.io import write_bytes_atomic, write_json_atomic
from fer_fairness.reports.charts import figure_png

COUNTS_JSON = "group_counts.json"
COUNTS_PNG = "group_counts.png"


def write_group_counts(
    folder: Path,
    *,
    before: Mapping[str, int],
    after: Mapping[str, int],
    group_by: Sequence[str],
    settings: Mapping[str, object],
) -> tuple[Path, Path]:
    """Write ``group_counts.json`` and ``group_counts.png`` into ``folder``.

    The JSON contains ``group_by``, the ``settings`` and the training faces per group
    ``before`` and ``after`` augmentation. The group "unknown" counts faces with an unknown
    attribute, which are never copied.

    Returns:
        The paths of the JSON file and the PNG file.
    """
    names = sorted(set(before) | set(after), key=lambda name: (name == "unknown", name))
    payload = {
        "group_by": list(group_by),
        **settings,
        "before": {name: int(before.get(name, 0)) for name in names},
        "after": {name: int(after.get(name, 0)) for name in names},
    }
    json_path = write_json_atomic(folder / COUNTS_JSON, payload)
    png_path = write_bytes_atomic(folder / COUNTS_PNG, figure_png(_counts_figure(payload)))
    return json_path, png_path


def _counts_figure(payload: Mapping) -> Figure:
    names = list(payload["before"])
    positions = np.arange(len(names))
    figure = Figure(figsize=(max(6.0, 0.5 * len(names) + 2), 4.5), layout="constrained")
    axes = figure.add_subplot()
    width = 0.4
    axes.bar(positions - width / 2, [payload["before"][n] for n in names], width,
             label="before")
    axes.bar(positions + width / 2, [payload["after"][n] for n in names], width,
             label="after augmentation")
    axes.set_xticks(positions, names, rotation=45, ha="right")
    axes.set_ylabel("training faces")
    axes.set_title(f"Training faces per group ({', '.join(payload['group_by'])})")
    # Headroom above the tallest bar keeps the legend off the bars.
    tallest = max([*payload["before"].values(), *payload["after"].values(), 1])
    axes.set_ylim(0, 1.25 * tallest)
    axes.legend(loc="upper left", ncols=2)
    return figure
