"""Benchmark the ONNX converter: conversion time and inference speed next to onnxruntime.

Usage (from the repository root, with the project's virtual environment active):

    python tools/benchmark_converter.py
    python tools/benchmark_converter.py --model models/fer_mini_xception.onnx --repeats 20

Without ``--model`` it benchmarks the FER+ replica (random weights, same graph as
emotion-ferplus-8) and the committed mini-Xception. Both engines get the same ``float32``
images with values in 0..255. The converted model runs through ``predict_on_batch``, which uses
Keras's compiled predict function. A graph that fixes its batch size to 1, like FER+, runs one
image per onnxruntime call, so its "batch 64" row times 64 single-image calls.

The script prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime
import tensorflow as tf

from fer_fairness.convert import build_ferplus_replica, convert_onnx

REPO_ROOT = Path(__file__).resolve().parents[1]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _median_seconds(function, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def _onnxruntime_call(path: Path, images: np.ndarray):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph_input = session.get_inputs()[0]
    fixed_batch = graph_input.shape[0] == 1
    nchw = graph_input.shape[1] == images.shape[3]
    feed = images.transpose(0, 3, 1, 2) if nchw else images

    def run() -> None:
        if fixed_batch:
            for image in feed:
                session.run(None, {graph_input.name: image[None]})
        else:
            session.run(None, {graph_input.name: feed})
    return run, fixed_batch


def benchmark(path: Path, batch_sizes: list[int], repeats: int) -> list[str]:
    """Return Markdown table rows for one ONNX model."""
    conversion = _median_seconds(lambda: convert_onnx(path), 3)
    model: keras.Model = convert_onnx(path)
    rows = []
    rng = np.random.default_rng(0)
    for batch_size in batch_sizes:
        images = rng.integers(0, 256, (batch_size, *model.input_shape[1:])).astype(np.float32)
        model.predict_on_batch(images)  # Builds and traces the predict function.
        keras_seconds = _median_seconds(lambda: model.predict_on_batch(images), repeats)
        ort_run, fixed_batch = _onnxruntime_call(path, images)
        ort_run()
        ort_seconds = _median_seconds(ort_run, repeats)
        ort_note = " (1 image per call)" if fixed_batch and batch_size > 1 else ""
        rows.append(f"| {path.name} | {conversion:.2f} | {batch_size} | "
                    f"{batch_size / keras_seconds:,.0f} | {batch_size / ort_seconds:,.0f}"
                    f"{ort_note} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, action="append",
                        help="ONNX file to benchmark; repeat for several (default: the FER+ "
                        "replica and models/fer_mini_xception.onnx)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=10,
                        help="timed runs per measurement; the median is reported")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        models = args.model
        if not models:
            replica = Path(folder) / "emotion-ferplus-8-replica.onnx"
            onnx.save(build_ferplus_replica(seed=0), replica)
            models = [replica, REPO_ROOT / "models" / "fer_mini_xception.onnx"]
        rows = [row for path in models for row in benchmark(path, args.batch_sizes,
                                                           args.repeats)]
    print(f"Machine: {_cpu_name()}, {os.cpu_count()} logical CPUs; Python "
          f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras "
          f"{keras.__version__}, onnxruntime {onnxruntime.__version__}")
    print(f"Command: python tools/benchmark_converter.py {' '.join(argv or sys.argv[1:])}".rstrip())
    print()
    print("| model | conversion (s) | batch | converted Keras (images/s) | "
          "onnxruntime (images/s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
