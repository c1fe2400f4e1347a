"""The one record type that every data reader yields."""

from __future__ import annotations

import dataclasses

from fer_fairness.labels import UNKNOWN

SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class FaceRecord:
    """One labelled face image.

    Attributes:
        image_path: Absolute path of the image file.
        example_id: Stable id, unique within the data set (the image path relative to the data
            folder).
        emotion: Index into ``labels.EMOTIONS``.
        gender: Index into ``labels.GENDERS`` or ``UNKNOWN``.
        age_group: Index into ``labels.AGE_GROUPS`` or ``UNKNOWN``.
        race: Index into ``labels.RACES`` or ``UNKNOWN``.
        subject_id: Identity of the person, or "" when unknown.
        split: One of ``SPLITS``, or "" when the source assigns none.
        source: Annotation file and line the record came from, for error messages.
    """

    image_path: str
    example_id: str
    emotion: int
    gender: int = UNKNOWN
    age_group: int = UNKNOWN
    race: int = UNKNOWN
    subject_id: str = ""
    split: str = ""
    source: str = ""

    def attribute(self, name: str) -> int:
        """Return the label of one head by its output name (emotion, gender, age or race)."""
        field = "age_group" if name == "age" else name
        return getattr(self, field)
