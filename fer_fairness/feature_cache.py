"""Phase 1 on cached trunk features: run the frozen trunk once per image, then train the heads.

In phase 1 the trunk is frozen and runs in inference mode, so an image's ``features`` are the
same in every epoch. This module computes them once for every training and validation image
and trains the heads on them. The heads-only model calls the same head layer objects as the
full model, so the trained weights are the full model's weights.

The cached batches are those of the uncached pipeline: the same seeded shuffle (or the same
group-balanced sampling) over record positions, in the same order. With the same seed, the
heads therefore see the same features in the same batches, and end with the same weights up to
float rounding.

Caching is the default (``training.cache_features = "auto"``) unless ``data.random_augmentation``
is set, because augmented images differ in every epoch and so do their features. Then phase 1
runs the trunk on every batch.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fer_fairness.config import RunConfig
from fer_fairness.distribute import shard_by_data
from fer_fairness.data.balance import group_names, sample_groups, steps_per_epoch
from fer_fairness.data.pipeline import AUTOTUNE, label_arrays, make_dataset, targets_and_weights
from fer_fairness.data.prepare import PreparedData
from fer_fairness.data.records import FaceRecord

logger = logging.getLogger(__name__)

CACHE_FOLDER = "feature_cache"
HEADS_MODEL_NAME = "fer_heads"
FEATURES_INPUT = "features"
# Images per trunk call when computing features, at least. Larger batches use the matrix units
# better, and in inference mode the features do not depend on the batch.
MIN_FEATURE_BATCH = 256


def resolve_cache_mode(config: RunConfig) -> str:
    """Return where phase 1 caches features: ``memory``, ``disk`` or ``off``.

    ``auto`` is ``memory``, or ``off`` with random augmentation. The configuration already
    rejects ``memory`` and ``disk`` together with random augmentation.
    """
    requested = config.training.cache_features
    if requested != "auto":
        return requested
    if config.data.random_augmentation:
        logger.info(
            "phase 1 runs the trunk on every batch: random augmentation changes the images in "
            "every epoch, so their features cannot be cached"
        )
        return "off"
    return "memory"


def compute_features(
    extractor: keras.Model,
    records: Sequence[FaceRecord],
    *,
    batch_size: int,
    image_size: int = 64,
    path: Path | None = None,
) -> np.ndarray:
    """Run the trunk in inference mode over ``records`` and return their flattened features.

    Args:
        extractor: The trunk cut at ``features`` (see ``model.feature_extractor``).
        records: The images, in the order of the returned rows.
        batch_size: Images per trunk call.
        image_size: Model input side in pixels.
        path: Write the rows into this ``.npy`` file and return it memory-mapped read-only;
            None keeps them in memory.

    Returns:
        float32 ``(len(records), features)``, each row the trunk's ``features`` output
        flattened in row-major order, as the model's ``Flatten`` layer does.
    """
    size = int(np.prod(extractor.output_shape[1:]))
    images = make_dataset(
        records, heads=(), batch_size=batch_size, image_size=image_size, with_labels=False
    )

    @tf.function(reduce_retracing=True)
    def forward(batch):
        features = extractor(batch, training=False)
        return tf.reshape(tf.cast(features, tf.float32), (-1, size))

    if path is None:
        return np.concatenate([forward(batch).numpy() for batch in images])
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(records), size))
    start = 0
    for batch in images:
        values = forward(batch).numpy()
        rows[start : start + len(values)] = values
        start += len(values)
    rows.flush()
    del rows
    return np.load(path, mmap_mode="r")


def heads_model(head_layers: Mapping[str, keras.layers.Layer], feature_size: int) -> keras.Model:
    """Return a model from float32 ``(batch, feature_size)`` features to the heads' logits.

    It calls the given layer objects, so training it trains the full model's heads.
    """
    features = keras.Input((feature_size,), name=FEATURES_INPUT, dtype="float32")
    outputs = {name: layer(features) for name, layer in head_layers.items()}
    return keras.Model(features, outputs, name=HEADS_MODEL_NAME)


def training_indices(records: Sequence[FaceRecord], config: RunConfig) -> tf.data.Dataset:
    """Return the unbatched stream of record positions in the uncached training order.

    ``data.sampling = "none"`` shuffles ``range(len(records))`` with the run's seed and a
    full-size buffer, as ``pipeline.make_dataset`` shuffles the decoded images. Group-balanced
    sampling passes one position stream per group to ``balance.sample_groups``, as
    ``balance.make_balanced_dataset`` does with the images, and is infinite.
    """
    seed = config.training.seed
    if config.data.sampling == "none":
        positions = tf.data.Dataset.range(len(records))
        return positions.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    group_by = config.data.group_by
    groups = group_names(label_arrays(records, group_by), group_by)
    counts = dict(sorted(Counter(groups.tolist()).items()))
    streams = {
        name: tf.data.Dataset.from_tensor_slices(np.flatnonzero(groups == name).astype(np.int64))
        for name in counts
    }
    return sample_groups(
        streams,
        counts,
        sampling=config.data.sampling,
        group_weights=config.data.group_weights,
        seed=seed,
    )


def feature_batches(
    features: np.ndarray,
    records: Sequence[FaceRecord],
    positions: tf.data.Dataset,
    *,
    heads: Sequence[str],
    batch_size: int,
    with_labels: bool = True,
) -> tf.data.Dataset:
    """Batch ``positions`` and look up each batch's feature rows, targets and sample weights.

    Args:
        features: ``(len(records), size)`` float32 rows, in memory or memory-mapped.
        records: The records the rows belong to, for the labels.
        positions: Unbatched int64 row positions.
        heads: Output names that receive targets and weights.
        batch_size: Rows per batch.
        with_labels: When false, yield the feature batches only.

    Returns:
        Batches of ``(features, targets, sample_weights)``, as ``pipeline.make_dataset``
        yields ``(image, targets, sample_weights)``.
    """
    lookup = _row_lookup(features)
    batches = positions.batch(batch_size)
    if not with_labels:
        return shard_by_data(batches.map(lookup, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE))
    targets, weights = targets_and_weights(label_arrays(records, heads))
    target_table = {head: tf.constant(values) for head, values in targets.items()}
    weight_table = {head: tf.constant(values) for head, values in weights.items()}

    def gather(batch):
        return (
            lookup(batch),
            {head: tf.gather(values, batch) for head, values in target_table.items()},
            {head: tf.gather(values, batch) for head, values in weight_table.items()},
        )

    return shard_by_data(batches.map(gather, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE))


def _row_lookup(features: np.ndarray):
    """Return a function from an int64 position batch to the float32 feature rows."""
    size = features.shape[1]
    if not isinstance(features, np.memmap):
        table = tf.constant(features)
        return lambda batch: tf.gather(table, batch)

    # NOTE: reading a memory-mapped file runs as a Python function in the input pipeline, so
    # datasets of the disk cache cannot be serialized, as multi-worker auto-sharding needs.
    def read_rows(batch):
        rows = tf.numpy_function(lambda index: np.asarray(features[index]), [batch], tf.float32)
        rows.set_shape((None, size))
        return rows

    return read_rows


def prepare_phase_one(
    extractor: keras.Model,
    head_layers: Mapping[str, keras.layers.Layer],
    data: PreparedData,
    config: RunConfig,
    *,
    run_dir: Path,
) -> dict | None:
    """Compute the features of phase 1 and return its datasets, or None when caching is off.

    The disk cache goes into ``run_dir/feature_cache``; ``remove_disk_cache`` deletes it.

    Returns:
        The keys of the uncached datasets (``train``, ``validation``, ``steps_per_epoch``,
        and ``epochs_seen`` = 0 for ``training.align_data_order``), plus ``fit_model``, the
        heads-only model to fit, and ``fairness_inputs``, the validation features without
        labels for the fairness callback.
    """
    mode = resolve_cache_mode(config)
    if mode == "off":
        return None
    started = time.perf_counter()
    batch_size = config.training.batch_size
    splits = {"train": data.splits["train"], "validation": data.splits["validation"]}
    features = {
        split: compute_features(
            extractor,
            records,
            batch_size=max(batch_size, MIN_FEATURE_BATCH),
            image_size=config.data.image_size,
            path=run_dir / CACHE_FOLDER / f"{split}.npy" if mode == "disk" else None,
        )
        for split, records in splits.items()
    }
    size = features["train"].shape[1]
    logger.info(
        "phase 1 on cached features (%s): %d training and %d validation images, %d features "
        "each, computed in %.1f s",
        mode,
        len(splits["train"]),
        len(splits["validation"]),
        size,
        time.perf_counter() - started,
    )
    heads = config.model.heads
    train_positions = training_indices(splits["train"], config)
    validation_positions = tf.data.Dataset.range(len(splits["validation"]))
    steps = None
    if config.data.sampling != "none":
        steps = steps_per_epoch(len(splits["train"]), batch_size)
    return {
        "train": feature_batches(
            features["train"], splits["train"], train_positions, heads=heads, batch_size=batch_size
        ),
        "validation": feature_batches(
            features["validation"],
            splits["validation"],
            validation_positions,
            heads=heads,
            batch_size=batch_size,
        ),
        "steps_per_epoch": steps,
        "epochs_seen": 0,
        "fit_model": heads_model(head_layers, size),
        "fairness_inputs": feature_batches(
            features["validation"],
            splits["validation"],
            validation_positions,
            heads=(),
            batch_size=batch_size,
            with_labels=False,
        ),
    }


def remove_disk_cache(run_dir: Path) -> None:
    """Delete the disk cache of phase 1 from a run folder, if there is one."""
    shutil.rmtree(run_dir / CACHE_FOLDER, ignore_errors=True)
