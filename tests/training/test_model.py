"""Tests of the multi-task model and the two training phases on the FER+ replica trunk."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from fer_fairness import callbacks
from fer_fairness import model as model_lib
from fer_fairness import training
from fer_fairness.convert import convert_onnx
from fer_fairness.data.pipeline import make_dataset

HEADS = ("emotion", "gender", "age")
LOSS_WEIGHTS = {"emotion": 1.0, "gender": 0.5, "age": 0.5}


@pytest.fixture()
def trunk(ferplus_replica_path):
    return convert_onnx(ferplus_replica_path)


def _assemble(trunk, *, trunk_inference):
    extractor = model_lib.feature_extractor(trunk)
    heads = model_lib.build_heads(trunk, heads=HEADS, seed=0)
    return model_lib.assemble(extractor, heads, trunk_inference=trunk_inference)


def _random_images(count, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, 64, 64, 1)).astype(np.float32)


def test_model_emotion_head_starts_as_trunk_classifier(trunk):
    model = _assemble(trunk, trunk_inference=True)
    images = _random_images(8)
    trunk_logits = trunk.predict(images, verbose=0)
    emotion_logits = model.predict(images, verbose=0)["emotion"]
    # FER+ logits 0..6 are the canonical emotions in order; logit 7 (contempt) is dropped.
    np.testing.assert_allclose(emotion_logits, trunk_logits[:, :7], atol=1e-4)


def test_model_outputs_are_named_heads(trunk):
    model = _assemble(trunk, trunk_inference=True)
    outputs = model.predict(_random_images(2), verbose=0)
    assert sorted(outputs) == ["age", "emotion", "gender"]
    assert outputs["age"].shape == (2, 5)
    assert outputs["gender"].shape == (2, 2)


def test_probe_classifier_rejects_nonlinear_map():
    features = keras.Input((4,), name="x")
    hidden = keras.layers.Identity(name="features")(features)
    logits = keras.layers.Dense(8, activation="relu", name="dense")(hidden)
    logits = keras.layers.Identity(name="logits")(logits)
    trunk = keras.Model(features, logits)
    trunk.get_layer("dense").set_weights([np.eye(4, 8, dtype=np.float32), -np.ones(8, np.float32)])
    with pytest.raises(ValueError, match="is not linear"):
        model_lib.probe_classifier(trunk)


def _weights(layer):
    return [np.array(weight) for weight in layer.get_weights()]


def _changed(before, after):
    return any(not np.array_equal(old, new) for old, new in zip(before, after))


def test_phase_one_keeps_trunk_bitwise(trunk, london_records, tmp_path):
    model = _assemble(trunk, trunk_inference=True)
    data = make_dataset(london_records, heads=HEADS, batch_size=8)
    trunk_before = _weights(model_lib.trunk_of(model))
    heads_before = {head: _weights(model.get_layer(head)) for head in HEADS}
    phase = training.PhaseSettings("heads", epochs=1, learning_rate=1e-2)
    training.run_phase(model, data, data, phase, loss_weights=LOSS_WEIGHTS, callbacks=[])
    trunk_after = _weights(model_lib.trunk_of(model))
    assert not _changed(trunk_before, trunk_after)
    for head in HEADS:
        assert _changed(heads_before[head], _weights(model.get_layer(head))), head


def test_phase_two_changes_trunk_kernels(trunk, london_records):
    model = _assemble(trunk, trunk_inference=False)
    data = make_dataset(london_records, heads=HEADS, batch_size=8)
    kernels = [layer for layer in model_lib.trunk_of(model).layers if layer.get_weights()]
    before = [_weights(layer)[0] for layer in kernels]
    phase = training.PhaseSettings("finetune", epochs=1, learning_rate=1e-4)
    training.run_phase(model, data, data, phase, loss_weights=LOSS_WEIGHTS, callbacks=[])
    for layer, old in zip(kernels, before):
        assert not np.array_equal(old, _weights(layer)[0]), layer.name


def _cross_entropy(logits, label):
    shifted = logits - logits.max()
    return float(np.log(np.exp(shifted).sum()) - shifted[label])


def test_loss_masks_unknown_attribute(trunk):
    model = _assemble(trunk, trunk_inference=True)
    training.set_trunk_trainable(model, False)
    training.compile_model(model, learning_rate=1e-3, loss_weights=LOSS_WEIGHTS)
    images = _random_images(4, seed=3)
    targets = {
        "emotion": np.array([0, 1, 2, 3]),
        "gender": np.array([1, 0, 0, 1]),
        "age": np.array([2, 3, 2, 1]),
    }
    # The second face's gender is unknown: weight 0 removes it from the gender loss.
    weights = {
        "emotion": np.ones(4, np.float32),
        "gender": np.array([1, 0, 1, 1], np.float32),
        "age": np.ones(4, np.float32),
    }
    logits = model.predict(images, verbose=0)
    expected = 0.0
    for head, head_weight in LOSS_WEIGHTS.items():
        per_image = [
            weights[head][i] * _cross_entropy(logits[head][i], targets[head][i]) for i in range(4)
        ]
        expected += head_weight * float(np.mean(per_image))
    result = model.evaluate(images, targets, sample_weight=weights, batch_size=4, verbose=0,
                            return_dict=True)
    assert abs(result["loss"] - expected) < 1e-5


def test_require_log_keys_raises_on_missing_monitor():
    callback = callbacks.RequireLogKeys(["val_emotion_accuracy"])
    with pytest.raises(callbacks.MissingMonitorError, match="val_emotion_accuracy"):
        callback.on_epoch_end(0, {"loss": 1.0})


def test_non_finite_loss_names_phase_epoch_and_step():
    callback = callbacks.StopOnNonFiniteLoss("finetune")
    callback.on_epoch_begin(2)
    callback.on_train_batch_end(0, {"loss": 0.5})
    with pytest.raises(callbacks.NonFiniteLossError, match="phase finetune, epoch 3, step 5"):
        callback.on_train_batch_end(4, {"loss": float("nan")})
