"""The look of synthetic faces: subjects, expressions and per-image pose.

A synthetic face is made of three parts, which ``synthetic_drawing.draw_face`` draws:

- ``FaceIdentity``: what stays fixed for one subject. Gender, age group and race change the
  drawing (jaw shape, hair, wrinkles, face proportions, skin brightness), and per-subject jitter
  changes the proportions further.
- ``EXPRESSIONS``: for each emotion, the change of brows, eyes and mouth from neutral. An
  intensity scales the whole change, so intensity 0 draws a neutral face.
- ``Pose``: what changes from image to image: rotation, scale, shift, background, lighting and
  pixel noise.

Geometry is in face units: the origin is the face centre, x points right, y points down, and
the face outline reaches about 1 unit above and below the centre.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fer_fairness import labels

# Skin brightness (0 black, 1 white) per race, in the order of labels.RACES.
SKIN_TONES: tuple[float, ...] = (0.80, 0.42, 0.68)


@dataclasses.dataclass(frozen=True)
class Expression:
    """Change of the facial geometry from neutral at intensity 1, in face units.

    Attributes:
        brow_raise: Upward shift of both brows.
        brow_inner: Extra upward shift of the inner brow ends; negative draws them together
            and down.
        eye_open: Relative change of the eye opening; 0.8 opens the eyes 80% wider.
        mouth_curve: Upward shift of the mouth corners against the mouth centre.
        mouth_open: Half-height of the mouth opening.
        mouth_width: Relative change of the mouth width.
        lip_raise: Upward shift of the upper lip on the face's left side only.
        lip_press: Relative change of the lip thickness; -0.6 presses the lips thin.
        nose_wrinkle: Darkness of the wrinkles across the nose bridge.
    """

    brow_raise: float = 0.0
    brow_inner: float = 0.0
    eye_open: float = 0.0
    mouth_curve: float = 0.0
    mouth_open: float = 0.0
    mouth_width: float = 0.0
    lip_raise: float = 0.0
    lip_press: float = 0.0
    nose_wrinkle: float = 0.0


# One geometry per emotion, in the order of labels.EMOTIONS.
EXPRESSIONS: dict[str, Expression] = {
    "neutral": Expression(),
    "happiness": Expression(eye_open=-0.3, mouth_curve=0.13, mouth_open=0.035,
                            mouth_width=0.22),
    "surprise": Expression(brow_raise=0.12, brow_inner=0.02, eye_open=0.8, mouth_open=0.13,
                           mouth_width=-0.35),
    "sadness": Expression(brow_inner=0.1, eye_open=-0.25, mouth_curve=-0.1, mouth_width=-0.05),
    "anger": Expression(brow_raise=-0.05, brow_inner=-0.1, eye_open=-0.45, mouth_curve=-0.03,
                        mouth_width=-0.2, lip_press=-0.6),
    "disgust": Expression(brow_raise=-0.04, brow_inner=-0.03, eye_open=-0.45, mouth_curve=-0.05,
                          mouth_open=0.015, lip_raise=0.08, nose_wrinkle=0.16),
    "fear": Expression(brow_raise=0.08, brow_inner=0.07, eye_open=0.7, mouth_curve=-0.05,
                       mouth_open=0.05, mouth_width=0.28),
}


@dataclasses.dataclass(frozen=True)
class FaceIdentity:
    """The fixed look of one subject. Lengths are in face units, brightness in 0..1.

    Attributes:
        gender, age_group, race: Indices into ``labels.GENDERS``, ``AGE_GROUPS``, ``RACES``.
        face_width: Half-width of the face outline; its half-height is ``face_height``.
        jaw_exponent: Superellipse exponent of the lower face; larger is squarer.
        skin: Skin brightness.
        hair: Hair brightness.
        hairline: y of the hairline.
        eye_y, eye_dx, eye_width, eye_height: Eye centre height, half the distance between
            the eye centres, and the half-width and half-height of a neutral eye.
        brow_gap, brow_thickness, brow_arch: Distance from eye centre to brow, brow thickness
            and the height of its arch.
        nose_y, nose_width: Height of the nose tip and half-width of the nostrils.
        mouth_y, mouth_width, lip_thickness: Mouth centre height, half-width and lip thickness.
        wrinkles: 0 none, 1 some (ages 40-69), 2 many (70+).
    """

    gender: int
    age_group: int
    race: int
    face_width: float
    face_height: float
    jaw_exponent: float
    skin: float
    hair: float
    hairline: float
    eye_y: float
    eye_dx: float
    eye_width: float
    eye_height: float
    brow_gap: float
    brow_thickness: float
    brow_arch: float
    nose_y: float
    nose_width: float
    mouth_y: float
    mouth_width: float
    lip_thickness: float
    wrinkles: int


@dataclasses.dataclass(frozen=True)
class Pose:
    """Per-image variation. ``Pose()`` is a frontal face in even light without noise.

    Attributes:
        angle: In-plane rotation in degrees, counter-clockwise.
        scale: Size relative to the standard face.
        shift_x, shift_y: Shift as shares of the image side.
        background: Background brightness.
        gain: Factor applied to every pixel's brightness.
        gradient: Strength of a linear light gradient; the brightness changes by up to this
            share from one edge to the centre.
        gradient_angle: Direction of the gradient in degrees.
        noise: Standard deviation of Gaussian pixel noise, in brightness units.
        noise_seed: Seed of the noise.
    """

    angle: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    background: float = 0.55
    gain: float = 1.0
    gradient: float = 0.0
    gradient_angle: float = 0.0
    noise: float = 0.0
    noise_seed: int = 0


def sample_identity(
    rng: np.random.Generator, *, gender: int, age_group: int, race: int
) -> FaceIdentity:
    """Draw a subject's look for the given attribute indices.

    Each proportion is drawn uniformly within its spread around the centre that the attributes
    give it.
    """
    values = {name: float(center + rng.uniform(-spread, spread))
              for name, (center, spread) in _proportion_ranges(gender, age_group, race).items()}
    if age_group == labels.AGE_GROUPS.index("70+"):
        wrinkles = 2
    elif age_group == labels.AGE_GROUPS.index("40-69"):
        wrinkles = 1
    else:
        wrinkles = 0
    return FaceIdentity(gender=gender, age_group=age_group, race=race, wrinkles=wrinkles,
                        **values)


def _proportion_ranges(gender: int, age_group: int, race: int) -> dict[str, tuple[float, float]]:
    """Return the centre and spread of each proportion, in the order they are drawn."""
    child = age_group == labels.AGE_GROUPS.index("0-3")
    female = gender == labels.GENDERS.index("female")
    older = age_group >= labels.AGE_GROUPS.index("40-69")
    # Children have rounder faces, eyes lower in the face, larger eyes and smaller mouths.
    if child:
        eye_y, face_width, jaw_exponent, hairline = 0.1, 0.86, 2.0, -0.72
    elif female:
        eye_y, face_width, jaw_exponent, hairline = -0.1, 0.74, 2.3, -0.55
    else:
        eye_y, face_width, jaw_exponent, hairline = -0.1, 0.81, 3.4, -0.55
    if age_group == labels.AGE_GROUPS.index("4-19"):
        eye_y = 0.0
    if older and not female:
        hairline = -0.62
    if age_group == labels.AGE_GROUPS.index("70+"):
        hair = (0.85, 0.06)
    elif older:
        hair = (0.5, 0.1)
    else:
        hair = (0.4 if child else 0.18, 0.08)
    nose_y = eye_y + (0.24 if child else 0.32)
    # African-American faces get a wider nose and fuller lips.
    african_american = race == labels.RACES.index("african_american")
    return {
        "hair": hair,
        "face_width": (face_width, 0.03),
        "face_height": (0.92 if child else 1.0, 0.03),
        "jaw_exponent": (jaw_exponent, 0.25),
        "skin": (SKIN_TONES[race], 0.035),
        "hairline": (hairline, 0.04),
        "eye_y": (eye_y, 0.025),
        "eye_dx": (0.3 if child else 0.32, 0.015),
        "eye_width": (0.16 if child else 0.14, 0.01),
        "eye_height": (0.07 if child else 0.056, 0.006),
        "brow_gap": (0.17 if female else 0.14, 0.015),
        "brow_thickness": (0.06, 0.01),
        "brow_arch": (0.045 if female else 0.015, 0.01),
        "nose_y": (nose_y, 0.02),
        "nose_width": (0.06 + 0.02 * (not child) + 0.03 * african_american, 0.01),
        "mouth_y": (nose_y + (0.17 if child else 0.21), 0.02),
        "mouth_width": (0.22 if child else 0.26, 0.015),
        "lip_thickness": (0.03 + 0.01 * female + 0.01 * african_american, 0.005),
    }


def sample_pose(rng: np.random.Generator) -> Pose:
    """Draw one image's pose, lighting and noise."""
    return Pose(
        angle=float(rng.uniform(-4.0, 4.0)),
        scale=float(rng.uniform(0.96, 1.04)),
        shift_x=float(rng.uniform(-0.025, 0.025)),
        shift_y=float(rng.uniform(-0.025, 0.025)),
        background=float(rng.uniform(0.25, 0.85)),
        gain=float(rng.uniform(0.8, 1.15)),
        gradient=float(rng.uniform(0.0, 0.15)),
        gradient_angle=float(rng.uniform(0.0, 360.0)),
        noise=float(rng.uniform(0.01, 0.035)),
        noise_seed=int(rng.integers(2**32)),
    )
