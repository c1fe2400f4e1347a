"""The built-in synthetic data set: procedurally drawn faces with optionally planted bias.

The faces are grayscale drawings whose seven expressions differ only in the geometry of brows,
eyes and mouth, and whose gender, age group and race change the face shape, hair, wrinkles,
proportions and skin brightness (see ``synthetic_faces`` and ``synthetic_drawing``). Planted
gaps make one group worse off in a known way (see ``synthetic_config``). Results on these faces say nothing about real
faces. They show whether a method finds, and reduces, a gap that is known to be there.

``generate_synthetic`` writes a manifest folder that ``read_manifest`` reads:

- ``labels.csv``: ``image``, ``emotion``, ``gender``, ``age_group``, ``race``, ``subject_id``,
  ``split``, and two columns that the reader ignores: ``drawn_emotion`` (the expression
  drawn, which differs from ``emotion`` where label noise replaced the label) and
  ``intensity`` (the factor on the expression's change from neutral).
- ``images/NNNNNN.png``: 8-bit grayscale PNGs of ``image_size`` x ``image_size`` pixels.
- ``metadata.json``: the config, counts per split and group, and each planted gap with its
  measured effect.

The ``split`` column is a subject-disjoint train, validation and test split drawn from the
seed, so every run on the same folder, and every arm of a comparison, sees the same split.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fer_fairness import labels
from fer_fairness.data.synthetic_config import (
    DEFAULT_STRENGTHS,
    GAP_KINDS,
    PlantedGap,
    SyntheticConfig,
    planted_gap,
    unbiased,
)
from fer_fairness.data.synthetic_drawing import draw_face
from fer_fairness.data.synthetic_metadata import build_metadata
from fer_fairness.data.synthetic_plan import PlannedImage, plan_images
from fer_fairness.io import read_json, write_json_atomic

__all__ = [
    "DEFAULT_STRENGTHS",
    "GAP_KINDS",
    "GENERATOR_VERSION",
    "PlantedGap",
    "SyntheticConfig",
    "SyntheticExample",
    "default_synthetic_dir",
    "ensure_synthetic",
    "generate_synthetic",
    "iter_synthetic_examples",
    "planted_gap",
    "plan_images",
    "read_synthetic_metadata",
    "render_example",
    "unbiased",
]

logger = logging.getLogger(__name__)

# Raise when a change to the drawing or the plan changes the output for the same config, so
# cached data sets of the old version are regenerated.
GENERATOR_VERSION = 1
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "labels.csv"
IMAGE_FOLDER = "images"
# Everything generate_synthetic writes, and all that ``overwrite`` replaces.
OUTPUT_ENTRIES: tuple[str, ...] = (MANIFEST_FILE, METADATA_FILE, IMAGE_FOLDER)
MANIFEST_COLUMNS: tuple[str, ...] = (
    "image", "emotion", "gender", "age_group", "race", "subject_id", "split", "drawn_emotion",
    "intensity",
)


@dataclasses.dataclass(frozen=True)
class SyntheticExample:
    """One drawn image with its labels.

    Attributes:
        planned: Subject, split, labels, intensity and pose of the image.
        pixels: uint8 array ``(image_size, image_size)``, 0 black to 255 white.
        png: The pixels encoded as an 8-bit grayscale PNG, as written to ``planned.image``.
    """

    planned: PlannedImage
    pixels: np.ndarray
    png: bytes


def iter_synthetic_examples(config: SyntheticConfig) -> Iterator[SyntheticExample]:
    """Draw the data set's images in data set order, without writing files."""
    for planned in plan_images(config):
        yield render_example(planned, image_size=config.image_size)


def render_example(planned: PlannedImage, *, image_size: int) -> SyntheticExample:
    """Draw one planned image and encode it as PNG."""
    pixels = draw_face(planned.subject.identity, planned.drawn_emotion,
                       intensity=planned.intensity, pose=planned.pose, size=image_size)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return SyntheticExample(planned=planned, pixels=pixels, png=buffer.getvalue())


