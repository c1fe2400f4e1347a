"""The faces the synthetic data set contains: subjects, splits, labels and planted gaps.

``plan_images`` decides everything except the pixels, so the data set's labels, counts and
planted effects are known before any face is drawn. Every random choice comes from its own
stream, ``numpy.random.default_rng([seed, stream, index])``, so one subject's or image's draws
never depend on how many others there are before it.

Subjects are assigned to train, validation and test first. Each split then gets attribute
values by quota: the largest-remainder share of its subjects for every group of every
attribute, after the weights of ``underrepresented`` gaps on that split are applied. The
attributes are shuffled independently, so the groups of different attributes are close to
independent. Emotions cycle through ``labels.EMOTIONS`` along each split's subjects, so every
split contains each emotion to within one image and a subject with up to 7 images shows each
emotion at most once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from fer_fairness import labels
from fer_fairness.data.records import SPLITS
from fer_fairness.data.synthetic_config import PlantedGap, SyntheticConfig
from fer_fairness.data.synthetic_faces import FaceIdentity, Pose, sample_identity, sample_pose

# Expressions are drawn at an intensity from this range, times the scale of any
# harder_expressions gap of the subject's group.
INTENSITY_RANGE = (0.7, 1.0)

# Random streams, the second word of every seed.
_SPLIT_STREAM = 1
_ATTRIBUTE_STREAM = 2
_IDENTITY_STREAM = 3
_EMOTION_STREAM = 4
_IMAGE_STREAM = 5
_NOISE_STREAM = 6


@dataclasses.dataclass(frozen=True)
class Subject:
    """One synthetic person.

    Attributes:
        subject_id: ``s`` and the zero-padded subject number.
        split: The split of all of this subject's images.
        identity: The look, including gender, age group and race indices.
        image_count: Number of images of this subject.
    """

    subject_id: str
    split: str
    identity: FaceIdentity
    image_count: int

    def attribute(self, name: str) -> int:
        """Return the subject's ``gender``, ``age`` or ``race`` index."""
        field = "age_group" if name == "age" else name
        return getattr(self.identity, field)


@dataclasses.dataclass(frozen=True)
class PlannedImage:
    """One image of the data set, before drawing.

    Attributes:
        index: Position in the data set, from 0.
        image: Path relative to the data set folder.
        subject: The person shown.
        drawn_emotion: Index of the expression drawn.
        emotion: Index of the emotion label; differs from ``drawn_emotion`` where a
            ``label_noise`` gap replaced it.
        intensity: Factor on the expression's change from neutral.
        pose: Pose, lighting and noise.
    """

    index: int
    image: str
    subject: Subject
    drawn_emotion: int
    emotion: int
    intensity: float
    pose: Pose


def gap_applies(gap: PlantedGap, subject: Subject) -> bool:
    """Return whether ``gap`` targets ``subject``'s group in ``subject``'s split."""
    return subject.split in gap.splits and subject.attribute(gap.attribute) == gap.group_index


def group_weights(config: SyntheticConfig, attribute: str, split: str) -> np.ndarray:
    """Return an attribute's group weights in ``split`` after ``underrepresented`` gaps."""
    weights = np.array(config.attribute_weights(attribute), dtype=np.float64)
    for gap in config.planted_gaps:
        if gap.kind == "underrepresented" and gap.attribute == attribute and split in gap.splits:
            weights[gap.group_index] *= gap.strength
    return weights / weights.sum()


def plan_images(config: SyntheticConfig) -> list[PlannedImage]:
    """Decide every image's subject, split, labels, intensity and pose.

    Returns:
        The images in data set order: by subject number, then by image of the subject.
    """
    subjects = _plan_subjects(config)
    emotions = _plan_emotions(config, subjects)
    images: list[PlannedImage] = []
    for subject, subject_emotions in zip(subjects, emotions):
        scale = math.prod(gap.strength for gap in config.planted_gaps
                          if gap.kind == "harder_expressions" and gap_applies(gap, subject))
        for emotion in subject_emotions:
            index = len(images)
            rng = np.random.default_rng([config.seed, _IMAGE_STREAM, index])
            intensity = float(rng.uniform(*INTENSITY_RANGE)) * scale
            images.append(PlannedImage(
                index=index, image=f"images/{index:06d}.png", subject=subject,
                drawn_emotion=emotion, emotion=emotion, intensity=intensity,
                pose=sample_pose(rng),
            ))
    return _apply_label_noise(config, images)


