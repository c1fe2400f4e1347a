"""Procedural grayscale faces for the synthetic data set.

A face is drawn from three parts:

- ``FaceIdentity``: what stays fixed for one subject. Gender, age group and race change the
  drawing (jaw shape, hair, wrinkles, face proportions, skin brightness), and per-subject jitter
  changes the proportions further.
- ``EXPRESSIONS``: for each emotion, the change of brows, eyes and mouth from neutral. An
  intensity scales the whole change, so intensity 0 draws a neutral face.
- ``Pose``: what changes from image to image: rotation, scale, shift, background, lighting and
  pixel noise.

Geometry is in face units: the origin is the face centre, x points right, y points down, and
the face outline reaches about 1 unit above and below the centre. Shapes are drawn as polygons
on a 4x supersampled float canvas and box-filtered down, so sub-pixel changes of the geometry
change the pixels. Drawing is pure: the same arguments give the same array.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image, ImageDraw

from fer_fairness import labels

SUPERSAMPLING = 4
# Face centre and the length of one face unit, as shares of the image side.
FACE_CENTER = (0.5, 0.53)
FACE_UNIT = 0.34
CURVE_POINTS = 24

# Skin brightness (0 black, 1 white) per race, in the order of labels.RACES.
SKIN_TONES: tuple[float, ...] = (0.80, 0.42, 0.68)
# Features are drawn at a fixed offset below the skin brightness, so their contrast, and with
# it the size of an expression's pixel change, is the same for every skin tone.
FEATURE_DARKNESS = 0.42
LIP_DARKNESS = 0.2
MOUTH_DARKNESS = 0.48
SCLERA_BRIGHTNESS = 0.12


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
    """Draw a subject's look for the given attribute indices."""
    child = age_group == labels.AGE_GROUPS.index("0-3")
    youth = age_group == labels.AGE_GROUPS.index("4-19")
    female = gender == labels.GENDERS.index("female")
    older = age_group >= labels.AGE_GROUPS.index("40-69")
    oldest = age_group == labels.AGE_GROUPS.index("70+")

    def jitter(center: float, spread: float) -> float:
        return float(center + rng.uniform(-spread, spread))

    # Children have rounder faces, eyes lower in the face, larger eyes and smaller mouths.
    eye_y = 0.1 if child else (0.0 if youth else -0.1)
    nose_y = eye_y + (0.24 if child else 0.32)
    if oldest:
        hair = jitter(0.85, 0.06)
    elif older:
        hair = jitter(0.5, 0.1)
    else:
        hair = jitter(0.4 if child else 0.18, 0.08)
    return FaceIdentity(
        gender=gender, age_group=age_group, race=race,
        face_width=jitter(0.86 if child else (0.74 if female else 0.81), 0.03),
        face_height=jitter(0.92 if child else 1.0, 0.03),
        jaw_exponent=jitter(2.0 if child else (2.3 if female else 3.4), 0.25),
        skin=jitter(SKIN_TONES[race], 0.035),
        hair=hair,
        hairline=jitter(-0.72 if child else (-0.62 if older and not female else -0.55), 0.04),
        eye_y=jitter(eye_y, 0.025),
        eye_dx=jitter(0.3 if child else 0.32, 0.015),
        eye_width=jitter(0.16 if child else 0.14, 0.01),
        eye_height=jitter(0.07 if child else 0.056, 0.006),
        brow_gap=jitter(0.17 if female else 0.14, 0.015),
        brow_thickness=jitter(0.045 if female or child else 0.075, 0.01),
        brow_arch=jitter(0.045 if female else 0.015, 0.01),
        nose_y=jitter(nose_y, 0.02),
        nose_width=jitter((0.06 if child else 0.08) + (0.03 if race == 1 else 0.0), 0.01),
        mouth_y=jitter(nose_y + (0.17 if child else 0.21), 0.02),
        mouth_width=jitter(0.2 if child else (0.25 if female else 0.27), 0.015),
        lip_thickness=jitter((0.04 if female else 0.03) + (0.01 if race == 1 else 0.0), 0.005),
        wrinkles=2 if oldest else (1 if older else 0),
    )


