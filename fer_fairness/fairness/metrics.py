"""Fairness metrics of an emotion classifier across gender, age and race.

Pure numpy, without a TensorFlow import. ``evaluate_predictions`` returns a JSON-serialisable dict
that is written verbatim as a run's ``metrics.json``. Its conventions follow Fairlearn:

* accuracy of a group g: acc_g = (1 / n_g) * sum over images i in g of [y_pred_i == y_true_i],
  in [0, 1], and undefined (None), never 0, when n_g = 0.
* fairness ratio of an attribute: min_g acc_g / max_g acc_g over the groups with at least
  ``min_group_size`` images, in [0, 1], where 1 means parity. Undefined with fewer than two
  such groups, or when the maximum is 0.
* difference of an attribute: max_g acc_g - min_g acc_g over the same groups, in [0, 1],
  where 0 means parity.
* emotion fairness: min_k recall_k / max_k recall_k over the emotions present in ``y_true``,
  where recall_k is the accuracy on the images of emotion k. Range [0, 1], and 1 means parity.
* equalized-odds difference of emotion k (one-vs-rest, emotion k against the rest): the larger
  of the differences of TPR_k and FPR_k across the eligible groups, in [0, 1], where 0 means parity.
* calibration error: expected calibration error (ECE) over ``calibration_bins`` equal-width
  bins of the predicted class's probability, sum_b (n_b / n) |accuracy_b - confidence_b|,
  in [0, 1], where 0 means perfectly calibrated.

Confidence intervals are percentile bootstrap intervals. The bootstrap draws subjects with
replacement when subject ids are given, else images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from fer_fairness.fairness import bootstrap, groups
from fer_fairness.fairness.estimates import PreparedInputs, compute_statistics, confidence_bins
from fer_fairness.fairness.summary import headline_keys, summarize
from fer_fairness.labels import ATTRIBUTES, EMOTIONS

# Softmax outputs in float32 sum to 1 only up to rounding.
_PROBABILITY_SUM_TOLERANCE = 1e-3


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid; expected an integer of at least {minimum}")


@dataclasses.dataclass(frozen=True)
class FairnessConfig:
    """Options of the fairness evaluation.

    Attributes:
        min_group_size: Groups with fewer images are listed but flagged, and left out of
            ratios and differences. At least 1.
        n_bootstrap: Number of bootstrap resamples, where 0 disables confidence intervals.
        confidence: Coverage of the confidence intervals, in (0, 1).
        seed: Seed of the bootstrap's random generator, at least 0.
        include_unknown: Whether an unknown attribute value (-1) forms a group "unknown".
        intersections: Pairs of attributes whose crossed groups are evaluated as well.
        calibration_bins: Number of equal-width confidence bins of the calibration error.
    """

    min_group_size: int = 30
    n_bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    include_unknown: bool = False
    intersections: tuple[tuple[str, str], ...] = (("gender", "age"),)
    calibration_bins: int = 15

    def __post_init__(self) -> None:
        _check_int("min_group_size", self.min_group_size, 1)
        _check_int("n_bootstrap", self.n_bootstrap, 0)
        _check_int("seed", self.seed, 0)
        _check_int("calibration_bins", self.calibration_bins, 1)
        confidence = self.confidence
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not (
            0.0 < confidence < 1.0
        ):
            raise ValueError(
                f"confidence={confidence!r} is invalid; expected a number strictly between "
                "0 and 1, such as 0.95"
            )
        if not isinstance(self.include_unknown, bool):
            raise ValueError(
                f"include_unknown={self.include_unknown!r} is invalid; expected True or False"
            )
        # Configs loaded from TOML or YAML contain lists, so pairs are stored as tuples.
        try:
            pairs = tuple(tuple(pair) for pair in self.intersections)
        except TypeError as err:
            raise ValueError(self._intersections_message()) from err
        for pair in pairs:
            if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= set(ATTRIBUTES):
                raise ValueError(self._intersections_message())
        if len(set(pairs)) != len(pairs):
            raise ValueError(self._intersections_message())
        object.__setattr__(self, "intersections", pairs)

    def _intersections_message(self) -> str:
        return (
            f"intersections={self.intersections!r} is invalid; expected distinct pairs of two "
            f"different attributes from {', '.join(ATTRIBUTES)}, such as (('gender', 'age'),)"
        )


def _validate_emotions(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    n = np.shape(y_true)[0] if np.ndim(y_true) == 1 else 0
    if n < 1:
        raise ValueError(
            f"y_true has shape {np.shape(y_true)}; expected a non-empty (n,) array of emotion "
            "indices"
        )
    n_classes = len(EMOTIONS)
    return (
        groups.validate_labels("y_true", y_true, n=n, n_classes=n_classes, allow_unknown=False),
        groups.validate_labels("y_pred", y_pred, n=n, n_classes=n_classes, allow_unknown=False),
    )


def _validate_probabilities(probabilities: object, n: int) -> np.ndarray:
    array = np.asarray(probabilities, dtype=np.float64)
    expected = (n, len(EMOTIONS))
    if array.shape != expected:
        raise ValueError(
            f"probabilities has shape {array.shape}; expected {expected}, the softmax output "
            "in the canonical emotion order"
        )
    if not np.isfinite(array).all() or (array < 0).any() or (array > 1).any():
        raise ValueError(
            "probabilities contains values outside [0, 1]; pass softmax outputs, not logits"
        )
    worst = float(np.abs(array.sum(axis=1) - 1.0).max())
    if worst > _PROBABILITY_SUM_TOLERANCE:
        raise ValueError(
            f"probabilities rows sum to 1 +/- {worst:.3g}; expected sums within "
            f"{_PROBABILITY_SUM_TOLERANCE} of 1, as softmax outputs have"
        )
    return array


def _validate_attribute_predictions(
    attribute_predictions: Mapping[str, object] | None,
    features: Mapping[str, np.ndarray],
    n: int,
) -> dict[str, np.ndarray]:
    validated = {}
    for name, values in (attribute_predictions or {}).items():
        if name not in ATTRIBUTES:
            raise ValueError(
                f"attribute_predictions has unknown head {name!r}; "
                f"expected names from {', '.join(ATTRIBUTES)}"
            )
        if name not in features:
            raise ValueError(
                f"attribute_predictions[{name!r}] has no true labels; "
                f"add sensitive_features[{name!r}] or drop the head"
            )
        validated[name] = groups.validate_labels(
            f"attribute_predictions[{name!r}]",
            values,
            n=n,
            n_classes=len(ATTRIBUTES[name]),
            allow_unknown=False,
        )
    return validated


def _validate_subject_ids(subject_ids: object, n: int) -> np.ndarray | None:
    if subject_ids is None:
        return None
    array = np.asarray(subject_ids)
    if array.shape != (n,):
        raise ValueError(f"subject_ids has shape {array.shape}; expected ({n},), one id per sample")
    return array.astype(str)


def _prepare(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    probabilities: np.ndarray | None,
    features: Mapping[str, np.ndarray],
    heads: Mapping[str, np.ndarray],
    config: FairnessConfig,
) -> PreparedInputs:
    n = y_true.shape[0]
    groupings = groups.build_groupings(
        features, n=n, include_unknown=config.include_unknown, intersections=config.intersections
    )
    eligible = {g.name: groups.group_sizes(g) >= config.min_group_size for g in groupings}
    correct = (y_true == y_pred).astype(np.float64)
    confidence = None if probabilities is None else probabilities[np.arange(n), y_pred]
    bins = None if confidence is None else confidence_bins(confidence, config.calibration_bins)
    attribute_heads = {}
    for name, predicted in heads.items():
        known = np.where(features[name] >= 0, 0, -1)
        attribute_heads[name] = (known, (predicted == features[name]).astype(np.float64))
    return PreparedInputs(
        cells=groups.emotion_codes(y_true, y_pred),
        groupings=groupings,
        eligible=eligible,
        emotion_present=np.bincount(y_true, minlength=len(EMOTIONS)) > 0,
        calibration_bins=bins,
        n_bins=config.calibration_bins,
        correct=correct,
        confidence=confidence,
        attribute_heads=attribute_heads,
    )


def _bootstrap_intervals(
    inputs: PreparedInputs,
    keys: list[str],
    subject_ids: np.ndarray | None,
    config: FairnessConfig,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    n = inputs.cells.shape[0]
    units, n_units, kind = bootstrap.resampling_units(n, subject_ids)
    samples: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for weights in bootstrap.iterate_resample_weights(
        units, n_units, n_resamples=config.n_bootstrap, seed=config.seed
    ):
        stats = compute_statistics(weights, inputs)
        for key in keys:
            samples[key].append(stats[key])
    intervals = {
        key: bootstrap.percentile_interval(np.concatenate(parts), config.confidence)
        for key, parts in samples.items()
    }
    description = {
        "method": "percentile",
        "unit": kind,
        "n_units": n_units,
        "n_resamples": config.n_bootstrap,
        "confidence": config.confidence,
        "seed": config.seed,
    }
    return intervals, description


def evaluate_predictions(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    probabilities: np.ndarray | None = None,
    sensitive_features: Mapping[str, np.ndarray],
    attribute_predictions: Mapping[str, np.ndarray] | None = None,
    subject_ids: np.ndarray | None = None,
    config: FairnessConfig = FairnessConfig(),
) -> dict:
    """Compute accuracy, fairness and calibration figures, with bootstrap intervals.

    The formulas, ranges and parity values are listed in the module docstring. Every group of
    the vocabulary appears with its n, including empty groups, whose figures are None.

    Args:
        y_true: (n,) int true emotion index in the canonical order (``EMOTIONS``), n >= 1.
        y_pred: (n,) int predicted emotion index.
        probabilities: Optional (n, 7) softmax output. It enables the calibration error, which
            uses the probability of ``y_pred``.
        sensitive_features: Attribute name ("gender", "age", "race") to (n,) int codes in the
            order of ``ATTRIBUTES``, with -1 for unknown. A missing attribute counts as unknown
            for every image.
        attribute_predictions: Optional predicted codes of the auxiliary heads, keyed like
            ``sensitive_features``.
        subject_ids: Optional (n,) str subject id per image, "" for unknown. The bootstrap
            draws subjects when at least one id is known.
        config: Evaluation options.

    Returns:
        A JSON-serialisable dict with None for every undefined value. ``summary.summarize``
        lists its keys.

    Raises:
        ValueError: naming the argument and the expected form when an input is invalid.
    """
    if not isinstance(config, FairnessConfig):
        raise ValueError(f"config is a {type(config).__name__}; expected a FairnessConfig")
    y_true, y_pred = _validate_emotions(y_true, y_pred)
    n = y_true.shape[0]
    features = groups.validate_sensitive_features(sensitive_features, n=n)
    heads = _validate_attribute_predictions(attribute_predictions, features, n)
    if probabilities is not None:
        probabilities = _validate_probabilities(probabilities, n)
    subject_ids = _validate_subject_ids(subject_ids, n)

    inputs = _prepare(y_true, y_pred, probabilities, features, heads, config)
    point = {key: value[0] for key, value in compute_statistics(np.ones((1, n)), inputs).items()}
    intervals: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    bootstrap_description = None
    if config.n_bootstrap > 0:
        keys = headline_keys(point, inputs.groupings)
        intervals, bootstrap_description = _bootstrap_intervals(inputs, keys, subject_ids, config)
    result = summarize(point, intervals, inputs, features, config)
    result["bootstrap"] = bootstrap_description
    result["fairness_config"] = _config_dict(config)
    return result


def prepare_inputs(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    sensitive_features: Mapping[str, np.ndarray],
    config: FairnessConfig = FairnessConfig(),
) -> PreparedInputs:
    """Validate emotion predictions and encode them for ``estimates.compute_statistics``.

    ``evaluate_predictions`` uses the same encoding, so statistics computed from it with other
    weights, such as a bootstrap shared by several models, follow the formulas of
    ``metrics.json``. The arguments are those of ``evaluate_predictions``; without
    probabilities, the calibration error is left out.

    Raises:
        ValueError: naming the argument and the expected form when an input is invalid.
    """
    y_true, y_pred = _validate_emotions(y_true, y_pred)
    features = groups.validate_sensitive_features(sensitive_features, n=y_true.shape[0])
    return _prepare(y_true, y_pred, None, features, {}, config)


def _config_dict(config: FairnessConfig) -> dict:
    values = dataclasses.asdict(config)
    values["intersections"] = [list(pair) for pair in config.intersections]
    return values

