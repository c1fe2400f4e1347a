"""Settings of the synthetic data set: size, attribute shares and planted bias.

A planted gap makes one group, chosen by one attribute and one of its values, worse off in a
known way:

- ``underrepresented``: the group's sampling weight is multiplied by ``strength`` (0 to 1), so
  the group has fewer subjects and images.
- ``harder_expressions``: every expression of the group's faces is drawn at ``strength`` (0 to
  1) times the normal change from neutral, so 0.3 draws expressions 70% weaker.
- ``label_noise``: a share ``strength`` (0 to 1) of the group's images gets a different
  emotion label, drawn at random from the other six. The image keeps its drawn expression.

Each gap applies to the splits listed in its ``splits`` field, all three by default.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fer_fairness import labels
from fer_fairness.data.records import SPLITS

GapKind = Literal["underrepresented", "harder_expressions", "label_noise"]
GAP_KINDS: tuple[str, ...] = ("underrepresented", "harder_expressions", "label_noise")
# Strength used by ``planted_gap`` when none is given.
DEFAULT_STRENGTHS: dict[str, float] = {
    "underrepresented": 0.25,
    "harder_expressions": 0.3,
    "label_noise": 0.3,
}
MIN_IMAGE_SIZE = 64
MAX_IMAGE_SIZE = 512
MAX_IMAGES = 1_000_000
# ``SyntheticConfig.n_subjects`` of None means one subject per this many images.
IMAGES_PER_SUBJECT = 4


def _invalid(field: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"{field}={value!r} is invalid; expected {expected}")


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class PlantedGap:
    """One planted disadvantage of one group.

    Attributes:
        kind: ``underrepresented``, ``harder_expressions`` or ``label_noise``.
        attribute: ``gender``, ``age`` or ``race``.
        group: A value of that attribute, such as ``female``, ``70+`` or ``asian``.
        strength: Sampling-weight factor (underrepresented, in (0, 1)), expression scale
            (harder_expressions, in (0, 1)) or share of relabelled images (label_noise, in
            (0, 1]).
        splits: The splits the gap applies to.

    Example:
        ``PlantedGap("harder_expressions", "gender", "female", 0.3)``
    """

    kind: GapKind
    attribute: str
    group: str
    strength: float
    splits: tuple[str, ...] = SPLITS

    def __post_init__(self) -> None:
        if self.kind not in GAP_KINDS:
            raise _invalid("PlantedGap.kind", self.kind, f"one of {', '.join(GAP_KINDS)}")
        if self.attribute not in labels.ATTRIBUTES:
            raise _invalid("PlantedGap.attribute", self.attribute,
                           f"one of {', '.join(labels.ATTRIBUTES)}")
        vocabulary = labels.ATTRIBUTES[self.attribute]
        if self.group not in vocabulary:
            raise _invalid("PlantedGap.group", self.group,
                           f"a {self.attribute} group: one of {', '.join(vocabulary)}")
        upper_inclusive = self.kind == "label_noise"
        in_range = _is_number(self.strength) and (
            0 < self.strength <= 1 if upper_inclusive else 0 < self.strength < 1)
        if not in_range:
            raise _invalid("PlantedGap.strength", self.strength,
                           f"a number in (0, {'1]' if upper_inclusive else '1)'} for {self.kind}")
        splits = tuple(self.splits)
        if not splits or any(split not in SPLITS for split in splits) or len(set(splits)) < len(
                splits):
            raise _invalid("PlantedGap.splits", self.splits,
                           f"distinct split names from {', '.join(SPLITS)}")
        object.__setattr__(self, "splits", splits)

    @property
    def group_index(self) -> int:
        """Index of ``group`` in the attribute's vocabulary."""
        return labels.ATTRIBUTES[self.attribute].index(self.group)

    @classmethod
    def parse(cls, text: str) -> PlantedGap:
        """Parse ``KIND:ATTRIBUTE=GROUP:STRENGTH[:SPLIT,SPLIT...]``.

        Example: ``harder_expressions:gender=female:0.3`` or
        ``underrepresented:race=asian:0.25:train``.

        Raises:
            ValueError: naming the text and the expected form.
        """
        parts = text.strip().split(":")
        attribute, equals, group = parts[1].partition("=") if len(parts) > 1 else ("", "", "")
        if len(parts) not in (3, 4) or not equals:
            raise ValueError(f"planted gap {text!r} is invalid; expected "
                             "KIND:ATTRIBUTE=GROUP:STRENGTH[:SPLITS], such as "
                             "harder_expressions:gender=female:0.3")
        try:
            strength = float(parts[2])
        except ValueError:
            raise _invalid("PlantedGap.strength", parts[2], "a number") from None
        splits = tuple(name.strip() for name in parts[3].split(",")) if len(parts) == 4 else SPLITS
        return cls(kind=parts[0].strip(), attribute=attribute.strip(),  # type: ignore[arg-type]
                   group=group.strip(), strength=strength, splits=splits)

    def describe(self) -> str:
        """Return the gap in the form that ``parse`` reads."""
        text = f"{self.kind}:{self.attribute}={self.group}:{self.strength:g}"
        return text if self.splits == SPLITS else f"{text}:{','.join(self.splits)}"


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Settings of one synthetic data set. Equal configs give byte-identical data sets.

    Attributes:
        n_images: Number of images, 3 to 1,000,000.
        image_size: Side of the square grayscale images in pixels, 64 to 512.
        seed: Seed of every random choice, >= 0.
        n_subjects: Number of people; None means ``max(3, n_images // 4)``. Each subject has
            fixed attributes and look, and about ``n_images / n_subjects`` images with
            different expressions. From 3 to ``n_images``.
        validation_fraction: Share of subjects in the validation split, in (0, 1).
        test_fraction: Share of subjects in the test split, in (0, 1). Each split gets at
            least one subject, and the train split must keep one.
        gender_weights: Relative weights of ``labels.GENDERS``; equal weights are balanced.
        age_weights: Relative weights of ``labels.AGE_GROUPS``.
        race_weights: Relative weights of ``labels.RACES``.
        planted_gaps: The planted disadvantages, at most one per kind, attribute and group.
    """

    n_images: int = 2000
    image_size: int = 64
    seed: int = 0
    n_subjects: int | None = None
    validation_fraction: float = 0.15
    test_fraction: float = 0.2
    gender_weights: tuple[float, ...] = (1.0,) * len(labels.GENDERS)
    age_weights: tuple[float, ...] = (1.0,) * len(labels.AGE_GROUPS)
    race_weights: tuple[float, ...] = (1.0,) * len(labels.RACES)
    planted_gaps: tuple[PlantedGap, ...] = ()

    def __post_init__(self) -> None:
        self._check_whole("n_images", self.n_images, 3, MAX_IMAGES)
        self._check_whole("image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        self._check_whole("seed", self.seed, 0, 2**63 - 1)
        if self.n_subjects is not None:
            self._check_whole("n_subjects", self.n_subjects, 3, self.n_images)
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not (_is_number(value) and 0 < value < 1):
                raise _invalid(f"SyntheticConfig.{name}", value, "a number in (0, 1)")
        if self.split_subject_counts()["train"] < 1:
            raise ValueError(
                f"SyntheticConfig.validation_fraction={self.validation_fraction} and "
                f"test_fraction={self.test_fraction} leave no subject of "
                f"{self.subject_count} for train; lower them or raise n_subjects"
            )
        for attribute, name in (("gender", "gender_weights"), ("age", "age_weights"),
                                ("race", "race_weights")):
            self._check_weights(name, getattr(self, name), labels.ATTRIBUTES[attribute])
        self._check_gaps()

    def _check_whole(self, name: str, value: Any, low: int, high: int) -> None:
        if not (_is_whole(value) and low <= value <= high):
            raise _invalid(f"SyntheticConfig.{name}", value, f"a whole number from {low} to {high}")

    def _check_weights(self, name: str, value: Any, vocabulary: Sequence[str]) -> None:
        weights = tuple(value) if isinstance(value, (list, tuple)) else value
        valid = (isinstance(weights, tuple) and len(weights) == len(vocabulary)
                 and all(_is_number(weight) and weight >= 0 for weight in weights)
                 and sum(weights) > 0)
        if not valid:
            raise _invalid(f"SyntheticConfig.{name}", value,
                           f"{len(vocabulary)} weights >= 0 with a positive sum, one for each of "
                           f"{', '.join(vocabulary)}")
        object.__setattr__(self, name, tuple(float(weight) for weight in weights))

    def _check_gaps(self) -> None:
        gaps = tuple(self.planted_gaps)
        if not all(isinstance(gap, PlantedGap) for gap in gaps):
            raise _invalid("SyntheticConfig.planted_gaps", self.planted_gaps,
                           "a tuple of PlantedGap")
        keys = [(gap.kind, gap.attribute, gap.group) for gap in gaps]
        for key in keys:
            if keys.count(key) > 1:
                raise _invalid("SyntheticConfig.planted_gaps", [gap.describe() for gap in gaps],
                               f"at most one {key[0]} gap for {key[1]}={key[2]}")
        for gap in gaps:
            if self.attribute_weights(gap.attribute)[gap.group_index] == 0:
                raise _invalid("SyntheticConfig.planted_gaps", gap.describe(),
                               f"a group with a positive weight; {gap.attribute}={gap.group} "
                               "has weight 0")
        object.__setattr__(self, "planted_gaps", gaps)

    @property
    def subject_count(self) -> int:
        """The number of subjects, with the default of ``n_subjects`` resolved."""
        if self.n_subjects is not None:
            return self.n_subjects
        return max(3, self.n_images // IMAGES_PER_SUBJECT)

    def split_subject_counts(self) -> dict[str, int]:
        """Return the subjects per split; validation and test get at least one each."""
        total = self.subject_count
        validation = max(1, round(self.validation_fraction * total))
        test = max(1, round(self.test_fraction * total))
        return {"train": total - validation - test, "validation": validation, "test": test}

    def attribute_weights(self, attribute: str) -> tuple[float, ...]:
        """Return the configured weights of ``gender``, ``age`` or ``race``."""
        return {"gender": self.gender_weights, "age": self.age_weights,
                "race": self.race_weights}[attribute]

    def to_dict(self) -> dict[str, Any]:
        """Return the config as JSON-ready values; ``from_dict`` reverses it."""
        values = dataclasses.asdict(self)
        values["planted_gaps"] = [
            {**dataclasses.asdict(gap), "splits": list(gap.splits)} for gap in self.planted_gaps
        ]
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in values.items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SyntheticConfig:
        """Build a config from ``to_dict`` output or a TOML table.

        Raises:
            ValueError: for an unknown key or an invalid value.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown synthetic data set settings {unknown}; expected keys "
                             f"from {', '.join(sorted(known))}")
        changes = dict(values)
        for name in ("gender_weights", "age_weights", "race_weights"):
            if isinstance(changes.get(name), list):
                changes[name] = tuple(changes[name])
        if "planted_gaps" in changes:
            changes["planted_gaps"] = tuple(
                PlantedGap(**{**gap, "splits": tuple(gap.get("splits", SPLITS))})
                for gap in changes["planted_gaps"]
            )
        return cls(**changes)


