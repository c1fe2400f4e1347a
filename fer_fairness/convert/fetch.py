"""Download pretrained ONNX models into a local cache and verify their SHA-256.

Each download goes through ``keras.utils.get_file`` into a temporary folder inside the cache,
and the file is moved to its final name only after its checksum matches. A failed or
mismatching download therefore leaves nothing in the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "FER_FAIRNESS_CACHE"
DEFAULT_TIMEOUT_S = 30.0


class ModelDownloadError(OSError):
    """No URL gave a file with the expected checksum."""


@dataclass(frozen=True)
class ModelSource:
    """A downloadable model file.

    Attributes:
        name: Short name used on the command line, for example ``"ferplus"``.
        filename: File name in the cache folder.
        sha256: Expected SHA-256 of the file, as 64 lowercase hex digits.
        size: Expected size in bytes, for messages only.
        urls: Addresses tried in order.
    """

    name: str
    filename: str
    sha256: str
    size: int
    urls: tuple[str, ...]


FERPLUS_SHA256 = "a2a2ba6a335a3b29c21acb6272f962bd3d47f84952aaffa03b60986e04efa61c"
# Checksum and size are those of the ONNX Model Zoo manifest entry for emotion-ferplus-8.
FERPLUS = ModelSource(
    name="ferplus",
    filename="emotion-ferplus-8.onnx",
    sha256=FERPLUS_SHA256,
    size=35_040_571,
    urls=(
        "https://github.com/onnx/models/raw/main/validated/vision/body_analysis/"
        "emotion_ferplus/model/emotion-ferplus-8.onnx",
        # NOTE: unverified mirror address. The model zoo announced that its files move to the
        # onnxmodelzoo organisation on Hugging Face, but this exact path was never fetched.
        "https://huggingface.co/onnxmodelzoo/emotion-ferplus-8/resolve/main/"
        "emotion-ferplus-8.onnx",
    ),
)
MODELS: dict[str, ModelSource] = {FERPLUS.name: FERPLUS}


def default_cache_dir() -> Path:
    """Return the model cache folder: ``$FER_FAIRNESS_CACHE/models``, else
    ``~/.cache/fer-fairness/models``."""
    root = os.environ.get(CACHE_ENV_VAR)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "fer-fairness"
    return base / "models"


def _source(name: str) -> ModelSource:
    if name not in MODELS:
        raise ValueError(f"model name={name!r} is unknown; expected one of {', '.join(MODELS)}")
    return MODELS[name]


def cached_model_path(name: str = "ferplus", cache_dir: str | os.PathLike | None = None) -> Path:
    """Return where model ``name`` is (or would be) cached; the file may not exist."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return folder / _source(name).filename


def sha256_of(path: Path) -> str:
    """Return the SHA-256 of a file as lowercase hex."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # get_file calls urllib's urlretrieve, which takes no timeout, so the default socket
    # timeout bounds each connect and read. It does not bound DNS resolution.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download(url: str, source: ModelSource, target: Path, timeout: float) -> None:
    """Download ``url`` into ``target`` through a temporary folder beside it."""
    import keras  # Imported here so that the command line starts fast.

    with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as staging:
        with _socket_timeout(timeout):
            path = keras.utils.get_file(
                fname=source.filename, origin=url, file_hash=source.sha256,
                hash_algorithm="sha256", cache_dir=staging, cache_subdir=staging)
        # get_file raises ValueError on a checksum mismatch but keeps the file, so the check
        # is repeated here before the file leaves the temporary folder.
        if sha256_of(Path(path)) != source.sha256:
            raise ValueError(f"SHA-256 of the downloaded file does not match {source.sha256}")
        os.replace(path, target)


def fetch_file(
    source: ModelSource,
    *,
    cache_dir: str | os.PathLike | None = None,
    urls: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Return the cached path of ``source``, downloading it first if needed.

    A cached file with a wrong checksum is deleted and downloaded again.

    Args:
        source: The file to fetch.
        cache_dir: Folder for the file; defaults to :func:`default_cache_dir`.
        urls: Addresses to try in order; defaults to ``source.urls``.
        timeout: Seconds allowed for each connect and each read.

    Raises:
        ModelDownloadError: if every URL fails or gives a wrong checksum. The message lists
            each URL with its error and the path for a manually downloaded file.
        ValueError: if ``timeout`` is not positive or ``urls`` is empty.
    """
    if timeout <= 0:
        raise ValueError(f"timeout={timeout} must be a positive number of seconds")
    urls = tuple(urls) if urls is not None else source.urls
    if not urls:
        raise ValueError("urls=() is empty; pass at least one address or None for the default")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.filename
    if target.is_file():
        if sha256_of(target) == source.sha256:
            logger.info("using cached %s", target)
            return target
        logger.warning("cached %s has a wrong SHA-256; downloading it again", target)
        target.unlink()
    failures = []
    for url in urls:
        logger.info("downloading %s from %s", source.filename, url)
        try:
            _download(url, source, target, timeout)
        # get_file wraps HTTP and URL errors in a bare Exception; timeouts arrive as OSError.
        except Exception as error:  # noqa: BLE001
            logger.warning("download from %s failed: %s", url, error)
            failures.append(f"  {url}: {error}")
            continue
        logger.info("saved %s (SHA-256 verified)", target)
        return target
    raise ModelDownloadError(
        f"could not download {source.filename} ({source.size:,} bytes):\n" + "\n".join(failures)
        + f"\ndownload it by hand from {source.urls[0]}, check that its SHA-256 is "
        f"{source.sha256}, and save it as {target}; or pass --trunk PATH with a local ONNX file"
    )


def fetch_model(
    name: str = "ferplus",
    *,
    cache_dir: str | os.PathLike | None = None,
    urls: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Return the cached path of the named model, downloading and verifying it if needed.

    Args:
        name: A key of :data:`MODELS`; only ``"ferplus"`` (emotion-ferplus-8.onnx) for now.
        cache_dir: Folder for the file; defaults to :func:`default_cache_dir`.
        urls: Addresses to try in order instead of the built-in zoo URL and mirror.
        timeout: Seconds allowed for each connect and each read.

    Raises:
        ValueError: for an unknown ``name``.
        ModelDownloadError: see :func:`fetch_file`.
    """
    return fetch_file(_source(name), cache_dir=cache_dir, urls=urls, timeout=timeout)
