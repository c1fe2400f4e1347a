"""Tests of phase 1 on cached trunk features, against the uncached phase 1."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from fer_fairness import feature_cache, training
from fer_fairness import model as model_lib
from fer_fairness.config import DataConfig, RunConfig, TrainingConfig
from fer_fairness.convert import convert_onnx
from fer_fairness.data.balance import make_balanced_dataset
from fer_fairness.data.pipeline import make_dataset

MINI_XCEPTION = Path(__file__).resolve().parents[2] / "models" / "fer_mini_xception.onnx"
HEADS = ("emotion", "gender", "age")
LOSS_WEIGHTS = {"emotion": 1.0, "gender": 0.5, "age": 0.5}
SEED = 3
BATCH_SIZE = 4


@pytest.fixture(scope="module")
def trunk():
    return convert_onnx(MINI_XCEPTION)


@pytest.fixture(scope="module")
def extractor(trunk):
    return model_lib.feature_extractor(trunk)


@pytest.fixture(scope="module")
def ferplus_trunk(ferplus_replica_path):
    """The FER+ replica, whose dropout layers tell inference mode from training mode."""
    return convert_onnx(ferplus_replica_path)


def _heads(trunk):
    return model_lib.build_heads(trunk, heads=HEADS, seed=0)


def _config(sampling: str = "none") -> RunConfig:
    data = DataConfig(sampling=sampling, group_by=("gender",))
    return RunConfig(data=data, training=TrainingConfig(seed=SEED, batch_size=BATCH_SIZE))


def _cached_datasets(extractor, records):
    features = feature_cache.compute_features(extractor, records, batch_size=BATCH_SIZE)
    positions = feature_cache.training_indices(records, _config())
    train = feature_cache.feature_batches(
        features, records, positions, heads=HEADS, batch_size=BATCH_SIZE
    )
    return features, train


def _head_weights(layers):
    return {
        name: [np.array(weight) for weight in layer.get_weights()]
        for name, layer in layers.items()
    }


def test_cached_phase_one_matches_uncached_weights(ferplus_trunk, london_records):
    trunk = ferplus_trunk
    extractor = model_lib.feature_extractor(trunk)
    phase = training.PhaseSettings("heads", epochs=2, learning_rate=1e-2)
    uncached_heads = _heads(trunk)
    uncached = model_lib.assemble(extractor, uncached_heads, trunk_inference=True)
    images = make_dataset(
        london_records, heads=HEADS, batch_size=BATCH_SIZE, shuffle=True, seed=SEED
    )
    training.run_phase(uncached, images, images, phase, loss_weights=LOSS_WEIGHTS, callbacks=[])

    cached_heads = _heads(trunk)
    features, train = _cached_datasets(extractor, london_records)
    heads_only = feature_cache.heads_model(cached_heads, features.shape[1])
    training.run_phase(heads_only, train, train, phase, loss_weights=LOSS_WEIGHTS, callbacks=[])

    expected = _head_weights(uncached_heads)
    actual = _head_weights(cached_heads)
    for head in HEADS:
        for old, new in zip(expected[head], actual[head]):
            np.testing.assert_allclose(new, old, rtol=1e-4, atol=1e-5, err_msg=head)
    initial = _head_weights(_heads(trunk))
    assert not np.allclose(actual["gender"][0], initial["gender"][0])


def test_phase_one_model_keeps_trunk_in_inference(ferplus_trunk):
    extractor = model_lib.feature_extractor(ferplus_trunk)
    heads = _heads(ferplus_trunk)
    images = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 1)).astype(np.float32)
    phase_one = model_lib.assemble(extractor, heads, trunk_inference=True)
    phase_two = model_lib.assemble(extractor, heads, trunk_inference=False)
    inference = np.asarray(phase_one(images, training=False)["emotion"])
    in_fit = np.asarray(phase_one(images, training=True)["emotion"])
    np.testing.assert_array_equal(in_fit, inference)
    # The same layers still follow ``training`` in the phase-2 model (dropout is active).
    assert not np.allclose(np.asarray(phase_two(images, training=True)["emotion"]), inference)


def test_phase_two_after_phase_one_trains_trunk(extractor, trunk):
    heads = _heads(trunk)
    phase_one = model_lib.assemble(extractor, heads, trunk_inference=True)
    assert training.set_trunk_trainable(phase_one, False) == 0
    phase_two = model_lib.assemble(extractor, heads, trunk_inference=False)
    assert training.set_trunk_trainable(phase_two, True) > 0


def test_cached_features_match_trunk_output(extractor, london_records):
    features = feature_cache.compute_features(extractor, london_records[:5], batch_size=2)
    images = np.concatenate(list(make_dataset(
        london_records[:5], heads=(), batch_size=5, with_labels=False
    ).as_numpy_iterator()))
    expected = extractor.predict(images, verbose=0).reshape(5, -1)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)


def test_disk_cache_matches_memory_cache(extractor, london_records, tmp_path):
    memory = feature_cache.compute_features(extractor, london_records, batch_size=BATCH_SIZE)
    disk = feature_cache.compute_features(
        extractor, london_records, batch_size=BATCH_SIZE, path=tmp_path / "train.npy"
    )
    assert isinstance(disk, np.memmap)
    np.testing.assert_array_equal(np.asarray(disk), memory)
    positions = tf.data.Dataset.range(len(london_records))
    from_disk = feature_cache.feature_batches(
        disk, london_records, positions, heads=HEADS, batch_size=BATCH_SIZE
    )
    from_memory = feature_cache.feature_batches(
        memory, london_records, positions, heads=HEADS, batch_size=BATCH_SIZE
    )
    for (disk_rows, _, _), (memory_rows, _, _) in zip(from_disk, from_memory):
        np.testing.assert_array_equal(disk_rows.numpy(), memory_rows.numpy())


def test_balanced_positions_follow_image_order(london_records):
    config = _config(sampling="uniform")
    balanced = make_balanced_dataset(
        london_records,
        heads=HEADS,
        batch_size=BATCH_SIZE,
        group_by=config.data.group_by,
        sampling="uniform",
        seed=SEED,
        with_ids=True,
    )
    position_of = {record.example_id: index for index, record in enumerate(london_records)}
    image_order = [
        position_of[example_id.decode()]
        for batch in balanced.dataset.take(8)
        for example_id in batch[3].numpy()
    ]
    positions = feature_cache.training_indices(london_records, config)
    cached_order = [int(position) for position in positions.take(8 * BATCH_SIZE)]
    assert cached_order == image_order


def test_cached_checkpoint_loads_as_full_model(trunk, extractor, london_records, tmp_path):
    head_layers = _heads(trunk)
    full_model = model_lib.assemble(extractor, head_layers, trunk_inference=True)
    features, train = _cached_datasets(extractor, london_records)
    heads_only = feature_cache.heads_model(head_layers, features.shape[1])
    phase = training.PhaseSettings("heads", epochs=1, learning_rate=1e-2)
    callbacks = training.phase_callbacks(tmp_path, phase, patience=1, checkpoint_model=full_model)
    training.run_phase(heads_only, train, train, phase, loss_weights=LOSS_WEIGHTS,
                       callbacks=callbacks)

    loaded = keras.saving.load_model(tmp_path / "checkpoints" / "heads.keras", compile=False)
    assert model_lib.has_trunk(loaded)
    images = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 1)).astype(np.float32)
    expected = full_model.predict(images, verbose=0)
    actual = loaded.predict(images, verbose=0)
    for head in HEADS:
        np.testing.assert_allclose(actual[head], expected[head], atol=1e-5, err_msg=head)


def test_cache_mode_auto_is_off_with_augmentation():
    config = RunConfig(data=DataConfig(random_augmentation=True))
    assert feature_cache.resolve_cache_mode(config) == "off"


def test_cache_mode_auto_is_memory_without_augmentation():
    assert feature_cache.resolve_cache_mode(RunConfig()) == "memory"
