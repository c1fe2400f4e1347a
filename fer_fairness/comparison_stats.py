"""Statistics of a method comparison: t-intervals across seeds and paired tests against a reference.

Every arm of a comparison is trained once per seed, and the arms of one seed share the test
images. Two tests ask whether an arm differs from the reference arm on a metric:

* the paired t-test across seeds (``scipy.stats.ttest_rel``) on the per-seed metric values.
  It measures the variation between training runs, with only ``seeds - 1`` degrees of freedom.
* the paired bootstrap over test units. Each resample draws subjects (or images without a
  subject id) with replacement from the union of the test units of all seeds, and gives both
  arms of every seed the same weights. The statistic is the mean over seeds of the per-seed
  difference, so the bootstrap measures the variation of the test sample, not that of
  training.

Both are two-sided. The bootstrap p-value is ``2 * min(P(d* <= 0), P(d* >= 0))`` over the
defined resamples d*, each share with one added to numerator and denominator, capped at 1. It
is below ``1 - confidence`` about when the percentile interval excludes 0.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.stats

from fer_fairness.fairness import bootstrap
from fer_fairness.fairness.estimates import PreparedInputs, compute_statistics
from fer_fairness.fairness.metrics import FairnessConfig, prepare_inputs
from fer_fairness.labels import ATTRIBUTES

# Metrics compared between arms, in report order.
METRICS: tuple[str, ...] = (
    "overall_accuracy",
    "balanced_accuracy",
    "macro_f1",
    "emotion_fairness",
    "gender_fairness",
    "age_fairness",
    "race_fairness",
)
GAP_ATTRIBUTES: tuple[str, ...] = tuple(ATTRIBUTES)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | None]:
    """Return the mean and the t-interval of the mean of the defined (non-NaN) values.

    The interval is ``mean +/- t_{(1 + confidence) / 2, n - 1} * s / sqrt(n)`` with the sample
    standard deviation ``s``. It is None with fewer than two values.

    Returns:
        ``{"mean", "low", "high", "n"}``; ``mean`` is None when no value is defined.
    """
    array = np.asarray(values, dtype=np.float64)
    defined = array[~np.isnan(array)]
    n = int(defined.size)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = float(defined.mean())
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n}
    quantile = scipy.stats.t.ppf((1.0 + confidence) / 2.0, n - 1)
    half_width = float(quantile * defined.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "low": mean - half_width, "high": mean + half_width, "n": n}


def paired_t_test(values: Sequence[float], reference: Sequence[float]) -> float | None:
    """Return the two-sided p-value of the paired t-test of ``values`` against ``reference``.

    Pairs with a NaN are left out. The p-value is None with fewer than two pairs, and when the
    differences do not vary, because the t statistic is then undefined or infinite.
    """
    first = np.asarray(values, dtype=np.float64)
    second = np.asarray(reference, dtype=np.float64)
    keep = ~(np.isnan(first) | np.isnan(second))
    differences = first[keep] - second[keep]
    if differences.size < 2 or np.ptp(differences) == 0:
        return None
    with warnings.catch_warnings():
        # Nearly equal differences make scipy warn about precision; the p-value stays valid.
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(scipy.stats.ttest_rel(first[keep], second[keep]).pvalue)
    return None if math.isnan(p_value) else p_value


def bootstrap_p_value(samples: np.ndarray, *, null: float = 0.0) -> float | None:
    """Return the two-sided bootstrap p-value of ``null`` from resampled statistics.

    ``2 * min((#{d* <= null} + 1) / (B + 1), (#{d* >= null} + 1) / (B + 1))``, capped at 1,
    over the B defined (non-NaN) resamples. None when fewer than
    ``bootstrap.MIN_DEFINED_SHARE`` of the resamples are defined.
    """
    samples = np.asarray(samples, dtype=np.float64)
    defined = samples[~np.isnan(samples)]
    if samples.size == 0 or defined.size < bootstrap.MIN_DEFINED_SHARE * samples.size:
        return None
    resamples = defined.size
    below = (np.count_nonzero(defined <= null) + 1) / (resamples + 1)
    above = (np.count_nonzero(defined >= null) + 1) / (resamples + 1)
    return float(min(1.0, 2.0 * min(below, above)))


@dataclasses.dataclass(frozen=True)
class SeedPredictions:
    """The test predictions of every arm for one seed, on the same test images.

    Attributes:
        seed: The training seed.
        units: (n,) str resampling unit per test image: ``subject:<id>`` or
            ``image:<example id>`` where the subject is unknown.
        inputs: Per arm, the encoded predictions, rows in ``units`` order.
    """

    seed: int
    units: np.ndarray
    inputs: dict[str, PreparedInputs]


def read_predictions(path) -> pd.DataFrame:
    """Read a run's ``predictions.csv`` with ids as strings and "" for an unknown subject."""
    table = pd.read_csv(path, dtype={"example_id": str, "subject_id": str}, keep_default_na=False)
    required = ["example_id", "subject_id", "true_emotion", "predicted_emotion"]
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise ValueError(f"{path} has no column(s) {missing}; expected a predictions.csv "
                         "written by fer-fairness train")
    return table


def encode_seed(
    seed: int, tables: Mapping[str, pd.DataFrame], config: FairnessConfig
) -> SeedPredictions:
    """Align the prediction tables of one seed by ``example_id`` and encode them.

    Raises:
        ValueError: if the arms were tested on different images, which happens when their
            data or split settings differ.
    """
    names = list(tables)
    order = np.sort(tables[names[0]]["example_id"].to_numpy(dtype=str))
    aligned = {}
    for name, table in tables.items():
        ids = table["example_id"].to_numpy(dtype=str)
        if ids.size != order.size or not np.array_equal(np.sort(ids), order):
            raise ValueError(
                f"seed {seed}: arm {name!r} was tested on other images than arm {names[0]!r} "
                f"({ids.size} and {order.size} images); the arms of one seed must share the "
                "data, the split fractions and data.max_images"
            )
        aligned[name] = table.set_index("example_id").loc[order].reset_index()
    first = aligned[names[0]]
    subjects = first["subject_id"].to_numpy(dtype=str)
    units = np.where(subjects != "", np.char.add("subject:", subjects),
                     np.char.add("image:", order))
    inputs = {name: _encode_table(table, config) for name, table in aligned.items()}
    return SeedPredictions(seed, units, inputs)


def _encode_table(table: pd.DataFrame, config: FairnessConfig) -> PreparedInputs:
    features = {
        name: table[f"true_{name}"].to_numpy(dtype=np.int64)
        for name in ATTRIBUTES
        if f"true_{name}" in table.columns
    }
    return prepare_inputs(
        table["true_emotion"].to_numpy(dtype=np.int64),
        table["predicted_emotion"].to_numpy(dtype=np.int64),
        sensitive_features=features,
        config=config,
    )


def _compared_keys() -> list[str]:
    return [*METRICS, *(f"{attribute}/accuracy" for attribute in GAP_ATTRIBUTES)]


def _statistics(weights: np.ndarray, inputs: PreparedInputs) -> dict[str, np.ndarray]:
    stats = compute_statistics(weights, inputs)
    rows = weights.shape[0]
    return {key: stats.get(key, np.full(rows, np.nan)) for key in _compared_keys()}


def point_statistics(seeds: Sequence[SeedPredictions]) -> dict[str, dict[str, np.ndarray]]:
    """Return per arm and statistic the values of every seed, stacked on the first axis."""
    per_arm: dict[str, dict[str, list]] = {}
    for seed in seeds:
        ones = np.ones((1, seed.units.size))
        for arm, inputs in seed.inputs.items():
            for key, value in _statistics(ones, inputs).items():
                per_arm.setdefault(arm, {}).setdefault(key, []).append(value[0])
    return {arm: {key: np.asarray(values) for key, values in stats.items()}
            for arm, stats in per_arm.items()}


def bootstrap_statistics(
    seeds: Sequence[SeedPredictions], *, n_resamples: int, seed: int
) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Resample test units shared by all seeds and arms, and evaluate every statistic.

    Returns:
        ``(samples, description)``: per arm and statistic an array of shape
        (resamples, seeds, ...), and the unit kind and count of the resampling.
    """
    offsets = np.cumsum([0, *(item.units.size for item in seeds)])
    all_units = np.concatenate([item.units for item in seeds])
    units, n_units, _ = bootstrap.resampling_units(all_units.size, all_units)
    kind = "subject" if any(unit.startswith("subject:") for unit in all_units) else "image"
    chunks: dict[str, dict[str, list]] = {}
    for weights in bootstrap.iterate_resample_weights(
        units, n_units, n_resamples=n_resamples, seed=seed
    ):
        per_seed: dict[str, dict[str, list]] = {}
        for index, item in enumerate(seeds):
            columns = weights[:, offsets[index]:offsets[index + 1]]
            for arm, inputs in item.inputs.items():
                for key, value in _statistics(columns, inputs).items():
                    per_seed.setdefault(arm, {}).setdefault(key, []).append(value)
        for arm, stats in per_seed.items():
            for key, values in stats.items():
                chunks.setdefault(arm, {}).setdefault(key, []).append(np.stack(values, axis=1))
    samples = {arm: {key: np.concatenate(parts) for key, parts in stats.items()}
               for arm, stats in chunks.items()}
    description = {"unit": kind, "n_units": n_units, "n_resamples": n_resamples, "seed": seed}
    return samples, description


def summarize_comparison(
    seeds: Sequence[SeedPredictions], *, reference: str, config: FairnessConfig
) -> dict:
    """Compare every arm with ``reference`` on ``METRICS`` and find each arm's group gaps.

    ``config`` gives the confidence level (the significance level is ``1 - confidence``), the
    bootstrap resamples and seed, and the minimum group size of the fairness ratios. With
    ``config.n_bootstrap == 0`` the bootstrap fields are None.

    Returns:
        A JSON-ready dict with ``per_run`` (metric value per arm and seed), ``summary`` (mean
        and t-interval per arm and metric), ``differences`` (per arm other than the reference
        and metric) and ``group_gaps`` (per arm and attribute).
    """
    points = point_statistics(seeds)
    samples, description = {}, None
    if config.n_bootstrap > 0:
        samples, description = bootstrap_statistics(
            seeds, n_resamples=config.n_bootstrap, seed=config.seed
        )
    arms = list(seeds[0].inputs)
    context = _Context(points, samples, reference, config.confidence, len(seeds))
    return {
        "reference": reference,
        "arms": arms,
        "seeds": [item.seed for item in seeds],
        "metrics": list(METRICS),
        "confidence": config.confidence,
        "significance_level": _alpha(config.confidence),
        "bootstrap": description,
        "per_run": {arm: {metric: [_number(value) for value in points[arm][metric]]
                          for metric in METRICS} for arm in arms},
        "summary": {arm: {metric: t_interval(points[arm][metric], config.confidence)
                          for metric in METRICS} for arm in arms},
        "differences": {arm: {metric: context.difference(arm, metric) for metric in METRICS}
                        for arm in arms if arm != reference},
        "group_gaps": {arm: {attribute: context.group_gap(arm, attribute, seeds)
                             for attribute in GAP_ATTRIBUTES} for arm in arms},
    }


def _alpha(confidence: float) -> float:
    return round(1.0 - confidence, 10)


def _number(value) -> float | None:
    return None if value is None or math.isnan(float(value)) else float(value)


def _format_p(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3g}"


@dataclasses.dataclass(frozen=True)
class _Context:
    points: dict[str, dict[str, np.ndarray]]
    samples: dict[str, dict[str, np.ndarray]]
    reference: str
    confidence: float
    n_seeds: int

    def _bootstrap(self, resampled: np.ndarray | None) -> dict:
        if resampled is None:
            return {"bootstrap_low": None, "bootstrap_high": None, "bootstrap_p": None}
        low, high = bootstrap.percentile_interval(resampled[:, None], self.confidence)
        return {"bootstrap_low": _number(low[0]), "bootstrap_high": _number(high[0]),
                "bootstrap_p": bootstrap_p_value(resampled)}

    def difference(self, arm: str, metric: str) -> dict:
        values, reference = self.points[arm][metric], self.points[self.reference][metric]
        per_seed = values - reference
        defined = per_seed[~np.isnan(per_seed)]
        resampled = None
        if self.samples:
            # The mean over seeds of the per-seed difference; NaN where a seed is undefined.
            resampled = (self.samples[arm][metric] - self.samples[self.reference][metric])
            resampled = resampled.mean(axis=1)
        result = {
            "mean_difference": float(defined.mean()) if defined.size else None,
            "per_seed": [_number(value) for value in per_seed],
            "t_test_p": paired_t_test(values, reference),
            **self._bootstrap(resampled),
        }
        alpha = _alpha(self.confidence)
        result["significant_t_test"] = _below(result["t_test_p"], alpha)
        result["significant_bootstrap"] = _below(result["bootstrap_p"], alpha)
        result["sentence"] = self._difference_sentence(arm, metric, result)
        return result

    def _difference_sentence(self, arm: str, metric: str, result: dict) -> str:
        head = f"{arm} vs {self.reference}, {metric}"
        if result["mean_difference"] is None:
            return f"{head}: undefined in every seed, so there is no test."
        change = f"{head}: {result['mean_difference']:+.3f} (mean over {self.n_seeds} seeds)"
        level = _alpha(self.confidence)
        tests = {"the paired t-test across seeds": result["t_test_p"],
                 "the paired bootstrap over test units": result["bootstrap_p"]}
        significant = [f"{name} ({_format_p(p)})" for name, p in tests.items()
                       if p is not None and p < level]
        not_significant = [f"{name} ({_format_p(p)})" for name, p in tests.items()
                           if p is not None and p >= level]
        untested = [name for name, p in tests.items() if p is None]
        parts = []
        if significant:
            parts.append(f"significant at {level:g} by {' and '.join(significant)}")
        if not_significant:
            parts.append(f"not significant at {level:g} by {' and '.join(not_significant)}")
        if untested:
            parts.append(f"{' and '.join(untested)} could not be computed"
                         + (" (it needs 2 seeds whose differences vary)"
                            if "the paired t-test across seeds" in untested else ""))
        return f"{change}; " + "; ".join(parts) + "."

    def group_gap(self, arm: str, attribute: str, seeds: Sequence[SeedPredictions]) -> dict:
        grouping = next(g for g in seeds[0].inputs[arm].groupings if g.name == attribute)
        eligible = np.logical_and.reduce([item.inputs[arm].eligible[attribute] for item in seeds])
        accuracy = self.points[arm][f"{attribute}/accuracy"]
        defined = eligible & ~np.isnan(accuracy).any(axis=0)
        names = grouping.group_names
        mean_accuracy = {names[k]: _number(accuracy[:, k].mean()) for k in np.flatnonzero(defined)}

        if defined.sum() < 2:
            return {"disadvantaged_group": None, "best_group": None, "accuracy": mean_accuracy,
                    "gap": None, "bootstrap_low": None, "bootstrap_high": None,
                    "bootstrap_p": None, "significant": None,
                    "sentence": f"In {arm}, {attribute} has fewer than two groups with at least "
                                "the minimum group size in every seed, so there is no gap."}

        candidates = np.flatnonzero(defined)
        means = accuracy[:, candidates].mean(axis=0)
        worst, best = candidates[np.argmin(means)], candidates[np.argmax(means)]

        resampled = None
        if self.samples:
            group_samples = self.samples[arm][f"{attribute}/accuracy"]
            resampled = (group_samples[:, :, best] - group_samples[:, :, worst]).mean(axis=1)

        # NOTE: with more than two groups the worst and best groups are picked from the same
        # test data that tests their gap, so the p-value is too small under parity.
        result = {
            "disadvantaged_group": names[worst],
            "best_group": names[best],
            "accuracy": mean_accuracy,
            "gap": float((accuracy[:, best] - accuracy[:, worst]).mean()),
            **self._bootstrap(resampled),
        }
        result["significant"] = _below(result["bootstrap_p"], _alpha(self.confidence))
        result["sentence"] = self._gap_sentence(arm, attribute, result)
        return result

    def _gap_sentence(self, arm: str, attribute: str, result: dict) -> str:
        worst, best = result["disadvantaged_group"], result["best_group"]
        text = (f"In {arm}, {worst} has the lowest {attribute} accuracy "
                f"({result['accuracy'][worst]:.3f}, against {result['accuracy'][best]:.3f} "
                f"for {best}); the gap of {result['gap']:.3f}")
        p_value, level = result["bootstrap_p"], _alpha(self.confidence)
        if p_value is None:
            return f"{text} has no bootstrap test."
        verdict = "is significant" if p_value < level else "is not significant"
        interval = ""
        if result["bootstrap_low"] is not None:
            interval = (f", {self.confidence:.0%} CI [{result['bootstrap_low']:.3f}, "
                        f"{result['bootstrap_high']:.3f}]")
        return (f"{text} {verdict} at {level:g} by the bootstrap over test units "
                f"({_format_p(p_value)}{interval}).")


def _below(p_value: float | None, level: float) -> bool | None:
    return None if p_value is None else bool(p_value < level)
