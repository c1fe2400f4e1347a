"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def london_faces_path() -> Path:
    """Return the folder of the London faces, the suite's real input.

    The folder lies in ``shared/data/london_faces`` beside the repository. The environment
    variable FER_FAIRNESS_LONDON_FACES overrides the location.
    """
    override = os.environ.get("FER_FAIRNESS_LONDON_FACES")
    if override:
        return Path(override)
    return REPO_ROOT.parent / "shared" / "data" / "london_faces"


@pytest.fixture(scope="session")
def london_faces_dir() -> Path:
    path = london_faces_path()
    if not (path / "labels.csv").is_file():
        raise FileNotFoundError(
            f"the London faces are missing: {path / 'labels.csv'} not found; "
            "set FER_FAIRNESS_LONDON_FACES to the folder that holds labels.csv and images/"
        )
    return path


@pytest.fixture(scope="session")
def ferplus_replica_path(tmp_path_factory) -> Path:
    """Write the emotion-ferplus-8 replica (random weights, seed 0) to a session folder."""
    import onnx

    from fer_fairness.convert import build_ferplus_replica

    path = tmp_path_factory.mktemp("ferplus_replica") / "emotion-ferplus-8-replica.onnx"
    onnx.save(build_ferplus_replica(seed=0), path)
    return path
