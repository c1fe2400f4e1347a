"""Tests of the FairnessReport callback with a tiny real Keras model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from fer_fairness.fairness.callback import FairnessReport, summary_scalars
from fer_fairness.fairness.metrics import FairnessConfig

N_IMAGES = 32
BATCH_SIZE = 8
HEADS = {"emotion": 7, "gender": 2, "age": 5}
SMALL_GROUPS = FairnessConfig(n_bootstrap=0, min_group_size=4)


@pytest.fixture(scope="module")
def data() -> dict:
    generator = np.random.default_rng(0)
    images = generator.uniform(0, 255, (N_IMAGES, 64, 64, 1)).astype(np.float32)
    labels = {
        "emotion": generator.integers(0, 7, N_IMAGES),
        "gender": np.tile([0, 1, -1, 1], N_IMAGES // 4),
        "age": generator.integers(0, 5, N_IMAGES),
    }
    targets = {name: np.clip(values, 0, None) for name, values in labels.items()}
    return {"images": images, "labels": labels, "targets": targets}


def _model() -> keras.Model:
    # A fixed seed keeps the trained model, and so every fairness score, the same in any
    # test order.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 64, 1), name="image")
    features = keras.layers.Rescaling(1 / 255)(inputs)
    features = keras.layers.AveragePooling2D(16)(features)
    features = keras.layers.Flatten()(features)
    outputs = {name: keras.layers.Dense(size, name=name)(features) for name, size in HEADS.items()}
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="sgd",
        loss={name: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for name in HEADS},
        metrics={name: ["accuracy"] for name in HEADS},
    )
    return model


def _images(data: dict) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(data["images"]).batch(BATCH_SIZE)


def _fit(data: dict, callbacks: list, epochs: int = 2) -> keras.callbacks.History:
    model = _model()
    return model.fit(
        data["images"],
        data["targets"],
        epochs=epochs,
        batch_size=BATCH_SIZE,
        verbose=0,
        callbacks=callbacks,
    )


def _event_tags(folder: Path) -> list[str]:
    tags = []
    for path in folder.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.extend(value.tag for value in event.summary.value)
    return tags


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("run")
    report = FairnessReport(
        _images(data),
        data["labels"],
        run_dir,
        tensorboard_dir=run_dir / "tensorboard",
        config=SMALL_GROUPS,
    )
    history = _fit(data, [report])
    return {"run_dir": run_dir, "history": history, "report": report}


@pytest.mark.parametrize("epoch", [1, 2])
def test_callback_writes_epoch_json(trained, epoch):
    path = trained["run_dir"] / "fairness" / f"epoch_{epoch:03d}.json"
    assert json.loads(path.read_text())["epoch"] == epoch


@pytest.mark.parametrize("key", ["val_emotion_fairness", "val_gender_fairness", "val_age_fairness"])
def test_callback_adds_logs_key(trained, key):
    assert len(trained["history"].history[key]) == 2


def test_callback_json_matches_logs(trained):
    record = json.loads((trained["run_dir"] / "fairness" / "epoch_002.json").read_text())
    logged = trained["history"].history["val_gender_fairness"][-1]
    # An undefined score is null in the JSON file and NaN in the Keras logs.
    expected = None if np.isnan(logged) else pytest.approx(logged)
    assert record["gender_fairness"] == expected


def test_callback_json_counts_groups(trained):
    record = json.loads((trained["run_dir"] / "fairness" / "epoch_001.json").read_text())
    assert record["group_counts"]["gender"] == {"male": 8, "female": 16}


def test_callback_json_has_auxiliary_accuracy(trained):
    record = json.loads((trained["run_dir"] / "fairness" / "epoch_001.json").read_text())
    assert record["gender_accuracy"] is not None
    assert record["race_accuracy"] is None


@pytest.mark.parametrize(
    "tag",
    ["fairness/emotion_fairness", "fairness/gender_fairness", "group_accuracy/gender/female",
     "group_accuracy/age/70+", "emotion_accuracy/neutral", "confusion_matrix"],
)
def test_callback_tensorboard_tag_written(trained, tag):
    assert tag in _event_tags(trained["run_dir"] / "tensorboard")


def test_callback_tensorboard_tags_unique_per_step(trained):
    tags = _event_tags(trained["run_dir"] / "tensorboard")
    # Two evaluations, each writing every tag once.
    assert all(tags.count(tag) == 2 for tag in set(tags))


def test_summary_scalars_skip_undefined(trained):
    scalars = summary_scalars(trained["report"].evaluations[-1])
    assert "fairness/race_fairness" not in scalars


def test_callback_every_n_epochs(data, tmp_path):
    report = FairnessReport(
        _images(data), data["labels"], tmp_path, every_n_epochs=2, config=SMALL_GROUPS
    )
    history = _fit(data, [report])
    assert sorted(p.name for p in (tmp_path / "fairness").iterdir()) == ["epoch_002.json"]
    assert len(history.history["val_emotion_fairness"]) == 1


def test_callback_epoch_offset(data, tmp_path):
    report = FairnessReport(
        _images(data), data["labels"], tmp_path, epoch_offset=3, config=SMALL_GROUPS
    )
    _fit(data, [report], epochs=1)
    assert (tmp_path / "fairness" / "epoch_004.json").is_file()


def test_callback_single_pass_per_evaluation(data, tmp_path):
    batches = []

    def count_batch(images):
        batches.append(1)
        return images

    def counted(batch):
        return tf.ensure_shape(tf.numpy_function(count_batch, [batch], tf.float32), batch.shape)

    images = _images(data).map(counted)
    report = FairnessReport(images, data["labels"], tmp_path, config=SMALL_GROUPS)
    _fit(data, [report])
    assert len(batches) == 2 * N_IMAGES // BATCH_SIZE


def test_callback_resets_on_train_begin(data, tmp_path):
    report = FairnessReport(_images(data), data["labels"], tmp_path, config=SMALL_GROUPS)
    _fit(data, [report], epochs=1)
    _fit(data, [report], epochs=1)
    assert len(report.evaluations) == 1


def test_callback_accepts_logs_none(data, tmp_path):
    report = FairnessReport(_images(data), data["labels"], tmp_path, config=SMALL_GROUPS)
    report.set_model(_model())
    report.on_train_begin(None)
    report.on_epoch_end(0, None)
    assert (tmp_path / "fairness" / "epoch_001.json").is_file()


def test_callback_feeds_early_stopping(data, tmp_path):
    report = FairnessReport(_images(data), data["labels"], tmp_path, config=SMALL_GROUPS)
    stopping = keras.callbacks.EarlyStopping(monitor="val_age_fairness", mode="max", patience=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(data, [report, stopping])
    assert not [w for w in caught if "val_age_fairness" in str(w.message)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"every_n_epochs": 0}, "every_n_epochs=0 is invalid; expected an integer of at least 1"),
        ({"epoch_offset": -1}, "epoch_offset=-1 is invalid; expected an integer of at least 0"),
        ({"images": "images"}, "images is a str; expected a batched tf.data.Dataset of images"),
        (
            {"labels": {"gender": np.zeros(N_IMAGES, int)}},
            "labels must be a mapping with an 'emotion' entry",
        ),
        ({"labels": {"emotion": np.zeros(N_IMAGES, int), "height": np.zeros(N_IMAGES, int)}},
         "labels has unknown entry 'height'"),
        ({"labels": {"emotion": np.zeros(N_IMAGES, int), "age": np.zeros(3, int)}},
         r"labels\['age'\] has shape \(3,\); expected \(32,\)"),
        ({"subject_ids": np.array(["a"])}, r"subject_ids has shape \(1,\); expected \(32,\)"),
        ({"config": None}, "config is a NoneType; expected a FairnessConfig"),
    ],
)
def test_callback_invalid_argument_raises(data, tmp_path, change, message):
    arguments = {"images": _images(data), "labels": data["labels"], "output_dir": tmp_path}
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        FairnessReport(**arguments)


def test_callback_repeated_dataset_raises(data, tmp_path):
    with pytest.raises(ValueError, match=r"images is an infinite dataset; remove \.repeat\(\)"):
        FairnessReport(_images(data).repeat(), data["labels"], tmp_path)


def test_callback_labelled_dataset_raises(data, tmp_path):
    pairs = (data["images"], data["labels"]["emotion"])
    labelled = tf.data.Dataset.from_tensor_slices(pairs).batch(BATCH_SIZE)
    with pytest.raises(ValueError, match="expected image batches only, without labels"):
        FairnessReport(labelled, data["labels"], tmp_path)
