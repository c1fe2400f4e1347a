"""Best-epoch selection: which validation score the checkpoints and early stopping maximise.

``training.selection = "emotion_accuracy"`` keeps the plain validation emotion accuracy.
``"accuracy_with_fairness_floor"`` adds ``FairnessFloorScore``, which turns the validation
emotion accuracy and one validation fairness ratio into a single score, so Keras's
``ModelCheckpoint`` and ``EarlyStopping`` pick the most accurate epoch that is fair enough.
"""

from __future__ import annotations

import logging
import math

import keras

from fer_fairness.config import FLOOR_ATTRIBUTES, TrainingConfig

logger = logging.getLogger(__name__)

ACCURACY_KEY = "val_emotion_accuracy"
SELECTION_SCORE_KEY = "val_selection_score"
# Subtracted from the accuracy of an epoch below the floor. Accuracies lie in [0, 1], so every
# epoch below the floor scores lower than every epoch that reaches it.
_BELOW_FLOOR_PENALTY = 2.0


class FairnessFloorScore(keras.callbacks.Callback):
    """Log ``val_selection_score``: the validation emotion accuracy, penalised below a floor.

    The score is ``val_emotion_accuracy`` when ``val_<attribute>_fairness >= floor`` and
    ``val_emotion_accuracy - 2`` otherwise, so the epoch with the highest score is the most
    accurate epoch that reaches the floor, or the most accurate epoch of all when none does. An
    undefined fairness ratio (NaN, from groups below the minimum group size) counts as below
    the floor. Place it after ``FairnessReport``, which logs the fairness ratios, and before the
    callbacks that monitor the score.

    Args:
        floor: The minimum fairness ratio, in [0, 1].
        attribute: ``gender``, ``age``, ``race`` or ``emotion``.

    Example:
        ```python
        score = FairnessFloorScore(floor=0.9, attribute="gender")
        stop = keras.callbacks.EarlyStopping("val_selection_score", mode="max")
        model.fit(data, validation_data=val, callbacks=[fairness_report, score, stop])
        ```
    """

    def __init__(self, *, floor: float, attribute: str = "gender") -> None:
        super().__init__()
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor <= 1:
            raise ValueError(f"floor={floor!r} is invalid; expected a number in [0, 1]")
        if attribute not in FLOOR_ATTRIBUTES:
            raise ValueError(
                f"attribute={attribute!r} is invalid; expected one of {', '.join(FLOOR_ATTRIBUTES)}"
            )
        self.floor = float(floor)
        self.attribute = attribute
        self.fairness_key = f"val_{attribute}_fairness"
        self._warned_undefined = False

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._warned_undefined = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        missing = [key for key in (ACCURACY_KEY, self.fairness_key) if key not in logs]
        if missing:
            # RequireLogKeys reports the missing score with the full list of log keys.
            return
        accuracy = float(logs[ACCURACY_KEY])
        fairness = float(logs[self.fairness_key])
        if math.isnan(fairness) and not self._warned_undefined:
            logger.warning(
                "%s is undefined at epoch %d, so the epoch counts as below the fairness floor; "
                "lower evaluation.min_group_size or use a larger validation split",
                self.fairness_key,
                epoch + 1,
            )
            self._warned_undefined = True
        reaches_floor = not math.isnan(fairness) and fairness >= self.floor
        logs[SELECTION_SCORE_KEY] = accuracy if reaches_floor else accuracy - _BELOW_FLOOR_PENALTY


def selection_monitor(training: TrainingConfig) -> str:
    """Return the log key that the checkpoints and early stopping of ``training`` maximise."""
    if training.selection == "accuracy_with_fairness_floor":
        return SELECTION_SCORE_KEY
    return ACCURACY_KEY


def selection_callbacks(training: TrainingConfig) -> list[keras.callbacks.Callback]:
    """Return the callbacks that log the monitored score; none for ``emotion_accuracy``."""
    if training.selection == "accuracy_with_fairness_floor":
        return [
            FairnessFloorScore(
                floor=training.fairness_floor, attribute=training.fairness_floor_attribute
            )
        ]
    return []
