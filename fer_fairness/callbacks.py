"""Keras callbacks that turn silent training failures into errors."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from fer_fairness.errors import TrainingFailure
from fer_fairness.io import atomic_path, read_json, write_json_atomic


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


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """``EarlyStopping`` whose state survives an interrupted run.

    After every epoch it writes the patience counter and the best value and epoch, and (with
    ``restore_best_weights``) the best weights, into ``state_dir``. Keras's
    ``BackupAndRestore`` saves only the model, the optimizer and the epoch. Give both the same
    folder: on a restart this callback takes the state of the last epoch that
    ``BackupAndRestore`` backed up, so a resumed run stops at the same epoch and restores the
    same weights as an uninterrupted one. The state of the epoch before is kept as well, for a
    process killed between the two writes.

    Args:
        state_dir: Folder of the phase's ``BackupAndRestore`` backup.
        **kwargs: Passed to ``keras.callbacks.EarlyStopping``.
    """

    def __init__(self, state_dir: str | os.PathLike, **kwargs):
        super().__init__(**kwargs)
        self.state_dir = Path(state_dir)

    @property
    def _state_path(self) -> Path:
        return self.state_dir / "early_stopping.json"

    def _weights_path(self, epoch: int) -> Path:
        return self.state_dir / f"early_stopping_best_{epoch:04d}.npz"

    def _restorable_state(self) -> dict | None:
        """Return the saved state of the last epoch backed up, or None."""
        metadata = self.state_dir / "training_metadata.json"
        if not (metadata.is_file() and self._state_path.is_file()):
            return None
        last_epoch = read_json(metadata)["epoch"] - 1
        for state in read_json(self._state_path)["states"]:
            if state["epoch"] == last_epoch:
                return state
        return None

    def saved_best(self) -> float | None:
        """Return the best monitored value of the interrupted run, or None."""
        state = self._restorable_state()
        return None if state is None else state["best"]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        state = self._restorable_state()
        if state is None:
            return
        self.wait = state["wait"]
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        weights_path = self._weights_path(self.best_epoch)
        if self.restore_best_weights and weights_path.is_file():
            with np.load(weights_path) as saved:
                self.best_weights = [saved[f"w{index}"] for index in range(len(saved.files))]

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.restore_best_weights and self.best_weights is not None and self.best_epoch == epoch:
            arrays = {f"w{index}": weight for index, weight in enumerate(self.best_weights)}
            with atomic_path(self._weights_path(epoch)) as temporary:
                np.savez(temporary, **arrays)
        best = None if self.best is None else float(self.best)
        state = {"epoch": epoch, "wait": self.wait, "best": best, "best_epoch": self.best_epoch}
        previous = read_json(self._state_path)["states"][-1:] if self._state_path.is_file() else []
        write_json_atomic(self._state_path, {"states": [*previous, state]})
        self._remove_stale_weights(keep={self.best_epoch, *(s["best_epoch"] for s in previous)})

    def _remove_stale_weights(self, keep: set[int]) -> None:
        for path in self.state_dir.glob("early_stopping_best_*.npz"):
            if int(path.stem.rsplit("_", 1)[1]) not in keep:
                path.unlink(missing_ok=True)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        # A finished phase needs no state; a later fit in the same folder starts afresh.
        self._state_path.unlink(missing_ok=True)
        self._remove_stale_weights(keep=set())


class ModelCheckpointOf(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` that saves ``saved_model`` instead of the model being fitted.

    Phase 1 on cached features fits a heads-only model that shares its head layers with the
    full model. Saving the full model keeps the phase-1 checkpoint a trunk plus heads, which
    ``--phase finetune --from-run`` loads.

    Args:
        saved_model: The model to save; it must share the fitted model's trained layers.
        filepath: The checkpoint path.
        **kwargs: Passed to ``keras.callbacks.ModelCheckpoint``.
    """

    def __init__(self, saved_model: keras.Model, filepath: str | os.PathLike, **kwargs):
        super().__init__(filepath, **kwargs)
        self.saved_model = saved_model

    def set_model(self, model):
        super().set_model(self.saved_model)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose backup is never half-written when the process is killed.

    Keras 3.15 overwrites ``latest.weights.h5`` in place and then the epoch in
    ``training_metadata.json``. A kill between the two pairs the new weights with the old
    epoch, so the resumed run repeats an epoch from the wrong weights. Here each epoch's
    weights go to their own file, renamed into place when complete, and only then does the
    metadata, also renamed into place, point at them. Older weight files are deleted after that.

    Args:
        backup_dir: Folder of the backup; nothing else may write there except
            ``ResumableEarlyStopping``.
    """

    def __init__(self, backup_dir: str | os.PathLike):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=True)

    def _epoch_weights(self, epoch: int) -> Path:
        return Path(self.backup_dir) / f"epoch_{epoch:04d}.weights.h5"

    def _save_model(self):
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        target = self._epoch_weights(self._current_epoch)
        # Keras requires the ".weights.h5" ending, so the temporary file keeps it.
        temporary = folder / f"partial_{target.name}"
        self.model.save_weights(str(temporary), overwrite=True)
        os.replace(temporary, target)
        write_json_atomic(
            self._training_metadata_path,
            {"epoch": self._current_epoch, "batch": self._last_batch_seen},
        )
        for stale in folder.glob("epoch_*.weights.h5"):
            if stale != target:
                stale.unlink(missing_ok=True)

    def _load_model(self):
        metadata = Path(self._training_metadata_path)
        if not metadata.is_file():
            return
        epoch = read_json(metadata)["epoch"]
        weights = self._epoch_weights(epoch)
        if not weights.is_file():
            raise FileNotFoundError(
                f"backup {metadata} names epoch {epoch}, but {weights} is missing; delete "
                f"{self.backup_dir} to restart this phase from its beginning"
            )
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(str(weights))
        self.model._initial_epoch = epoch
