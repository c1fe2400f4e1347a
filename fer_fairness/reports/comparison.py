"""The files of a method comparison: ``comparison.json``, ``comparison.md`` and ``comparison.png``.

``write_comparison`` takes the dict of ``comparison_stats.summarize_comparison`` (with the
``settings`` that ``compare.run_comparison`` adds) and writes each file atomically. The plot is
built with ``matplotlib.figure.Figure`` and the Agg canvas, never with pyplot.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fer_fairness.io import write_bytes_atomic, write_json_atomic, write_text_atomic
from fer_fairness.reports.charts import figure_png

JSON_FILE = "comparison.json"
MARKDOWN_FILE = "comparison.md"
PLOT_FILE = "comparison.png"
_PLOT_COLUMNS = 4


def write_comparison(output_dir: Path, summary: dict) -> dict[str, Path]:
    """Write the three comparison files into ``output_dir`` and return their paths."""
    return {
        "json": write_json_atomic(output_dir / JSON_FILE, summary),
        "markdown": write_text_atomic(output_dir / MARKDOWN_FILE, comparison_markdown(summary)),
        "plot": write_bytes_atomic(output_dir / PLOT_FILE, figure_png(comparison_figure(summary))),
    }


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _interval(entry: dict) -> str:
    if entry["mean"] is None:
        return "n/a"
    if entry["low"] is None:
        return f"{entry['mean']:.3f}"
    return f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def _p_value(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3g}"


def comparison_markdown(summary: dict) -> str:
    """Return the Markdown report: settings, per-arm table, differences and group gaps."""
    settings = summary.get("settings", {})
    confidence = summary["confidence"]
    level = summary["significance_level"]
    seeds = summary["seeds"]
    lines = ["# Method comparison", ""]

    if settings:
        lines += [
            f"- data: `{settings['data']}`",
            f"- trunk: `{settings['trunk']}`",
            f"- seeds: {', '.join(str(seed) for seed in seeds)}",
            f"- epochs: {settings['heads_epochs']} (heads) + {settings['finetune_epochs']} "
            f"(fine-tuning); learning rates {settings['heads_learning_rate']:g} and "
            f"{settings['finetune_learning_rate']:g}; batch size {settings['batch_size']}",
            f"- minimum group size of the fairness ratios: {settings['min_group_size']}",
        ]

    bootstrap = summary["bootstrap"]
    if bootstrap:
        lines.append(f"- bootstrap: {bootstrap['n_resamples']} resamples of "
                     f"{bootstrap['n_units']} test {bootstrap['unit']}s, shared by all arms")

    lines += ["", f"## Per arm: mean over {len(seeds)} seeds [{confidence:.0%} t-interval]", ""]
    lines += _arm_table(summary, settings)

    lines += ["", f"## Differences against {summary['reference']}", "",
              f"Significant means p < {level:g}. The t-test pairs the seeds; the bootstrap "
              "pairs the test images of each seed and pools the seeds.", "",
              "| arm | metric | difference | t-test p | bootstrap CI | bootstrap p |",
              "| --- | --- | ---: | ---: | --- | ---: |"]
    for arm, metrics in summary["differences"].items():
        for metric, entry in metrics.items():
            interval = "n/a"
            if entry["bootstrap_low"] is not None:
                interval = f"[{entry['bootstrap_low']:+.3f}, {entry['bootstrap_high']:+.3f}]"
            difference = "n/a" if entry["mean_difference"] is None else (
                f"{entry['mean_difference']:+.3f}")
            lines.append(f"| {arm} | {metric} | {difference} | {_p_value(entry['t_test_p'])} | "
                         f"{interval} | {_p_value(entry['bootstrap_p'])} |")
    lines.append("")

    for metrics in summary["differences"].values():
        lines += [f"- {entry['sentence']}" for entry in metrics.values()]

    lines += ["", "## Disadvantaged groups", ""]
    for arm, attributes in summary["group_gaps"].items():
        lines += [f"- {entry['sentence']}" for entry in attributes.values()]
    return "\n".join(lines) + "\n"


def _arm_table(summary: dict, settings: dict) -> list[str]:
    metrics = summary["metrics"]
    descriptions = {name: arm.get("description", "")
                    for name, arm in settings.get("arms", {}).items()}
    lines = ["| arm | " + " | ".join(metrics) + " |",
             "| --- | " + " | ".join("---" for _ in metrics) + " |"]
    for arm in summary["arms"]:
        cells = [_interval(summary["summary"][arm][metric]) for metric in metrics]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    described = [f"- {name}: {text}" for name, text in descriptions.items() if text]
    return lines + ([""] + described if described else [])


def comparison_figure(summary: dict) -> Figure:
    """Draw one panel per metric: each arm's mean with its t-interval and per-seed values.

    An asterisk above an arm marks a difference from the reference arm that is significant by
    the paired t-test or the paired bootstrap.
    """
    metrics, arms = summary["metrics"], summary["arms"]
    rows = math.ceil(len(metrics) / _PLOT_COLUMNS)
    figure = Figure(figsize=(3.2 * _PLOT_COLUMNS, 3.0 * rows), layout="constrained")
    axes_grid = figure.subplots(rows, _PLOT_COLUMNS, squeeze=False)
    positions = np.arange(len(arms))
    for index, axes in enumerate(axes_grid.flat):
        if index >= len(metrics):
            axes.set_visible(False)
            continue
        metric = metrics[index]
        for position, arm in zip(positions, arms):
            entry = summary["summary"][arm][metric]
            values = [v for v in summary["per_run"][arm][metric] if v is not None]
            axes.scatter([position] * len(values), values, color="0.6", s=10, zorder=3)
            if entry["mean"] is None:
                continue
            error = None
            if entry["low"] is not None:
                error = [[entry["mean"] - entry["low"]], [entry["high"] - entry["mean"]]]
            color = "tab:gray" if arm == summary["reference"] else "tab:blue"
            axes.bar(position, entry["mean"], color=color, alpha=0.7)
            axes.errorbar(position, entry["mean"], yerr=error, color="black", capsize=3)
            difference = summary["differences"].get(arm, {}).get(metric)
            if difference and (difference["significant_t_test"]
                               or difference["significant_bootstrap"]):
                axes.text(position, 1.02, "*", ha="center", fontsize=14)
        if all(summary["summary"][arm][metric]["mean"] is None for arm in arms):
            axes.text(0.5, 0.5, "undefined: fewer than two\ngroups of the minimum size",
                      ha="center", va="center", fontsize=8, transform=axes.transAxes)
        axes.set_title(metric, fontsize=9)
        axes.set_ylim(0, 1.1)
        axes.set_xticks(positions, arms, rotation=30, ha="right", fontsize=7)
    figure.suptitle(f"Mean over {len(summary['seeds'])} seeds, {summary['confidence']:.0%} "
                    f"t-interval; * differs from {summary['reference']}", fontsize=9)
    return figure
