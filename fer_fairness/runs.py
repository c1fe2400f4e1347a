"""Run folders: creation without overwriting, status, environment and data fingerprint."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import logging
import platform
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from fer_fairness.data.records import FaceRecord
from fer_fairness.io import read_json, write_json_atomic

logger = logging.getLogger(__name__)

RunStatus = Literal["running", "finished", "failed"]

# Distributions whose versions decide a run's numbers, recorded in environment.json.
RECORDED_PACKAGES: tuple[str, ...] = (
    "fer-fairness",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "numpy",
    "onnx",
    "onnxruntime",
    "tf2onnx",
    "pandas",
    "scikit-learn",
    "tensorflow-datasets",
)


def create_run_dir(output_dir: str | Path, name: str, *, overwrite: bool = False) -> Path:
    """Create ``output_dir/name`` and return it, never reusing an existing folder silently.

    When the folder exists, ``overwrite`` deletes it first; otherwise the name gets the first
    free suffix ``-2``, ``-3``, and so on.
    """
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    candidate = root / name
    if candidate.exists() and overwrite:
        logger.warning("deleting the existing run folder %s (--overwrite)", candidate)
        shutil.rmtree(candidate)
    suffix = 2
    while candidate.exists():
        candidate = root / f"{name}-{suffix}"
        suffix += 1
    candidate.mkdir()
    return candidate


def default_run_name(data_path: str) -> str:
    """Return ``<data folder name>-<UTC time>``, e.g. ``london_faces-20261204-201500``."""
    stem = Path(data_path).resolve().name or "run"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stem}-{stamp}"


def write_status(run_dir: Path, status: RunStatus, *, reason: str = "", **extra: Any) -> None:
    """Write ``status.json``: the run's state, the time and, for a failure, the reason."""
    payload = {
        "status": status,
        "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **({"reason": reason} if reason else {}),
        **extra,
    }
    write_json_atomic(run_dir / "status.json", payload)


def read_status(run_dir: Path) -> dict[str, Any]:
    """Read ``status.json`` of a run folder."""
    return read_json(run_dir / "status.json")


def package_versions(names: Sequence[str] = RECORDED_PACKAGES) -> dict[str, str]:
    """Return the installed version of each distribution that is installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def data_fingerprint(records: Sequence[FaceRecord]) -> str:
    """Return a SHA-256 over the sorted listing: id, labels, split, file size and mtime.

    Two runs with the same fingerprint saw the same files with the same labels and splits.
    """
    digest = hashlib.sha256()
    for record in sorted(records, key=lambda item: item.example_id):
        stat = Path(record.image_path).stat()
        fields = (
            record.example_id,
            record.emotion,
            record.gender,
            record.age_group,
            record.race,
            record.subject_id,
            record.split,
            stat.st_size,
            int(stat.st_mtime),
        )
        digest.update("\t".join(map(str, fields)).encode() + b"\n")
    return digest.hexdigest()


def write_environment(run_dir: Path, *, seed: int, records: Sequence[FaceRecord]) -> None:
    """Write ``environment.json``: package versions, platform, seed and data fingerprint."""
    payload = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": package_versions(),
        "seed": seed,
        "data_fingerprint": data_fingerprint(records),
        "num_images": len(records),
    }
    write_json_atomic(run_dir / "environment.json", payload)
