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

import numpy as np
import pandas as pd

from fer_fairness import config as config_lib
from fer_fairness.data.records import FaceRecord
from fer_fairness.io import atomic_path, read_json, write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

RunStatus = Literal["running", "finished", "failed"]
PHASE_NAMES: tuple[str, ...] = ("heads", "finetune")
JOB_KEYS: tuple[str, ...] = ("phase", "from_run", "evaluated_data", "evaluated_split")

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
    if candidate.name != name:
        logger.warning("run folder %s exists; writing to %s instead", root / name, candidate)
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


def mark_phase_finished(run_dir: Path) -> None:
    """Record the finished phases in ``status.json``, keeping its other fields."""
    status = read_status(run_dir)
    status["completed_phases"] = completed_phases(run_dir)
    state = status.pop("status")
    status.pop("updated", None)
    write_status(run_dir, state, **status)


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


def load_run_config(run_dir: Path) -> config_lib.RunConfig:
    """Read a run folder's resolved ``config.json`` back into a ``RunConfig``."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; RUN_DIR must be a folder written by fer-fairness train "
            "(it holds config.json and model.keras)"
        )
    values = dict(read_json(path))
    # Keys that record how the job was started rather than what it trains.
    for key in JOB_KEYS:
        values.pop(key, None)
    try:
        return config_lib.config_from_dict(values)
    except config_lib.ConfigError as error:
        raise config_lib.ConfigError(f"{path}: {error}") from error


def check_data_unchanged(run_dir: Path, records: Sequence[FaceRecord]) -> None:
    """Raise ``ValueError`` when the data listing differs from the one the run started with."""
    recorded = read_json(run_dir / "environment.json").get("data_fingerprint")
    current = data_fingerprint(records)
    if recorded != current:
        raise ValueError(
            f"the data of {run_dir} changed since the run started (fingerprint {current[:12]} "
            f"instead of {str(recorded)[:12]}); restore the original files or start a new run"
        )


def _phase_end_path(run_dir: Path, phase: str) -> Path:
    return run_dir / "checkpoints" / f"{phase}_end.npz"


def save_phase_end(model, run_dir: Path, phase: str) -> None:
    """Save the model's weights at the end of a phase, which marks the phase as finished."""
    arrays = {f"w{index}": weight for index, weight in enumerate(model.get_weights())}
    with atomic_path(_phase_end_path(run_dir, phase)) as temporary:
        np.savez(temporary, **arrays)


def load_phase_end(model, run_dir: Path, phase: str) -> None:
    """Load the weights that ``save_phase_end`` saved into the same architecture."""
    with np.load(_phase_end_path(run_dir, phase)) as saved:
        model.set_weights([saved[f"w{index}"] for index in range(len(saved.files))])


def completed_phases(run_dir: Path) -> list[str]:
    """Return the phases whose end-of-phase weights are saved, in training order."""
    return [phase for phase in PHASE_NAMES if _phase_end_path(run_dir, phase).is_file()]


def backup_epoch(run_dir: Path, phase: str) -> int | None:
    """Return the epoch that the phase's ``BackupAndRestore`` backup resumes at, or None."""
    metadata = run_dir / "backup" / phase / "training_metadata.json"
    return read_json(metadata)["epoch"] if metadata.is_file() else None


def write_history(run_dir: Path) -> None:
    """Merge the per-phase ``history_<phase>.csv`` files into ``history.csv``.

    A resumed run appends to the phase's file, so an epoch that was logged just before an
    interruption may appear twice. The last row of each epoch wins.
    """
    frames = []
    for phase in PHASE_NAMES:
        path = run_dir / f"history_{phase}.csv"
        if path.is_file() and path.stat().st_size:
            frame = pd.read_csv(path)
            frame.insert(1, "phase", phase)
            frames.append(frame)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["epoch"])
    table = table.drop_duplicates(subset="epoch", keep="last").sort_values("epoch")
    write_text_atomic(run_dir / "history.csv", table.to_csv(index=False))
