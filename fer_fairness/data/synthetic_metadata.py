"""The ``metadata.json`` of a synthetic data set: counts and the measured planted effects."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from fer_fairness import labels
from fer_fairness.data.records import SPLITS
from fer_fairness.data.synthetic_config import PlantedGap, SyntheticConfig
from fer_fairness.data.synthetic_drawing import draw_face
from fer_fairness.data.synthetic_plan import PlannedImage, gap_applies, group_weights

DESCRIPTION = (
    "Procedurally drawn grayscale faces made by fer-fairness. Results on these faces say "
    "nothing about real faces."
)
# harder_expressions gaps are measured on at most this many images of each side.
MAX_MEASURED_IMAGES = 200
_NEUTRAL = labels.EMOTIONS.index("neutral")


def build_metadata(config: SyntheticConfig, images: Sequence[PlannedImage]) -> dict[str, Any]:
    """Return the metadata of the data set made of ``images``, as JSON-ready values.

    The keys are ``description``, ``config``, ``images`` and ``subjects`` (counts per split),
    ``emotions`` (label counts per split), ``groups`` (image counts per attribute, split and
    group) and ``planted_gaps``: each gap's settings with a ``measured`` entry (see
    ``measure_gap``).
    """
    by_split = {split: [image for image in images if image.subject.split == split]
                for split in SPLITS}
    return {
        "description": DESCRIPTION,
        "config": config.to_dict(),
        "images": {split: len(members) for split, members in by_split.items()},
        "subjects": {split: len({image.subject.subject_id for image in members})
                     for split, members in by_split.items()},
        "emotions": {split: _counts((image.emotion for image in members), labels.EMOTIONS)
                     for split, members in by_split.items()},
        "groups": {attribute: {split: _counts((image.subject.attribute(attribute)
                                               for image in members), vocabulary)
                               for split, members in by_split.items()}
                   for attribute, vocabulary in labels.ATTRIBUTES.items()},
        "planted_gaps": [{**_describe(gap), "measured": measure_gap(config, gap, images)}
                         for gap in config.planted_gaps],
    }


def measure_gap(
    config: SyntheticConfig, gap: PlantedGap, images: Sequence[PlannedImage]
) -> dict[str, Any]:
    """Measure the effect that ``gap`` had on ``images``.

    - underrepresented: per split of the gap, ``expected_share`` (the group's weight after
      the gap), ``share`` (its realised share of the split's images) and ``images``.
    - label_noise: ``images`` of the group in the gap's splits, ``relabelled`` (labels that
      differ from the drawn expression) and ``rate``.
    - harder_expressions: ``mean_intensity`` and ``expression_pixel_change`` of the non-neutral
      images of the group and of the other faces (``group``, ``others``) in the gap's splits.
      The pixel change is the mean absolute gray-level difference (0..255) between a face and
      the same subject's neutral face, both drawn frontal without lighting changes or noise,
      over at most ``MAX_MEASURED_IMAGES`` images per side. A side without images gets None.
    """
    if gap.kind == "underrepresented":
        return _measure_share(config, gap, images)
    if gap.kind == "label_noise":
        in_group = [image for image in images if gap_applies(gap, image.subject)]
        relabelled = sum(image.emotion != image.drawn_emotion for image in in_group)
        return {"images": len(in_group), "relabelled": relabelled,
                "rate": relabelled / len(in_group) if in_group else None}
    return _measure_expressions(config, gap, images)


def expression_pixel_change(image: PlannedImage, size: int) -> float:
    """Return the mean absolute gray-level difference of ``image`` from its neutral face.

    Both faces are drawn frontal, in even light and without noise, so only the expression
    differs.
    """
    identity = image.subject.identity
    expressive = draw_face(identity, image.drawn_emotion, intensity=image.intensity, size=size)
    neutral = draw_face(identity, _NEUTRAL, size=size)
    return float(np.abs(expressive.astype(np.float64) - neutral).mean())


def _measure_share(
    config: SyntheticConfig, gap: PlantedGap, images: Sequence[PlannedImage]
) -> dict[str, Any]:
    measured: dict[str, Any] = {"expected_share": {}, "share": {}, "images": {}}
    for split in gap.splits:
        in_split = [image for image in images if image.subject.split == split]
        in_group = sum(gap_applies(gap, image.subject) for image in in_split)
        weights = group_weights(config, gap.attribute, split)
        measured["expected_share"][split] = float(weights[gap.group_index])
        measured["share"][split] = in_group / len(in_split) if in_split else None
        measured["images"][split] = in_group
    return measured


def _measure_expressions(
    config: SyntheticConfig, gap: PlantedGap, images: Sequence[PlannedImage]
) -> dict[str, Any]:
    measured: dict[str, Any] = {"mean_intensity": {}, "expression_pixel_change": {}}
    for side, in_group in (("group", True), ("others", False)):
        selected = [image for image in images
                    if image.subject.split in gap.splits
                    and gap_applies(gap, image.subject) == in_group
                    and image.drawn_emotion != _NEUTRAL]
        intensities = [image.intensity for image in selected]
        changes = [expression_pixel_change(image, config.image_size)
                   for image in selected[:MAX_MEASURED_IMAGES]]
        measured["mean_intensity"][side] = float(np.mean(intensities)) if selected else None
        measured["expression_pixel_change"][side] = float(np.mean(changes)) if changes else None
    return measured


def _counts(values: Iterable[int], vocabulary: Sequence[str]) -> dict[str, int]:
    counter = Counter(values)
    return {name: counter.get(index, 0) for index, name in enumerate(vocabulary)}


def _describe(gap: PlantedGap) -> dict[str, Any]:
    return {"kind": gap.kind, "attribute": gap.attribute, "group": gap.group,
            "strength": gap.strength, "splits": list(gap.splits)}
