"""Side-by-side comparison of training methods ("arms") over several seeds.

Every arm trains once per seed from the same base configuration, so the arms of one seed share
the data, the split, the epochs, the learning rates and the trunk. An arm changes only the
method fields of ``ARM_FIELDS`` (heads, loss weights, sampling, best-epoch selection) and may
add the balanced augmented training data. The four default arms are:

* ``baseline``: the emotion head only, no balancing;
* ``multitask``: emotion, gender and age heads;
* ``multitask_balanced``: multitask, plus the balanced augmented training data and balanced
  sampling (``data.sampling = "inverse_frequency"`` over ``data.group_by``);
* ``balanced``: the balanced data and sampling with the emotion head only.

The output folder contains ``runs/<arm>/seed<N>/`` (ordinary run folders),
``augmented/<group_by>/seed<N>/`` (the balanced augmented set, written from that seed's train
split only), ``comparison.json``, ``comparison.md`` and ``comparison.png``. The first arm is
the reference that the others are tested against; ``comparison_stats`` describes the tests.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fer_fairness import config as config_lib
from fer_fairness.comparison_stats import encode_seed, read_predictions, summarize_comparison
from fer_fairness.config import ConfigError, RunConfig, read_toml
from fer_fairness.io import read_json

logger = logging.getLogger(__name__)

# Configuration fields that an arm may change. Everything else (data, split, epochs, learning
# rates, trunk, evaluation) comes from the base configuration, identical for every arm.
ARM_FIELDS: tuple[str, ...] = (
    "model.heads",
    "data.sampling",
    "data.group_by",
    "data.group_weights",
    "data.random_augmentation",
    "training.loss_weights",
    "training.selection",
    "training.fairness_floor",
    "training.fairness_floor_attribute",
)
RUNS_FOLDER = "runs"
AUGMENTED_FOLDER = "augmented"


@dataclasses.dataclass(frozen=True)
class ArmSpec:
    """One method of a comparison.

    Args:
        name: Folder-safe name, such as ``multitask``.
        settings: Dotted configuration fields from ``ARM_FIELDS`` and their values, applied on
            top of the base configuration, e.g. ``{"model.heads": ("emotion",)}``.
        balanced_data: Add the balanced augmented set, written per seed from that seed's train
            split, to the train split.
        description: One line for the report.
    """

    name: str
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    balanced_data: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", dict(self.settings))
        valid_name = bool(self.name) and all(c.isalnum() or c in "_-" for c in self.name)
        if not valid_name:
            raise ConfigError(f"arm name {self.name!r} is invalid; expected letters, digits, "
                              "'_' and '-' only")
        unknown = sorted(set(self.settings) - set(ARM_FIELDS))
        if unknown:
            raise ConfigError(
                f"arm {self.name!r} sets {', '.join(unknown)}, which must be equal for every "
                f"arm; an arm may set only {', '.join(ARM_FIELDS)}. Put other fields in the "
                "base configuration"
            )
        if not isinstance(self.balanced_data, bool):
            raise ConfigError(f"arm {self.name!r}: balanced_data={self.balanced_data!r} is "
                              "invalid; expected true or false")


EMOTION_ONLY = ("emotion",)
MULTITASK = ("emotion", "gender", "age")
DEFAULT_ARMS: dict[str, ArmSpec] = {
    arm.name: arm
    for arm in (
        ArmSpec("baseline", {"model.heads": EMOTION_ONLY, "data.sampling": "none"},
                description="emotion head only, no balancing"),
        ArmSpec("multitask", {"model.heads": MULTITASK, "data.sampling": "none"},
                description="emotion, gender and age heads"),
        ArmSpec("multitask_balanced",
                {"model.heads": MULTITASK, "data.sampling": "inverse_frequency"},
                balanced_data=True,
                description="multitask with balanced augmented data and balanced sampling"),
        ArmSpec("balanced", {"model.heads": EMOTION_ONLY, "data.sampling": "inverse_frequency"},
                balanced_data=True,
                description="balanced augmented data and balanced sampling, emotion head only"),
    )
}


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """A comparison: the base run configuration, the arms and the number of seeds.

    Args:
        base: The run configuration shared by every arm. ``training.seed`` is the first seed,
            ``evaluation`` sets the minimum group size, the confidence level and the bootstrap
            resamples of the comparison's tests. ``run_comparison`` requires ``data.path``.
        arms: The arms in report order; the first is the reference.
        seeds: Seeds per arm, ``training.seed`` to ``training.seed + seeds - 1``.
        max_factor: A group of the balanced augmented set grows to at most this many times its
            size.
    """

    base: RunConfig = dataclasses.field(default_factory=RunConfig)
    arms: tuple[ArmSpec, ...] = tuple(DEFAULT_ARMS.values())
    seeds: int = 3
    max_factor: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "arms", tuple(self.arms))
        names = [arm.name for arm in self.arms]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"compare arms {names} are invalid; expected at least one arm, "
                              "each name once")
        seeds = self.seeds
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ConfigError(f"compare.seeds={seeds!r} is invalid; expected a whole number >= 1")
        factor = self.max_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 1:
            raise ConfigError(f"compare.max_factor={factor!r} is invalid; expected a number >= 1")

    @property
    def seed_values(self) -> list[int]:
        """The training seeds, one run per arm each."""
        return [self.base.training.seed + index for index in range(self.seeds)]


def select_arms(arms: Sequence[ArmSpec], names: Sequence[str]) -> tuple[ArmSpec, ...]:
    """Return the arms called ``names``, in that order, from ``arms`` or ``DEFAULT_ARMS``."""
    known = {**DEFAULT_ARMS, **{arm.name: arm for arm in arms}}
    missing = [name for name in names if name not in known]
    if missing:
        raise ConfigError(f"unknown arm(s) {missing}; expected names from {sorted(known)}")
    return tuple(known[name] for name in names)


def load_compare_config(path: str | Path) -> CompareConfig:
    """Load a comparison from TOML: the run sections plus a ``[compare]`` table.

    ``[compare]`` may set ``seeds`` and ``max_factor``. Each ``[[compare.arm]]`` table adds an
    arm with a ``name``, optional ``balanced_data`` and ``description``, and ``[model]``,
    ``[data]`` or ``[training]`` sub-tables of ``ARM_FIELDS``. A default arm's name starts
    from that default and changes only the given fields. Without ``[[compare.arm]]`` the four
    default arms are used.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ConfigError: on invalid TOML or an invalid value, naming the file.
    """
    path = Path(path)
    values = read_toml(path)
    try:
        return compare_config_from_dict(values)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def compare_config_from_dict(values: Mapping[str, Any]) -> CompareConfig:
    """Build a ``CompareConfig`` from nested dicts, as ``load_compare_config`` reads them."""
    values = dict(values)
    table = dict(values.pop("compare", {}))
    base = config_lib.config_from_dict(values)
    arm_tables = table.pop("arm", [])
    unknown = sorted(set(table) - {"seeds", "max_factor"})
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(f'compare.{k}' for k in unknown)}; "
                          "[compare] takes seeds, max_factor and [[compare.arm]] tables")
    arms = tuple(_arm_from_table(arm) for arm in arm_tables) or tuple(DEFAULT_ARMS.values())
    return CompareConfig(base=base, arms=arms, **table)


def _arm_from_table(table: Mapping[str, Any]) -> ArmSpec:
    table = dict(table)
    name = table.pop("name", "")
    start = DEFAULT_ARMS.get(name, ArmSpec(name or "?"))
    settings = dict(start.settings)
    for section in ("model", "data", "training"):
        for field, value in dict(table.pop(section, {})).items():
            settings[f"{section}.{field}"] = value
    unknown = sorted(set(table) - {"balanced_data", "description"})
    if unknown:
        raise ConfigError(f"arm {name!r} has unknown field(s) {unknown}; expected name, "
                          "balanced_data, description and [model], [data], [training] tables")
    return ArmSpec(name, settings, table.get("balanced_data", start.balanced_data),
                   table.get("description", start.description))


@dataclasses.dataclass(frozen=True)
class ComparisonResult:
    """Outputs of ``run_comparison``.

    Attributes:
        output_dir: The comparison folder.
        summary: The content of ``comparison.json``.
        trained: ``(arm, seed)`` of the runs trained or resumed in this call.
        reused: ``(arm, seed)`` of the finished runs reused without training.
    """

    output_dir: Path
    summary: dict
    trained: list[tuple[str, int]]
    reused: list[tuple[str, int]]


def arm_run_config(
    config: CompareConfig, arm: ArmSpec, seed: int, output_dir: Path
) -> RunConfig:
    """Return the run configuration of ``arm`` with ``seed``, writing its augmented set."""
    changes: dict[str, Any] = dict(arm.settings)
    changes.update({
        "training.seed": seed,
        "output_dir": str(output_dir / RUNS_FOLDER / arm.name),
        "name": f"seed{seed}",
        "data.augmented_path": "",
        # config.json keeps absolute paths, so a reused run matches from any folder.
        "data.path": str(Path(config.base.data.path).resolve()),
    })
    run_config = config_lib.override(config.base, changes)
    if arm.balanced_data:
        folder = _ensure_augmented(config, run_config, output_dir)
        run_config = config_lib.override(run_config, {"data.augmented_path": str(folder)})
    return run_config


def _ensure_augmented(config: CompareConfig, run_config: RunConfig, output_dir: Path) -> Path:
    """Write, or reuse, the balanced augmented set of the run's seed and ``data.group_by``."""
    # Imported here because they import TensorFlow.
    from fer_fairness.data.augment import write_augmented_set
    from fer_fairness.data.augment_report import COUNTS_JSON
    from fer_fairness.data.prepare import prepare_splits

    data = dataclasses.replace(run_config.data, augmented_path="", max_images=0)
    seed = run_config.training.seed
    folder = output_dir / AUGMENTED_FOLDER / "-".join(data.group_by) / f"seed{seed}"
    settings = {"data": data.path, "source": data.source, "split_seed": seed,
                "validation_fraction": data.validation_fraction,
                "test_fraction": data.test_fraction}
    expected = {"seed": seed, "max_factor": config.max_factor, "group_by": list(data.group_by),
                **settings}
    counts = folder / COUNTS_JSON
    if counts.is_file():
        saved = read_json(counts)
        differing = sorted(key for key, value in expected.items() if saved.get(key) != value)
        if differing:
            # Runs trained on the old copies would otherwise be reused with new copies.
            raise ValueError(
                f"the augmented set {folder} was written with other settings "
                f"({', '.join(differing)} differ); write the comparison into another --output "
                "folder"
            )
        logger.info("reusing the augmented set %s", folder)
        return folder
    prepared = prepare_splits(data, seed=seed)
    write_augmented_set(prepared.splits["train"], folder, group_by=data.group_by,
                        max_factor=config.max_factor, seed=seed, overwrite=True,
                        settings=settings)
    return folder


