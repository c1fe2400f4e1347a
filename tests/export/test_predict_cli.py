"""``fer-fairness predict`` and ``fer-fairness export`` on the London faces."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import tensorflow as tf

from fer_fairness import cli
from fer_fairness.labels import AGE_GROUPS, EMOTIONS, GENDERS
from fer_fairness.predict import collect_image_paths, predict_images
from fer_fairness.predictors import load_predictor

HEADS = ("emotion", "gender", "age", "race")


@pytest.fixture(scope="module")
def unreadable_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("broken") / "not_an_image.jpg"
    path.write_bytes(b"this is not a JPEG file")
    return path


@pytest.fixture(scope="module")
def model_paths(exported, run_dir):
    return {"run": run_dir, "savedmodel": exported["savedmodel"], "onnx": exported["onnx"]}


def _predict(capsys, *args):
    status = cli.main(["predict", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_predict_table_reports_unreadable_file(capsys, model_paths, london_paths,
                                               unreadable_file):
    status, out, err = _predict(capsys, model_paths["run"], *london_paths[:3], unreadable_file,
                                *london_paths[3:])
    lines = out.strip().splitlines()
    assert status == 1
    assert lines[0].split() == ["path", "face", *HEADS]
    assert len(lines) == 1 + len(london_paths)
    for path, line in zip(london_paths, lines[1:]):
        assert line.startswith(str(path))
        assert line.split()[2] in EMOTIONS
    assert f"cannot read {unreadable_file}" in err
    assert "1 of 9 files failed" in err


def test_predict_missing_file_is_reported(capsys, model_paths, london_paths, tmp_path):
    missing = tmp_path / "missing.png"
    status, out, err = _predict(capsys, model_paths["onnx"], london_paths[0], missing)
    assert status == 1
    assert str(london_paths[0]) in out
    assert f"cannot read {missing}: No such file or directory" in err


def test_predict_json_from_saved_model(capsys, model_paths, london_paths):
    status, out, _ = _predict(capsys, model_paths["savedmodel"], *london_paths,
                              "--format", "json", "--batch-size", "3")
    records = json.loads(out)
    assert status == 0
    assert [record["path"] for record in records] == [str(path) for path in london_paths]
    for record in records:
        assert record["face"] is None
        assert record["box"] is None
        assert record["emotion"]["label"] in EMOTIONS
        assert record["gender"]["label"] in GENDERS
        assert record["age"]["label"] in AGE_GROUPS
        assert sum(record["emotion"]["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert record["emotion"]["probability"] == max(record["emotion"]["probabilities"].values())


def test_predict_csv_from_onnx(capsys, model_paths, london_paths):
    status, out, _ = _predict(capsys, model_paths["onnx"], *london_paths, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert status == 0
    assert len(rows) == len(london_paths)
    assert {"emotion", "emotion_probability", "gender", "age", "race"} <= set(rows[0])
    assert all(row["emotion"] in EMOTIONS for row in rows)
    assert all(0 < float(row["emotion_probability"]) <= 1 for row in rows)


def test_predict_backends_agree(model_paths, london_paths):
    results = {
        name: predict_images(load_predictor(path), london_paths, batch_size=5)
        for name, path in model_paths.items()
    }
    reference = results["run"].predictions
    for name in ("savedmodel", "onnx"):
        for expected, actual in zip(reference, results[name].predictions):
            for head in HEADS:
                np.testing.assert_allclose(
                    actual.probabilities[head], expected.probabilities[head], atol=1e-4,
                    err_msg=f"{name} {head}",
                )


def test_predict_matches_serving_bytes(model_paths, london_paths):
    result = predict_images(load_predictor(model_paths["run"]), london_paths)
    serving = tf.saved_model.load(str(model_paths["savedmodel"])).signatures["serving_bytes"]
    expected = serving(images=tf.constant([path.read_bytes() for path in london_paths]))
    actual = np.stack([prediction.probabilities["emotion"] for prediction in result.predictions])
    np.testing.assert_allclose(actual, expected["emotion"].numpy(), atol=1e-5)


def test_predict_detect_faces_one_row_per_face(capsys, model_paths, london_paths):
    status, out, _ = _predict(capsys, model_paths["onnx"], *london_paths[:3],
                              "--format", "json", "--detect-faces")
    records = json.loads(out)
    assert status == 0
    assert [record["path"] for record in records] == [str(path) for path in london_paths[:3]]
    for record in records:
        assert record["face"] == 0
        assert record["box"]["width"] >= 50
        assert record["box"]["x"] + record["box"]["width"] <= 100


def test_predict_detect_faces_reports_image_without_face(capsys, model_paths, london_paths,
                                                         tmp_path):
    blank = tmp_path / "blank.png"
    blank.write_bytes(tf.io.encode_png(np.full((80, 80, 3), 200, np.uint8)).numpy())
    status, out, err = _predict(capsys, model_paths["onnx"], london_paths[0], blank,
                                "--format", "csv", "--detect-faces")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert status == 0
    assert [row["path"] for row in rows] == [str(london_paths[0])]
    assert f"no face found in {blank}" in err


def test_collect_image_paths_searches_folders(tmp_path, london_paths):
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "face.JPG").symlink_to(london_paths[0])
    (tmp_path / "face.png").symlink_to(london_paths[1])
    (tmp_path / "notes.txt").write_text("not an image")
    expected = [tmp_path / "face.png", tmp_path / "nested" / "face.JPG"]
    assert collect_image_paths([tmp_path]) == expected


def test_predict_shows_progress_bar_for_many_files(capsys, monkeypatch, model_paths,
                                                   london_paths):
    monkeypatch.setattr(cli, "PREDICT_PROGRESS_MIN_FILES", 2)
    status, _, err = _predict(capsys, model_paths["onnx"], *london_paths[:3])
    assert status == 0
    assert "3/3" in err


def test_predict_rejects_invalid_batch_size(capsys, model_paths, london_paths):
    status, _, err = _predict(capsys, model_paths["onnx"], london_paths[0], "--batch-size", "0")
    assert status == 2
    assert "--batch-size=0 is invalid" in err


def test_predict_rejects_unknown_model(capsys, tmp_path, london_paths):
    status, _, err = _predict(capsys, tmp_path, london_paths[0])
    assert status == 2
    assert "no model found" in err


def test_export_cli_writes_onnx_to_output(capsys, run_dir, tmp_path):
    status = cli.main(["export", str(run_dir), "--format", "onnx", "--output", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx"]
    assert f"onnx: {tmp_path / 'model.onnx'}" in out


def test_export_cli_rejects_folder_without_model(capsys, tmp_path):
    status = cli.main(["export", str(tmp_path)])
    assert status == 2
    assert "model.keras not found" in capsys.readouterr().err


def test_predict_keras_file_matches_run_folder(run_dir, london_paths):
    from_folder = predict_images(load_predictor(run_dir), london_paths, batch_size=5)
    from_file = predict_images(load_predictor(run_dir / "model.keras"), london_paths, batch_size=5)
    for expected, actual in zip(from_folder.predictions, from_file.predictions, strict=True):
        for head in HEADS:
            np.testing.assert_allclose(actual.probabilities[head], expected.probabilities[head],
                                       atol=1e-6, err_msg=head)


def test_predict_truncated_keras_file_named(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04truncated")
    with pytest.raises(ValueError, match="is not a valid .keras file"):
        load_predictor(path)
