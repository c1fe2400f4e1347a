"""Model download against HTTP servers on 127.0.0.1 that the tests start themselves."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
import time
import pytest

from fer_fairness import cli
from fer_fairness.convert import fetch
from fer_fairness.convert import (
    FERPLUS_SHA256,
    ModelDownloadError,
    ModelSource,
    cached_model_path,
    fetch_file,
    fetch_model,
)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class.
        pass


@pytest.fixture(scope="module")
def served_folder(tmp_path_factory, ferplus_replica_path):
    """A folder served over HTTP on 127.0.0.1, holding the FER+ replica as two file names."""
    folder = tmp_path_factory.mktemp("served")
    data = ferplus_replica_path.read_bytes()
    (folder / "replica.onnx").write_bytes(data)
    (folder / "emotion-ferplus-8.onnx").write_bytes(data)
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


@pytest.fixture()
def closed_port_url() -> str:
    """A loopback URL on a port that was just closed, so connecting fails at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/emotion-ferplus-8.onnx"


def _replica_source(served_folder, *urls: str) -> ModelSource:
    data = (served_folder[1] / "replica.onnx").read_bytes()
    return ModelSource(name="replica", filename="replica.onnx",
                       sha256=hashlib.sha256(data).hexdigest(), size=len(data), urls=urls)


def test_fetch_file_falls_back_to_second_url(served_folder, closed_port_url, tmp_path):
    base_url, folder = served_folder
    source = _replica_source(served_folder, closed_port_url, f"{base_url}/replica.onnx")
    path = fetch_file(source, cache_dir=tmp_path)
    assert path == tmp_path / "replica.onnx"
    assert path.read_bytes() == (folder / "replica.onnx").read_bytes()
    assert sorted(item.name for item in tmp_path.iterdir()) == ["replica.onnx"]


def test_fetch_file_reuses_verified_cache(served_folder, closed_port_url, tmp_path):
    base_url, _ = served_folder
    fetch_file(_replica_source(served_folder, f"{base_url}/replica.onnx"), cache_dir=tmp_path)
    # Every URL now fails, so a second success can only come from the cache.
    path = fetch_file(_replica_source(served_folder, closed_port_url), cache_dir=tmp_path)
    assert path.is_file()


def test_fetch_file_replaces_corrupt_cache(served_folder, tmp_path):
    base_url, folder = served_folder
    (tmp_path / "replica.onnx").write_bytes(b"partial download")
    path = fetch_file(_replica_source(served_folder, f"{base_url}/replica.onnx"),
                      cache_dir=tmp_path)
    assert path.read_bytes() == (folder / "replica.onnx").read_bytes()


def test_fetch_model_checksum_mismatch_leaves_nothing(served_folder, tmp_path):
    base_url, _ = served_folder
    started = time.monotonic()
    with pytest.raises(ModelDownloadError) as caught:
        fetch_model("ferplus", cache_dir=tmp_path, urls=[f"{base_url}/emotion-ferplus-8.onnx"])
    assert "does not match" in str(caught.value)
    assert FERPLUS_SHA256 in str(caught.value)
    assert list(tmp_path.iterdir()) == []
    assert time.monotonic() - started < 30


def test_fetch_model_offline_fails_fast(closed_port_url, tmp_path):
    started = time.monotonic()
    with pytest.raises(ModelDownloadError) as caught:
        fetch_model("ferplus", cache_dir=tmp_path, urls=[closed_port_url], timeout=2)
    message = str(caught.value)
    assert time.monotonic() - started < 5
    assert closed_port_url in message
    assert f"save it as {tmp_path / 'emotion-ferplus-8.onnx'}" in message
    assert "--trunk PATH" in message
    assert list(tmp_path.iterdir()) == []


def test_fetch_model_stalled_server_times_out(tmp_path):
    # The socket accepts connections into its backlog but never sends a response.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/emotion-ferplus-8.onnx"
        started = time.monotonic()
        with pytest.raises(ModelDownloadError, match="timed out"):
            fetch_model("ferplus", cache_dir=tmp_path, urls=[url], timeout=1)
    assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []


def test_fetch_model_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="model name='vgg' is unknown"):
        fetch_model("vgg", cache_dir=tmp_path)


def test_cached_model_path_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_FAIRNESS_CACHE", str(tmp_path))
    assert cached_model_path("ferplus") == tmp_path / "models" / "emotion-ferplus-8.onnx"


def test_cli_fetch_model_mismatch(served_folder, tmp_path, capsys):
    base_url, _ = served_folder
    status = cli.main(["fetch-model", "ferplus", "--cache-dir", str(tmp_path),
                       "--url", f"{base_url}/emotion-ferplus-8.onnx", "--timeout", "5"])
    captured = capsys.readouterr()
    assert status == 2
    assert "fer-fairness fetch-model: error: could not download" in captured.err
    assert "--trunk PATH" in captured.err
    assert list(tmp_path.iterdir()) == []


def test_cli_fetch_model_success(served_folder, tmp_path, capsys, monkeypatch):
    base_url, _ = served_folder
    source = _replica_source(served_folder, f"{base_url}/replica.onnx")
    monkeypatch.setitem(fetch.MODELS, "ferplus", source)
    status = cli.main(["fetch-model", "--cache-dir", str(tmp_path)])
    # Keras's get_file prints its progress bar first; the path is the last line.
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert status == 0
    assert last_line == str(tmp_path / "replica.onnx")
    assert (tmp_path / "replica.onnx").is_file()