def run_comparison(config: CompareConfig, output_dir: str | Path) -> ComparisonResult:
    """Train every arm for every seed, reusing finished runs, then compare and report.

    A run folder whose ``status.json`` is ``finished`` and that contains ``metrics.json`` and
    ``predictions.csv`` is reused when its saved configuration equals the arm's. An
    interrupted run (status running or failed, with ``config.json``) continues with
    ``workflow.resume`` from its last finished epoch. A folder without ``config.json`` is
    retrained from the start.

    Raises:
        ValueError: if a run folder or an augmented set in ``output_dir`` was made with other
            settings; choose another output folder or delete that folder.
    """
    # Imported here because they import TensorFlow.
    import keras

    from fer_fairness.reports.comparison import write_comparison

    if not config.base.data.path:
        raise ValueError("data.path is empty; set the data folder of the comparison")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    trained, reused = [], []
    tables: dict[int, dict[str, Any]] = {}
    for seed in config.seed_values:
        for arm in config.arms:
            run_config = arm_run_config(config, arm, seed, output_dir)
            run_dir = Path(run_config.output_dir) / run_config.name
            if _train_or_reuse(run_config, run_dir, arm.name):
                trained.append((arm.name, seed))
                keras.backend.clear_session()
            else:
                reused.append((arm.name, seed))
            tables.setdefault(seed, {})[arm.name] = read_predictions(run_dir / "predictions.csv")
    seeds = [encode_seed(seed, arm_tables, config.base.evaluation)
             for seed, arm_tables in tables.items()]
    summary = summarize_comparison(seeds, reference=config.arms[0].name,
                                   config=config.base.evaluation)
    summary["settings"] = _settings(config, output_dir)
    write_comparison(output_dir, summary)
    logger.info("comparison written to %s (%d runs trained, %d reused)", output_dir,
                len(trained), len(reused))
    return ComparisonResult(output_dir, summary, trained, reused)


