"""Run configuration: frozen dataclasses per concern, TOML loading and CLI overrides.

Every value is validated when the dataclass is built, so a bad value fails before any data is
read. Errors name the field as ``section.field``, show the value, and state the allowed range.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from fer_fairness.fairness.metrics import FairnessConfig
from fer_fairness.labels import ATTRIBUTES, HEAD_CLASSES

DataFormat = Literal["auto", "rafdb", "manifest"]
Phase = Literal["heads", "finetune", "all"]
BadImagePolicy = Literal["stop", "skip"]
DataSource = Literal["folder", "tfds"]
Sampling = Literal["none", "uniform", "inverse_frequency", "given"]
Precision = Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"]
CacheFeatures = Literal["auto", "memory", "disk", "off"]
Strategy = Literal["default", "mirrored", "multi_worker_mirrored"]
Selection = Literal["emotion_accuracy", "accuracy_with_fairness_floor"]

DATA_FORMATS: tuple[str, ...] = ("auto", "rafdb", "manifest")
PHASES: tuple[str, ...] = ("heads", "finetune", "all")
BAD_IMAGE_POLICIES: tuple[str, ...] = ("stop", "skip")
DATA_SOURCES: tuple[str, ...] = ("folder", "tfds")
SAMPLING_MODES: tuple[str, ...] = ("none", "uniform", "inverse_frequency", "given")
PRECISIONS: tuple[str, ...] = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
CACHE_MODES: tuple[str, ...] = ("auto", "memory", "disk", "off")
STRATEGIES: tuple[str, ...] = ("default", "mirrored", "multi_worker_mirrored")
SELECTIONS: tuple[str, ...] = ("emotion_accuracy", "accuracy_with_fairness_floor")
FLOOR_ATTRIBUTES: tuple[str, ...] = ("emotion", "gender", "age", "race")


class ConfigError(ValueError):
    """An invalid configuration value; the message names the field, the value and the range."""


def _require(condition: bool, field: str, value: Any, expected: str) -> None:
    if not condition:
        raise ConfigError(f"{field}={value!r} is invalid; expected {expected}")


def _require_choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
    _require(value in choices, field, value, f"one of {', '.join(choices)}")


def _require_fraction(field: str, value: float, *, upper_inclusive: bool = False) -> None:
    in_range = 0.0 < value <= 1.0 if upper_inclusive else 0.0 < value < 1.0
    upper = "1]" if upper_inclusive else "1)"
    _require(isinstance(value, (int, float)) and in_range, field, value, f"a number in (0, {upper}")


def _require_positive_int(field: str, value: int, *, minimum: int = 1) -> None:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    _require(is_int and value >= minimum, field, value, f"a whole number >= {minimum}")


def _require_positive_float(field: str, value: float) -> None:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    _require(is_number and math.isfinite(value) and value > 0, field, value, "a positive number")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Data source and split settings.

    Args:
        path: Data folder: a RAF-DB ``basic`` folder (or its parent) or a folder with
            ``labels.csv``.
        data_format: ``auto`` detects the layout from the folder's content.
        validation_fraction: Share of the training subjects held out for validation.
        test_fraction: Share of the subjects held out for testing, used only when the data set
            assigns no split of its own.
        image_size: Side of the square grayscale model input, in pixels.
        bad_images: ``stop`` raises on unreadable images before training; ``skip`` leaves them
            out and writes their list into the run folder.
        max_images: Keep at most this many images per split (a quick run); 0 keeps all.
        source: ``folder`` reads ``path`` as a data folder; ``tfds`` reads ``path`` as a
            prepared TFDS data set folder, such as ``~/tensorflow_datasets/raf_db/1.0.0``.
        tfds_image_dir: Folder that receives the image files of a ``tfds`` source; empty uses
            a folder per data set under ``$FER_FAIRNESS_CACHE/tfds`` (by default
            ``~/.cache/fer-fairness/tfds``).
        augmented_path: Manifest folder written by ``fer-fairness augment`` from this data
            set; its images join the train split only. Empty adds none.
        sampling: Draw training batches group-balanced: ``uniform`` (each group equally
            often), ``inverse_frequency`` (group probability proportional to 1 / its size) or
            ``given`` (``group_weights``). ``none`` shuffles the split as it is.
        group_by: Attributes whose values form the sampling groups (emotion, gender, age,
            race).
        group_weights: Sampling weight per group name such as ``female/20-39``, for
            ``sampling = "given"``.
        random_augmentation: Randomly flip and jitter brightness and contrast of training
            images every epoch.
    """

    path: str = ""
    data_format: DataFormat = "auto"
    validation_fraction: float = 0.15
    test_fraction: float = 0.2
    image_size: int = 64
    bad_images: BadImagePolicy = "stop"
    max_images: int = 0
    source: DataSource = "folder"
    tfds_image_dir: str = ""
    augmented_path: str = ""
    sampling: Sampling = "none"
    group_by: tuple[str, ...] = ("gender", "age")
    group_weights: Mapping[str, float] = dataclasses.field(default_factory=dict)
    random_augmentation: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_by", tuple(self.group_by))
        object.__setattr__(self, "group_weights", dict(self.group_weights))
        _require_choice("data.data_format", self.data_format, DATA_FORMATS)
        _require_fraction("data.validation_fraction", self.validation_fraction)
        _require_fraction("data.test_fraction", self.test_fraction)
        total = self.validation_fraction + self.test_fraction
        _require(total < 1.0, "data.validation_fraction + data.test_fraction", total, "less than 1")
        _require_positive_int("data.image_size", self.image_size, minimum=8)
        _require_choice("data.bad_images", self.bad_images, BAD_IMAGE_POLICIES)
        _require_positive_int("data.max_images", self.max_images, minimum=0)
        _require_choice("data.source", self.source, DATA_SOURCES)
        _require_choice("data.sampling", self.sampling, SAMPLING_MODES)
        group_by = list(self.group_by)
        valid_names = all(name in HEAD_CLASSES for name in group_by)
        _require(bool(group_by) and valid_names and len(set(group_by)) == len(group_by),
                 "data.group_by", group_by, f"distinct names from {list(HEAD_CLASSES)}")
        for group, weight in self.group_weights.items():
            is_number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
            _require(is_number and math.isfinite(weight) and weight >= 0,
                     f"data.group_weights.{group}", weight, "a number >= 0")
        given = self.sampling == "given"
        _require(given == bool(self.group_weights), "data.group_weights", self.group_weights,
                 "weights if and only if data.sampling is 'given'")
        _require(isinstance(self.random_augmentation, bool), "data.random_augmentation",
                 self.random_augmentation, "true or false")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The trunk and the heads built on its ``features``.

    Args:
        trunk: ``ferplus`` for the cached, checksummed FER+ model, or a path to an ``.onnx``
            or ``.keras`` trunk.
        trunk_classes: The trunk's logit order as emotion names. Empty picks the FER+ order for
            8 logits and the FER2013 order for 7.
        heads: Output heads; ``emotion`` is required, ``gender``, ``age`` and ``race`` optional.
    """

    trunk: str = "ferplus"
    trunk_classes: tuple[str, ...] = ()
    heads: tuple[str, ...] = ("emotion", "gender", "age")

    def __post_init__(self) -> None:
        object.__setattr__(self, "trunk_classes", tuple(self.trunk_classes))
        object.__setattr__(self, "heads", tuple(self.heads))
        _require(bool(self.trunk), "model.trunk", self.trunk, "'ferplus' or a model path")
        _require("emotion" in self.heads, "model.heads", list(self.heads), "a list with 'emotion'")
        unknown = [head for head in self.heads if head not in HEAD_CLASSES]
        _require(not unknown, "model.heads", list(self.heads), f"names from {list(HEAD_CLASSES)}")
        duplicated = len(set(self.heads)) != len(self.heads)
        _require(not duplicated, "model.heads", list(self.heads), "each head once")

    @property
    def attribute_heads(self) -> tuple[str, ...]:
        """The auxiliary heads, in the order of ``heads``."""
        return tuple(head for head in self.heads if head in ATTRIBUTES)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The two training phases.

    Phase 1 (``heads``) trains the heads at ``heads_learning_rate`` with the trunk frozen.
    Phase 2 (``finetune``) trains everything at ``finetune_learning_rate`` and stops early on
    the ``selection`` score, by default the validation emotion accuracy.

    Args:
        batch_size: Images per training step.
        heads_epochs: Maximum epochs of phase 1.
        heads_learning_rate: Adam learning rate of phase 1.
        finetune_epochs: Maximum epochs of phase 2.
        finetune_learning_rate: Adam learning rate of phase 2, usually 10 to 100 times lower.
        early_stopping_patience: Phase-2 epochs without a better ``selection`` score before
            training stops.
        loss_weights: Weight of each head's loss in the total loss.
        seed: Seed for splits, shuffling, initialisation, augmentation and sampling.
        deterministic: Enable TensorFlow op determinism, so the same command on the same
            machine gives identical weights and metrics (slower on some ops).
        precision: Keras dtype policy of the trunk during training. ``auto`` picks
            ``mixed_float16`` on a GPU, ``mixed_bfloat16`` on a CPU with bfloat16
            instructions (AVX-512 BF16 or AMX) and ``float32`` elsewhere. The heads, losses,
            metrics and the saved and exported model stay float32.
        cache_features: Where phase 1 keeps the trunk's features, computed once per training
            and validation image: ``memory``, ``disk`` (``.npy`` files in the run folder,
            deleted after phase 1) or ``off`` (run the trunk on every batch). ``auto`` is
            ``memory`` unless ``data.random_augmentation`` is set, and then ``off``.
        strategy: ``tf.distribute`` strategy: ``default`` (one device), ``mirrored`` (the
            GPUs of this machine) or ``multi_worker_mirrored`` (several hosts, configured by
            the ``TF_CONFIG`` environment variable). ``batch_size`` is per replica, so the
            global batch is ``batch_size * replicas``, and both learning rates are
            multiplied by the number of replicas.
        selection: The criterion that picks the best epoch for the checkpoints and early
            stopping. ``emotion_accuracy`` takes the highest validation emotion accuracy.
            ``accuracy_with_fairness_floor`` takes the highest validation emotion accuracy
            among the epochs whose validation ``<fairness_floor_attribute>_fairness`` ratio is
            at least ``fairness_floor``, or among all epochs when none reaches the floor.
        fairness_floor: The minimum fairness ratio, in [0, 1], of
            ``accuracy_with_fairness_floor``.
        fairness_floor_attribute: The attribute whose fairness ratio the floor applies to:
            ``gender``, ``age``, ``race`` or ``emotion``.
    """

    batch_size: int = 32
    heads_epochs: int = 5
    heads_learning_rate: float = 1e-3
    finetune_epochs: int = 20
    finetune_learning_rate: float = 1e-5
    early_stopping_patience: int = 3
    loss_weights: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {"emotion": 1.0, "gender": 0.5, "age": 0.5, "race": 0.5}
    )
    seed: int = 0
    deterministic: bool = False
    precision: Precision = "auto"
    cache_features: CacheFeatures = "auto"
    strategy: Strategy = "default"
    selection: Selection = "emotion_accuracy"
    fairness_floor: float = 0.8
    fairness_floor_attribute: str = "gender"

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss_weights", dict(self.loss_weights))
        _require_choice("training.selection", self.selection, SELECTIONS)
        _require_choice("training.fairness_floor_attribute", self.fairness_floor_attribute,
                        FLOOR_ATTRIBUTES)
        floor = self.fairness_floor
        is_number = isinstance(floor, (int, float)) and not isinstance(floor, bool)
        _require(is_number and 0.0 <= floor <= 1.0, "training.fairness_floor", floor,
                 "a number in [0, 1]")
        _require_choice("training.precision", self.precision, PRECISIONS)
        _require_choice("training.cache_features", self.cache_features, CACHE_MODES)
        _require_choice("training.strategy", self.strategy, STRATEGIES)
        _require(isinstance(self.deterministic, bool), "training.deterministic",
                 self.deterministic, "true or false")
        _require_positive_int("training.batch_size", self.batch_size)
        _require_positive_int("training.heads_epochs", self.heads_epochs, minimum=0)
        _require_positive_int("training.finetune_epochs", self.finetune_epochs, minimum=0)
        _require_positive_float("training.heads_learning_rate", self.heads_learning_rate)
        _require_positive_float("training.finetune_learning_rate", self.finetune_learning_rate)
        _require_positive_int("training.early_stopping_patience", self.early_stopping_patience)
        _require_positive_int("training.seed", self.seed, minimum=0)
        for head, weight in self.loss_weights.items():
            field = f"training.loss_weights.{head}"
            _require(head in HEAD_CLASSES, field, weight, f"a head from {list(HEAD_CLASSES)}")
            is_number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
            _require(is_number and math.isfinite(weight) and weight >= 0, field, weight,
                     "a finite number >= 0")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs; saved resolved as ``config.json`` in the run folder.

    Args:
        output_dir: Folder that receives one sub-folder per run.
        name: Run folder name; empty derives one from the data folder and the time.
        smoke: Set when the run was shrunk for a quick check.

    The ``evaluation`` section is the ``FairnessConfig`` of the test metrics: minimum group
    size, bootstrap resamples, confidence level and intersections.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    evaluation: FairnessConfig = dataclasses.field(default_factory=FairnessConfig)
    output_dir: str = "runs"
    name: str = ""
    smoke: bool = False

    def __post_init__(self) -> None:
        _require(bool(self.output_dir), "output_dir", self.output_dir, "a folder path")
        has_separator = "/" in self.name or "\\" in self.name or self.name in (".", "..")
        _require(not has_separator, "name", self.name, "a folder name without path separators")
        explicit_cache = self.training.cache_features in ("memory", "disk")
        _require(
            not (explicit_cache and self.data.random_augmentation),
            "training.cache_features",
            self.training.cache_features,
            "'auto' or 'off' with data.random_augmentation, because augmented images change "
            "their features in every epoch",
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as JSON-serialisable nested dicts."""
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "evaluation": FairnessConfig,
}


def _build_section(section: str, values: Mapping[str, Any]) -> Any:
    cls = SECTIONS[section]
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown field(s) {', '.join(f'{section}.{name}' for name in unknown)}; "
            f"the fields of [{section}] are {', '.join(sorted(known))}"
        )
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as error:
        # Sections defined outside this module name their fields without the section.
        raise ConfigError(f"{section}.{error}") from error


def config_from_dict(values: Mapping[str, Any]) -> RunConfig:
    """Build a validated ``RunConfig`` from nested dicts, such as a parsed TOML file."""
    top_level = {"output_dir", "name", "smoke"}
    unknown = sorted(set(values) - set(SECTIONS) - top_level)
    if unknown:
        raise ConfigError(
            f"unknown section or field(s) {', '.join(unknown)}; expected the sections "
            f"{', '.join(SECTIONS)} and the fields {', '.join(sorted(top_level))}"
        )
    sections = {name: _build_section(name, values.get(name, {})) for name in SECTIONS}
    rest = {key: values[key] for key in top_level if key in values}
    return RunConfig(**sections, **rest)


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file into dicts.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ConfigError: on a TOML syntax error or bytes that are not UTF-8, naming the file.
    """
    if not path.is_file():
        raise FileNotFoundError(f"configuration file {path} not found")
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error}); save the file as UTF-8") from error