def sample_pose(rng: np.random.Generator) -> Pose:
    """Draw one image's pose, lighting and noise."""
    return Pose(
        angle=float(rng.uniform(-6.0, 6.0)),
        scale=float(rng.uniform(0.94, 1.06)),
        shift_x=float(rng.uniform(-0.035, 0.035)),
        shift_y=float(rng.uniform(-0.035, 0.035)),
        background=float(rng.uniform(0.25, 0.85)),
        gain=float(rng.uniform(0.8, 1.15)),
        gradient=float(rng.uniform(0.0, 0.15)),
        gradient_angle=float(rng.uniform(0.0, 360.0)),
        noise=float(rng.uniform(0.01, 0.035)),
        noise_seed=int(rng.integers(2**32)),
    )


def draw_face(
    identity: FaceIdentity,
    emotion: int,
    *,
    intensity: float = 1.0,
    pose: Pose = Pose(),
    size: int = 64,
) -> np.ndarray:
    """Draw one face.

    Args:
        identity: The subject's look.
        emotion: Index into ``labels.EMOTIONS``.
        intensity: Factor on the expression's change from neutral; 0 draws neutral.
        pose: Pose, lighting and noise of this image.
        size: Side of the square image in pixels.

    Returns:
        uint8 array of shape ``(size, size)``, 0 black to 255 white.
    """
    expression = EXPRESSIONS[labels.EMOTIONS[emotion]]
    canvas_side = size * SUPERSAMPLING
    canvas = Image.new("F", (canvas_side, canvas_side), pose.background)
    painter = _Painter(ImageDraw.Draw(canvas), canvas_side, pose)
    _draw_head(painter, identity)
    _draw_eyes(painter, identity, expression, intensity)
    _draw_brows(painter, identity, expression, intensity)
    _draw_nose(painter, identity, expression, intensity)
    _draw_mouth(painter, identity, expression, intensity)
    _draw_wrinkles(painter, identity, expression, intensity)
    pixels = np.asarray(canvas.reduce(SUPERSAMPLING), dtype=np.float32)
    return _apply_lighting(pixels, pose)