def _train_or_reuse(run_config: RunConfig, run_dir: Path, arm: str) -> bool:
    """Train, resume or reuse the run of ``run_config`` in ``run_dir``; return True unless reused."""
    from fer_fairness.runs import load_run_config
    from fer_fairness.workflow import resume, train

    seed = run_config.training.seed
    # NOTE: a run that another process is training right now also reads as interrupted, and
    # this process would resume it too. Run one comparison per output folder at a time.
    if (run_dir / "config.json").is_file():
        _check_same_config(load_run_config(run_dir), run_config, run_dir)
        status = read_json(run_dir / "status.json").get("status") if (
            run_dir / "status.json").is_file() else None
        finished = all((run_dir / name).is_file() for name in ("metrics.json", "predictions.csv"))
        if status == "finished" and finished:
            logger.info("arm %s seed %d: reusing the finished run %s", arm, seed, run_dir)
            return False
        if status != "finished":
            logger.info("arm %s seed %d: resuming the interrupted run %s", arm, seed, run_dir)
            started = time.perf_counter()
            resume(run_dir)
            logger.info("arm %s seed %d: resumed run took %.1f s", arm, seed,
                        time.perf_counter() - started)
            return True
    logger.info("arm %s seed %d: training into %s", arm, seed, run_dir)
    started = time.perf_counter()
    train(run_config, overwrite=True)
    logger.info("arm %s seed %d: training took %.1f s", arm, seed, time.perf_counter() - started)
    return True


