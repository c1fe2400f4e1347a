"""Turn the results of ``tools/benchmark.py`` into the "Training throughput" Markdown section."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

SECTION_TITLE = "## Training throughput"
# Targets: bfloat16 phase 2 at least 1.6 times float32, float32 phase 2 at 90% or more of the
# float32 matrix rate, cached phase 1 at least 10 times faster, bfloat16 accuracy within 1 pp.
BFLOAT16_SPEEDUP_TARGET = 1.6
MATMUL_FRACTION_TARGET = 0.9
CACHE_SPEEDUP_TARGET = 10.0
ACCURACY_TARGET_PP = 1.0
LONDON_FACES = 204
POLICIES = ("float32", "mixed_bfloat16")


def _check(met: bool) -> str:
    return "met" if met else "**not met**"


def table(results: dict) -> str:
    """Return the Markdown table of one benchmark run."""
    matmul = results["matmul_gflops"]
    flops = results["flops_per_image"]
    rows = [
        "| measurement | float32 | mixed_bfloat16 |",
        "| --- | ---: | ---: |",
        f"| matrix multiply, 2048x2048, best timing (GFLOP/s) | {matmul['float32']:.0f} | "
        f"{matmul['mixed_bfloat16']:.0f} |",
    ]
    for phase, label in (("heads", "phase 1, trunk frozen"), ("finetune", "phase 2, full")):
        cells = [results["training"][f"{phase}/{policy}"] for policy in POLICIES]
        rows.append(f"| {label}, batch 64 (images/s) | {cells[0]['images_per_s']:.1f} | "
                    f"{cells[1]['images_per_s']:.1f} |")
        rows.append(
            f"| {label}: GFLOP/s at {flops[phase] / 1e9:.2f} GFLOP/image / matrix rate timed "
            f"just before (fraction) | {cells[0]['gflops']:.0f} / "
            f"{cells[0]['matmul_gflops']:.0f} ({cells[0]['fraction_of_matmul']:.0%}) | "
            f"{cells[1]['gflops']:.0f} / {cells[1]['matmul_gflops']:.0f} "
            f"({cells[1]['fraction_of_matmul']:.0%}) |"
        )
    inference = results["inference"]
    rows.append(f"| inference, batch 1, compiled call (ms, median) | "
                f"{inference['float32']['batch1_ms']:.1f} | "
                f"{inference['mixed_bfloat16']['batch1_ms']:.1f} |")
    rows.append(f"| inference, batch 64 (images/s) | "
                f"{inference['float32']['batch64_images_per_s']:.0f} | "
                f"{inference['mixed_bfloat16']['batch64_images_per_s']:.0f} |")
    return "\n".join(rows)


def targets(results: dict) -> str:
    """Return the Markdown list of the targets, each with its measured value."""
    training = results["training"]
    bf16_speedup = results["bfloat16_speedup"]["finetune"]
    fraction = training["finetune/float32"]["fraction_of_matmul"]
    cached = results["cached_phase_one"]
    accuracy = results["precision_accuracy"]
    worst = max(abs(value) for value in accuracy["difference_pp"])
    lines = [
        f"- bfloat16 phase 2 / float32 phase 2, median of the paired rounds: "
        f"{bf16_speedup:.2f}x (target at least "
        f"{BFLOAT16_SPEEDUP_TARGET}x): {_check(bf16_speedup >= BFLOAT16_SPEEDUP_TARGET)}.",
        f"- float32 phase 2 at {fraction:.0%} of the float32 matrix rate (target at least "
        f"{MATMUL_FRACTION_TARGET:.0%}): {_check(fraction >= MATMUL_FRACTION_TARGET)}.",
        f"- cached phase 1: {cached['uncached_s']:.1f} s uncached, {cached['cached_s']:.1f} s "
        f"cached, {cached['speedup']:.1f}x at {cached['heads_epochs']} epochs (target at least "
        f"{CACHE_SPEEDUP_TARGET:.0f}x): {_check(cached['speedup'] >= CACHE_SPEEDUP_TARGET)}.",
        f"- test emotion accuracy, bfloat16 minus float32: "
        f"{', '.join(f'{value:+.1f}' for value in accuracy['difference_pp'])} pp for seeds "
        f"{', '.join(map(str, accuracy['seeds']))} (mean {accuracy['mean_difference_pp']:+.1f} "
        f"pp; target within {ACCURACY_TARGET_PP:.0f} pp): "
        f"{_check(worst <= ACCURACY_TARGET_PP)}.",
    ]
    return "\n".join(lines)


def section(results: dict) -> str:
    """Return the whole "Training throughput" section, title included."""
    machine = results["machine"]
    cached = results["cached_phase_one"]
    accuracy = results["precision_accuracy"]
    pipeline = results["input_pipeline"]
    flops = results["flops_per_image"]
    copies = cached["images"] // LONDON_FACES
    paragraphs = [
        "`tools/benchmark.py` measures, in one process, the matrix-multiply rates, the training "
        "and inference speed of the FER+ replica, the input pipeline, the cached phase 1 and the "
        "accuracy cost of bfloat16. The replica is the emotion-ferplus-8 graph with random "
        "weights, which run as fast as the real ones. Its docstring describes each measurement. "
        "The full results are in `docs/benchmarks.json`.",
        f"Command, from the repository root (about {results['seconds'] / 60:.0f} minutes):",
        f"```\n{results['command']}\n```",
        f"Machine: {machine['cpu']} ({machine['hypervisor']} guest), {machine['logical_cpus']} "
        f"logical CPUs, bfloat16 instructions: "
        f"{'yes' if machine['bfloat16_instructions'] else 'no'}; Python {machine['python']}, "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}. Load average (1, 5, 15 "
        f"min) {results['load_average_start']} at the start and {results['load_average_end']} "
        f"at the end, because the machine is shared with other jobs. Single figures move by up "
        f"to 3 times between runs under such load, so compare the columns of one run. Peak "
        f"resident memory {results['peak_rss_mib']:.0f} MiB "
        f"({results['peak_rss_mib_after_model_speeds']:.0f} MiB after the model measurements).",
        table(results),
        f"FLOPs per image: {flops['forward'] / 1e9:.3f} GFLOP for one forward pass of the trunk, "
        f"counted from the layer shapes (the TensorFlow profiler counts "
        f"{flops['forward_tf_profiler'] / 1e9:.3f} GFLOP, which adds the bias additions). Phase "
        f"1 costs one forward pass per image. A phase-2 training step costs three (forward, "
        f"gradients of the activations, gradients of the weights): "
        f"{flops['finetune'] / 1e9:.2f} GFLOP. The throughput of this shared machine changes "
        f"by up to 3 times within minutes, so each training timing is compared with a matrix "
        f"rate timed just before it. The first row is the best matrix timing of the run. "
        f"The rounds of float32 phase 2 ran at {_rounds(results, 'float32')} images/s and "
        f"those of bfloat16 at {_rounds(results, 'mixed_bfloat16')} images/s: the speed moves "
        f"between a few levels as other jobs take the cores.",
        f"Input pipeline (`make_dataset`, London faces x{copies}, batch 64): "
        f"{pipeline['decode']:,.0f} images/s on the decoding pass, {pipeline['cached']:,.0f} "
        f"images/s from the cache.",
        f"Cached phase 1: `fer_fairness.workflow.train` with `phase=\"heads\"` on "
        f"{cached['images']} London faces ({copies} copies: {cached['train_images']} training "
        f"and {cached['validation_images']} validation images), FER+ replica trunk, batch "
        f"{cached['batch_size']}, {cached['heads_epochs']} epochs (the default), precision "
        f"{cached['precision']}, with `cache_features` `off` and `memory`. The time covers the "
        f"whole phase: computing the features, training, the validation passes and the "
        f"callbacks (fairness evaluation, checkpoints of the full model, backups). Without the "
        f"cache, every epoch runs the trunk over the training images once and over the "
        f"validation images twice (Keras's validation pass and the fairness callback). With the "
        f"cache, the trunk runs once per image. So the speed-up cannot exceed the ratio of trunk "
        f"passes, E (T + 2V) / (T + V) for E epochs, T training and V validation images: "
        f"{cached['trunk_pass_ratio']:.1f} here. It grows in proportion to the epoch count.",
        f"bfloat16 accuracy: `fer_fairness.workflow.train` on the 204 London faces with the "
        f"pretrained mini-Xception trunk ({accuracy['trunk']}), {accuracy['heads_epochs']} "
        f"phase-1 and {accuracy['finetune_epochs']} phase-2 epochs, batch 32, float32 against "
        f"mixed_bfloat16. Test-split emotion accuracy per seed: float32 "
        f"{_percent(accuracy['accuracy']['float32'])}, mixed_bfloat16 "
        f"{_percent(accuracy['accuracy']['mixed_bfloat16'])}. The test split contains about 40 "
        f"faces, so one face is about 2.4 percentage points.",
        "Targets:",
        targets(results),
    ]
    wrapped = [
        paragraph if paragraph.startswith(("|", "```", "- ")) else textwrap.fill(paragraph, 96)
        for paragraph in paragraphs
    ]
    return f"{SECTION_TITLE}\n\n" + "\n\n".join(wrapped) + "\n"


def _rounds(results: dict, policy: str) -> str:
    return ", ".join(f"{rate:.0f}" for rate in results["training"][f"finetune/{policy}"]["rounds"])


def _percent(values) -> str:
    return ", ".join(f"{100 * value:.1f}%" for value in values)


def write_section(path: Path, results: dict) -> None:
    """Replace the "Training throughput" section of ``path``, or append it."""
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    new_section = section(results)
    pattern = re.compile(rf"^{re.escape(SECTION_TITLE)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: new_section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + new_section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
