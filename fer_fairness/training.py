"""The two training phases: freeze, compile, fit, checkpoint.

Phase 1 (``heads``) freezes the trunk, calls it in inference mode and trains the heads at a high
learning rate. Phase 2 (``finetune``) unfreezes the trunk, recompiles at a much lower learning
rate and stops early on the validation emotion accuracy, restoring the best weights.

Keras reads ``trainable`` only when a model is compiled, so every change of ``trainable`` here is
followed by a new ``compile``. Without it, unfreezing trains nothing and freezing still trains.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import tensorflow as tf

from fer_fairness import model as model_lib
from fer_fairness import precision
from fer_fairness.callbacks import (
    AtomicBackupAndRestore,
    ModelCheckpointOf,
    RequireLogKeys,
    ResumableEarlyStopping,
    StopOnNonFiniteLoss,
)

logger = logging.getLogger(__name__)

MONITOR = "val_emotion_accuracy"


@dataclasses.dataclass(frozen=True)
class PhaseSettings:
    """One phase's fit settings.

    Args:
        name: ``heads`` or ``finetune``.
        epochs: Maximum epochs of the phase.
        learning_rate: Adam learning rate.
        initial_epoch: Epoch number the phase starts at, so phase 2 continues phase 1's count.
        steps_per_epoch: Batches per epoch for an infinite (group-balanced) training dataset;
            None runs each epoch to the end of a finite dataset.
    """

    name: str
    epochs: int
    learning_rate: float
    initial_epoch: int = 0
    steps_per_epoch: int | None = None


def set_trunk_trainable(model: keras.Model, trainable: bool) -> int:
    """Freeze or unfreeze the trunk and return the number of trainable trunk weights.

    Batch normalisation layers stay frozen when the trunk is unfrozen: Keras runs a frozen
    ``BatchNormalization`` in inference mode, so fine-tuning on small batches cannot disturb its
    pretrained statistics.
    """
    trunk = model_lib.trunk_of(model)
    trunk.trainable = trainable
    # Keras 3.15 on TensorFlow skips the ``trainable`` setter, and so the sublayers, when the
    # value is unchanged. The phase-1 model's trunk is another object over the same layers
    # (see ``model.assemble``), so every layer is set here.
    for layer in trunk.layers:
        is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable and not is_batch_norm
    return len(trunk.trainable_weights)


def compile_model(
    model: keras.Model,
    *,
    learning_rate: float,
    loss_weights: Mapping[str, float],
) -> None:
    """Compile with one from-logits sparse cross-entropy and one accuracy per output.

    Each head's loss is the batch mean of ``sample_weight * cross_entropy`` (Keras's
    ``sum_over_batch_size`` reduction), and the total loss is the ``loss_weights`` sum of them.
    A model with float16 layers gets a ``LossScaleOptimizer``, so small gradients do not
    underflow. XLA stays off: on CPUs it measured 2.4 times slower for this network.
    """
    heads = model_lib.head_names(model)
    missing = [head for head in heads if head not in loss_weights]
    if missing:
        raise ValueError(f"training.loss_weights has no weight for the head(s) {missing}")
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    if precision.uses_float16(model):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss={head: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for head in heads},
        loss_weights={head: float(loss_weights[head]) for head in heads},
        weighted_metrics={head: [_accuracy_metric(head, len(heads))] for head in heads},
        jit_compile=False,
    )


def _accuracy_metric(head: str, n_heads: int) -> str | keras.metrics.Metric:
    """Return the accuracy metric of ``head``, logged as ``<head>_accuracy``.

    Keras prefixes metric names with the output name only when a model has several outputs,
    so the metric of an emotion-only model is named explicitly.
    """
    if n_heads > 1:
        return "accuracy"
    return keras.metrics.SparseCategoricalAccuracy(name=f"{head}_accuracy")


def phase_callbacks(
    run_dir: Path,
    phase: PhaseSettings,
    *,
    patience: int,
    extra: Sequence[keras.callbacks.Callback] = (),
    checkpoint_model: keras.Model | None = None,
    monitor: str = MONITOR,
) -> list[keras.callbacks.Callback]:
    """Return the callbacks of one phase.

    They are: checks, the best-epoch checkpoint, TensorBoard, the per-phase history CSV, early
    stopping (phase 2), and ``BackupAndRestore`` last, so its end-of-epoch backup is written
    after every other callback has saved its state for that epoch. ``checkpoint_model`` is
    the model that the checkpoint saves when it differs from the fitted model. ``monitor`` is
    the log key, maximised, that picks the best epoch; ``extra`` must log it when it is not a
    Keras metric.
    """
    backup_dir = run_dir / "backup" / phase.name
    checkpoint = run_dir / "checkpoints" / f"{phase.name}.keras"
    callbacks: list[keras.callbacks.Callback] = [
        *extra,
        RequireLogKeys([monitor]),
        StopOnNonFiniteLoss(phase.name),
    ]
    early_stopping = None
    if phase.name == "finetune":
        early_stopping = ResumableEarlyStopping(
            backup_dir, monitor=monitor, mode="max", patience=patience, restore_best_weights=True
        )
    best = early_stopping.saved_best() if early_stopping else None
    checkpoint_options = {
        "monitor": monitor, "mode": "max", "save_best_only": True, "initial_value_threshold": best,
    }
    callbacks += [
        keras.callbacks.ModelCheckpoint(checkpoint, **checkpoint_options)
        if checkpoint_model is None
        else ModelCheckpointOf(checkpoint_model, checkpoint, **checkpoint_options),
        keras.callbacks.TensorBoard(run_dir / "tensorboard", write_graph=False),
        keras.callbacks.CSVLogger(run_dir / f"history_{phase.name}.csv", append=True),
    ]
    if early_stopping:
        callbacks.append(early_stopping)
    callbacks.append(AtomicBackupAndRestore(backup_dir))
    return callbacks


def align_data_order(datasets: dict, start_epoch: int) -> None:
    """Advance a finite training dataset's shuffle to the order of epoch ``start_epoch``.

    Each new iterator of a seeded ``shuffle(reshuffle_each_iteration=True)`` draws the next
    order. Over a finite dataset of known length, Keras 3.15 ``fit`` creates two iterators per
    epoch: the epoch's own, and one more at its end that the next epoch replaces
    (``EpochIterator._enumerate_iterator``). A resumed run starts with a new dataset, so it
    creates and drops two iterators for every epoch already trained; that costs no decoding.
    ``datasets["epochs_seen"]`` counts the epochs drawn from this dataset object.
    """
    behind = start_epoch - datasets["epochs_seen"]
    if datasets["steps_per_epoch"] is None:
        for _ in range(2 * max(behind, 0)):
            iter(datasets["train"])
    elif behind > 0:
        # NOTE: a resumed run with group-balanced sampling starts a new sample stream, so its
        # batches differ from those of an uninterrupted run (same distribution, other draws).
        logger.info("balanced sampling restarts its stream at epoch %d", start_epoch + 1)
    datasets["epochs_seen"] = start_epoch


def fit_phase(
    model: keras.Model,
    train_data: tf.data.Dataset,
    validation_data: tf.data.Dataset,
    phase: PhaseSettings,
    *,
    callbacks: Sequence[keras.callbacks.Callback],
) -> keras.callbacks.History:
    """Run ``fit`` for one phase, from ``phase.initial_epoch`` to ``initial_epoch + epochs``."""
    verbose = 1 if sys.stderr.isatty() else 2
    return model.fit(
        train_data,
        validation_data=validation_data,
        epochs=phase.initial_epoch + phase.epochs,
        initial_epoch=phase.initial_epoch,
        steps_per_epoch=phase.steps_per_epoch,
        callbacks=list(callbacks),
        verbose=verbose,
        # The training dataset shuffles itself with the run's seed.
        shuffle=False,
    )


def run_phase(
    model: keras.Model,
    train_data: tf.data.Dataset,
    validation_data: tf.data.Dataset,
    phase: PhaseSettings,
    *,
    loss_weights: Mapping[str, float],
    callbacks: Sequence[keras.callbacks.Callback],
) -> keras.callbacks.History:
    """Freeze (``heads``) or unfreeze (``finetune``) the trunk, recompile and fit one phase.

    In phase 1 the trunk is frozen; the model passed in should call it in inference mode (see
    ``model.assemble``). The heads-only model of cached features has no trunk to freeze. In
    phase 2 everything but batch normalisation trains.
    """
    if phase.name not in ("heads", "finetune"):
        raise ValueError(f"phase.name={phase.name!r} is invalid; expected 'heads' or 'finetune'")
    unfreeze = phase.name == "finetune"
    trunk_weights = set_trunk_trainable(model, unfreeze) if model_lib.has_trunk(model) else 0
    compile_model(model, learning_rate=phase.learning_rate, loss_weights=loss_weights)
    logger.info(
        "phase %s: trunk %s, %d trainable weights (%d in the trunk), lr=%g, up to %d epochs",
        phase.name,
        "unfrozen" if unfreeze else "frozen",
        len(model.trainable_weights),
        trunk_weights,
        phase.learning_rate,
        phase.epochs,
    )
    return fit_phase(model, train_data, validation_data, phase, callbacks=callbacks)
