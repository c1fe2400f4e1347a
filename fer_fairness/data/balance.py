"""Group-balanced sampling of the training split with ``tf.data.Dataset.sample_from_datasets``.

The training records are divided into one stream per demographic group (for example
``female/20-39`` for ``group_by=("gender", "age")``). Each stream is decoded, cached, shuffled
and repeated, and ``sample_from_datasets`` draws the next example from group ``g`` with
probability ``P(g)``:

- ``uniform``: ``P(g) = 1 / G`` over the ``G`` groups, the same as weighting each example by
  the inverse of its group's size.
- ``inverse_frequency``: ``P(g) = (1 / n_g) / sum_h (1 / n_h)``, so smaller groups are drawn
  more often than larger ones.
- ``given``: ``P(g) = w_g / sum_h w_h`` from a weight per group name.

A record whose value of any ``group_by`` attribute is unknown belongs to no group, because an
unknown value is missing data. Those records form one more stream, drawn with their share of
the split, and the groups share the rest.

The result is infinite, so an epoch is ``steps_per_epoch(len(records), batch_size)`` batches:
as many draws as the split has records. Validation and test data are never resampled.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from fer_fairness import labels
from fer_fairness.config import SAMPLING_MODES
from fer_fairness.data.pipeline import AUTOTUNE, augment_elements, element_dataset, label_arrays
from fer_fairness.data.records import FaceRecord

logger = logging.getLogger(__name__)

GROUP_ATTRIBUTES: tuple[str, ...] = tuple(labels.HEAD_CLASSES)
# Name of the stream of records with an unknown group attribute.
UNKNOWN_GROUP = ""
GROUP_SEPARATOR = "/"


@dataclasses.dataclass(frozen=True)
class BalancedDataset:
    """A group-balanced training dataset and what ``fit`` needs to run it.

    Attributes:
        dataset: Infinite batched dataset of ``(image, targets, sample_weights)``.
        steps_per_epoch: Batches per epoch, ``ceil(records / batch_size)``; pass it to
            ``fit``.
        counts: Records per group name; ``UNKNOWN_GROUP`` counts records with an unknown
            group attribute.
        probabilities: Probability of drawing the next example from each group.
    """

    dataset: tf.data.Dataset
    steps_per_epoch: int
    counts: dict[str, int]
    probabilities: dict[str, float]


def steps_per_epoch(examples: int, batch_size: int) -> int:
    """Return the batches that cover ``examples`` once: ``ceil(examples / batch_size)``."""
    return math.ceil(examples / batch_size)


def group_names(values: Mapping[str, np.ndarray], group_by: Sequence[str]) -> np.ndarray:
    """Return each example's group name, such as ``female/20-39``.

    Args:
        values: Label arrays keyed by head name (emotion, gender, age, race), ``UNKNOWN``
            where missing.
        group_by: The heads whose values form the group, in name order.

    Returns:
        A string array; ``UNKNOWN_GROUP`` where any ``group_by`` value is unknown.
    """
    _check_group_by(group_by)
    count = len(next(iter(values.values()))) if values else 0
    names = np.full(count, UNKNOWN_GROUP, dtype=object)
    for index in range(count):
        parts = [int(values[head][index]) for head in group_by]
        if labels.UNKNOWN not in parts:
            names[index] = GROUP_SEPARATOR.join(
                labels.HEAD_CLASSES[head][part] for head, part in zip(group_by, parts)
            )
    return names


def group_probabilities(
    counts: Mapping[str, int],
    *,
    sampling: str,
    group_weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Return the probability of drawing from each group; see the module docstring.

    Raises:
        ValueError: for an unknown ``sampling``, no known group, or ``given`` weights that
            miss a group, name a group that does not occur, or sum to 0.
    """
    if sampling not in SAMPLING_MODES[1:]:
        raise ValueError(f"sampling={sampling!r} is invalid; expected one of "
                         f"{', '.join(SAMPLING_MODES[1:])}")
    known = {name: count for name, count in counts.items() if name != UNKNOWN_GROUP and count}
    if not known:
        raise ValueError("no training record has a known value of every group_by attribute, "
                         "so there is no group to balance; choose other group_by attributes")
    if sampling == "uniform":
        raw = {name: 1.0 for name in known}
    elif sampling == "inverse_frequency":
        raw = {name: 1.0 / count for name, count in known.items()}
    else:
        raw = _given_weights(known, group_weights or {})
    total = sum(counts.values())
    unknown_share = counts.get(UNKNOWN_GROUP, 0) / total
    scale = (1.0 - unknown_share) / sum(raw.values())
    probabilities = {name: weight * scale for name, weight in raw.items()}
    if unknown_share:
        probabilities[UNKNOWN_GROUP] = unknown_share
    return probabilities


