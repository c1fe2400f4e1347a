"""ONNX to Keras conversion for pretrained emotion trunks.

``convert_onnx`` maps an ONNX image classifier onto built-in Keras layers, ``fetch_model``
downloads the FER+ model with a pinned checksum, and ``build_ferplus_replica`` builds the FER+
graph with random weights for tests and benchmarks.
"""

from fer_fairness.convert.converter import DATA_FORMATS, convert_onnx, locate_named_points
from fer_fairness.convert.fetch import (
    FERPLUS,
    FERPLUS_SHA256,
    MODELS,
    ModelDownloadError,
    ModelSource,
    cached_model_path,
    default_cache_dir,
    fetch_file,
    fetch_model,
)
from fer_fairness.convert.graph import UnsupportedModelError, load_onnx_model
from fer_fairness.convert.ops import SUPPORTED_OPS
from fer_fairness.convert.replica import build_ferplus_replica

__all__ = [
    "DATA_FORMATS",
    "FERPLUS",
    "FERPLUS_SHA256",
    "MODELS",
    "SUPPORTED_OPS",
    "ModelDownloadError",
    "ModelSource",
    "UnsupportedModelError",
    "build_ferplus_replica",
    "cached_model_path",
    "convert_onnx",
    "default_cache_dir",
    "fetch_file",
    "fetch_model",
    "load_onnx_model",
    "locate_named_points",
]
