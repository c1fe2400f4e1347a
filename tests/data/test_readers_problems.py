"""Tests that the readers report every bad input with its file and line, all in one error."""

from __future__ import annotations

from pathlib import Path

import pytest

from fer_fairness.data.readers import DataValidationError, read_manifest, read_rafdb

HEADER = b"image,subject_id,emotion,gender,age,ethnicity"
GOOD_ROW = b"images/a.jpg,s1,happy,f,30,white"

# (case, line 3 of labels.csv, expected message after "labels.csv:3: ")
BAD_MANIFEST_ROWS = [
    ("missing image", b"photos/missing.jpg,s2,sad,m,30,white",
     r"image not found: .*photos/missing.jpg"),
    ("duplicate", GOOD_ROW, "duplicate entry: image images/a.jpg is also listed on line 2"),
    ("duplicate spelled differently", b"./images//a.jpg,s1,sad,f,30,white",
     "duplicate entry: image images/a.jpg is also listed on line 2"),
    ("unknown emotion", b"images/b.jpg,s2,contempt,m,30,white",
     "column emotion: unknown value 'contempt'; expected one of neutral, happiness"),
    ("emotion index out of range", b"images/b.jpg,s2,7,m,30,white",
     "column emotion: index 7 is out of range; expected 0 to 6"),
    ("emotion missing", b"images/b.jpg,s2,,m,30,white", "column emotion: value is missing"),
    ("unknown gender", b"images/b.jpg,s2,sad,x,30,white", "column gender: unknown value 'x'"),
    ("non-UTF-8 line", b"images/b.jpg,s2,sad,m,30,r\xe9union",
     "invalid UTF-8 byte 0xe9 at column 27; save the file as UTF-8"),
    ("missing field", b"images/b.jpg,s2,sad,m,30",
     r"expected 6 fields \(image,subject_id,emotion,gender,age,ethnicity\), found 5"),
    ("extra field", b"images/b.jpg,s2,sad,m,30,white,x", "expected 6 fields .*found 7"),
    ("absolute path", b"/etc/hosts,s2,sad,m,30,white", "image path '/etc/hosts' is absolute"),
    ("absolute Windows path", b"C:\\faces\\b.jpg,s2,sad,m,30,white",
     r"image path 'C:\\\\faces\\\\b.jpg' is absolute"),
    ("parent folder", b"images/../../b.jpg,s2,sad,m,30,white",
     "image path 'images/../../b.jpg' contains '..'"),
    ("symlink escaping", b"images/link.jpg,s2,sad,m,30,white",
     r"image .*link.jpg resolves to .*outside.jpg, outside the data folder"),
    ("empty image", b",s2,sad,m,30,white", "image is empty"),
    ("age not a number", b"images/b.jpg,s2,sad,m,thirty,white",
     "column age: 'thirty' is not an age in years"),
    ("age negative", b"images/b.jpg,s2,sad,m,-3,white", "column age: '-3' is not an age"),
    ("age too high", b"images/b.jpg,s2,sad,m,200,white", "column age: '200' is not an age"),
    ("unknown ethnicity", b"images/b.jpg,s2,sad,m,30,martian",
     "column ethnicity: unknown value 'martian'"),
]


def _write_manifest(folder: Path, lines: list[bytes], jpeg_writer) -> Path:
    for name in ("a.jpg", "b.jpg"):
        jpeg_writer(folder / "images" / name)
    (folder / "labels.csv").write_bytes(b"\n".join(lines) + b"\n")
    return folder


@pytest.mark.parametrize(("row", "message"), [case[1:] for case in BAD_MANIFEST_ROWS],
                         ids=[case[0] for case in BAD_MANIFEST_ROWS])
def test_read_manifest_bad_row(tmp_path, jpeg_writer, row, message) -> None:
    folder = _write_manifest(tmp_path / "faces", [HEADER, GOOD_ROW, row], jpeg_writer)
    jpeg_writer(tmp_path / "outside.jpg")
    (folder / "images" / "link.jpg").symlink_to(tmp_path / "outside.jpg")

    with pytest.raises(DataValidationError, match=f"labels.csv:3: {message}"):
        read_manifest(folder)


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [(b"image,emotion,split", b"images/b.jpg,sad,holdout", "split 'holdout' is invalid"),
     (b"image,emotion,age,age_group", b"images/b.jpg,sad,30,4-19",
      "age 30 is in group 20-39 but age_group is 4-19"),
     (b"image,emotion,age_group", b"images/b.jpg,sad,5", "column age_group: index 5 is out"),
     (b"image,emotion,race", b"images/b.jpg,sad,3", "column race: unknown value '3'"),
     (b"image,emotion,emotion", b"images/b.jpg,sad,sad", "column 'emotion' appears 2 times")],
)
def test_read_manifest_bad_column_value(tmp_path, jpeg_writer, header, row, message) -> None:
    folder = _write_manifest(tmp_path, [header, row], jpeg_writer)
    line = 1 if b"emotion,emotion" in header else 2

    with pytest.raises(DataValidationError, match=f"labels.csv:{line}: {message}"):
        read_manifest(folder)


def test_read_manifest_problems_reported_together(tmp_path, jpeg_writer) -> None:
    lines = [HEADER, GOOD_ROW] + [row for _, row, _ in BAD_MANIFEST_ROWS]
    folder = _write_manifest(tmp_path / "faces", lines, jpeg_writer)
    jpeg_writer(tmp_path / "outside.jpg")
    (folder / "images" / "link.jpg").symlink_to(tmp_path / "outside.jpg")

    with pytest.raises(DataValidationError) as caught:
        read_manifest(folder)

    reported_lines = [int(problem.split("labels.csv:")[1].split(":")[0])
                      for problem in caught.value.problems]
    assert reported_lines == list(range(3, 3 + len(BAD_MANIFEST_ROWS)))


def test_data_validation_error_message_capped(tmp_path, jpeg_writer) -> None:
    rows = [f"images/b.jpg,s{i},sad,m,30,martian".encode() for i in range(60)]
    folder = _write_manifest(tmp_path, [HEADER, *rows], jpeg_writer)

    with pytest.raises(DataValidationError, match=r"labels.csv:51: .*\n  and 10 more$") as caught:
        read_manifest(folder)

    assert len(caught.value.problems) == 60
    assert "labels.csv:61:" in caught.value.problems[-1]


def test_data_validation_error_is_value_error(tmp_path, jpeg_writer) -> None:
    folder = _write_manifest(tmp_path, [HEADER, b"images/b.jpg,s1,contempt,m,30,white"],
                             jpeg_writer)

    with pytest.raises(ValueError, match="1 problem"):
        read_manifest(folder)


def test_read_rafdb_symlink_escaping(rafdb_root: Path, jpeg_writer) -> None:
    outside = jpeg_writer(rafdb_root.parent / "outside.jpg")
    image = rafdb_root / "basic" / "Image" / "aligned" / "train_00002_aligned.jpg"
    image.unlink()
    image.symlink_to(outside)

    with pytest.raises(DataValidationError, match=r"label.txt:2: image .* resolves to "
                                                  r".*outside.jpg, outside the data folder"):
        read_rafdb(rafdb_root)


def test_read_rafdb_non_utf8_line(rafdb_root: Path) -> None:
    label_path = rafdb_root / "basic" / "EmoLabel" / "list_patition_label.txt"
    label_path.write_bytes(label_path.read_bytes() + b"test_0003.jpg \xff\n")

    with pytest.raises(DataValidationError, match="label.txt:7: invalid UTF-8 byte 0xff"):
        read_rafdb(rafdb_root)