def sample_groups(
    streams: Mapping[str, tf.data.Dataset],
    counts: Mapping[str, int],
    *,
    sampling: str,
    group_weights: Mapping[str, float] | None = None,
    seed: int = 0,
    shuffle: bool = True,
) -> tf.data.Dataset:
    """Cache, shuffle and repeat each group's stream, then draw from them by probability.

    Args:
        streams: Unbatched, uncached elements of each group, keyed by group name.
        counts: Elements per group, for the probabilities and the shuffle buffers.
        sampling, group_weights: As ``group_probabilities``.
        seed: Seed of the shuffles and of the draws; the same seed gives the same sequence.
        shuffle: Shuffle within each group every pass.

    Returns:
        An infinite, unbatched dataset.
    """
    probabilities = group_probabilities(counts, sampling=sampling, group_weights=group_weights)
    names = [name for name in sorted(streams) if probabilities.get(name, 0.0) > 0]
    repeated = []
    for offset, name in enumerate(names):
        stream = streams[name].cache()
        if shuffle:
            stream = stream.shuffle(counts[name], seed=seed + offset,
                                    reshuffle_each_iteration=True)
        repeated.append(stream.repeat())
    logger.info("%s sampling over %d groups: %s", sampling, len(names), ", ".join(
        f"{name or 'unknown'} n={counts[name]} p={probabilities[name]:.3f}" for name in names))
    return tf.data.Dataset.sample_from_datasets(
        repeated, weights=[probabilities[name] for name in names], seed=seed
    )


def make_balanced_dataset(
    records: Sequence[FaceRecord],
    *,
    heads: Sequence[str],
    batch_size: int,
    group_by: Sequence[str],
    sampling: str,
    group_weights: Mapping[str, float] | None = None,
    image_size: int = 64,
    seed: int = 0,
    random_augmentation: bool = False,
    with_ids: bool = False,
) -> BalancedDataset:
    """Build the group-balanced training dataset of ``records``.

    The order is decode and resize, cache (per group), shuffle, group sampling, random
    augmentation, batch and prefetch, as in ``pipeline.make_dataset``.

    Args:
        records: The training split.
        heads, batch_size, image_size, seed, random_augmentation, with_ids: As
            ``pipeline.make_dataset``.
        group_by: Heads whose values form the groups (emotion, gender, age, race).
        sampling: ``uniform``, ``inverse_frequency`` or ``given``.
        group_weights: Weight per group name, for ``given``.

    Raises:
        ValueError: for an empty ``records``, an invalid ``group_by`` or sampling setting.
    """
    if not records:
        raise ValueError("make_balanced_dataset got no records; check the split sizes")
    groups = group_names(label_arrays(records, group_by), group_by)
    counts = dict(sorted(Counter(groups.tolist()).items()))
    streams = {
        name: element_dataset(
            [record for record, group in zip(records, groups) if group == name],
            heads=heads, image_size=image_size, with_ids=with_ids,
        )
        for name in counts
    }
    dataset = sample_groups(
        streams, counts, sampling=sampling, group_weights=group_weights, seed=seed
    )
    if random_augmentation:
        dataset = augment_elements(dataset, seed=seed)
    return BalancedDataset(
        dataset=dataset.batch(batch_size).prefetch(AUTOTUNE),
        steps_per_epoch=steps_per_epoch(len(records), batch_size),
        counts=counts,
        probabilities=group_probabilities(counts, sampling=sampling, group_weights=group_weights),
    )


def _check_group_by(group_by: Sequence[str]) -> None:
    invalid = [name for name in group_by if name not in GROUP_ATTRIBUTES]
    if not group_by or invalid or len(set(group_by)) != len(group_by):
        raise ValueError(f"group_by={list(group_by)} is invalid; expected distinct names from "
                         f"{', '.join(GROUP_ATTRIBUTES)}")


def _given_weights(known: Mapping[str, int], weights: Mapping[str, float]) -> dict[str, float]:
    missing = sorted(set(known) - set(weights))
    extra = sorted(set(weights) - set(known))
    if missing or extra:
        raise ValueError(
            f"group_weights must name every group of the training split exactly: missing "
            f"{missing}, not in the data {extra}; the groups are {sorted(known)}"
        )
    raw = {name: float(weights[name]) for name in known}
    if any(not math.isfinite(weight) or weight < 0 for weight in raw.values()):
        raise ValueError(f"group_weights={dict(weights)} is invalid; expected numbers >= 0")
    if sum(raw.values()) <= 0:
        raise ValueError(f"group_weights={dict(weights)} sum to 0; give a group a weight > 0")
    return raw
