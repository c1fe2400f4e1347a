"""TFDS features shared by the builders under ``datasets/``, and building them offline.

Labels are ``tfds.features.ClassLabel`` over the project's vocabularies (``labels.EMOTIONS``,
``GENDERS``, ``AGE_GROUPS``, ``RACES``). A missing attribute is -1, the value ClassLabel
reserves for "no label" and the project's ``labels.UNKNOWN``, so a reader must mask it out of
losses and metrics and never treat it as a class.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from os import PathLike
from pathlib import Path

import tensorflow_datasets as tfds

from fer_fairness import labels
from fer_fairness.data.records import FaceRecord

logger = logging.getLogger(__name__)

# Label feature name to its vocabulary. The age head is called "age"; its feature is
# "age_group" like ``FaceRecord.age_group``.
LABEL_FEATURES: dict[str, tuple[str, ...]] = {
    "emotion": labels.EMOTIONS,
    "gender": labels.GENDERS,
    "age_group": labels.AGE_GROUPS,
    "race": labels.RACES,
}
HEAD_FEATURES: dict[str, str] = {"emotion": "emotion", "gender": "gender", "age": "age_group",
                                 "race": "race"}
# The builders live beside the package in a source checkout: datasets/<name>/.
DATASETS_FOLDER = Path(__file__).resolve().parents[2] / "datasets"


def label_features() -> dict[str, tfds.features.ClassLabel]:
    """Return one ClassLabel per label feature, named as in ``LABEL_FEATURES``."""
    return {name: tfds.features.ClassLabel(names=list(vocabulary))
            for name, vocabulary in LABEL_FEATURES.items()}


def label_values(record: FaceRecord) -> dict[str, int]:
    """Return a record's label features; an unknown attribute stays -1."""
    return {name: record.attribute(head) for head, name in HEAD_FEATURES.items()}


def check_label_features(features: tfds.features.FeaturesDict, where: str) -> None:
    """Raise ValueError unless every label feature has the project's class names in order.

    A prepared data set whose class order differs would otherwise be read with wrong labels.
    """
    for name, vocabulary in LABEL_FEATURES.items():
        feature = features[name] if name in features.keys() else None
        names = getattr(feature, "names", None)
        if names != list(vocabulary):
            raise ValueError(
                f"{where}: feature {name!r} has the classes {names}, expected "
                f"{list(vocabulary)}; rebuild the data set with the builders in datasets/"
            )


def load_builder_class(name: str, *, datasets_folder: Path = DATASETS_FOLDER) -> type:
    """Import ``datasets/<name>/<name>_dataset_builder.py`` and return its ``Builder``.

    The module is imported once under the name ``<name>_dataset_builder``, the name that
    ``tfds build`` and pytest give it, so TFDS registers the data set name only once.

    Raises:
        FileNotFoundError: if the builder file is missing, for example in an installation
            without the source checkout.
    """
    module_name = f"{name}_dataset_builder"
    path = datasets_folder / name / f"{module_name}.py"
    module = sys.modules.get(module_name)
    if module is None:
        if not path.is_file():
            raise FileNotFoundError(
                f"TFDS builder {path} not found; the builders are in the datasets/ folder of a "
                "fer-fairness source checkout (pip install -e .)"
            )
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return module.Builder


def prepare_dataset(
    name: str,
    *,
    manual_dir: str | PathLike[str],
    data_dir: str | PathLike[str],
    overwrite: bool = False,
) -> Path:
    """Build the TFDS data set ``name`` from ``manual_dir`` into ``data_dir``, offline.

    No step downloads anything: the source files come from ``manual_dir`` and the GCS copy of
    prepared data sets is never tried.

    Args:
        name: A builder folder under ``datasets/``: ``raf_db`` or ``face_manifest``.
        manual_dir: The folder that ``MANUAL_DOWNLOAD_INSTRUCTIONS`` of the builder describes.
        data_dir: TFDS data folder; the data set goes into ``data_dir/<name>/<version>``.
        overwrite: Rebuild a data set that is already prepared there.

    Returns:
        The prepared data set's folder, for ``tfds.builder_from_directory``.
    """
    builder = load_builder_class(name)(data_dir=str(data_dir))
    mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite
            else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
    config = tfds.download.DownloadConfig(
        manual_dir=str(manual_dir), try_download_gcs=False, download_mode=mode,
    )
    builder.download_and_prepare(download_config=config)
    logger.info("prepared TFDS data set %s in %s", name, builder.data_dir)
    return Path(builder.data_dir)
