"""Measure input-pipeline throughput next to the FER+ model's training throughput.

Usage: python tools/benchmark_input.py [--faces DIR] [--repeat 25] [--batch-size 64]

The input is the London faces (100x100 RGB JPEGs), copied ``--repeat`` times into a temporary
manifest folder so one pass contains enough images to time. It reports images per second for:

- the folder pipeline (``make_dataset``): the first pass decodes the JPEGs, the second pass
  reads the in-memory cache;
- the same images built into a face_manifest TFDS data set and streamed with
  ``make_tfds_dataset``;
- group-balanced sampling (gender by race, uniform) over files and over TFDS, timed over
  ``2 x steps_per_epoch`` batches, so the cache fills during the first epoch;
- one training step of the full multi-task FER+ replica (random weights, trunk unfrozen) at
  ``--batch-size``.

It prints a Markdown table; the numbers in docs/benchmarks.md come from it.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from fer_fairness.data import readers
from fer_fairness.data.balance import make_balanced_dataset
from fer_fairness.data.pipeline import make_dataset
from fer_fairness.data.tfds_features import prepare_dataset
from fer_fairness.data.tfds_source import make_tfds_dataset

HEADS = ("emotion", "gender", "age")
DEFAULT_FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "london_faces"


def repeated_manifest(faces: Path, folder: Path, repeat: int) -> Path:
    """Write ``repeat`` copies of the faces, each under its own subject ids, as a manifest."""
    lines = (faces / readers.MANIFEST_FILE).read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], [line for line in lines[1:] if line.strip()]
    output = [header]
    for copy in range(repeat):
        for row in rows:
            image, subject, rest = row.split(",", 2)
            target = Path(f"copy{copy:03d}") / image
            (folder / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(faces / image, folder / target)
            output.append(f"{target.as_posix()},{copy}-{subject},{rest}")
    (folder / readers.MANIFEST_FILE).write_text("\n".join(output) + "\n", encoding="utf-8")
    return folder


def images_per_second(dataset, batches: int | None = None) -> float:
    """Iterate ``dataset`` (or its first ``batches``) and return images per second."""
    images = 0
    start = time.perf_counter()
    for batch in dataset if batches is None else dataset.take(batches):
        images += int(batch[0].shape[0])
    return images / (time.perf_counter() - start)


def training_step_rate(batch_size: int, steps: int = 5) -> float:
    """Return images per second of full training steps of the multi-task FER+ replica."""
    from fer_fairness import model as model_lib
    from fer_fairness import training
    from fer_fairness.convert import build_ferplus_replica, convert_onnx

    trunk = convert_onnx(build_ferplus_replica(seed=0))
    heads = model_lib.build_heads(trunk, heads=HEADS, trunk_classes=(), seed=0)
    model = model_lib.assemble(model_lib.feature_extractor(trunk), heads, trunk_inference=False)
    training.set_trunk_trainable(model, True)
    training.compile_model(model, learning_rate=1e-5,
                           loss_weights={"emotion": 1.0, "gender": 0.5, "age": 0.5})
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, 64, 64, 1)).astype(np.float32)
    targets = {"emotion": rng.integers(0, 7, batch_size), "gender": rng.integers(0, 2, batch_size),
               "age": rng.integers(0, 5, batch_size)}
    for _ in range(2):  # The first steps trace and compile the function.
        model.train_on_batch(images, targets)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, targets)
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES,
                        help="manifest folder to repeat; default: %(default)s")
    parser.add_argument("--repeat", type=int, default=25, help="copies of the faces")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        folder = repeated_manifest(args.faces, Path(temporary) / "faces", args.repeat)
        records = readers.read_manifest(folder)
        results = {}
        dataset = make_dataset(records, heads=HEADS, batch_size=args.batch_size, shuffle=True)
        results["JPEG files, first pass (decode)"] = images_per_second(dataset)
        results["JPEG files, second pass (cache)"] = images_per_second(dataset)

        start = time.perf_counter()
        prepared = prepare_dataset("face_manifest", manual_dir=folder,
                                   data_dir=Path(temporary) / "tfds")
        build_seconds = time.perf_counter() - start
        streamed, steps = make_tfds_dataset(prepared, "train", heads=HEADS,
                                            batch_size=args.batch_size, shuffle=True)
        results["TFDS, first pass (read and decode)"] = images_per_second(streamed)
        results["TFDS, second pass (cache)"] = images_per_second(streamed)

        balanced = make_balanced_dataset(records, heads=HEADS, batch_size=args.batch_size,
                                         group_by=("gender", "race"), sampling="uniform")
        results["JPEG files, balanced, 2 epochs"] = images_per_second(
            balanced.dataset, 2 * balanced.steps_per_epoch)
        tfds_balanced, steps = make_tfds_dataset(
            prepared, "train", heads=HEADS, batch_size=args.batch_size, shuffle=True,
            sampling="uniform", group_by=("gender", "race"))
        results["TFDS, balanced, 2 epochs"] = images_per_second(tfds_balanced, 2 * steps)

    results[f"training step, FER+ replica, batch {args.batch_size}"] = training_step_rate(
        args.batch_size)
    print(f"{len(records)} images ({args.repeat} x {args.faces.name}), batch {args.batch_size}; "
          f"TFDS build took {build_seconds:.1f} s")
    print("| measurement | images/s |\n| --- | ---: |")
    for name, rate in results.items():
        print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
