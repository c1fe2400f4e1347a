"""A demographically balanced augmented set: extra copies of the training faces of small groups.

``write_augmented_set`` takes the training split only, so no validation or test face ever has a
copy. It groups the faces by ``group_by`` (for example gender and age group), and writes
randomly transformed copies of the faces of every group smaller than the target until the
group reaches the target or ``max_factor`` times its size. Faces with an unknown group attribute
get no copies, because an unknown value is missing data, not a group.

The output is a manifest folder: ``labels.csv`` (the manifest columns plus ``source_image``, the
``example_id`` of the face copied, and ``augmentation``, the transform applied), the images under
``augmented/``, ``group_counts.json`` and ``group_counts.png``. It contains the copies only, so
train on the original data with ``DataConfig.augmented_path`` set to this folder.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import logging
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from fer_fairness import labels
from fer_fairness.data import readers
from fer_fairness.data.augment_report import COUNTS_JSON, COUNTS_PNG, write_group_counts
from fer_fairness.data.balance import UNKNOWN_GROUP, group_names
from fer_fairness.data.pipeline import label_arrays
from fer_fairness.data.records import FaceRecord
from fer_fairness.io import write_bytes_atomic, write_text_atomic

logger = logging.getLogger(__name__)

IMAGE_FOLDER = "augmented"
TFDS_FOLDER = "tfds"
# Everything write_augmented_set creates in its output folder, and all that --overwrite removes.
OUTPUT_ENTRIES: tuple[str, ...] = (
    readers.MANIFEST_FILE, COUNTS_JSON, COUNTS_PNG, IMAGE_FOLDER, TFDS_FOLDER,
)
MANIFEST_COLUMNS: tuple[str, ...] = (
    "image", "emotion", "gender", "age_group", "race", "subject_id", "split", "source_image",
    "augmentation",
)
DEFAULT_MAX_FACTOR = 5.0
# Transform ranges: degrees, zoom factor, shift as a share of the side, enhancement factors.
MAX_ROTATION = 10.0
MAX_ZOOM = 1.15
MAX_SHIFT = 0.05
BRIGHTNESS_RANGE = (0.8, 1.2)
CONTRAST_RANGE = (0.8, 1.2)
JPEG_QUALITY = 95


@dataclasses.dataclass(frozen=True)
class AugmentResult:
    """Summary of one ``write_augmented_set`` call.

    Attributes:
        output: The output folder.
        before: Training faces per group name, "unknown" for an unknown attribute.
        after: The same counts with the copies added.
        copies: Number of augmented images written.
    """

    output: Path
    before: dict[str, int]
    after: dict[str, int]
    copies: int


def plan_copies(
    records: Sequence[FaceRecord],
    *,
    group_by: Sequence[str],
    target_count: int | None = None,
    max_factor: float = DEFAULT_MAX_FACTOR,
    seed: int = 0,
) -> list[int]:
    """Return how many copies to make of each record.

    A group of ``n`` faces below the target gets ``min(target, floor(n * max_factor)) - n``
    copies, spread over its faces as evenly as possible. Which faces get one copy more is drawn
    with ``seed``. The target is ``target_count``, or the size of the largest group when None.

    Raises:
        ValueError: for ``target_count`` < 1, ``max_factor`` < 1, or no known group.
    """
    if target_count is not None and target_count < 1:
        raise ValueError(f"target_count={target_count} is invalid; expected a whole number >= 1")
    if not max_factor >= 1:
        raise ValueError(f"max_factor={max_factor} is invalid; expected a number >= 1")
    groups = group_names(label_arrays(records, group_by), group_by)
    members: dict[str, list[int]] = {}
    for index, name in enumerate(groups):
        if name != UNKNOWN_GROUP:
            members.setdefault(name, []).append(index)
    if not members:
        raise ValueError("no training face has a known value of every group_by attribute; "
                         "choose other group_by attributes")
    target = target_count or max(len(indexes) for indexes in members.values())
    copies = [0] * len(records)
    for name, indexes in sorted(members.items()):
        missing_copies = min(target, int(np.floor(len(indexes) * max_factor))) - len(indexes)
        if missing_copies <= 0:
            continue
        order = np.random.default_rng([seed, *_hash_words(name)]).permutation(len(indexes))
        base, extra = divmod(missing_copies, len(indexes))
        for rank, position in enumerate(order):
            copies[indexes[position]] = base + (1 if rank < extra else 0)
    return copies


def augment_image(image: Image.Image, *, seed: int, source_id: str,
                  copy_index: int) -> tuple[Image.Image, str]:
    """Return a randomly transformed RGB copy of ``image`` and a description of the transform.

    The transform is a horizontal flip (half the time), a rotation of up to ``MAX_ROTATION``
    degrees, a zoom of up to ``MAX_ZOOM``, a shift of up to ``MAX_SHIFT`` of the side, and
    brightness and contrast factors from their ranges. It depends only on ``seed``,
    ``source_id`` and ``copy_index``, so a rerun writes the same images.
    """
    rng = np.random.default_rng([seed, copy_index, *_hash_words(source_id)])
    flip = bool(rng.random() < 0.5)
    angle = float(rng.uniform(-MAX_ROTATION, MAX_ROTATION))
    zoom = float(rng.uniform(1.0, MAX_ZOOM))
    shift_x, shift_y = (float(v) for v in rng.uniform(-MAX_SHIFT, MAX_SHIFT, size=2))
    brightness = float(rng.uniform(*BRIGHTNESS_RANGE))
    contrast = float(rng.uniform(*CONTRAST_RANGE))

    result = image.convert("RGB")
    width, height = result.size
    if flip:
        result = ImageOps.mirror(result)
    fill = tuple(int(v) for v in np.asarray(result).reshape(-1, 3).mean(axis=0))
    result = result.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=fill,
                           translate=(shift_x * width, shift_y * height))
    crop_width, crop_height = width / zoom, height / zoom
    box = ((width - crop_width) / 2, (height - crop_height) / 2,
           (width + crop_width) / 2, (height + crop_height) / 2)
    result = result.resize((width, height), Image.Resampling.BICUBIC, box=box)
    result = ImageEnhance.Brightness(result).enhance(brightness)
    result = ImageEnhance.Contrast(result).enhance(contrast)
    description = (f"flip={int(flip)} rotate={angle:.1f} zoom={zoom:.3f} "
                   f"shift_x={shift_x:.3f} shift_y={shift_y:.3f} "
                   f"brightness={brightness:.3f} contrast={contrast:.3f}")
    return result, description


def write_augmented_set(
    train_records: Sequence[FaceRecord],
    output: str | PathLike[str],
    *,
    group_by: Sequence[str] = ("gender", "age"),
    target_count: int | None = None,
    max_factor: float = DEFAULT_MAX_FACTOR,
    seed: int = 0,
    overwrite: bool = False,
    settings: Mapping[str, object] | None = None,
) -> AugmentResult:
    """Write augmented copies of ``train_records`` as a manifest folder; see the module docstring.

    Args:
        train_records: The training split, as ``prepare_splits`` returns it.
        output: The output folder; it must be empty or missing.
        group_by, target_count, max_factor, seed: As ``plan_copies``; ``seed`` also seeds
            ``augment_image``.
        overwrite: Replace a previous output of this function in ``output``. Only the entries
            of ``OUTPUT_ENTRIES`` are removed, and only from a folder that has
            ``group_counts.json``.
        settings: Extra facts stored in ``group_counts.json``, such as the data path and the
            split fractions.

    Raises:
        FileExistsError: if ``output`` is not empty and ``overwrite`` is false, or it is not a
            previous output.
        ValueError: as ``plan_copies``, or for a record whose split is not train.
    """
    not_train = [r.example_id for r in train_records if r.split != "train"]
    if not_train:
        raise ValueError(f"{len(not_train)} records are not in the train split, such as "
                         f"{not_train[:3]}; augment only the train split")
    folder = Path(output)
    _prepare_output(folder, overwrite=overwrite)
    copies = plan_copies(train_records, group_by=group_by, target_count=target_count,
                         max_factor=max_factor, seed=seed)
    rows = []
    for record, count in zip(train_records, copies):
        if count:
            rows.extend(_write_copies(record, count, folder, seed=seed))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(folder / readers.MANIFEST_FILE, text.getvalue())

    groups = group_names(label_arrays(train_records, group_by), group_by)
    before = Counter(name or "unknown" for name in groups.tolist())
    after = before + Counter(name for name, count in zip(groups.tolist(), copies)
                             for _ in range(count))
    write_group_counts(folder, before=dict(before), after=dict(after), group_by=group_by,
                       settings={"seed": seed, "target_count": target_count,
                                 "max_factor": max_factor, **(settings or {})})
    logger.info("wrote %d augmented images of %d training faces to %s",
                len(rows), len(train_records), folder)
    return AugmentResult(folder, dict(sorted(before.items())), dict(sorted(after.items())),
                         len(rows))


def read_augmented(
    folder: str | PathLike[str], splits: Mapping[str, Sequence[FaceRecord]]
) -> list[FaceRecord]:
    """Read an augmented set as train records, checking that it copies only training faces.

    Args:
        folder: An output folder of ``write_augmented_set``.
        splits: The run's records per split, before any ``max_images`` subset.

    Raises:
        FileNotFoundError: if ``folder/labels.csv`` is missing.
        DataValidationError: for a malformed manifest.
        ValueError: if a copy's ``source_image`` is in the validation or test split, which
            would leak evaluation faces into training, or in no split of this data set.
    """
    csv_path = Path(folder).resolve() / readers.MANIFEST_FILE
    if csv_path.is_file() and not _source_images(csv_path):
        logger.info("augmented set %s contains no images", folder)
        return []
    records = readers.read_manifest(folder)
    sources = _source_images(csv_path)
    split_of = {record.example_id: name for name, items in splits.items() for record in items}
    leaked, unknown = [], []
    for record in records:
        source = sources.get(record.example_id, "")
        if split_of.get(source) in ("validation", "test"):
            leaked.append(f"{record.example_id} (from {source}, {split_of[source]})")
        elif split_of.get(source) != "train":
            unknown.append(f"{record.example_id} (from {source or 'no source_image'})")
    if leaked or unknown:
        raise ValueError(
            f"augmented set {folder} does not match this run's train split: "
            f"{len(leaked)} copies of validation or test faces {leaked[:3]}, {len(unknown)} "
            f"copies of faces in no split {unknown[:3]}; rerun fer-fairness augment with this "
            "run's data, seed and split fractions"
        )
    logger.info("added %d augmented images from %s to the train split", len(records), folder)
    return [dataclasses.replace(record, split="train") for record in records]


def _write_copies(record: FaceRecord, count: int, folder: Path, *, seed: int) -> list[dict]:
    rows = []
    with Image.open(record.image_path) as source:
        source.load()
        stem = PurePosixPath(record.example_id).with_suffix("")
        for copy_index in range(1, count + 1):
            image, description = augment_image(source, seed=seed, source_id=record.example_id,
                                               copy_index=copy_index)
            relative = PurePosixPath(IMAGE_FOLDER) / f"{stem}_aug{copy_index}.jpg"
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
            write_bytes_atomic(folder / relative, buffer.getvalue())
            rows.append(_manifest_row(record, relative.as_posix(), description))
    return rows


def _manifest_row(record: FaceRecord, image: str, description: str) -> dict[str, str]:
    def name(vocabulary: Sequence[str], value: int) -> str:
        return "" if value == labels.UNKNOWN else vocabulary[value]

    return {
        "image": image,
        "emotion": labels.EMOTIONS[record.emotion],
        "gender": name(labels.GENDERS, record.gender),
        "age_group": name(labels.AGE_GROUPS, record.age_group),
        "race": name(labels.RACES, record.race),
        "subject_id": record.subject_id,
        "split": "train",
        "source_image": record.example_id,
        "augmentation": description,
    }


def _source_images(csv_path: Path) -> dict[str, str]:
    """Map each row's image path (as the manifest reader normalises it) to its source_image."""
    with csv_path.open(encoding="utf-8-sig", newline="") as file:
        return {
            PurePosixPath(row["image"].strip().replace("\\", "/")).as_posix():
                (row.get("source_image") or "").strip()
            for row in csv.DictReader(file)
        }


def _prepare_output(folder: Path, *, overwrite: bool) -> None:
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise FileExistsError(f"output folder {folder} is not empty; choose an empty folder "
                                  "or pass --overwrite to replace a previous augment output")
        if not (folder / COUNTS_JSON).is_file():
            raise FileExistsError(f"output folder {folder} has no {COUNTS_JSON}, so it is not a "
                                  "previous augment output; --overwrite replaces only those. "
                                  "Choose an empty folder")
        for name in OUTPUT_ENTRIES:
            entry = folder / name
            if entry.is_symlink() or entry.is_file():
                entry.unlink()
            elif entry.is_dir():
                shutil.rmtree(entry)
    folder.mkdir(parents=True, exist_ok=True)


def _hash_words(text: str) -> list[int]:
    """Return a stable 64-bit seed word for ``text``; Python's ``hash`` changes per process."""
    return [int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")]
