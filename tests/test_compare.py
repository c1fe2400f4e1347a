"""``fer-fairness compare``: statistics on hand-computed inputs, configuration, and planted bias.

The end-to-end tests train the tiny mini-Xception trunk on two synthetic sets of 400 faces drawn
with the same seed: one where female faces have harder expressions (30% of the normal
geometric change), and an unbiased control.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from fer_fairness import cli
from fer_fairness.compare import (
    DEFAULT_ARMS,
    ArmSpec,
    CompareConfig,
    arm_run_config,
    load_compare_config,
    run_comparison,
    select_arms,
)
from fer_fairness.comparison_stats import (
    bootstrap_p_value,
    encode_seed,
    paired_t_test,
    summarize_comparison,
    t_interval,
)
from fer_fairness.config import ConfigError, DataConfig, RunConfig
from fer_fairness.data.prepare import prepare_splits
from fer_fairness.data.synthetic import generate_synthetic, planted_gap, unbiased
from fer_fairness.fairness.metrics import FairnessConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
MINI_XCEPTION = REPO_ROOT / "models" / "fer_mini_xception.onnx"
SYNTHETIC_IMAGES = 400
SEEDS = 2


# --- statistics on hand-computed inputs ---------------------------------------------------


def test_t_interval_hand_computed():
    result = t_interval([0.5, 0.6, 0.7], confidence=0.95)
    # mean 0.6, sample standard deviation 0.1, t(0.975, df=2) = 4.302652729749462
    half_width = 4.302652729749462 * 0.1 / math.sqrt(3)
    assert result["mean"] == pytest.approx(0.6)
    assert result["low"] == pytest.approx(0.6 - half_width)
    assert result["high"] == pytest.approx(0.6 + half_width)
    assert result["n"] == 3


def test_t_interval_single_value_has_no_interval():
    assert t_interval([0.4]) == {"mean": 0.4, "low": None, "high": None, "n": 1}


def test_t_interval_ignores_undefined_values():
    assert t_interval([0.5, math.nan, 0.7])["mean"] == pytest.approx(0.6)
    assert t_interval([math.nan])["mean"] is None


def test_paired_t_test_hand_computed():
    # Differences 0.1, 0.2, 0.3: mean 0.2, standard deviation 0.1, t = 0.2 / (0.1 / sqrt(3)).
    t_statistic = 0.2 / (0.1 / math.sqrt(3))
    expected = 2 * scipy.stats.t.sf(t_statistic, df=2)
    assert paired_t_test([0.6, 0.7, 0.8], [0.5, 0.5, 0.5]) == pytest.approx(expected)


def test_paired_t_test_matches_scipy():
    rng = np.random.default_rng(3)
    values, reference = rng.uniform(size=5), rng.uniform(size=5)
    expected = scipy.stats.ttest_rel(values, reference).pvalue
    assert paired_t_test(values, reference) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "reference"),
    [([0.6], [0.5]), ([0.6, 0.7], [0.5, 0.6]), ([0.6, math.nan], [0.5, 0.5])],
)
def test_paired_t_test_undefined(values, reference):
    assert paired_t_test(values, reference) is None


def test_bootstrap_p_value_hand_computed():
    # One of 4 resamples <= 0 and 3 >= 0: 2 * min(2 / 5, 4 / 5) = 0.8.
    assert bootstrap_p_value(np.array([1.0, 2.0, 3.0, -1.0])) == pytest.approx(0.8)


def test_bootstrap_p_value_direction():
    rng = np.random.default_rng(0)
    positive = rng.normal(0.3, 0.05, size=999)
    centred = rng.normal(0.0, 0.05, size=999)
    assert bootstrap_p_value(positive) == pytest.approx(2 / 1000)
    assert bootstrap_p_value(-positive) == pytest.approx(2 / 1000)
    assert bootstrap_p_value(centred) > 0.5


def test_bootstrap_p_value_needs_defined_resamples():
    assert bootstrap_p_value(np.array([1.0, math.nan, math.nan])) is None


def _predictions(correct: np.ndarray, genders: np.ndarray) -> pd.DataFrame:
    n = correct.size
    truth = np.arange(n) % 7
    predicted = np.where(correct, truth, (truth + 1) % 7)
    return pd.DataFrame({
        "example_id": [f"{index:04d}" for index in range(n)],
        "subject_id": [f"s{index // 2:03d}" for index in range(n)],
        "true_emotion": truth, "true_gender": genders, "true_age": -1, "true_race": -1,
        "predicted_emotion": predicted,
    })


@pytest.fixture(scope="module")
def hand_summary():
    """A reference arm right on 80% of males and 30% of females, and an arm right on 90%."""
    rng = np.random.default_rng(7)
    n = 200
    genders = np.repeat([0, 1], n // 2)
    reference = np.where(genders == 0, rng.uniform(size=n) < 0.8, rng.uniform(size=n) < 0.3)
    better = rng.uniform(size=n) < 0.9
    config = FairnessConfig(min_group_size=20, n_bootstrap=300)
    seeds = [
        encode_seed(seed, {"reference": _predictions(reference, genders),
                           "better": _predictions(better, genders),
                           "same": _predictions(reference, genders)}, config)
        for seed in (0, 1)
    ]
    return summarize_comparison(seeds, reference="reference", config=config)


def test_summary_better_arm_is_significant(hand_summary):
    difference = hand_summary["differences"]["better"]["overall_accuracy"]
    assert difference["mean_difference"] > 0.2
    assert difference["significant_bootstrap"] is True
    assert difference["bootstrap_low"] > 0
    assert "significant at 0.05 by the paired bootstrap" in difference["sentence"]


def test_summary_identical_arm_is_not_significant(hand_summary):
    difference = hand_summary["differences"]["same"]["overall_accuracy"]
    assert difference["mean_difference"] == 0
    assert difference["bootstrap_p"] == 1.0
    assert difference["t_test_p"] is None
    assert "could not be computed" in difference["sentence"]


def test_summary_flags_disadvantaged_group(hand_summary):
    gap = hand_summary["group_gaps"]["reference"]["gender"]
    assert gap["disadvantaged_group"] == "female"
    assert gap["best_group"] == "male"
    assert gap["significant"] is True
    assert gap["sentence"].startswith("In reference, female has the lowest gender accuracy")


def test_summary_unannotated_attribute_has_no_gap(hand_summary):
    assert hand_summary["group_gaps"]["reference"]["age"]["gap"] is None


def test_encode_seed_rejects_other_test_images():
    table = _predictions(np.ones(10, dtype=bool), np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="was tested on other images"):
        encode_seed(0, {"a": table, "b": table.iloc[:8]}, FairnessConfig())


# --- configuration ------------------------------------------------------------------------


def test_default_arms_differ_only_in_method():
    assert list(DEFAULT_ARMS) == ["baseline", "multitask", "multitask_balanced", "balanced"]
    assert DEFAULT_ARMS["baseline"].settings["model.heads"] == ("emotion",)
    assert DEFAULT_ARMS["multitask_balanced"].balanced_data is True
    assert DEFAULT_ARMS["balanced"].settings["data.sampling"] == "inverse_frequency"


def test_arm_rejects_shared_field():
    with pytest.raises(ConfigError, match="arm 'fast' sets training.heads_epochs"):
        ArmSpec("fast", {"training.heads_epochs": 1})


def test_select_arms_rejects_unknown_name():
    with pytest.raises(ConfigError, match=r"unknown arm\(s\) \['fancy'\]"):
        select_arms([], ["baseline", "fancy"])


def test_load_compare_config_reads_arms(tmp_path):
    path = tmp_path / "compare.toml"
    path.write_text(
        '[data]\npath = "faces"\n\n[training]\nheads_epochs = 2\n\n'
        '[compare]\nseeds = 2\n\n'
        '[[compare.arm]]\nname = "baseline"\n\n'
        '[[compare.arm]]\nname = "multitask_race"\ndescription = "four heads"\n'
        '[compare.arm.model]\nheads = ["emotion", "gender", "age", "race"]\n'
        '[compare.arm.training]\nselection = "accuracy_with_fairness_floor"\n'
        'loss_weights = {emotion = 1.0, gender = 0.3, age = 0.3, race = 0.3}\n'
    )
    config = load_compare_config(path)
    race_arm = config.arms[1]
    assert [arm.name for arm in config.arms] == ["baseline", "multitask_race"]
    assert config.seeds == 2
    assert config.base.training.heads_epochs == 2
    assert race_arm.settings["model.heads"] == ["emotion", "gender", "age", "race"]
    assert race_arm.settings["training.selection"] == "accuracy_with_fairness_floor"
    assert race_arm.settings["training.loss_weights"]["race"] == 0.3


def test_load_compare_config_rejects_unknown_field(tmp_path):
    path = tmp_path / "compare.toml"
    path.write_text('[data]\npath = "faces"\n\n[compare]\nrepeats = 2\n')
    with pytest.raises(ConfigError, match="unknown field.*compare.repeats"):
        load_compare_config(path)


# --- planted bias, end to end -------------------------------------------------------------

# The shared settings of the end-to-end comparisons, read by the library and by the CLI. The
# third arm covers the method options: race as a fourth head, other loss weights, and the
# best epoch chosen on accuracy with a floor on gender fairness.
COMPARE_TOML = """
[model]
trunk = "{trunk}"

