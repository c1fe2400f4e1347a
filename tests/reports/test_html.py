"""Tests of the self-contained HTML report."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest

from fer_fairness.io import write_json_atomic
from fer_fairness.reports.html import write_report


class _Elements(HTMLParser):
    """Collect the tags, attributes and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(plotted_run) -> dict:
    path = write_report(plotted_run["run_dir"])
    page = path.read_text(encoding="utf-8")
    elements = _Elements()
    elements.feed(page)
    return {"path": path, "page": page, "elements": elements, "run_dir": plotted_run["run_dir"]}


def test_report_written_in_run_folder(report):
    assert report["path"] == report["run_dir"] / "report.html"


def test_report_embeds_every_plot(report):
    images = [attrs for tag, attrs in report["elements"].tags if tag == "img"]
    assert len(images) == len(list((report["run_dir"] / "plots").glob("*.png")))


def test_report_images_are_png_data_uris(report):
    sources = [attrs["src"] for tag, attrs in report["elements"].tags if tag == "img"]
    prefix = "data:image/png;base64,"
    assert all(source.startswith(prefix) for source in sources)
    assert all(base64.b64decode(source[len(prefix):]).startswith(b"\x89PNG") for source in sources)


def test_report_references_no_other_resource(report):
    references = [
        value
        for _, attrs in report["elements"].tags
        for name, value in attrs.items()
        if name in ("src", "href") and value is not None
    ]
    assert all(value.startswith("data:") for value in references)
    assert re.search(r"https?://", report["page"]) is None


def test_report_has_config(report):
    assert "model.trunk" in report["elements"].text


@pytest.mark.parametrize(
    "metric", ["overall_accuracy", "gender_fairness", "age_difference", "gender_x_age_fairness"]
)
def test_report_headline_row(report, metric):
    assert metric in report["elements"].text


def test_report_headline_interval(report, metrics):
    low, high = metrics["confidence_intervals"]["overall_accuracy"]
    assert f"[{low:.4f}, {high:.4f}]" in report["page"]


def test_report_group_table_has_n(report, metrics):
    row = metrics["groups"]["age"]["20-39"]
    assert f"<td>20-39</td><td>{row['n']}</td>" in report["page"]


def test_report_marks_undefined(report):
    undefined = '<span class="undefined">undefined</span>'
    assert f"<td>70+</td><td>0</td><td>yes</td><td>{undefined}</td>" in report["page"]


def test_report_missing_metrics_raises(tmp_path):
    message = "metrics.json not found; write_report needs metrics.json"
    with pytest.raises(FileNotFoundError, match=message):
        write_report(tmp_path)


def test_report_without_config_or_plots(tmp_path, metrics):
    write_json_atomic(tmp_path / "metrics.json", metrics)
    page = write_report(tmp_path).read_text()
    assert "config.json not found" in page
    assert "no plots found" in page