class _Painter:
    """Draws polygons given in face units onto the supersampled canvas."""

    def __init__(self, draw: ImageDraw.ImageDraw, side: int, pose: Pose) -> None:
        self.draw = draw
        radians = math.radians(pose.angle)
        unit = FACE_UNIT * side * pose.scale
        # Image y points down, so a counter-clockwise turn on screen uses -angle.
        self.cos, self.sin = unit * math.cos(radians), -unit * math.sin(radians)
        self.center_x = side * (FACE_CENTER[0] + pose.shift_x)
        self.center_y = side * (FACE_CENTER[1] + pose.shift_y)

    def to_canvas(self, x: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
        canvas_x = self.center_x + self.cos * x - self.sin * y
        canvas_y = self.center_y + self.sin * x + self.cos * y
        return list(zip(canvas_x.tolist(), canvas_y.tolist()))

    def polygon(self, x: np.ndarray, y: np.ndarray, fill: float) -> None:
        self.draw.polygon(self.to_canvas(np.asarray(x), np.asarray(y)), fill=float(fill))

    def band(self, x: np.ndarray, y: np.ndarray, thickness: np.ndarray, fill: float) -> None:
        """Fill a band of the given vertical thickness around the curve ``(x, y)``."""
        x, y = np.asarray(x), np.asarray(y)
        half = np.broadcast_to(np.asarray(thickness) / 2, x.shape)
        self.polygon(np.concatenate([x, x[::-1]]),
                     np.concatenate([y - half, (y + half)[::-1]]), fill)


def _dark(identity: FaceIdentity, darkness: float) -> float:
    return max(identity.skin - darkness, 0.02)


def _draw_head(painter: _Painter, identity: FaceIdentity) -> None:
    width, height = identity.face_width, identity.face_height
    female = identity.gender == labels.GENDERS.index("female")
    child = identity.age_group == labels.AGE_GROUPS.index("0-3")
    if female and not child:
        # Long hair behind the head, down past the chin.
        theta = np.linspace(0, math.pi, CURVE_POINTS)
        top_x, top_y = (width + 0.14) * np.cos(theta), -(height + 0.1) * np.sin(theta)
        painter.polygon(np.concatenate([top_x, [-width - 0.2, width + 0.2]]),
                        np.concatenate([top_y, [1.35, 1.35]]), identity.hair)
    painter.polygon([-0.3, 0.3, 0.34, -0.34], [0.5, 0.5, 1.6, 1.6], identity.skin * 0.85)

    theta = np.linspace(0, 2 * math.pi, 4 * CURVE_POINTS, endpoint=False)
    cos, sin = np.cos(theta), np.sin(theta)
    # The upper half is an ellipse, the lower half a superellipse: a squarer jaw for larger
    # exponents.
    power = np.where(sin > 0, 2 / identity.jaw_exponent, 1.0)
    outline_x = width * np.sign(cos) * np.abs(cos) ** power
    outline_y = height * np.sign(sin) * np.abs(sin) ** power
    painter.polygon(outline_x, outline_y, identity.skin)
    _draw_hair(painter, identity)


def _draw_hair(painter: _Painter, identity: FaceIdentity) -> None:
    width, height = identity.face_width + 0.05, identity.face_height + 0.07
    male = identity.gender == labels.GENDERS.index("male")
    if male and identity.age_group == labels.AGE_GROUPS.index("70+"):
        # A bald crown with hair left at the sides.
        for side in (-1, 1):
            painter.polygon(side * np.array([width - 0.12, width + 0.02, width + 0.02,
                                             width - 0.06]),
                            [-0.55, -0.5, -0.05, -0.1], identity.hair)
        return
    start = math.asin(min(-identity.hairline / height, 1.0))
    theta = np.linspace(start, math.pi - start, CURVE_POINTS)
    arc_x, arc_y = width * np.cos(theta), -height * np.sin(theta)
    # The hairline dips at the temples.
    line_x = np.linspace(arc_x[-1], arc_x[0], CURVE_POINTS)
    line_y = identity.hairline + 0.1 * (line_x / width) ** 2
    painter.polygon(np.concatenate([arc_x, line_x]), np.concatenate([arc_y, line_y]),
                    identity.hair)


def _draw_eyes(painter: _Painter, identity: FaceIdentity, expression: Expression,
               intensity: float) -> None:
    opening = max(1.0 + intensity * expression.eye_open, 0.15)
    half_height = identity.eye_height * opening
    u = np.linspace(-1, 1, CURVE_POINTS)
    iris = min(0.55, identity.eye_height * 1.3 / identity.eye_width)
    for side in (-1, 1):
        center_x = side * identity.eye_dx
        upper = identity.eye_y - half_height * (1 - u**2) ** 0.8
        lower = identity.eye_y + half_height * 0.75 * (1 - u**2) ** 0.9
        x = center_x + identity.eye_width * u
        painter.polygon(np.concatenate([x, x[::-1]]), np.concatenate([upper, lower[::-1]]),
                        min(identity.skin + SCLERA_BRIGHTNESS, 1.0))
        # The iris is the part of the eye opening within |u| < iris.
        inside = np.abs(u) <= iris
        painter.polygon(np.concatenate([x[inside], x[inside][::-1]]),
                        np.concatenate([upper[inside], lower[inside][::-1]]),
                        _dark(identity, FEATURE_DARKNESS + 0.05))


def _draw_brows(painter: _Painter, identity: FaceIdentity, expression: Expression,
                intensity: float) -> None:
    u = np.linspace(0, 1, CURVE_POINTS)  # 0 at the inner end, 1 at the outer end.
    base_y = identity.eye_y - identity.brow_gap - intensity * expression.brow_raise
    inner_lift = intensity * expression.brow_inner * (1 - u) ** 1.5
    y = base_y - identity.brow_arch * np.sin(math.pi * u) - inner_lift
    thickness = identity.brow_thickness * (1.1 - 0.5 * u)
    for side in (-1, 1):
        x = side * (identity.eye_dx - identity.eye_width * 0.95 + identity.eye_width * 2.2 * u)
        painter.band(x, y, thickness, _dark(identity, FEATURE_DARKNESS))


def _draw_nose(painter: _Painter, identity: FaceIdentity, expression: Expression,
               intensity: float) -> None:
    shadow = _dark(identity, 0.12)
    for side in (-1, 1):
        painter.band(side * np.array([0.045, 0.05, identity.nose_width * 0.9]),
                     np.array([identity.eye_y + 0.1, identity.nose_y - 0.08,
                               identity.nose_y - 0.02]), 0.018, shadow)
        theta = np.linspace(0, 2 * math.pi, 12, endpoint=False)
        painter.polygon(side * identity.nose_width * 0.55 + 0.035 * np.cos(theta),
                        identity.nose_y + 0.018 * np.sin(theta), _dark(identity, 0.3))
    wrinkle = intensity * expression.nose_wrinkle
    if wrinkle > 0:
        for offset in (0.02, 0.07):
            painter.band(np.array([-0.07, 0.0, 0.07]),
                         np.full(3, identity.eye_y + offset), 0.018, identity.skin - wrinkle)


def _draw_mouth(painter: _Painter, identity: FaceIdentity, expression: Expression,
                intensity: float) -> None:
    half_width = identity.mouth_width * max(1.0 + intensity * expression.mouth_width, 0.3)
    u = np.linspace(-1, 1, CURVE_POINTS)
    x = half_width * u
    middle = identity.mouth_y - intensity * expression.mouth_curve * u**2
    profile = (1 - u**2) ** 0.7
    opening = intensity * expression.mouth_open * profile
    # The raise peaks left of centre: the face's left is the image's right (positive x).
    raise_ = intensity * expression.lip_raise * np.exp(-(((u - 0.4) / 0.35) ** 2))
    upper_inner = middle - opening - raise_
    lower_inner = middle + opening
    lip = identity.lip_thickness * max(1.0 + intensity * expression.lip_press, 0.2)
    lip_profile = np.sqrt(1 - u**2)
    upper_outer = upper_inner - lip * lip_profile
    lower_outer = lower_inner + 1.3 * lip * lip_profile
    painter.polygon(np.concatenate([x, x[::-1]]),
                    np.concatenate([upper_outer, lower_outer[::-1]]),
                    _dark(identity, LIP_DARKNESS))
    gap = np.maximum(lower_inner - upper_inner, 0.012)
    painter.band(x, (upper_inner + lower_inner) / 2, gap * profile + 0.012 * (1 - profile),
                 _dark(identity, MOUTH_DARKNESS))


def _draw_wrinkles(painter: _Painter, identity: FaceIdentity, expression: Expression,
                   intensity: float) -> None:
    if not identity.wrinkles:
        return
    shade = _dark(identity, 0.08 * identity.wrinkles)
    brow_y = identity.eye_y - identity.brow_gap - intensity * expression.brow_raise
    x = np.linspace(-0.38, 0.38, CURVE_POINTS)
    for row in range(identity.wrinkles + 1):
        painter.band(x, brow_y - 0.14 - 0.09 * row + 0.05 * (x / 0.38) ** 2, 0.016, shade)
    corner_y = identity.mouth_y - intensity * expression.mouth_curve
    half_width = identity.mouth_width * max(1.0 + intensity * expression.mouth_width, 0.3)
    for side in (-1, 1):
        # Nasolabial folds run from beside the nose to beyond the mouth corners.
        painter.band(side * np.array([identity.nose_width + 0.06, half_width + 0.04,
                                      half_width + 0.07]),
                     np.array([identity.nose_y - 0.04, (identity.nose_y + corner_y) / 2,
                               corner_y + 0.04]), 0.016, shade)
        if identity.wrinkles > 1:
            outer = side * (identity.eye_dx + identity.eye_width + 0.04)
            for slope in (-0.05, 0.0, 0.05):
                painter.band(np.array([outer, outer + side * 0.08]),
                             np.array([identity.eye_y, identity.eye_y + slope]), 0.014, shade)


def _apply_lighting(pixels: np.ndarray, pose: Pose) -> np.ndarray:
    """Apply gain, a linear light gradient and noise, and quantise to uint8."""
    size = pixels.shape[0]
    coordinates = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    radians = math.radians(pose.gradient_angle)
    ramp = (math.cos(radians) * coordinates[None, :] + math.sin(radians) * coordinates[:, None])
    lit = pixels * pose.gain * (1 + pose.gradient * ramp / math.sqrt(2))
    if pose.noise > 0:
        noise_rng = np.random.default_rng(pose.noise_seed)
        lit = lit + noise_rng.normal(0.0, pose.noise, size=lit.shape).astype(np.float32)
    return np.clip(np.rint(lit * 255), 0, 255).astype(np.uint8)