[training]
heads_epochs = 2
finetune_epochs = 1
heads_learning_rate = 3e-3
finetune_learning_rate = 1e-3

[evaluation]
min_group_size = 20
n_bootstrap = 200

[compare]
seeds = 2

[[compare.arm]]
name = "baseline"

[[compare.arm]]
name = "multitask_balanced"

[[compare.arm]]
name = "race_floor"
[compare.arm.model]
heads = ["emotion", "gender", "age", "race"]
[compare.arm.training]
loss_weights = {{ emotion = 1.0, gender = 0.3, age = 0.3, race = 0.3 }}
selection = "accuracy_with_fairness_floor"
fairness_floor = 0.9
"""
ARMS = ("baseline", "multitask_balanced", "race_floor")


def _compare_config(data: Path, toml_path: Path, arms=ARMS) -> CompareConfig:
    toml_path.write_text(COMPARE_TOML.format(trunk=MINI_XCEPTION))
    loaded = load_compare_config(toml_path)
    base = RunConfig(data=DataConfig(path=str(data)), model=loaded.base.model,
                     training=loaded.base.training, evaluation=loaded.base.evaluation)
    return CompareConfig(base=base, arms=select_arms(loaded.arms, arms), seeds=loaded.seeds)


@pytest.fixture(scope="module")
def synthetic_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    gap = planted_gap(attribute="gender", group="female", kind="harder_expressions",
                      strength=0.3, n_images=SYNTHETIC_IMAGES, seed=0)
    return {
        "root": root,
        "gap": generate_synthetic(root / "gap", gap),
        "control": generate_synthetic(root / "control", unbiased(n_images=SYNTHETIC_IMAGES,
                                                                 seed=0)),
    }


@pytest.fixture(scope="module")
def gap_comparison(synthetic_sets, tmp_path_factory):
    output = tmp_path_factory.mktemp("gap_comparison")
    config = _compare_config(synthetic_sets["gap"], synthetic_sets["root"] / "compare.toml")
    return run_comparison(config, output)


@pytest.fixture(scope="module")
def control_comparison(synthetic_sets, tmp_path_factory):
    output = tmp_path_factory.mktemp("control_comparison")
    config = _compare_config(synthetic_sets["control"], synthetic_sets["root"] / "control.toml",
                             arms=("baseline",))
    return run_comparison(config, output)


def test_arm_run_config_balanced_arm(synthetic_sets, tmp_path):
    config = _compare_config(synthetic_sets["gap"], tmp_path / "compare.toml")
    balanced = arm_run_config(config, DEFAULT_ARMS["balanced"], 1, tmp_path)
    baseline = arm_run_config(config, DEFAULT_ARMS["baseline"], 1, tmp_path)
    augmented = Path(balanced.data.augmented_path)
    assert (augmented / "labels.csv").is_file()
    assert augmented == tmp_path / "augmented" / "gender-age" / "seed1"
    assert balanced.data.sampling == "inverse_frequency"
    assert balanced.model.heads == ("emotion",)
    assert baseline.data.augmented_path == ""
    assert balanced.training == baseline.training


def test_arm_run_config_rejects_changed_augmentation(synthetic_sets, tmp_path):
    config = _compare_config(synthetic_sets["gap"], tmp_path / "compare.toml")
    arm_run_config(config, DEFAULT_ARMS["balanced"], 0, tmp_path)
    changed = dataclasses.replace(config, max_factor=2.0)
    with pytest.raises(ValueError, match=r"written with other settings \(max_factor differ"):
        arm_run_config(changed, DEFAULT_ARMS["balanced"], 0, tmp_path)


def test_arm_run_config_same_test_split(synthetic_sets, tmp_path):
    config = _compare_config(synthetic_sets["gap"], tmp_path / "compare.toml")
    balanced = arm_run_config(config, DEFAULT_ARMS["multitask_balanced"], 0, tmp_path)
    baseline = arm_run_config(config, DEFAULT_ARMS["baseline"], 0, tmp_path)
    balanced_data = prepare_splits(balanced.data, seed=0)
    baseline_data = prepare_splits(baseline.data, seed=0)
    test_ids = [record.example_id for record in baseline_data.splits["test"]]
    assert [r.example_id for r in balanced_data.splits["test"]] == test_ids
    assert len(balanced_data.splits["train"]) > len(baseline_data.splits["train"])


@pytest.mark.slow
def test_compare_trains_every_arm_and_seed(gap_comparison):
    expected = sorted((arm, seed) for arm in ARMS for seed in range(SEEDS))
    assert sorted(gap_comparison.trained) == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", ["comparison.json", "comparison.md", "comparison.png"])
def test_compare_writes_file(gap_comparison, name):
    assert (gap_comparison.output_dir / name).stat().st_size > 0


@pytest.mark.slow
def test_compare_flags_planted_group(gap_comparison):
    gap = gap_comparison.summary["group_gaps"]["baseline"]["gender"]
    assert gap["disadvantaged_group"] == "female"


@pytest.mark.slow
def test_compare_planted_gap_is_significant(gap_comparison):
    gap = gap_comparison.summary["group_gaps"]["baseline"]["gender"]
    assert gap["significant"] is True
    assert gap["bootstrap_low"] > 0


@pytest.mark.slow
def test_compare_planted_ratio_below_control(gap_comparison, control_comparison):
    planted = gap_comparison.summary["summary"]["baseline"]["gender_fairness"]["mean"]
    control = control_comparison.summary["summary"]["baseline"]["gender_fairness"]["mean"]
    assert planted < control


@pytest.mark.slow
def test_compare_difference_has_both_tests(gap_comparison):
    difference = gap_comparison.summary["differences"]["multitask_balanced"]["overall_accuracy"]
    assert difference["bootstrap_p"] is not None
    assert len(difference["per_seed"]) == SEEDS
    assert "paired t-test across seeds" in difference["sentence"]


@pytest.mark.slow
def test_compare_method_options_reach_run(gap_comparison):
    run_dir = gap_comparison.output_dir / "runs" / "race_floor" / "seed0"
    saved = json.loads((run_dir / "config.json").read_text())
    history = pd.read_csv(run_dir / "history.csv")
    assert saved["model"]["heads"] == ["emotion", "gender", "age", "race"]
    assert saved["training"]["loss_weights"]["race"] == 0.3
    assert saved["training"]["selection"] == "accuracy_with_fairness_floor"
    assert "val_selection_score" in history.columns
    assert "predicted_race" in pd.read_csv(run_dir / "predictions.csv").columns


@pytest.mark.slow
def test_compare_json_matches_summary(gap_comparison):
    saved = json.loads((gap_comparison.output_dir / "comparison.json").read_text())
    assert saved["reference"] == "baseline"
    assert saved["arms"] == list(ARMS)
    assert saved["seeds"] == [0, 1]


@pytest.mark.slow
def test_compare_cli_reuses_finished_runs(gap_comparison, synthetic_sets, capsys):
    output = gap_comparison.output_dir
    metrics = sorted(output.glob("runs/*/*/metrics.json"))
    before = [path.stat().st_mtime_ns for path in metrics]
    status = cli.main([
        "compare", "--config", str(synthetic_sets["root"] / "compare.toml"),
        "--data", str(synthetic_sets["gap"]), "--output", str(output),
    ])
    printed = capsys.readouterr().out
    assert status == 0
    assert f"(0 runs trained, {len(ARMS) * SEEDS} reused)" in printed
    assert "female has the lowest gender accuracy" in printed
    assert [path.stat().st_mtime_ns for path in metrics] == before


@pytest.mark.slow
def test_compare_rejects_changed_settings(gap_comparison, synthetic_sets, tmp_path):
    config = _compare_config(synthetic_sets["gap"], tmp_path / "compare.toml",
                             arms=("baseline",))
    training = dataclasses.replace(config.base.training, heads_epochs=3)
    changed = dataclasses.replace(config, base=dataclasses.replace(config.base,
                                                                   training=training))
    with pytest.raises(ValueError, match="training.heads_epochs differ"):
        run_comparison(changed, gap_comparison.output_dir)


@pytest.mark.slow
def test_compare_resumes_interrupted_run(gap_comparison, synthetic_sets, tmp_path, caplog):
    # Runs after the reuse tests, because it rewrites one run of the shared comparison.
    run_dir = gap_comparison.output_dir / "runs" / "baseline" / "seed1"
    status = json.loads((run_dir / "status.json").read_text())
    status["status"] = "failed"
    (run_dir / "status.json").write_text(json.dumps(status))
    config = _compare_config(synthetic_sets["gap"], tmp_path / "compare.toml")
    with caplog.at_level("INFO", logger="fer_fairness.compare"):
        result = run_comparison(config, gap_comparison.output_dir)
    assert result.trained == [("baseline", 1)]
    assert "resuming the interrupted run" in caplog.text
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
