"""Vectorised bootstrap resampling and percentile confidence intervals.

A resample is stored as a weight per image: the number of times the image was drawn. With
subject ids, whole subjects are drawn with replacement and each image takes the count of its
subject, so all images of a drawn subject come along. The weights of many resamples form one
(resamples, n) matrix, and the statistics in ``statistics`` evaluate all rows at once.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Literal

import numpy as np

# Upper bound on the elements of one weight matrix (8 MB of float64), so the memory of a
# bootstrap does not grow with the number of resamples.
_MAX_WEIGHT_ELEMENTS = 1_000_000

# A percentile interval over too few defined resamples misstates the spread, so an interval
# needs at least this share of resamples in which the statistic is defined.
MIN_DEFINED_SHARE = 0.5


def resampling_units(
    n: int, subject_ids: np.ndarray | None
) -> tuple[np.ndarray, int, Literal["image", "subject"]]:
    """Map each image to the unit that the bootstrap draws.

    Args:
        n: Number of images.
        subject_ids: Optional (n,) str subject id per image. "" marks an unknown subject, and
            such an image is a unit of its own.

    Returns:
        ``(units, n_units, kind)``: (n,) int unit index per image, the number of units, and
        "subject" when at least one subject id is known, else "image".
    """
    if subject_ids is None:
        return np.arange(n), n, "image"
    ids = np.asarray(subject_ids).astype(str)
    known = ids != ""
    if not known.any():
        return np.arange(n), n, "image"
    _, subject_units = np.unique(ids[known], return_inverse=True)
    n_subjects = int(subject_units.max()) + 1
    units = np.empty(n, dtype=np.int64)
    units[known] = subject_units
    units[~known] = n_subjects + np.arange(int((~known).sum()))
    return units, n_subjects + int((~known).sum()), "subject"


def iterate_resample_weights(
    units: np.ndarray, n_units: int, *, n_resamples: int, seed: int
) -> Iterator[np.ndarray]:
    """Yield (rows, n) float64 weight matrices that together contain ``n_resamples`` resamples.

    Each row draws ``n_units`` units uniformly with replacement, and each image's weight is
    the number of times its unit was drawn. The stream depends only on the arguments.
    """
    generator = np.random.default_rng(seed)
    n_images = units.shape[0]
    rows_per_chunk = max(1, _MAX_WEIGHT_ELEMENTS // max(n_images, n_units, 1))
    remaining = n_resamples
    while remaining > 0:
        rows = min(rows_per_chunk, remaining)
        draws = generator.integers(0, n_units, size=(rows, n_units))
        flat = (np.arange(rows)[:, None] * n_units + draws).ravel()
        unit_counts = np.bincount(flat, minlength=rows * n_units).reshape(rows, n_units)
        yield unit_counts[:, units].astype(np.float64)
        remaining -= rows


def percentile_interval(
    samples: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return the percentile bootstrap interval of each statistic.

    The bounds are the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the defined
    resample values, with numpy's default linear interpolation.

    Args:
        samples: (resamples, ...) statistic per resample, NaN where undefined.
        confidence: Coverage of the interval, in (0, 1).

    Returns:
        ``(low, high)`` of shape ``samples.shape[1:]``, NaN where fewer than
        ``MIN_DEFINED_SHARE`` of the resamples are defined.
    """
    tail = (1.0 - confidence) / 2.0
    with warnings.catch_warnings():
        # An all-NaN slice warns in nanquantile, and the share check below handles it.
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(samples, [tail, 1.0 - tail], axis=0)
    defined_share = (~np.isnan(samples)).mean(axis=0)
    too_few = defined_share < MIN_DEFINED_SHARE
    return np.where(too_few, np.nan, low), np.where(too_few, np.nan, high)
