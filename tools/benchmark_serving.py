"""Measure serving latency (batch 1) and throughput (batch 64) of Keras, the SavedModel and ONNX.

All backends run in one process on the same random inputs:

- Keras: the trained model called through one compiled ``tf.function`` (and, for comparison,
  ``model.predict``);
- SavedModel: the ``serving_preprocessed`` signature (float32 64x64 input, as the others) and
  the ``serving_default`` signature on uint8 100x100 RGB images, which adds the in-graph
  grayscale conversion and resize;
- ONNX: ``model.onnx`` under onnxruntime's CPU provider with its default thread settings.

Usage:
    python tools/benchmark_serving.py [--run-dir RUN_DIR | --trunk TRUNK.onnx] [--seconds 3]

Without ``--run-dir``, a run folder is built in a temporary folder from ``--trunk`` (default:
the pretrained mini-Xception in ``models/``) with emotion, gender and age heads, and exported.
The output is a Markdown table for ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import tensorflow as tf  # noqa: E402

from fer_fairness import model as model_lib  # noqa: E402
from fer_fairness.convert import convert_onnx  # noqa: E402
from fer_fairness.export import export_run, load_run_model, serving_outputs  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
MINI_XCEPTION = REPO_ROOT / "models" / "fer_mini_xception.onnx"
THROUGHPUT_BATCH = 64
RAW_IMAGE_SHAPE = (100, 100, 3)


def build_run(folder: Path, trunk_path: Path) -> Path:
    """Write a run folder with the ONNX trunk and three heads into ``folder``."""
    trunk = convert_onnx(trunk_path)
    heads = model_lib.build_heads(trunk, heads=("emotion", "gender", "age"), seed=0)
    model = model_lib.assemble(model_lib.feature_extractor(trunk), heads, trunk_inference=True)
    model.save(folder / "model.keras")
    return folder


def time_calls(call: Callable[[], object], seconds: float) -> list[float]:
    """Return the durations in seconds of calls made for ``seconds`` after 3 warm-up calls.

    At least 5 calls are timed, however long they take.
    """
    for _ in range(3):
        call()
    durations = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(durations) < 5:
        start = time.perf_counter()
        call()
        durations.append(time.perf_counter() - start)
    return durations


def backends(run_dir: Path, model: keras.Model) -> dict[str, Callable[[np.ndarray], object]]:
    """Return one callable per backend, each taking a batch of its own input kind."""
    image_shape = tuple(model.input_shape[1:])
    compiled = tf.function(
        lambda images: serving_outputs(model, images),
        input_signature=[tf.TensorSpec((None, *image_shape), tf.float32)],
    )
    loaded = tf.saved_model.load(str(run_dir / "saved_model"))
    preprocessed = loaded.signatures["serving_preprocessed"]
    default = loaded.signatures["serving_default"]
    session = onnxruntime.InferenceSession(
        str(run_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    output_names = [output.name for output in session.get_outputs()]
    return {
        "Keras, compiled tf.function": lambda x: compiled(tf.constant(x)),
        "Keras, model.predict": lambda x: model.predict(x, batch_size=len(x), verbose=0),
        "SavedModel, serving_preprocessed": lambda x: preprocessed(image=tf.constant(x)),
        "SavedModel, serving_default (uint8 100x100 RGB)": lambda x: default(images=tf.constant(x)),
        "ONNX, onnxruntime": lambda x: session.run(output_names, {"image": x}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, help="run folder with model.keras (exported "
                        "here first); default: a temporary mini-Xception run")
    parser.add_argument("--trunk", type=Path, default=MINI_XCEPTION,
                        help="ONNX trunk of the temporary run; default: %(default)s")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="measuring time per backend and batch size; default: %(default)s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as temporary:
        run_dir = args.run_dir or build_run(Path(temporary), args.trunk)
        export_run(run_dir, export_format="both")
        model = load_run_model(run_dir)
        rng = np.random.default_rng(0)
        image_shape = tuple(model.input_shape[1:])
        inputs = {
            size: (
                rng.uniform(0, 255, (size, *image_shape)).astype(np.float32),
                rng.integers(0, 256, (size, *RAW_IMAGE_SHAPE), dtype=np.uint8),
            )
            for size in (1, THROUGHPUT_BATCH)
        }
        print(f"model: {model.count_params():,} parameters; "
              f"python {platform.python_version()}, tensorflow {tf.__version__}, "
              f"keras {keras.__version__}, onnxruntime {onnxruntime.__version__}, "
              f"{os.cpu_count()} CPUs visible")
        print()
        print("| backend | batch 1 median latency (ms) | batch 1 p90 (ms) "
              f"| batch {THROUGHPUT_BATCH} throughput (images/s) |")
        print("| --- | ---: | ---: | ---: |")
        for name, call in backends(run_dir, model).items():
            kind = 1 if "uint8" in name else 0
            single = time_calls(lambda: call(inputs[1][kind]), args.seconds)
            batched = time_calls(lambda: call(inputs[THROUGHPUT_BATCH][kind]), args.seconds)
            p90 = statistics.quantiles(single, n=10)[-1]
            throughput = THROUGHPUT_BATCH / statistics.median(batched)
            print(f"| {name} | {1000 * statistics.median(single):.2f} | {1000 * p90:.2f} "
                  f"| {throughput:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
