"""Every kind of hostile or broken input, through the command line, in one table.

Each case runs a real ``fer-fairness`` command on a file built here. The test checks the exit
status and an error message that names the file and the problem. It also checks that the run
folder written before is unchanged, that no new run folder appeared, and that a failed
download left nothing in the model cache.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import struct
import threading
import zlib
from pathlib import Path

import onnx
import pytest
from onnx import helper

from fer_fairness import cli

REPO_ROOT = Path(__file__).resolve().parents[1]
MINI_XCEPTION = REPO_ROOT / "models" / "fer_mini_xception.onnx"
HEADER = "image,subject_id,emotion,gender,age\n"
SUBJECTS = tuple(f"{number:03d}" for number in range(1, 11))
# The line number of the first row appended after the valid ones (header plus 20 rows).
BAD_LINE = "labels.csv:22"


def _png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(chunk_type + data)
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", crc)


def _png_header_only(width: int, height: int) -> bytes:
    """Return a PNG whose IHDR declares ``width`` x ``height`` but whose data is a few bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _faces_folder(root: Path, london_faces_dir: Path, rows: list[str] | None = None) -> Path:
    """Copy the London faces of ten people into ``root/faces`` with a valid labels.csv."""
    folder = root / "faces"
    (folder / "images").mkdir(parents=True)
    lines = []
    for subject in SUBJECTS:
        for emotion in ("neutral", "happiness"):
            name = f"{subject}_{emotion}.jpg"
            shutil.copy(london_faces_dir / "images" / name, folder / "images" / name)
            lines.append(f"images/{name},{subject},{emotion},female,30\n")
    (folder / "labels.csv").write_text(HEADER + "".join(lines + (rows or [])), encoding="utf-8")
    return folder


def _bomb(folder: Path) -> str:
    (folder / "images" / "bomb.png").write_bytes(_png_header_only(50_000, 50_000))
    with (folder / "labels.csv").open("a", encoding="utf-8") as file:
        file.write("images/bomb.png,011,neutral,male,30\n")
    return "bomb.png"


def _symlink_outside(folder: Path) -> str:
    outside = folder.parent / "outside.jpg"
    shutil.copy(folder / "images" / "001_neutral.jpg", outside)
    os.symlink(outside, folder / "images" / "link.jpg")
    with (folder / "labels.csv").open("a", encoding="utf-8") as file:
        file.write("images/link.jpg,011,neutral,male,30\n")
    return "link.jpg"


def _append_bytes(folder: Path, data: bytes) -> None:
    with (folder / "labels.csv").open("ab") as file:
        file.write(data)


def _external_data_onnx(folder: Path) -> Path:
    tensor = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[1, 1, 1, 1])
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "../../secret.bin"), ("offset", "0"), ("length", "4")):
        tensor.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "external",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 64, 64])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 64, 64])],
        initializer=[tensor])
    path = folder / "external.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    return path


def _truncated_copy(source: Path, folder: Path, name: str) -> Path:
    path = folder / name
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _case_bomb(root, faces, served_url):
    return ["--data", str(faces)], [_bomb(faces), "50000 x 50000"]


def _case_symlink(root, faces, served_url):
    return ["--data", str(faces)], [_symlink_outside(faces), "outside"]


def _case_non_utf8(root, faces, served_url):
    _append_bytes(faces, b"images/001_neutral.jpg,001,n\xe9utral,female,30\n")
    return ["--data", str(faces)], [BAD_LINE, "UTF-8"]


def _case_missing_field(root, faces, served_url):
    _append_bytes(faces, b"images/001_neutral.jpg,011\n")
    return ["--data", str(faces)], [BAD_LINE]


def _case_extra_field(root, faces, served_url):
    _append_bytes(faces, b"images/001_neutral.jpg,001,neutral,female,30,extra\n")
    return ["--data", str(faces)], [BAD_LINE]


def _case_absolute_path(root, faces, served_url):
    _append_bytes(faces, b"/etc/passwd,011,neutral,female,30\n")
    return ["--data", str(faces)], [BAD_LINE, "/etc/passwd"]


