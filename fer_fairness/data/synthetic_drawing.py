"""Drawing of synthetic faces: polygons in face units on a supersampled canvas.

Shapes are drawn on a 4x supersampled float canvas and box-filtered down, so sub-pixel changes
of the geometry change the pixels. Drawing is pure: the same arguments give the same array.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from fer_fairness import labels
from fer_fairness.data.synthetic_faces import EXPRESSIONS, Expression, FaceIdentity, Pose

SUPERSAMPLING = 4
# Face centre and the length of one face unit, as shares of the image side.
FACE_CENTER = (0.5, 0.53)
FACE_UNIT = 0.34
CURVE_POINTS = 24
# Features are drawn at a fixed offset below the skin brightness, so their contrast, and with
# it the size of an expression's pixel change, is the same for every skin tone.
FEATURE_DARKNESS = 0.42
LIP_DARKNESS = 0.2
MOUTH_DARKNESS = 0.48
SCLERA_BRIGHTNESS = 0.12


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