def unbiased(**changes: Any) -> SyntheticConfig:
    """Return a balanced config without planted gaps; ``changes`` set other fields.

    NOTE: groups still look different, so accuracies need not be equal. On the default set, a
    logistic regression on 16x16 pixels differed by up to 0.1 between genders over seeds 0
    to 4 (test_synthetic.py's learnability tests).
    """
    return SyntheticConfig(**changes)


def planted_gap(
    *,
    attribute: str,
    group: str,
    kind: GapKind,
    strength: float | None = None,
    splits: Sequence[str] = SPLITS,
    **changes: Any,
) -> SyntheticConfig:
    """Return a balanced config with one planted gap.

    Args:
        attribute: ``gender``, ``age`` or ``race``.
        group: The disadvantaged group, a value of ``attribute``.
        kind: ``underrepresented``, ``harder_expressions`` or ``label_noise``.
        strength: The gap's strength; None takes ``DEFAULT_STRENGTHS[kind]``.
        splits: The splits the gap applies to.
        **changes: Other ``SyntheticConfig`` fields, such as ``n_images`` or ``seed``.

    Example:
        ``planted_gap(attribute="gender", group="female", kind="harder_expressions")``
    """
    gap = PlantedGap(kind=kind, attribute=attribute, group=group,
                     strength=DEFAULT_STRENGTHS.get(kind, 0.0) if strength is None else strength,
                     splits=tuple(splits))
    return SyntheticConfig(planted_gaps=(gap,), **changes)
