"""Prepared TFDS data as training input: records for the trainer, or a tf.data stream.

A prepared data set is the folder that ``tfds.builder_from_directory`` opens, such as
``~/tensorflow_datasets/raf_db/1.0.0``, built by the builders under ``datasets/``. Reading it
needs no builder code and no network.

The trainer works on ``FaceRecord`` lists whose images are files, so ``read_tfds`` writes each
example's image bytes, unchanged, into an image folder once and points the records at them.
The folder path and the TFDS path then decode the same bytes with ``decode_image``, so they
give identical model inputs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path, PurePosixPath

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from fer_fairness.data import balance
from fer_fairness.data.pipeline import AUTOTUNE, decode_image
from fer_fairness.data.records import FaceRecord
from fer_fairness.data.tfds_features import HEAD_FEATURES, check_label_features

logger = logging.getLogger(__name__)

INFO_FILES: tuple[str, ...] = ("dataset_info.json", "features.json")
# The cache root that the model cache (fer_fairness.convert.fetch) uses too.
CACHE_ENV_VAR = "FER_FAIRNESS_CACHE"
# Written last into the image folder; contains the fingerprint of the data set it came from.
COMPLETE_MARKER = ".complete"


def is_prepared_dataset(path: str | PathLike[str]) -> bool:
    """Return whether ``path`` is a prepared TFDS data set folder."""
    return all((Path(path) / name).is_file() for name in INFO_FILES)


def load_prepared(path: str | PathLike[str]) -> tfds.core.DatasetBuilder:
    """Open a prepared data set and check that its labels use the project's vocabularies.

    Raises:
        FileNotFoundError: if ``path`` lacks ``dataset_info.json`` or ``features.json``.
        ValueError: if a label feature's class names differ from the project's.
    """
    folder = Path(path)
    if not is_prepared_dataset(folder):
        raise FileNotFoundError(
            f"{folder} is not a prepared TFDS data set; expected {folder / INFO_FILES[0]} and "
            f"{folder / INFO_FILES[1]}, as in ~/tensorflow_datasets/raf_db/1.0.0 after "
            "fer-fairness prepare-tfds raf_db"
        )
    builder = tfds.builder_from_directory(str(folder))
    check_label_features(builder.info.features, str(folder))
    return builder


def default_image_dir(path: str | PathLike[str], builder: tfds.core.DatasetBuilder) -> Path:
    """Return ``$FER_FAIRNESS_CACHE/tfds/<name>/<config>/<version>/<folder hash>``.

    The cache root defaults to ``~/.cache/fer-fairness``. The last part hashes the prepared
    folder's absolute path, because every manifest builds to the same name and version.
    """
    root = os.environ.get(CACHE_ENV_VAR)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "fer-fairness"
    info = builder.info
    folder_hash = hashlib.sha256(str(Path(path).resolve()).encode("utf-8")).hexdigest()[:16]
    return (base / "tfds" / info.name / (info.config_name or "default") / str(info.version)
            / folder_hash)


def read_tfds(
    path: str | PathLike[str], *, image_dir: str | PathLike[str] | None = None
) -> list[FaceRecord]:
    """Read a prepared data set into records, writing its images into ``image_dir`` once.

    Records come in the order of the source's annotation file (the ``index`` feature), so the
    splits that ``assign_splits`` draws from them match those drawn from the source folder.
    ``split`` is the example's ``split`` feature where the data set has one (face_manifest),
    else the TFDS split name (raf_db: train, test).

    Args:
        path: The prepared data set folder.
        image_dir: Folder for the image files; None uses ``default_image_dir``. It is
            refilled when the data set's files change.

    Raises:
        FileNotFoundError, ValueError: as ``load_prepared``; ValueError also for an example
            id that is not a relative path inside ``image_dir``.
    """
    builder = load_prepared(path)
    info = builder.info
    folder = Path(image_dir) if image_dir else default_image_dir(path, builder)
    marker = folder / COMPLETE_MARKER
    fingerprint = _fingerprint(Path(path))
    complete = marker.is_file() and marker.read_text(encoding="utf-8") == fingerprint
    if not complete:
        marker.unlink(missing_ok=True)

    indexed: list[tuple[int, FaceRecord]] = []
    written = 0
    for split in sorted(info.splits):
        dataset = builder.as_dataset(
            split=split, decoders={"image": tfds.decode.SkipDecoding()}, shuffle_files=False
        )
        for position, example in enumerate(tfds.as_numpy(dataset)):
            example_id = example["id"].decode("utf-8")
            image_path = folder / _relative_image_path(example_id, path)
            if not (complete and image_path.is_file()):
                image_path.parent.mkdir(parents=True, exist_ok=True)
                image_path.write_bytes(example["image"])
                written += 1
            record_split = example["split"].decode("utf-8") if "split" in example else split
            record = FaceRecord(
                image_path=str(image_path),
                example_id=example_id,
                emotion=int(example["emotion"]),
                gender=int(example["gender"]),
                age_group=int(example["age_group"]),
                race=int(example["race"]),
                subject_id=example["subject_id"].decode("utf-8") if "subject_id" in example else "",
                split=record_split,
                source=f"{path}:{split}[{position}]",
            )
            indexed.append((int(example["index"]), record))
    if not complete:
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(fingerprint, encoding="utf-8")
    logger.info("read %d TFDS records from %s (%d image files written to %s)",
                len(indexed), path, written, folder)
    return [record for _, record in sorted(indexed, key=lambda item: item[0])]


def make_tfds_dataset(
    path: str | PathLike[str],
    split: str,
    *,
    heads: Sequence[str],
    batch_size: int,
    image_size: int = 64,
    shuffle: bool = False,
    seed: int = 0,
    sampling: str = "none",
    group_by: Sequence[str] = ("gender", "age"),
    group_weights: Mapping[str, float] | None = None,
) -> tuple[tf.data.Dataset, int]:
    """Stream ``(image, targets, sample_weights)`` batches straight from a prepared split.

    Images are decoded from the stored bytes with ``decode_image``, as in ``make_dataset``,
    then cached, shuffled, batched and prefetched. Unknown attributes get target 0 and sample
    weight 0. With ``sampling`` other than "none", the split is divided into one stream per
    group of ``group_by``, and the streams are sampled as in ``balance.make_balanced_dataset``.
    That dataset is infinite.

    Returns:
        The dataset and the number of batches that make one epoch,
        ``ceil(examples / batch_size)``.
    """
    builder = load_prepared(path)
    examples = builder.as_dataset(
        split=split, decoders={"image": tfds.decode.SkipDecoding()}, shuffle_files=False
    )
    count = builder.info.splits[split].num_examples

    def to_elements(selected: tf.data.Dataset) -> tf.data.Dataset:
        return selected.map(lambda example: _to_element(example, heads, image_size),
                            num_parallel_calls=AUTOTUNE, deterministic=True)

    if sampling == "none":
        dataset = to_elements(examples).cache()
        if shuffle:
            dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size).prefetch(AUTOTUNE), balance.steps_per_epoch(
            count, batch_size)

    # One label pass finds each example's group. Each group's stream then filters the split
    # on the example id before decoding, so every image is decoded once.
    ids, label_values = _label_arrays(examples, group_by)
    groups = balance.group_names(label_values, group_by)
    names = sorted(set(groups))
    codes = np.array([names.index(name) for name in groups], dtype=np.int64)
    group_of_id = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(ids, codes), -1)

    def group_stream(code: int) -> tf.data.Dataset:
        selected = examples.filter(lambda example: group_of_id.lookup(example["id"]) == code)
        return to_elements(selected)

    streams = {name: group_stream(code) for code, name in enumerate(names)}
    counts = {name: int(np.sum(codes == code)) for code, name in enumerate(names)}
    dataset = balance.sample_groups(
        streams, counts, sampling=sampling, group_weights=group_weights, seed=seed,
        shuffle=shuffle,
    )
    return dataset.batch(batch_size).prefetch(AUTOTUNE), balance.steps_per_epoch(
        count, batch_size)


def _to_element(example: dict, heads: Sequence[str], image_size: int):
    image = decode_image(example["image"], image_size)
    labels = {head: tf.cast(example[HEAD_FEATURES[head]], tf.int64) for head in heads}
    targets = {head: tf.maximum(value, 0) for head, value in labels.items()}
    weights = {head: tf.cast(value >= 0, tf.float32) for head, value in labels.items()}
    return image, targets, weights


def _label_arrays(
    examples: tf.data.Dataset, heads: Sequence[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return the ids and the label arrays of ``heads`` of a split, without decoding images."""
    features = ["id"] + [HEAD_FEATURES[head] for head in heads]
    labels_only = examples.map(lambda example: {name: example[name] for name in features})
    ids, values = [], {head: [] for head in heads}
    for example in tfds.as_numpy(labels_only):
        ids.append(example["id"])
        for head in heads:
            values[head].append(example[HEAD_FEATURES[head]])
    return np.array(ids, dtype=object), {h: np.array(v, np.int64) for h, v in values.items()}


def _relative_image_path(example_id: str, source: str | PathLike[str]) -> PurePosixPath:
    relative = PurePosixPath(example_id)
    if not example_id or relative.is_absolute() or ".." in relative.parts:
        raise ValueError(
            f"{source}: example id {example_id!r} is not a relative path without '..'; "
            "rebuild the data set with the builders in datasets/"
        )
    return relative


def _fingerprint(folder: Path) -> str:
    """Hash the data set's info file and the names, sizes and times of its files."""
    digest = hashlib.sha256((folder / INFO_FILES[0]).read_bytes())
    for file in sorted(folder.iterdir()):
        stat = file.stat()
        digest.update(f"{file.name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()

