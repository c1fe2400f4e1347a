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
from fer_fairness.callbacks import RequireLogKeys, StopOnNonFiniteLoss

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
    if trainable:
        for layer in trunk.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
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
    """
    heads = model_lib.head_names(model)
    missing = [head for head in heads if head not in loss_weights]
    if missing:
        raise ValueError(f"training.loss_weights has no weight for the head(s) {missing}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss={head: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for head in heads},
        loss_weights={head: float(loss_weights[head]) for head in heads},
        weighted_metrics={head: ["accuracy"] for head in heads},
    )


def phase_callbacks(
    run_dir: Path,
    phase: PhaseSettings,
    *,
    patience: int,
    extra: Sequence[keras.callbacks.Callback] = (),
) -> list[keras.callbacks.Callback]:
    """Return the callbacks of one phase: checks, checkpoint, TensorBoard, early stopping."""
    checkpoint = run_dir / "checkpoints" / f"{phase.name}.keras"
    callbacks: list[keras.callbacks.Callback] = [
        *extra,
        RequireLogKeys([MONITOR]),
        StopOnNonFiniteLoss(phase.name),
        keras.callbacks.ModelCheckpoint(
            checkpoint, monitor=MONITOR, mode="max", save_best_only=True
        ),
        keras.callbacks.TensorBoard(run_dir / "tensorboard", write_graph=False),
    ]
    if phase.name == "finetune":
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=MONITOR, mode="max", patience=patience, restore_best_weights=True
            )
        )
    return callbacks


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
    ``model.assemble``). In phase 2 everything but batch normalisation trains.
    """
    if phase.name not in ("heads", "finetune"):
        raise ValueError(f"phase.name={phase.name!r} is invalid; expected 'heads' or 'finetune'")
    unfreeze = phase.name == "finetune"
    trunk_weights = set_trunk_trainable(model, unfreeze)
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
