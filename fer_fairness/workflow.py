"""The main job: data, model, two training phases, evaluation and export into a run folder.

A run folder contains ``config.json``, ``environment.json``, ``status.json``, ``history.csv``,
``tensorboard/``, ``checkpoints/``, ``model.keras``, ``saved_model/``,
``metrics_zero_shot.json`` (the model before training), ``metrics.json`` (the test split after
training), ``fairness/``, ``plots/`` and ``report.html``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fer_fairness import distribute, feature_cache, precision, selection, training
from fer_fairness import model as model_lib
from fer_fairness.config import Phase, RunConfig
from fer_fairness.data.balance import make_balanced_dataset
from fer_fairness.data.pipeline import label_arrays, make_dataset
from fer_fairness.data.prepare import PreparedData, prepare_splits
from fer_fairness.data.records import FaceRecord
from fer_fairness.evaluation import compute_metrics, predict_records, write_evaluation
from fer_fairness.export import export_saved_model
from fer_fairness.fairness.callback import FairnessReport
from fer_fairness.io import atomic_path, read_json, write_json_atomic
from fer_fairness.runs import (
    backup_epoch,
    check_data_unchanged,
    completed_phases,
    create_run_dir,
    default_run_name,
    load_phase_end,
    load_run_config,
    mark_phase_finished,
    read_status,
    save_phase_end,
    write_environment,
    write_history,
    write_status,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Outputs of a finished training job.

    Attributes:
        run_dir: The run folder.
        metrics: The test-split metrics written to ``metrics.json``.
        zero_shot_metrics: The same metrics for the model before training.
        phase_seconds: Wall time in seconds of each phase trained in this process, keyed
            ``heads`` and ``finetune``; phase 1 includes computing the cached features.
    """

    run_dir: Path
    metrics: dict
    zero_shot_metrics: dict
    phase_seconds: dict[str, float] = dataclasses.field(default_factory=dict)


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, numpy, TensorFlow and Keras; optionally enable TF op determinism.

    Data shuffling, augmentation and balanced sampling take their seeds from the run's seed
    explicitly, so they repeat with or without this call.
    """
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def train(
    config: RunConfig,
    *,
    phase: Phase = "all",
    from_run: Path | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Run the training job and return where its outputs went.

    Args:
        config: The resolved configuration.
        phase: ``heads`` (phase 1 only), ``finetune`` (phase 2 only, starting from the phase-1
            checkpoint of ``from_run``) or ``all``.
        from_run: Run folder whose ``checkpoints/heads.keras`` phase 2 starts from.
        overwrite: Replace an existing run folder of the same name instead of picking a new
            name.
    """
    if phase == "finetune" and from_run is None:
        raise ValueError("--phase finetune needs --from-run RUN_DIR, a run that finished phase 1")
    seed_everything(config.training.seed, deterministic=config.training.deterministic)
    data = prepare_splits(config.data, seed=config.training.seed)
    start_checkpoint = _phase_one_checkpoint(from_run) if phase == "finetune" else None
    if start_checkpoint is None:
        # Load the trunk once before the run folder exists, so a missing, truncated or unsafe
        # model file fails here and leaves no failed run folder behind.
        model_lib.load_trunk(config.model.trunk)
    name = config.name or default_run_name(config.data.path)
    target = Path(config.output_dir) / name
    if overwrite and from_run is not None and target.resolve() == Path(from_run).resolve():
        raise ValueError(
            f"--overwrite would delete {target}, the run that --from-run starts from; "
            "give the new run another --name"
        )
    run_dir = create_run_dir(config.output_dir, name, overwrite=overwrite)
    logger.info("run folder: %s", run_dir)
    write_json_atomic(
        run_dir / "config.json",
        {**config.to_dict(), "phase": phase, "from_run": str(from_run) if from_run else None},
    )
    write_environment(run_dir, seed=config.training.seed, records=data.all_records)
    data.write_skipped(run_dir)
    return _run_guarded(run_dir, config, data, phase=phase, start_checkpoint=start_checkpoint)


