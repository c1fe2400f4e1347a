"""Crash-safe file writes.

Every output file is written to a temporary name in its destination folder and then renamed
into place with ``os.replace``, which is atomic on POSIX and Windows file systems. A crash
therefore leaves either the old file or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    The temporary file is removed when the block raises. The suffix is kept, so libraries that
    infer the format from the name (``model.save``, ``savefig``) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(handle)
    temporary_path = Path(temporary)
    # mkstemp creates the file readable by its owner only; give it the usual mode instead.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary_path, 0o666 & ~umask)
    try:
        yield temporary_path
        os.replace(temporary_path, path)
    finally:
        temporary_path.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as temporary:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    return write_bytes_atomic(path, text.encode(encoding))


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def _to_builtin(value: Any) -> Any:
    """Convert numpy scalars and arrays, which ``json`` cannot encode, to Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically; NaN and infinities become ``null``."""
    plain = json.loads(json.dumps(data, default=_to_builtin))
    text = json.dumps(_finite_or_none(plain), indent=2, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, raising ``ValueError`` that names the file when it is invalid."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
