"""Self-contained HTML report of a run, written with the standard library.

The page embeds its plots as base64 ``data:`` URIs and its style inline, and it references no
other file or address, so it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from fer_fairness.labels import EMOTIONS
from fer_fairness.io import write_text_atomic

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
# Plots appear in this order, followed by the other PNGs of plots/ in name order.
_PLOT_ORDER = (
    "history",
    "confusion_matrix",
    "fairness_over_epochs",
    "group_accuracy",
    "emotion_by",
)
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f0f0; }
.undefined { color: #999; font-style: italic; }
.flagged { background: #fff4d6; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
"""
# Parity value and range of each kind of headline figure, shown beside it.
_MEANINGS = (
    ("_fairness", "min / max over groups, in [0, 1], 1 = parity"),
    ("_difference", "max - min over groups, 0 = parity"),
    ("calibration_error", "expected calibration error, in [0, 1], 0 = calibrated"),
    ("_accuracy", "in [0, 1]"),
    ("macro_f1", "in [0, 1]"),
)


def _format(value: object) -> str:
    if value is None:
        return '<span class="undefined">undefined</span>'
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _interval(bounds: list[float] | None) -> str:
    if bounds is None:
        return _format(None)
    return f"[{bounds[0]:.4f}, {bounds[1]:.4f}]"


def _table(header: Iterable[str], rows: Iterable[tuple[list[str], str]]) -> str:
    """Return an HTML table. Each row is (cells already escaped, row CSS class)."""
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = []
    for cells, css_class in rows:
        attribute = f' class="{css_class}"' if css_class else ""
        body.append(f"<tr{attribute}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _flatten(config: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    items = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.extend(_flatten(value, f"{name}."))
        else:
            items.append((name, value))
    return items


def _config_section(config: Mapping | None) -> str:
    if config is None:
        return '<h2>Run config</h2><p class="undefined">config.json not found</p>'
    rows = [
        ([html.escape(name), html.escape(json.dumps(value))], "")
        for name, value in _flatten(config)
    ]
    return "<h2>Run config</h2>" + _table(("setting", "value"), rows)


def _meaning(key: str) -> str:
    for suffix, meaning in _MEANINGS:
        if key.endswith(suffix):
            return meaning
    return ""


def _headline_section(metrics: Mapping) -> str:
    intervals = metrics.get("confidence_intervals") or {}
    bootstrap = metrics.get("bootstrap")
    rows = [([html.escape("n (images)"), str(metrics.get("n")), "", ""], "")]
    for key, value in metrics.items():
        if key == "n" or not (value is None or isinstance(value, float)):
            continue
        interval = _interval(intervals.get(key)) if bootstrap else "not computed"
        rows.append(([html.escape(key), _format(value), interval, html.escape(_meaning(key))], ""))
    if bootstrap:
        note = (
            f"{bootstrap['confidence']:.0%} {bootstrap['method']} bootstrap intervals over "
            f"{bootstrap['n_resamples']} resamples of {bootstrap['n_units']} {bootstrap['unit']}s."
        )
    else:
        note = "Confidence intervals were not computed (n_bootstrap = 0)."
    header = ("metric", "value", "confidence interval", "range and parity")
    return f"<h2>Headline figures</h2><p>{html.escape(note)}</p>" + _table(header, rows)


def _plot_rank(path: Path) -> tuple[int, str]:
    for rank, prefix in enumerate(_PLOT_ORDER):
        if path.stem.startswith(prefix):
            return rank, path.stem
    return len(_PLOT_ORDER), path.stem


def _plots_section(plots_dir: Path) -> str:
    paths = sorted(plots_dir.glob("*.png"), key=_plot_rank)
    if not paths:
        logger.warning("report has no plots: no PNG files in %s", plots_dir)
        return '<h2>Plots</h2><p class="undefined">no plots found</p>'
    figures = []
    for path in paths:
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        title = html.escape(path.stem.replace("_", " "))
        figures.append(
            f'<figure><img src="data:image/png;base64,{encoded}" alt="{title}">'
            f"<figcaption>{title}</figcaption></figure>"
        )
    return "<h2>Plots</h2>" + "".join(figures)


def _group_rows(table: Mapping[str, Mapping]) -> list[tuple[list[str], str]]:
    rows = []
    for group, row in table.items():
        cells = [
            html.escape(group),
            str(row["n"]),
            "yes" if row["flagged"] else "no",
            _format(row["accuracy"]),
            _interval(row.get("accuracy_ci")),
            _format(row["balanced_accuracy"]),
            _format(row["f1"]),
            _format(row.get("calibration_error")),
        ]
        rows.append((cells, "flagged" if row["flagged"] else ""))
    return rows


def _groups_section(metrics: Mapping) -> str:
    parts = ["<h2>Groups</h2>"]
    config = metrics.get("fairness_config") or {}
    parts.append(
        "<p>Flagged groups have fewer than "
        f"{html.escape(str(config.get('min_group_size', 'the minimum number of')))} images and are "
        "left out of ratios and differences. Undefined figures have no samples to compute them "
        "from.</p>"
    )
    header = (
        "group",
        "n",
        "flagged",
        "accuracy",
        "accuracy CI",
        "balanced accuracy",
        "macro F1",
        "calibration error",
    )
    for grouping, table in (metrics.get("groups") or {}).items():
        parts.append(f"<h3>{html.escape(grouping)}</h3>" + _table(header, _group_rows(table)))
    odds = metrics.get("equalized_odds_difference") or {}
    if odds:
        rows = [
            ([html.escape(grouping)] + [_format(values.get(emotion)) for emotion in EMOTIONS], "")
            for grouping, values in odds.items()
        ]
        parts.append(
            "<h3>Equalized-odds difference per emotion (one-vs-rest; 0 = parity)</h3>"
            + _table(("grouping", *EMOTIONS), rows)
        )
    return "".join(parts)


def _read_json(path: Path) -> Mapping | None:
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_report(run_dir: str | os.PathLike) -> Path:
    """Write ``<run_dir>/report.html`` from the run's config, metrics and plots.

    Args:
        run_dir: Run folder with ``metrics.json`` (the result of ``evaluate_predictions``),
            and optionally ``config.json`` and ``plots/*.png``.

    Returns:
        The path of the report.

    Raises:
        FileNotFoundError: if ``metrics.json`` is missing.
    """
    run_dir = Path(run_dir)
    metrics = _read_json(run_dir / "metrics.json")
    if metrics is None:
        raise FileNotFoundError(
            f"{run_dir / 'metrics.json'} not found; write_report needs metrics.json, and uses "
            f"config.json and plots/*.png when they exist in {run_dir}"
        )
    config = _read_json(run_dir / "config.json")
    if config is None:
        logger.warning("report without run config: %s not found", run_dir / "config.json")
    title = html.escape(f"Fairness report: {run_dir.resolve().name}")
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
        + _config_section(config)
        + _headline_section(metrics)
        + _plots_section(run_dir / "plots")
        + _groups_section(metrics)
        + "</body></html>\n"
    )
    return write_text_atomic(run_dir / REPORT_FILE, page)
