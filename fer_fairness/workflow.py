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
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from fer_fairness import model as model_lib
from fer_fairness import training
from fer_fairness.config import Phase, RunConfig
from fer_fairness.data.balance import make_balanced_dataset
from fer_fairness.data.pipeline import label_arrays, make_dataset
from fer_fairness.data.prepare import PreparedData, prepare_splits
from fer_fairness.data.records import FaceRecord
from fer_fairness.evaluation import compute_metrics, predict_records
from fer_fairness.export import export_saved_model
from fer_fairness.fairness.callback import FairnessReport
from fer_fairness.io import write_json_atomic, write_text_atomic
from fer_fairness.io import atomic_path
from fer_fairness.reports.html import write_report
from fer_fairness.reports.plots import write_plots
from fer_fairness.runs import create_run_dir, default_run_name, write_environment, write_status

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Outputs of a finished training job.

    Attributes:
        run_dir: The run folder.
        metrics: The test-split metrics written to ``metrics.json``.
        zero_shot_metrics: The same metrics for the model before training.
    """

    run_dir: Path
    metrics: dict
    zero_shot_metrics: dict


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
    name = config.name or default_run_name(config.data.path)
    run_dir = create_run_dir(config.output_dir, name, overwrite=overwrite)
    logger.info("run folder: %s", run_dir)
    write_status(run_dir, "running", phase=phase)
    try:
        result = _train_in(run_dir, config, data, phase=phase, start_checkpoint=start_checkpoint)
    except BaseException as error:
        write_status(run_dir, "failed", reason=f"{type(error).__name__}: {error}", phase=phase)
        raise
    write_status(run_dir, "finished", phase=phase)
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
    write_json_atomic(run_dir / "config.json", {**config.to_dict(), "phase": phase})
    write_environment(run_dir, seed=config.training.seed, records=data.all_records)
    data.write_skipped(run_dir)
    heads = config.model.heads
    extractor, head_layers = _initial_layers(config, start_checkpoint)
    test_records = data.splits["test"]
    fairness_config = config.evaluation

    first_model = model_lib.assemble(extractor, head_layers, trunk_inference=True)
    zero_shot = _evaluate(first_model, test_records, config, fairness_config)
    write_json_atomic(run_dir / "metrics_zero_shot.json", zero_shot)

    datasets = _datasets(data, config, heads)
    histories = []
    model = first_model
    if phase in ("heads", "all"):
        phase_one = training.PhaseSettings(
            "heads",
            config.training.heads_epochs,
            config.training.heads_learning_rate,
            steps_per_epoch=datasets["steps_per_epoch"],
        )
        histories.append(("heads", _fit(model, datasets, phase_one, config, run_dir, data)))
    if phase in ("finetune", "all"):
        model = model_lib.assemble(extractor, head_layers, trunk_inference=False)
        initial_epoch = sum(len(history.epoch) for _, history in histories)
        phase_two = training.PhaseSettings(
            "finetune",
            config.training.finetune_epochs,
            config.training.finetune_learning_rate,
            initial_epoch=initial_epoch,
            steps_per_epoch=datasets["steps_per_epoch"],
        )
        histories.append(("finetune", _fit(model, datasets, phase_two, config, run_dir, data)))

    _write_history(run_dir, histories)
    _save_model(model, run_dir)
    export_saved_model(model, run_dir / "saved_model")
    predictions = predict_records(
        model, test_records, batch_size=config.training.batch_size, image_size=config.data.image_size
    )
    metrics = compute_metrics(predictions, config=fairness_config)
    write_json_atomic(run_dir / "metrics.json", metrics)
    _write_report(run_dir, metrics, predictions)
    logger.info(
        "test emotion accuracy %.3f (zero-shot %.3f)",
        metrics["overall_accuracy"],
        zero_shot["overall_accuracy"],
    )
    return TrainResult(run_dir, metrics, zero_shot)


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
        "train": train,
        "validation": make_dataset(data.splits["validation"], **common),
        "steps_per_epoch": steps_per_epoch,
    }


def _fit(model, datasets, phase, config, run_dir, data) -> keras.callbacks.History:
    validation_records = data.splits["validation"]
    fairness_report = FairnessReport(
        make_dataset(
            validation_records,
            heads=(),
            batch_size=config.training.batch_size,
            image_size=config.data.image_size,
            with_labels=False,
        ),
        label_arrays(validation_records, ("emotion", "gender", "age", "race")),
        run_dir,
        tensorboard_dir=run_dir / "tensorboard" / "fairness",
        config=dataclasses.replace(config.evaluation, n_bootstrap=0),
    )
    callbacks = training.phase_callbacks(
        run_dir,
        phase,
        patience=config.training.early_stopping_patience,
        extra=[fairness_report],
    )
    return training.run_phase(
        model,
        datasets["train"],
        datasets["validation"],
        phase,
        loss_weights=config.training.loss_weights,
        callbacks=callbacks,
    )


def _evaluate(model, records: list[FaceRecord], config: RunConfig, fairness_config) -> dict:
    predictions = predict_records(
        model, records, batch_size=config.training.batch_size, image_size=config.data.image_size
    )
    return compute_metrics(predictions, config=fairness_config)


def _write_history(run_dir: Path, histories) -> None:
    frames = []
    for phase_name, history in histories:
        frame = pd.DataFrame(history.history)
        frame.insert(0, "phase", phase_name)
        frame.insert(0, "epoch", history.epoch)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_text_atomic(run_dir / "history.csv", table.to_csv(index=False))


def _save_model(model: keras.Model, run_dir: Path) -> None:
    with atomic_path(run_dir / "model.keras") as temporary:
        model.save(temporary)


def _write_report(run_dir: Path, metrics: dict, predictions) -> None:
    write_plots(
        run_dir,
        metrics=metrics,
        y_true=predictions.labels["emotion"],
        y_pred=predictions.predicted("emotion"),
    )
    write_report(run_dir)