def load_config(path: str | Path) -> RunConfig:
    """Load a TOML configuration file.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ConfigError: on a TOML syntax error or an invalid value, naming the file.
    """
    path = Path(path)
    values = read_toml(path)
    try:
        return config_from_dict(values)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def override(config: RunConfig, changes: Mapping[str, Any]) -> RunConfig:
    """Return ``config`` with dotted fields replaced, e.g. ``{"training.seed": 3}``.

    Values of ``None`` are ignored, so unset CLI flags leave the file's values in place.
    """
    values = config.to_dict()
    for dotted, value in changes.items():
        if value is None:
            continue
        *parents, field = dotted.split(".")
        target = values
        for parent in parents:
            target = target[parent]
        target[field] = value
    return config_from_dict(values)


def smoke_config(config: RunConfig) -> RunConfig:
    """Shrink a configuration for a quick end-to-end check: one epoch per phase, few images."""
    training = dataclasses.replace(
        config.training,
        heads_epochs=min(config.training.heads_epochs, 1),
        finetune_epochs=min(config.training.finetune_epochs, 1),
        batch_size=min(config.training.batch_size, 16),
    )
    max_images = config.data.max_images or 48
    data = dataclasses.replace(config.data, max_images=min(max_images, 48))
    return dataclasses.replace(config, data=data, training=training, smoke=True)
