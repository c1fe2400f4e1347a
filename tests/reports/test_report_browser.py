"""Render report.html in headless Chromium and check that every image loads.

Method: the test copies the report and appends a script that runs on the window's load event,
which fires after every image has loaded or failed. The script writes each image's alt text
and natural width into a <pre id="image-check"> element. Chromium's --dump-dom prints the DOM
after the load event, and a broken image has a natural width of 0. One run takes about a
second. The browser starts with an empty profile and flags that turn off its background
network traffic, and the page is a local file that references no address.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fer_fairness.reports.html import write_report

# Debian's real binary. The /usr/bin/chromium launcher adds flags from /etc/chromium.d,
# such as --enable-remote-extensions, that this check does not want.
_DEBIAN_BINARY = Path("/usr/lib/chromium/chromium")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const results = Array.from(document.images, (image) => [image.alt, image.naturalWidth]);
  const output = document.createElement("pre");
  output.id = "image-check";
  output.textContent = JSON.stringify(results);
  document.body.appendChild(output);
});
</script>"""
_TIMEOUT_SECONDS = 60


def _chromium() -> str:
    if _DEBIAN_BINARY.is_file():
        return str(_DEBIAN_BINARY)
    found = shutil.which("chromium")
    if found is None:
        message = "chromium is not installed; install it with `apt-get install -y chromium`"
        # CI installs Chromium and sets this variable, so there a missing browser fails.
        if os.environ.get("FER_FAIRNESS_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _image_check(page: Path, tmp_path: Path) -> list[list]:
    """Return [alt, naturalWidth] for each image of ``page`` as Chromium renders it."""
    checked = tmp_path / f"checked_{page.name}"
    text = page.read_text(encoding="utf-8")
    checked.write_text(text.replace("</body>", _CHECK_SCRIPT + "</body>"), encoding="utf-8")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    completed = subprocess.run(
        [_chromium(), *_FLAGS, f"--user-data-dir={profile}", "--dump-dom", checked.as_uri()],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_SECONDS,
        check=False,
    )
    match = re.search(r'<pre id="image-check">(.*?)</pre>', completed.stdout, re.DOTALL)
    stderr_tail = completed.stderr[-2000:]
    assert match is not None, f"no image check in Chromium's output; stderr: {stderr_tail}"
    return json.loads(html.unescape(match.group(1)))


def test_report_images_load_in_chromium(plotted_run, tmp_path):
    report = write_report(plotted_run["run_dir"])
    results = _image_check(report, tmp_path)
    expected = len(list((plotted_run["run_dir"] / "plots").glob("*.png")))
    assert len(results) == expected
    assert [alt for alt, width in results if width == 0] == []


def test_broken_image_detected_in_chromium(tmp_path):
    page = tmp_path / "broken.html"
    image = '<img alt="broken" src="data:image/png;base64,AAAA">'
    page.write_text(f"<!DOCTYPE html><html><body>{image}</body></html>")
    assert _image_check(page, tmp_path) == [["broken", 0]]