def generate_synthetic(
    output_dir: str | PathLike[str],
    config: SyntheticConfig = SyntheticConfig(),
    *,
    overwrite: bool = False,
) -> Path:
    """Write the synthetic data set as a manifest folder.

    The files are written into a temporary folder beside ``output_dir`` and moved into place
    when complete, so an interrupted call leaves no partial data set behind.

    Args:
        output_dir: The folder to write; it must be missing or empty.
        config: Size, seed, attribute weights and planted gaps.
        overwrite: Replace a folder that an earlier call wrote. Such a folder must contain
            only ``labels.csv``, ``metadata.json`` and ``images/``.

    Returns:
        ``output_dir``.

    Raises:
        FileExistsError: if ``output_dir`` is not empty and ``overwrite`` is false, or is not
            an earlier output of this function.
    """
    folder = Path(output_dir).expanduser()
    _check_output(folder, overwrite=overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial",
                                    dir=folder.parent))
    try:
        # mkdtemp makes a private folder, so the data set goes into a subfolder made with the
        # usual permissions.
        data = staging / "data"
        data.mkdir()
        _write_dataset(data, config)
        _move_into_place(data, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("wrote %d synthetic faces to %s", config.n_images, folder)
    return folder


def _write_dataset(folder: Path, config: SyntheticConfig) -> None:
    (folder / IMAGE_FOLDER).mkdir()
    planned = []
    with (folder / MANIFEST_FILE).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for example in iter_synthetic_examples(config):
            (folder / example.planned.image).write_bytes(example.png)
            writer.writerow(_manifest_row(example.planned))
            planned.append(example.planned)
    write_json_atomic(folder / METADATA_FILE,
                      {**build_metadata(config, planned), "generator_version": GENERATOR_VERSION})


def _manifest_row(planned: PlannedImage) -> dict[str, str]:
    identity = planned.subject.identity
    return {
        "image": planned.image,
        "emotion": labels.EMOTIONS[planned.emotion],
        "gender": labels.GENDERS[identity.gender],
        "age_group": labels.AGE_GROUPS[identity.age_group],
        "race": labels.RACES[identity.race],
        "subject_id": planned.subject.subject_id,
        "split": planned.subject.split,
        "drawn_emotion": labels.EMOTIONS[planned.drawn_emotion],
        "intensity": f"{planned.intensity:.4f}",
    }


def _check_output(folder: Path, *, overwrite: bool) -> None:
    if not folder.exists():
        return
    if not folder.is_dir():
        raise FileExistsError(f"output {folder} is a file; choose a folder path")
    entries = sorted(entry.name for entry in folder.iterdir())
    if not entries:
        return
    if not overwrite:
        raise FileExistsError(f"output folder {folder} is not empty; choose an empty folder, or "
                              "pass overwrite=True (--overwrite) to replace an earlier "
                              "synthetic data set")
    extra = [name for name in entries if name not in OUTPUT_ENTRIES]
    if extra or not (folder / METADATA_FILE).is_file():
        raise FileExistsError(
            f"output folder {folder} is not an earlier synthetic data set (it contains "
            f"{', '.join(extra or entries)}), so it is not replaced; choose an empty folder"
        )


def _move_into_place(staging: Path, folder: Path) -> None:
    """Rename ``staging`` to ``folder``, replacing an empty or earlier output folder."""
    if folder.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old",
                                        dir=folder.parent))
        os.replace(folder, retired / "data")
        try:
            os.replace(staging, folder)
        except OSError:
            os.replace(retired / "data", folder)
            raise
        finally:
            shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, folder)


def read_synthetic_metadata(folder: str | PathLike[str]) -> dict[str, Any]:
    """Return ``metadata.json`` of a synthetic data set folder.

    Raises:
        FileNotFoundError: if the folder has no ``metadata.json``.
        ValueError: if the file is not valid JSON.
    """
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; expected a folder written by "
                                "fer-fairness synthesize or generate_synthetic")
    return read_json(path)


def config_fingerprint(config: SyntheticConfig) -> str:
    """Return a 16-hex-digit hash of the config and ``GENERATOR_VERSION``."""
    text = json.dumps({"config": config.to_dict(), "generator_version": GENERATOR_VERSION},
                      sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def default_synthetic_dir(config: SyntheticConfig = SyntheticConfig()) -> Path:
    """Return ``<cache root>/synthetic/<config fingerprint>``.

    The cache root is ``$FER_FAIRNESS_CACHE``, else ``~/.cache/fer-fairness``, as for the model
    cache.
    """
    # Imported here because the fetch module's package imports TensorFlow.
    from fer_fairness.convert.fetch import default_cache_dir

    # default_cache_dir() is the model folder, "models", directly under the cache root.
    return default_cache_dir().parent / "synthetic" / config_fingerprint(config)


def ensure_synthetic(
    config: SyntheticConfig = SyntheticConfig(),
    *,
    output_dir: str | PathLike[str] | None = None,
) -> Path:
    """Return a folder holding the data set of ``config``, generating it only when needed.

    A folder whose ``metadata.json`` records the same config and generator version is reused.
    Any other earlier synthetic data set there is replaced.

    Args:
        config: The data set to provide.
        output_dir: The folder; None uses ``default_synthetic_dir(config)``.
    """
    folder = Path(output_dir) if output_dir is not None else default_synthetic_dir(config)
    if _matches(folder, config):
        logger.info("reusing the synthetic data set in %s", folder)
        return folder
    try:
        return generate_synthetic(folder, config, overwrite=True)
    except FileExistsError:
        # Another process may have finished the same data set first.
        if _matches(folder, config):
            return folder
        raise


def _matches(folder: Path, config: SyntheticConfig) -> bool:
    if not (folder / MANIFEST_FILE).is_file():
        return False
    try:
        metadata = read_synthetic_metadata(folder)
    except (FileNotFoundError, ValueError):
        return False
    return (metadata.get("generator_version") == GENERATOR_VERSION
            and metadata.get("config") == config.to_dict())