def _check_same_config(saved: RunConfig, expected: RunConfig, run_dir: Path) -> None:
    saved_values, expected_values = _flatten(saved.to_dict()), _flatten(expected.to_dict())
    differing = sorted(key for key in saved_values.keys() | expected_values.keys()
                       if saved_values.get(key) != expected_values.get(key))
    if differing:
        raise ValueError(
            f"{run_dir} was trained with other settings ({', '.join(differing)} differ); "
            "write the comparison into another --output folder, or delete that run folder to "
            "retrain it"
        )


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and key != "group_weights" and key != "loss_weights":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _settings(config: CompareConfig, output_dir: Path) -> dict:
    base = config.base
    return {
        "output_dir": str(output_dir),
        "data": base.data.path,
        "trunk": base.model.trunk,
        "seeds": config.seed_values,
        "heads_epochs": base.training.heads_epochs,
        "finetune_epochs": base.training.finetune_epochs,
        "heads_learning_rate": base.training.heads_learning_rate,
        "finetune_learning_rate": base.training.finetune_learning_rate,
        "batch_size": base.training.batch_size,
        "min_group_size": base.evaluation.min_group_size,
        "max_factor": config.max_factor,
        "arms": {arm.name: {"description": arm.description, "balanced_data": arm.balanced_data,
                            "settings": {key: list(value) if isinstance(value, tuple) else value
                                         for key, value in arm.settings.items()}}
                 for arm in config.arms},
    }
