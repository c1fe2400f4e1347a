"""Keras callbacks that turn silent training failures into errors."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras

from fer_fairness.errors import TrainingFailure


class MissingMonitorError(TrainingFailure, RuntimeError):
    """A metric that a callback monitors is absent from the epoch logs."""


class RequireLogKeys(keras.callbacks.Callback):
    """Stop training with an error when a monitored key is missing after the first epoch.

    Keras's ``EarlyStopping`` and ``ModelCheckpoint`` only warn when their monitored key is
    absent, which silently disables them; this callback turns that into an error.

    Args:
        keys: Log keys that must be present, e.g. ``("val_emotion_accuracy",)``.
    """

    def __init__(self, keys: Sequence[str]):
        super().__init__()
        self.keys = tuple(keys)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        missing = [key for key in self.keys if key not in logs]
        if missing:
            raise MissingMonitorError(
                f"monitored metric(s) {missing} missing from the epoch logs; the logs contain "
                f"{sorted(logs)}. Check that validation data is given and the head is named"
            )


class NonFiniteLossError(TrainingFailure, FloatingPointError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop training at the first batch whose loss is NaN or infinite, with an error.

    Keras's ``TerminateOnNaN`` only sets ``stop_training``, so the run would go on to evaluate
    and export a broken model. This callback raises ``NonFiniteLossError`` naming the phase, the
    epoch and the step instead. Checkpoints written at earlier epochs stay in place.

    Args:
        phase: Phase name for the message, e.g. ``heads`` or ``finetune``.
    """

    def __init__(self, phase: str):
        super().__init__()
        self.phase = phase
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLossError(
                f"training loss is {float(loss)} in phase {self.phase}, epoch {self._epoch + 1}, "
                f"step {batch + 1}; lower the learning rate or check the input data. The "
                "checkpoints of earlier epochs are kept"
            )
