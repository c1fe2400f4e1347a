"""Tests of group-balanced sampling: probabilities, balance, determinism and the workflow hook."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image

from fer_fairness.config import DataConfig, RunConfig, TrainingConfig
from fer_fairness.data.balance import (
    UNKNOWN_GROUP,
    group_names,
    group_probabilities,
    make_balanced_dataset,
    steps_per_epoch,
)
from fer_fairness.data.prepare import PreparedData
from fer_fairness.data.records import FaceRecord
from fer_fairness.labels import UNKNOWN
from fer_fairness.workflow import _datasets


@pytest.fixture(scope="module")
def face_file(tmp_path_factory) -> str:
    """One real 16x16 JPEG that every record points at, so decoding stays cheap."""
    path = tmp_path_factory.mktemp("faces") / "face.jpg"
    pixels = np.linspace(30, 220, 16 * 16 * 3).reshape(16, 16, 3).astype(np.uint8)
    Image.fromarray(pixels).save(path, "JPEG")
    return str(path)


def _records(face_file: str, sizes: dict[tuple[int, int], int], unknown: int = 0):
    """Records with ``sizes[(gender, age_group)]`` faces each, plus ``unknown`` without gender."""
    records = []
    for (gender, age_group), size in sizes.items():
        for index in range(size):
            records.append(FaceRecord(face_file, f"g{gender}a{age_group}_{index}", emotion=0,
                                      gender=gender, age_group=age_group, split="train"))
    for index in range(unknown):
        records.append(FaceRecord(face_file, f"unknown_{index}", emotion=1, gender=UNKNOWN,
                                  age_group=2, split="train"))
    return records


def _drawn_ids(balanced, batches: int) -> list[str]:
    ids = []
    for batch in balanced.dataset.take(batches):
        ids.extend(value.decode() for value in batch[3].numpy())
    return ids


def test_group_names_join_values_and_mark_unknown():
    values = {"gender": np.array([1, 0, UNKNOWN]), "age": np.array([2, 4, 1])}
    names = group_names(values, ("gender", "age"))
    assert names.tolist() == ["female/20-39", "male/70+", UNKNOWN_GROUP]


def test_group_names_invalid_group_by():
    with pytest.raises(ValueError, match=r"group_by=\['gender', 'gender'\] is invalid"):
        group_names({"gender": np.array([0])}, ("gender", "gender"))


@pytest.mark.parametrize(
    ("sampling", "weights", "expected"),
    [
        ("uniform", None, {"a": 0.5, "b": 0.5}),
        # 1/10 and 1/30, normalised: 0.75 and 0.25.
        ("inverse_frequency", None, {"a": 0.75, "b": 0.25}),
        ("given", {"a": 1.0, "b": 3.0}, {"a": 0.25, "b": 0.75}),
    ],
)
def test_group_probabilities_modes(sampling, weights, expected):
    probabilities = group_probabilities({"a": 10, "b": 30}, sampling=sampling,
                                        group_weights=weights)
    assert probabilities == pytest.approx(expected)


def test_group_probabilities_unknown_keeps_its_share():
    # 20 of 100 records have an unknown attribute: they keep 0.2, the groups share 0.8.
    probabilities = group_probabilities({"a": 10, "b": 70, UNKNOWN_GROUP: 20},
                                        sampling="uniform")
    assert probabilities == pytest.approx({"a": 0.4, "b": 0.4, UNKNOWN_GROUP: 0.2})


@pytest.mark.parametrize(
    ("counts", "sampling", "weights", "message"),
    [
        ({"a": 3}, "none", None, "sampling='none' is invalid"),
        ({UNKNOWN_GROUP: 3}, "uniform", None, "no training record has a known value"),
        ({"a": 3, "b": 1}, "given", {"a": 1.0}, r"missing \['b'\], not in the data \[\]"),
        ({"a": 3}, "given", {"a": 1.0, "c": 2.0}, r"missing \[\], not in the data \['c'\]"),
        ({"a": 3}, "given", {"a": 0.0}, "sum to 0"),
    ],
)
def test_group_probabilities_errors(counts, sampling, weights, message):
    with pytest.raises(ValueError, match=message):
        group_probabilities(counts, sampling=sampling, group_weights=weights)


@pytest.mark.parametrize(("examples", "batch_size", "expected"),
                         [(100, 32, 4), (96, 32, 3), (1, 64, 1)])
def test_steps_per_epoch_rounds_up(examples, batch_size, expected):
    assert steps_per_epoch(examples, batch_size) == expected


def test_balanced_dataset_fifteen_groups_within_15_percent(face_file):
    # 15 age-by-race groups of 2 to 114 faces; uniform sampling draws each about equally often.
    records = [
        FaceRecord(face_file, f"a{age}r{race}_{index}", emotion=0, age_group=age, race=race,
                   split="train")
        for age in range(5) for race in range(3)
        for index in range(2 + 8 * (age * 3 + race))
    ]
    balanced = make_balanced_dataset(records, heads=("emotion",), batch_size=100,
                                     group_by=("age", "race"), sampling="uniform", seed=4,
                                     with_ids=True)
    counts = Counter(example_id.split("_")[0] for example_id in _drawn_ids(balanced, 90))
    expected = 9000 / 15
    assert len(counts) == 15
    assert min(counts.values()) >= 0.85 * expected
    assert max(counts.values()) <= 1.15 * expected


def test_balanced_dataset_inverse_frequency_favours_small_group(face_file):
    records = _records(face_file, {(0, 2): 10, (1, 2): 40})
    balanced = make_balanced_dataset(records, heads=("emotion",), batch_size=50,
                                     group_by=("gender",), sampling="inverse_frequency",
                                     seed=0, with_ids=True)
    drawn = Counter(example_id.split("_")[0] for example_id in _drawn_ids(balanced, 40))
    # Expected shares 0.8 and 0.2 of 2000 draws.
    assert drawn["g0a2"] == pytest.approx(1600, rel=0.1)
    assert drawn["g1a2"] == pytest.approx(400, rel=0.2)


def test_balanced_dataset_unknown_drawn_at_its_share(face_file):
    records = _records(face_file, {(0, 2): 10, (1, 2): 50}, unknown=40)
    balanced = make_balanced_dataset(records, heads=("emotion", "gender"), batch_size=100,
                                     group_by=("gender",), sampling="uniform", seed=0,
                                     with_ids=True)
    drawn = Counter(example_id.split("_")[0] for example_id in _drawn_ids(balanced, 30))
    assert balanced.probabilities[UNKNOWN_GROUP] == pytest.approx(0.4)
    assert drawn["unknown"] == pytest.approx(1200, rel=0.1)


def test_balanced_dataset_masks_unknown_gender(face_file):
    records = _records(face_file, {(0, 2): 2}, unknown=2)
    balanced = make_balanced_dataset(records, heads=("emotion", "gender"), batch_size=64,
                                     group_by=("age",), sampling="uniform", seed=0)
    _, targets, weights = next(iter(balanced.dataset))
    known = targets["emotion"].numpy() == 0
    np.testing.assert_array_equal(weights["gender"].numpy(), known.astype(np.float32))


def test_balanced_dataset_same_seed_same_ids(face_file):
    records = _records(face_file, {(0, 1): 7, (1, 3): 20})
    options = dict(heads=("emotion",), batch_size=16, group_by=("gender", "age"),
                   sampling="uniform", with_ids=True, random_augmentation=True)
    first = _drawn_ids(make_balanced_dataset(records, seed=5, **options), 5)
    second = _drawn_ids(make_balanced_dataset(records, seed=5, **options), 5)
    other = _drawn_ids(make_balanced_dataset(records, seed=6, **options), 5)
    assert first == second
    assert first != other


def test_balanced_dataset_steps_per_epoch(face_file):
    records = _records(face_file, {(0, 1): 7, (1, 3): 20})
    balanced = make_balanced_dataset(records, heads=("emotion",), batch_size=10,
                                     group_by=("gender",), sampling="uniform")
    assert balanced.steps_per_epoch == 3
    assert balanced.counts == {"female": 20, "male": 7}


def test_balanced_dataset_element_shapes(face_file):
    records = _records(face_file, {(0, 1): 3, (1, 3): 3})
    balanced = make_balanced_dataset(records, heads=("emotion", "age"), batch_size=4,
                                     group_by=("gender",), sampling="uniform")
    images, targets, weights = next(iter(balanced.dataset))
    assert images.shape == (4, 64, 64, 1)
    assert sorted(targets) == ["age", "emotion"]
    assert sorted(weights) == ["age", "emotion"]


def _prepared(face_file: str) -> PreparedData:
    train = _records(face_file, {(0, 1): 5, (1, 3): 20})
    validation = [FaceRecord(face_file, f"v{i}", emotion=0, gender=0, split="validation")
                  for i in range(3)]
    return PreparedData({"train": train, "validation": validation, "test": []}, [])


def test_workflow_datasets_sampling_steps_per_epoch(face_file):
    config = RunConfig(data=DataConfig(sampling="uniform", group_by=("gender",)),
                       training=TrainingConfig(batch_size=8))
    datasets = _datasets(_prepared(face_file), config, ("emotion",))
    assert datasets["steps_per_epoch"] == 4
    validation_batches = list(datasets["validation"])
    assert [len(batch[0]) for batch in validation_batches] == [3]


def test_workflow_datasets_without_sampling_finite(face_file):
    config = RunConfig(training=TrainingConfig(batch_size=8))
    datasets = _datasets(_prepared(face_file), config, ("emotion",))
    assert datasets["steps_per_epoch"] is None
    assert sum(len(batch[0]) for batch in datasets["train"]) == 25


def test_make_balanced_dataset_rejects_empty():
    with pytest.raises(ValueError, match="make_balanced_dataset got no records"):
        make_balanced_dataset([], heads=("emotion",), batch_size=4, group_by=("gender",),
                              sampling="uniform")


def test_pipeline_random_augmentation_reproducible(face_file):
    from fer_fairness.data.pipeline import make_dataset

    records = _records(face_file, {(0, 1): 6})
    first = next(iter(make_dataset(records, heads=("emotion",), batch_size=6, seed=1,
                                   random_augmentation=True)))[0].numpy()
    second = next(iter(make_dataset(records, heads=("emotion",), batch_size=6, seed=1,
                                    random_augmentation=True)))[0].numpy()
    plain = next(iter(make_dataset(records, heads=("emotion",), batch_size=6)))[0].numpy()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, plain)
    assert first.min() >= 0.0
    assert first.max() <= 255.0


def test_pipeline_with_ids_follow_shuffle(face_file):
    from fer_fairness.data.pipeline import make_dataset

    records = _records(face_file, {(0, 1): 6})
    dataset = make_dataset(records, heads=("emotion",), batch_size=6, shuffle=True, seed=2,
                           with_ids=True)
    ids = [value.decode() for value in next(iter(dataset))[3].numpy()]
    assert sorted(ids) == sorted(record.example_id for record in records)


def _single_attribute_records(face_file: str, attribute: str, counts: list[int]):
    records = []
    for group, size in enumerate(counts):
        for index in range(size):
            labels = {"gender": group} if attribute == "gender" else {"age_group": group}
            records.append(FaceRecord(face_file, f"{attribute}{group}_{index}", emotion=0,
                                      split="train", **labels))
    return records


SHARE_CASES = [
    ("gender", [900, 100], "uniform", None, [0.5, 0.5]),
    ("gender", [900, 100], "given", {"male": 3.0, "female": 1.0}, [0.75, 0.25]),
    ("age", [500, 300, 150, 40, 10], "uniform", None, [0.2] * 5),
    ("age", [500, 300, 150, 40, 10], "inverse_frequency", None,
     list(np.array([1 / 500, 1 / 300, 1 / 150, 1 / 40, 1 / 10]) /
          sum([1 / 500, 1 / 300, 1 / 150, 1 / 40, 1 / 10]))),
]


@pytest.mark.parametrize(("attribute", "counts", "sampling", "weights", "shares"), SHARE_CASES)
def test_balanced_shares_within_3_points(face_file, attribute, counts, sampling, weights, shares):
    records = _single_attribute_records(face_file, attribute, counts)
    balanced = make_balanced_dataset(records, heads=("emotion",), batch_size=100,
                                     group_by=(attribute,), sampling=sampling,
                                     group_weights=weights, seed=3, with_ids=True)
    drawn = [example_id.split("_")[0] for example_id in _drawn_ids(balanced, 40)]
    assert len(drawn) == 4000
    for group, share in enumerate(shares):
        observed = drawn.count(f"{attribute}{group}") / len(drawn)
        assert abs(observed - share) <= 0.03, (group, observed, share)


def test_balanced_smallest_group_appears_to_the_end(face_file):
    records = _single_attribute_records(face_file, "age", [500, 300, 150, 40, 10])
    balanced = make_balanced_dataset(records, heads=("emotion",), batch_size=100,
                                     group_by=("age",), sampling="uniform", seed=3,
                                     with_ids=True)
    drawn = [example_id.split("_")[0] for example_id in _drawn_ids(balanced, 40)]
    for start in range(0, 4000, 400):
        assert "age4" in drawn[start:start + 400], start


def test_balanced_dataset_fit_two_epochs_ends(face_file):
    import keras

    records = _single_attribute_records(face_file, "gender", [90, 10])
    balanced = make_balanced_dataset(records, heads=("emotion", "gender"), batch_size=16,
                                     group_by=("gender",), sampling="uniform", seed=0)
    inputs = keras.Input((64, 64, 1), name="image")
    features = keras.layers.Flatten()(keras.layers.AveragePooling2D(16)(inputs))
    outputs = {name: keras.layers.Dense(size, name=name)(features)
               for name, size in (("emotion", 7), ("gender", 2))}
    model = keras.Model(inputs, outputs)
    model.compile("sgd", loss={name: keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                               for name in outputs})
    history = model.fit(balanced.dataset, epochs=2, steps_per_epoch=balanced.steps_per_epoch,
                        verbose=0)
    assert len(history.epoch) == 2
    assert balanced.steps_per_epoch == 7
