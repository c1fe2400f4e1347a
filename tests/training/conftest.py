"""Fixtures for model and training tests: the FER+ replica trunk and a few London faces."""

from __future__ import annotations

import pytest

from fer_fairness.data.readers import read_dataset


@pytest.fixture(scope="module")
def london_records(london_faces_dir):
    """Sixteen London faces, both expressions, known gender and age."""
    records = [r for r in read_dataset(london_faces_dir) if r.age_group >= 0]
    return records[:8] + records[-8:]