def _plan_subjects(config: SyntheticConfig) -> list[Subject]:
    total = config.subject_count
    rng = np.random.default_rng([config.seed, _SPLIT_STREAM])
    order = rng.permutation(total)
    counts = config.split_subject_counts()
    split_of = np.empty(total, dtype=object)
    start = 0
    for split in SPLITS:
        split_of[order[start:start + counts[split]]] = split
        start += counts[split]
    # The first n_images % total subjects in the shuffled order get one image more.
    image_counts = np.full(total, config.n_images // total)
    image_counts[order[:config.n_images % total]] += 1

    attributes = {name: np.empty(total, dtype=np.int64) for name in labels.ATTRIBUTES}
    for split_index, split in enumerate(SPLITS):
        members = np.flatnonzero(split_of == split)
        for attribute_index, attribute in enumerate(labels.ATTRIBUTES):
            stream = [config.seed, _ATTRIBUTE_STREAM, split_index, attribute_index]
            values = _quota(group_weights(config, attribute, split), len(members),
                            np.random.default_rng(stream))
            attributes[attribute][members] = values

    subjects = []
    width = max(4, len(str(total)))
    for number in range(total):
        identity = sample_identity(
            np.random.default_rng([config.seed, _IDENTITY_STREAM, number]),
            gender=int(attributes["gender"][number]), age_group=int(attributes["age"][number]),
            race=int(attributes["race"][number]),
        )
        subjects.append(Subject(subject_id=f"s{number:0{width}d}", split=str(split_of[number]),
                                identity=identity, image_count=int(image_counts[number])))
    return subjects


def _quota(shares: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``count`` group indices in shuffled order, each group at its share of ``count``.

    Seats left after the whole parts go to the largest remainders; ties are broken at random.
    """
    exact = shares * count
    seats = np.floor(exact).astype(np.int64)
    remainders = exact - seats
    tie_breaks = rng.random(len(shares))
    ranked = sorted(range(len(shares)), key=lambda group: (-remainders[group], tie_breaks[group]))
    for group in ranked[:count - int(seats.sum())]:
        seats[group] += 1
    return rng.permutation(np.repeat(np.arange(len(shares)), seats))


def _plan_emotions(config: SyntheticConfig, subjects: Sequence[Subject]) -> list[list[int]]:
    """Cycle through the emotions along each split's subjects, from a random start per split."""
    rng = np.random.default_rng([config.seed, _EMOTION_STREAM])
    next_emotion = {split: int(rng.integers(len(labels.EMOTIONS))) for split in SPLITS}
    emotions = []
    for subject in subjects:
        start = next_emotion[subject.split]
        emotions.append([(start + offset) % len(labels.EMOTIONS)
                         for offset in range(subject.image_count)])
        next_emotion[subject.split] = start + subject.image_count
    return emotions


def _apply_label_noise(
    config: SyntheticConfig, images: list[PlannedImage]
) -> list[PlannedImage]:
    """Relabel ``round(strength * n)`` of the n images in each label_noise gap's group."""
    for gap_index, gap in enumerate(config.planted_gaps):
        if gap.kind != "label_noise":
            continue
        rng = np.random.default_rng([config.seed, _NOISE_STREAM, gap_index])
        targets = [image.index for image in images if gap_applies(gap, image.subject)]
        chosen = rng.choice(targets, size=round(gap.strength * len(targets)), replace=False)
        for index in sorted(int(value) for value in chosen):
            current = images[index].emotion
            others = [emotion for emotion in range(len(labels.EMOTIONS)) if emotion != current]
            images[index] = dataclasses.replace(images[index],
                                                emotion=int(others[rng.integers(len(others))]))
    return images