def _case_parent_path(root, faces, served_url):
    _append_bytes(faces, b"../outside.jpg,011,neutral,female,30\n")
    return ["--data", str(faces)], [BAD_LINE, "../outside.jpg"]


def _case_unknown_emotion(root, faces, served_url):
    _append_bytes(faces, b"images/001_neutral.jpg,001,bored,female,30\n")
    return ["--data", str(faces)], [BAD_LINE, "bored"]


def _case_truncated_onnx(root, faces, served_url):
    trunk = _truncated_copy(MINI_XCEPTION, root, "truncated.onnx")
    return ["--data", str(faces), "--trunk", str(trunk)], ["truncated.onnx"]


def _case_garbage_onnx(root, faces, served_url):
    trunk = root / "garbage.onnx"
    trunk.write_bytes(b"this is not a protobuf" * 10)
    return ["--data", str(faces), "--trunk", str(trunk)], ["garbage.onnx"]


def _case_truncated_keras(root, faces, served_url):
    trunk = root / "trunk.keras"
    trunk.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    return ["--data", str(faces), "--trunk", str(trunk)], ["trunk.keras"]


def _case_external_data(root, faces, served_url):
    folder = root / "model"
    folder.mkdir()
    (root / "secret.bin").write_bytes(b"\x00" * 4)
    trunk = _external_data_onnx(folder)
    return ["--data", str(faces), "--trunk", str(trunk)], ["outside the model folder"]


def _case_wrong_checksum(root, faces, served_url):
    cache = root / "cache"
    cache.mkdir()
    arguments = ["fetch-model", "ferplus", "--cache-dir", str(cache), "--timeout", "5",
                 "--url", f"{served_url}/emotion-ferplus-8.onnx"]
    return arguments, ["could not download", "--trunk PATH"]


CASES = {
    "decompression bomb": _case_bomb,
    "symlink outside the data folder": _case_symlink,
    "non-UTF-8 manifest line": _case_non_utf8,
    "manifest line missing fields": _case_missing_field,
    "manifest line with extra field": _case_extra_field,
    "absolute image path": _case_absolute_path,
    "parent folder in image path": _case_parent_path,
    "unknown emotion name": _case_unknown_emotion,
    "truncated ONNX trunk": _case_truncated_onnx,
    "non-ONNX trunk file": _case_garbage_onnx,
    "truncated .keras trunk": _case_truncated_keras,
    "ONNX external data outside its folder": _case_external_data,
    "downloaded model with a wrong checksum": _case_wrong_checksum,
}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class.
        pass


@pytest.fixture(scope="module")
def served_url(tmp_path_factory):
    """A loopback HTTP server whose emotion-ferplus-8.onnx has the wrong content."""
    folder = tmp_path_factory.mktemp("served")
    (folder / "emotion-ferplus-8.onnx").write_bytes(b"not the FER+ model")
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_reported_and_nothing_changes(case, tmp_path, london_faces_dir, served_url,
                                                   capsys):
    faces = _faces_folder(tmp_path, london_faces_dir)
    runs = tmp_path / "runs"
    previous = runs / "previous"
    previous.mkdir(parents=True)
    (previous / "metrics.json").write_text('{"overall_accuracy": 0.5}\n', encoding="utf-8")
    (previous / "model.keras").write_bytes(b"earlier model")
    before = _digest(runs)
    arguments, expected = CASES[case](tmp_path, faces, served_url)
    if arguments[0] == "fetch-model":
        command = arguments
    else:
        command = ["train", "--trunk", str(MINI_XCEPTION), *arguments,
                   "--output", str(runs), "--name", "previous"]
    status = cli.main(command)
    error = capsys.readouterr().err
    assert status == 2, error
    for text in expected:
        assert text in error, f"{text!r} missing from: {error}"
    assert _digest(runs) == before
    assert sorted(path.name for path in runs.iterdir()) == ["previous"]
    # A download that failed its checksum leaves nothing in the cache.
    cache = tmp_path / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []
