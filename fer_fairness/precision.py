"""Mixed-precision training: choose a Keras dtype policy and apply it to the trunk.

Keras mixed policies (``mixed_bfloat16``, ``mixed_float16``) compute in 16 bits and keep every
variable in float32, so the optimizer updates float32 master weights. This project applies the
policy to the trunk's layers only. The heads are float32 ``Dense`` layers (see
``model.build_heads``), which cast the 16-bit features to float32, so the logits, the losses,
the metrics and the fairness computations stay float32. The trained model is switched back to
float32 before it is saved and exported, so ``model.keras`` and every serving signature are
float32 throughout.

``auto`` resolves to:

- ``mixed_float16`` where TensorFlow finds a GPU. ``training.compile_model`` then wraps the
  optimizer in a ``LossScaleOptimizer``, because float16 gradients underflow without loss
  scaling.
- ``mixed_bfloat16`` on a CPU with bfloat16 instructions (the ``avx512_bf16`` or ``amx_bf16``
  flag in ``/proc/cpuinfo``). bfloat16 has float32's exponent range, so it needs no loss scaling.
- ``float32`` elsewhere, where bfloat16 would be emulated and slower than float32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import tensorflow as tf

from fer_fairness.config import PRECISIONS

logger = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
# CPU flags (as Linux names them in /proc/cpuinfo) of native bfloat16 arithmetic.
BFLOAT16_CPU_FLAGS: frozenset[str] = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_supports_bfloat16(cpuinfo: Path = CPUINFO) -> bool:
    """Return whether the CPU has native bfloat16 instructions (AVX-512 BF16 or AMX).

    Reads the ``flags`` lines of ``cpuinfo``. Returns False where the file does not exist,
    such as on macOS or Windows.
    """
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and BFLOAT16_CPU_FLAGS & set(value.split()):
            return True
    return False


def resolve_precision(
    requested: str,
    *,
    has_gpu: bool | None = None,
    cpuinfo: Path = CPUINFO,
) -> str:
    """Return the Keras dtype policy name for a ``training.precision`` value.

    Args:
        requested: One of ``PRECISIONS``; ``auto`` is resolved as the module docstring describes.
        has_gpu: Whether a GPU is used; None queries TensorFlow.
        cpuinfo: The file whose ``flags`` lines tell bfloat16 support.

    Raises:
        ValueError: if ``requested`` is not one of ``PRECISIONS``.
    """
    if requested not in PRECISIONS:
        raise ValueError(
            f"precision={requested!r} is invalid; expected one of {', '.join(PRECISIONS)}"
        )
    if requested != "auto":
        return requested
    if has_gpu is None:
        has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if has_gpu:
        return "mixed_float16"
    if cpu_supports_bfloat16(cpuinfo):
        return "mixed_bfloat16"
    return "float32"


def apply_policy(model: keras.Model, policy: str) -> int:
    """Set the dtype policy of every layer of ``model``, nested models included.

    Mixed and float32 policies share float32 variables, so the weights stay as they are and
    only the compute dtype changes. Each layer casts its floating-point inputs to its own
    compute dtype when called. Call this before the model is compiled or traced: functions
    traced earlier keep the old dtypes.

    Returns:
        The number of layers changed.
    """
    target = keras.dtype_policies.get(policy)
    changed = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer.dtype_policy.name != target.name:
            layer.dtype_policy = target
            changed += 1
    return changed


def uses_float16(model: keras.Model) -> bool:
    """Return whether any layer of ``model`` computes in float16, which needs loss scaling."""
    return any(
        layer.compute_dtype == "float16"
        for layer in model._flatten_layers(include_self=True, recursive=True)
    )