def resume(run_dir: str | Path) -> TrainResult:
    """Continue an interrupted run in its own folder, from its last finished epoch.

    The run's ``config.json`` decides everything, so the resumed run trains exactly as the
    interrupted one would have. Finished phases are not repeated: their end-of-phase weights
    are loaded. The interrupted phase continues through Keras ``BackupAndRestore`` from the
    last finished epoch, with the same early-stopping state and the same data order.

    Raises:
        FileNotFoundError: if ``run_dir`` is not a run folder.
        ValueError: if the run finished already or its data changed since it started.
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    saved = read_json(run_dir / "config.json")
    phase = saved.get("phase", "all")
    from_run = saved.get("from_run")
    if (run_dir / "status.json").is_file() and read_status(run_dir)["status"] == "finished":
        raise ValueError(f"{run_dir} finished already; there is nothing to resume")
    seed_everything(config.training.seed, deterministic=config.training.deterministic)
    data = prepare_splits(config.data, seed=config.training.seed)
    check_data_unchanged(run_dir, data.all_records)
    start_checkpoint = _phase_one_checkpoint(Path(from_run)) if phase == "finetune" else None
    logger.info("resuming %s (phase %s)", run_dir, phase)
    return _run_guarded(run_dir, config, data, phase=phase, start_checkpoint=start_checkpoint)


def _run_guarded(run_dir, config, data, *, phase, start_checkpoint) -> TrainResult:
    """Run the job and keep ``status.json`` current: running, then finished or failed."""
    write_status(run_dir, "running", phase=phase, completed_phases=completed_phases(run_dir))
    try:
        strategy = distribute.make_strategy(config.training.strategy)
        # Every model and optimizer must be created inside the strategy's scope.
        with strategy.scope():
            scaled = distribute.scale_to_replicas(config, strategy.num_replicas_in_sync)
            result = _train_in(
                run_dir, scaled, data, phase=phase, start_checkpoint=start_checkpoint
            )
    except BaseException as error:
        write_status(
            run_dir,
            "failed",
            reason=f"{type(error).__name__}: {error}",
            phase=phase,
            completed_phases=completed_phases(run_dir),
        )
        raise
    write_status(run_dir, "finished", phase=phase, completed_phases=completed_phases(run_dir))
    return result


def _phase_one_checkpoint(from_run: Path | None) -> Path:
    checkpoint = Path(from_run) / "checkpoints" / "heads.keras"
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"phase-1 checkpoint {checkpoint} not found; --from-run must name a run folder "
            "that finished phase 1 (fer-fairness train --phase heads)"
        )
    return checkpoint


def _train_in(
    run_dir: Path,
    config: RunConfig,
    data: PreparedData,
    *,
    phase: Phase,
    start_checkpoint: Path | None,
) -> TrainResult:
    heads = config.model.heads
    extractor, head_layers = _initial_layers(config, start_checkpoint)
    test_records = data.splits["test"]
    fairness_config = config.evaluation

    # A phase-1 checkpoint keeps the policy it was trained with; evaluate in float32.
    precision.apply_policy(extractor, "float32")
    first_model = model_lib.assemble(extractor, head_layers, trunk_inference=True)
    zero_shot = _zero_shot_metrics(run_dir, first_model, test_records, config)
    policy = precision.resolve_precision(config.training.precision)
    logger.info("training precision: %s", policy)
    if precision.apply_policy(extractor, policy):
        # Functions traced for the float32 model would keep float32, so assemble a new one.
        first_model = model_lib.assemble(extractor, head_layers, trunk_inference=True)

    datasets = _datasets(data, config, heads)
    datasets["epochs_seen"] = 0
    model = first_model
    phase_seconds = {}
    if phase in ("heads", "all"):
        started = time.perf_counter()
        phase_one = training.PhaseSettings(
            "heads",
            config.training.heads_epochs,
            config.training.heads_learning_rate,
            steps_per_epoch=datasets["steps_per_epoch"],
        )
        cached = None
        if "heads" not in completed_phases(run_dir):
            cached = feature_cache.prepare_phase_one(
                extractor, head_layers, data, config, run_dir=run_dir
            )
        _run_or_restore_phase(model, cached or datasets, phase_one, config, run_dir, data)
        feature_cache.remove_disk_cache(run_dir)
        phase_seconds["heads"] = _log_phase_time("heads", started)
    if phase in ("finetune", "all"):
        started = time.perf_counter()
        model = model_lib.assemble(extractor, head_layers, trunk_inference=False)
        phase_two = training.PhaseSettings(
            "finetune",
            config.training.finetune_epochs,
            config.training.finetune_learning_rate,
            initial_epoch=config.training.heads_epochs if phase == "all" else 0,
            steps_per_epoch=datasets["steps_per_epoch"],
        )
        _run_or_restore_phase(model, datasets, phase_two, config, run_dir, data)
        phase_seconds["finetune"] = _log_phase_time("finetune", started)

    if precision.apply_policy(extractor, "float32"):
        # model.keras, the exports and the test metrics use the float32 model.
        model = model_lib.assemble(extractor, head_layers, trunk_inference=phase == "heads")
    write_history(run_dir)
    _save_model(model, run_dir)
    export_saved_model(model, run_dir / "saved_model")
    predictions = predict_records(
        model, test_records, batch_size=config.training.batch_size, image_size=config.data.image_size
    )
    metrics = compute_metrics(predictions, config=fairness_config)
    write_evaluation(run_dir, test_records, predictions, metrics)
    logger.info(
        "test emotion accuracy %.3f (zero-shot %.3f)",
        metrics["overall_accuracy"],
        zero_shot["overall_accuracy"],
    )
    return TrainResult(run_dir, metrics, zero_shot, phase_seconds)


def _log_phase_time(name: str, started: float) -> float:
    seconds = time.perf_counter() - started
    logger.info("phase %s took %.1f s", name, seconds)
    return seconds


def _initial_layers(config: RunConfig, start_checkpoint: Path | None):
    if start_checkpoint is None:
        trunk = model_lib.load_trunk(config.model.trunk)
        extractor = model_lib.feature_extractor(trunk)
        head_layers = model_lib.build_heads(
            trunk,
            heads=config.model.heads,
            trunk_classes=config.model.trunk_classes,
            seed=config.training.seed,
        )
        return extractor, head_layers
    logger.info("starting phase 2 from %s", start_checkpoint)
    saved = keras.saving.load_model(start_checkpoint, compile=False, safe_mode=True)
    saved_heads = model_lib.head_names(saved)
    if list(saved_heads) != list(config.model.heads):
        raise ValueError(
            f"{start_checkpoint} has the heads {saved_heads} but model.heads is "
            f"{list(config.model.heads)}; use the same heads as the phase-1 run"
        )
    return model_lib.trunk_of(saved), {head: saved.get_layer(head) for head in saved_heads}


def _datasets(data: PreparedData, config: RunConfig, heads: Sequence[str]) -> dict:
    """Return the train and validation datasets, and ``steps_per_epoch`` for ``fit``.

    ``steps_per_epoch`` is None for a finite training dataset. With group-balanced sampling
    the training dataset is infinite and ``steps_per_epoch`` is ``ceil(train / batch_size)``.
    Validation is never resampled or augmented.
    """
    common = {
        "heads": heads,
        "batch_size": config.training.batch_size,
        "image_size": config.data.image_size,
    }
    train_options = {
        "seed": config.training.seed,
        "random_augmentation": config.data.random_augmentation,
        **common,
    }
    if config.data.sampling == "none":
        train = make_dataset(data.splits["train"], shuffle=True, **train_options)
        steps_per_epoch = None
    else:
        balanced = make_balanced_dataset(
            data.splits["train"],
            group_by=config.data.group_by,
            sampling=config.data.sampling,
            group_weights=config.data.group_weights,
            **train_options,
        )
        train, steps_per_epoch = balanced.dataset, balanced.steps_per_epoch
    return {
        "train": distribute.shard_by_data(train),
        "validation": distribute.shard_by_data(make_dataset(data.splits["validation"], **common)),
        "steps_per_epoch": steps_per_epoch,
    }


def _run_or_restore_phase(model, datasets, phase, config, run_dir, data) -> None:
    """Fit one phase, or load its end-of-phase weights when an earlier process finished it."""
    if phase.name in completed_phases(run_dir):
        load_phase_end(model, run_dir, phase.name)
        logger.info("phase %s finished before; its end-of-phase weights are loaded", phase.name)
        # This process drew no shuffle order for this phase, so ``epochs_seen`` stays as it is
        # and the next phase's ``align_data_order`` draws this phase's orders too. With or
        # without cached features, phase 2 then starts at the same order as uninterrupted runs.
        return
    start_epoch = backup_epoch(run_dir, phase.name) or phase.initial_epoch
    training.align_data_order(datasets, start_epoch)
    history = _fit(model, datasets, phase, config, run_dir, data)
    datasets["epochs_seen"] = start_epoch + len(history.epoch)
    save_phase_end(model, run_dir, phase.name)
    mark_phase_finished(run_dir)


def _fit(model, datasets, phase, config, run_dir, data) -> keras.callbacks.History:
    """Fit one phase; cached phase 1 fits ``datasets["fit_model"]`` and checkpoints ``model``."""
    validation_records = data.splits["validation"]
    fit_model = datasets.get("fit_model", model)
    fairness_inputs = datasets.get("fairness_inputs")
    if fairness_inputs is None:
        fairness_inputs = make_dataset(
            validation_records,
            heads=(),
            batch_size=config.training.batch_size,
            image_size=config.data.image_size,
            with_labels=False,
        )
    fairness_report = FairnessReport(
        fairness_inputs,
        label_arrays(validation_records, ("emotion", "gender", "age", "race")),
        run_dir,
        tensorboard_dir=run_dir / "tensorboard" / "fairness",
        config=dataclasses.replace(config.evaluation, n_bootstrap=0),
    )
    callbacks = training.phase_callbacks(
        run_dir,
        phase,
        patience=config.training.early_stopping_patience,
        extra=[fairness_report, *selection.selection_callbacks(config.training)],
        monitor=selection.selection_monitor(config.training),
        checkpoint_model=None if fit_model is model else model,
    )
    return training.run_phase(
        fit_model,
        datasets["train"],
        datasets["validation"],
        phase,
        loss_weights=config.training.loss_weights,
        callbacks=callbacks,
    )


def _zero_shot_metrics(run_dir: Path, model, records: list[FaceRecord], config: RunConfig) -> dict:
    """Return the test metrics before training, reusing the file of an interrupted run."""
    path = run_dir / "metrics_zero_shot.json"
    if path.is_file():
        return read_json(path)
    predictions = predict_records(
        model, records, batch_size=config.training.batch_size, image_size=config.data.image_size
    )
    metrics = compute_metrics(predictions, config=config.evaluation)
    write_json_atomic(path, metrics)
    return metrics


def _save_model(model: keras.Model, run_dir: Path) -> None:
    with atomic_path(run_dir / "model.keras") as temporary:
        model.save(temporary)
