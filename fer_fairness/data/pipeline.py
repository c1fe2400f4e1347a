"""tf.data input pipelines: decode, grayscale, resize, labels and per-output sample weights.

Images leave the pipeline as float32 ``(64, 64, 1)`` grayscale pixels in 0..255. Normalisation
happens only inside the trunk, so the pipeline never rescales.

An unknown attribute gets label 0 and sample weight 0 for that head, so it adds nothing to the
head's loss or accuracy. Emotion is always known and always has weight 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from fer_fairness.data.records import FaceRecord
from fer_fairness.labels import UNKNOWN

AUTOTUNE = tf.data.AUTOTUNE
# Online augmentation strengths, in grey levels of the 0..255 input.
MAX_BRIGHTNESS_DELTA = 20.0
CONTRAST_RANGE = (0.8, 1.2)


def decode_image(encoded: tf.Tensor, image_size: int = 64) -> tf.Tensor:
    """Decode an encoded image into the model's input.

    Args:
        encoded: Scalar string tensor with JPEG, PNG, GIF or BMP bytes, any channel count. The
            format is read from the bytes, so a wrong file extension does not matter.
        image_size: Output side in pixels.

    Returns:
        float32 tensor ``(image_size, image_size, 1)`` in 0..255.
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return to_model_input(image, image_size)


def to_model_input(image: tf.Tensor, image_size: int = 64) -> tf.Tensor:
    """Convert RGB pixels ``(..., height, width, 3)`` to grayscale ``image_size`` squares.

    Uses the ITU-R 601 luma weights of ``tf.image.rgb_to_grayscale`` and area-preserving
    bilinear resizing (antialiased when shrinking). Returns float32 in 0..255.
    """
    gray = tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))
    resized = tf.image.resize(gray, (image_size, image_size), method="bilinear", antialias=True)
    return tf.clip_by_value(resized, 0.0, 255.0)


def load_image(path: tf.Tensor, image_size: int = 64) -> tf.Tensor:
    """Read and decode one image file; see ``decode_image``."""
    return decode_image(tf.io.read_file(path), image_size)


def label_arrays(records: Sequence[FaceRecord], heads: Sequence[str]) -> dict[str, np.ndarray]:
    """Return each head's labels as int64 arrays, with ``UNKNOWN`` (-1) kept."""
    return {
        head: np.array([record.attribute(head) for record in records], dtype=np.int64)
        for head in heads
    }


def targets_and_weights(
    labels: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split labels into loss targets (unknown set to 0) and sample weights (unknown set to 0)."""
    targets = {head: np.where(values == UNKNOWN, 0, values) for head, values in labels.items()}
    weights = {
        head: (values != UNKNOWN).astype(np.float32) for head, values in labels.items()
    }
    return targets, weights


def make_dataset(
    records: Sequence[FaceRecord],
    *,
    heads: Sequence[str],
    batch_size: int,
    image_size: int = 64,
    shuffle: bool = False,
    seed: int = 0,
    with_labels: bool = True,
    random_augmentation: bool = False,
    with_ids: bool = False,
) -> tf.data.Dataset:
    """Build a batched dataset of ``(image, targets, sample_weights)`` from records.

    The order is decode and resize (in parallel), cache in memory, shuffle with ``seed`` (so
    every epoch draws a new order), random augmentation, batch and prefetch. Random
    augmentation comes after the cache, so each epoch trains on new variants.

    Args:
        records: The faces of one split.
        heads: Output names that receive targets and weights.
        batch_size: Images per batch; the last batch may be smaller.
        image_size: Model input side in pixels.
        shuffle: Shuffle the examples each epoch (training only).
        seed: Seed of the shuffle and of the random augmentation.
        with_labels: When false, yield images only (for prediction).
        random_augmentation: Apply ``random_augment`` to every image (training only).
        with_ids: Append each record's ``example_id`` (a string tensor) to every element, to
            inspect the order. Keras ``fit`` does not accept that extra element.
    """
    dataset = element_dataset(
        records, heads=heads, image_size=image_size, with_labels=with_labels, with_ids=with_ids
    ).cache()
    if shuffle:
        dataset = dataset.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    if random_augmentation:
        dataset = augment_elements(dataset, seed=seed)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def element_dataset(
    records: Sequence[FaceRecord],
    *,
    heads: Sequence[str],
    image_size: int = 64,
    with_labels: bool = True,
    with_ids: bool = False,
) -> tf.data.Dataset:
    """Decode records into unbatched elements, in record order, neither cached nor shuffled.

    An element is the image, or ``(image, targets, sample_weights)`` with labels; ``with_ids``
    appends the ``example_id``.
    """
    if not records:
        raise ValueError("make_dataset got no records; check the split sizes of the data")
    paths = [record.image_path for record in records]
    images = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda path: load_image(path, image_size), num_parallel_calls=AUTOTUNE, deterministic=True
    )
    parts = [images]
    if with_labels:
        targets, weights = targets_and_weights(label_arrays(records, heads))
        parts.append(tf.data.Dataset.from_tensor_slices((targets, weights)))
    if with_ids:
        parts.append(tf.data.Dataset.from_tensor_slices([r.example_id for r in records]))
    if len(parts) == 1:
        return images
    return tf.data.Dataset.zip(*parts).map(_flatten)


def _flatten(image: tf.Tensor, *extras) -> tuple:
    """Turn ``(image, (targets, weights), id)`` into ``(image, targets, weights, id)``."""
    flat = [image]
    for extra in extras:
        flat.extend(extra if isinstance(extra, tuple) else (extra,))
    return tuple(flat)


def augment_elements(dataset: tf.data.Dataset, *, seed: int) -> tf.data.Dataset:
    """Apply ``random_augment`` to the image of each element (the element or its first part).

    Each element's random seed is ``(seed, position in the stream)``, so the same seed and
    input order give the same augmented images.
    """

    def augment(position: tf.Tensor, element):
        element_seed = tf.stack([tf.constant(seed, tf.int64), position])
        if isinstance(element, tuple):
            return (random_augment(element[0], element_seed), *element[1:])
        return random_augment(element, element_seed)

    return dataset.enumerate().map(augment, num_parallel_calls=AUTOTUNE, deterministic=True)


def random_augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Randomly flip a ``(height, width, 1)`` float32 image, jitter brightness and contrast.

    Brightness moves by up to ``MAX_BRIGHTNESS_DELTA`` grey levels and contrast scales by a
    factor in ``CONTRAST_RANGE``; the result is clipped to 0..255. ``seed`` is a shape ``[2]``
    integer tensor, and the same seed gives the same output.
    """
    flip_seed, brightness_seed, contrast_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3)
    )
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    image = tf.image.stateless_random_brightness(image, MAX_BRIGHTNESS_DELTA, brightness_seed)
    image = tf.image.stateless_random_contrast(image, *CONTRAST_RANGE, contrast_seed)
    return tf.clip_by_value(image, 0.0, 255.0)
