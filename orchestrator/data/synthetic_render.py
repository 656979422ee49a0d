"""Pixels of a synthetic crowd: background, people, distractors, lighting, noise.

:func:`render_layout` draws one :class:`~orchestrator.data.synthetic.CrowdLayout` with the
appearance random stream it is given. Each head is drawn centred exactly on its layout point;
people are drawn far to near (top rows first), so nearer bodies occlude heads behind them.
Drawing uses OpenCV primitives with 1/16-pixel sub-pixel precision and anti-aliasing; a
256x256 image with 400 heads takes a few milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # imported for annotations only: synthetic.py imports this module
    from orchestrator.data.synthetic import CrowdLayout, SyntheticCrowdConfig

__all__ = ["render_layout"]

_SHIFT = 4  # cv2 sub-pixel bits: coordinates are passed as integers in 1/16 pixel
_SCALE = 1 << _SHIFT

# Hair colours (RGB) and their probabilities: mostly dark, some brown, blond, grey.
_HAIR_RGB = np.array([[22, 18, 16], [48, 34, 24], [92, 62, 40], [182, 150, 96], [138, 134, 130]], float)
_HAIR_P = np.array([0.45, 0.25, 0.15, 0.08, 0.07])
# Skin tones span light to dark; a head's tone is a random mix of the two ends.
_SKIN_LIGHT = np.array([236.0, 200.0, 172.0])
_SKIN_DARK = np.array([88.0, 58.0, 42.0])
_HAT_PROBABILITY = 0.1
_FACE_VISIBLE_PROBABILITY = 0.75


def _fx(value: float) -> int:
    """A pixel coordinate or length as a cv2 fixed-point integer."""
    return int(round(value * _SCALE))


def _random_colours(rng: np.random.Generator, n: int, sat=(0.1, 0.9), val=(0.2, 0.95)) -> np.ndarray:
    """``(n, 3) float64`` RGB colours in 0..255 from uniform hue and the given HSV ranges."""
    if n == 0:
        return np.zeros((0, 3), np.float64)
    hsv = np.empty((n, 1, 3), np.float32)
    hsv[:, 0, 0] = rng.uniform(0.0, 360.0, n)
    hsv[:, 0, 1] = rng.uniform(*sat, n)
    hsv[:, 0, 2] = rng.uniform(*val, n)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[:, 0, :].astype(np.float64) * 255.0


def _background(config: SyntheticCrowdConfig, rng: np.random.Generator) -> np.ndarray:
    """``(H, W, 3) float32`` background in 0..255: two-colour gradient, low-frequency colour
    noise and one structure (stripes, tiles or none)."""
    height, width = config.height, config.width
    far, near = _random_colours(rng, 2, sat=(0.05, 0.5), val=(0.3, 0.9))
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    horizon, softness = rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.5)
    t = 1.0 / (1.0 + np.exp(-(rows - horizon) / softness))
    image = (far[None, None, :] * (1.0 - t) + near[None, None, :] * t).astype(np.float32)
    image = np.broadcast_to(image, (height, width, 3)).copy()

    contrast = config.texture_contrast
    if contrast > 0:
        cells = int(rng.integers(3, 12))
        # Mostly brightness, a little colour: shadows, stains, worn ground.
        coarse = rng.normal(0.0, 1.0, (cells, cells, 1)) + rng.normal(0.0, 0.35, (cells, cells, 3))
        blotches = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
        image += blotches * (30.0 * contrast)
        kind = rng.choice(3, p=[0.35, 0.35, 0.3])
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        if kind == 0:  # stripes (paving, road markings, grass rows) at a random angle
            angle = rng.uniform(0.0, np.pi)
            period = rng.uniform(6.0, 40.0)
            phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2.0 * np.pi / period)
            pattern = np.sin(phase) if rng.random() < 0.5 else np.sign(np.sin(phase))
            image += (pattern * (22.0 * contrast))[..., None]
        elif kind == 1:  # tiles whose rows get shorter towards the top (perspective floor)
            period = rng.uniform(10.0, 40.0)
            depth_scale = 1.0 - config.perspective * (1.0 - yy / height)
            u, v = xx / (period * depth_scale), yy / (period * depth_scale)
            grout = (np.abs(u - np.round(u)) < 0.06) | (np.abs(v - np.round(v)) < 0.06)
            image -= (grout.astype(np.float32) * (40.0 * contrast))[..., None]
    return image


def _draw_distractors(canvas: np.ndarray, config, rng: np.random.Generator, n: int, kinds=(0, 1, 2, 3)) -> None:
    """Draw ``n`` shapes that are not heads; in place. ``kinds`` picks among 0 box, 1 pole,
    2 triangle, 3 elongated ellipse."""
    if n == 0:
        return
    height, width = config.height, config.width
    colours = _random_colours(rng, n, sat=(0.0, 1.0), val=(0.05, 1.0))
    for k in range(n):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        scale = float(config.radius_at_row(y)) * rng.uniform(1.0, 4.0)
        colour = colours[k].tolist()
        kind = int(kinds[rng.integers(len(kinds))])
        if kind == 0:  # box / sign / bag
            w, h = scale * rng.uniform(0.8, 3.0), scale * rng.uniform(0.8, 3.0)
            cv2.rectangle(canvas, (int(x - w / 2), int(y - h / 2)), (int(x + w / 2), int(y + h / 2)), colour, -1)
        elif kind == 1:  # pole / line
            length, angle = scale * rng.uniform(2.0, 6.0), rng.uniform(0.0, np.pi)
            dx, dy = 0.5 * length * np.cos(angle), 0.5 * length * np.sin(angle)
            thickness = int(rng.integers(1, 4))
            cv2.line(canvas, (_fx(x - dx), _fx(y - dy)), (_fx(x + dx), _fx(y + dy)), colour,
                     thickness, cv2.LINE_AA, _SHIFT)
        elif kind == 2:  # triangle
            angles = rng.uniform(0.0, 2.0 * np.pi) + np.array([0.0, 2.1, 4.2])
            corners = np.stack([x + scale * np.cos(angles), y + scale * np.sin(angles)], axis=1)
            cv2.fillPoly(canvas, [np.round(corners * _SCALE).astype(np.int32)], colour, cv2.LINE_AA, _SHIFT)
        else:  # elongated ellipse (aspect >= 2.5, unlike a head)
            axes = (_fx(scale * rng.uniform(1.2, 2.5)), _fx(scale * rng.uniform(0.2, 0.45)))
            cv2.ellipse(canvas, (_fx(x), _fx(y)), axes, rng.uniform(0, 180), 0, 360, colour, -1,
                        cv2.LINE_AA, _SHIFT)


def _draw_people(canvas: np.ndarray, layout: CrowdLayout, config, rng: np.random.Generator) -> None:
    """Draw each person (body, hair, face) centred on its layout point, far to near; in place."""
    n = layout.count
    if n == 0:
        return
    hair = _HAIR_RGB[rng.choice(len(_HAIR_RGB), size=n, p=_HAIR_P)] + rng.normal(0, 8, (n, 3))
    hats = rng.random(n) < _HAT_PROBABILITY
    hair[hats] = _random_colours(rng, int(hats.sum()), sat=(0.3, 1.0), val=(0.3, 1.0))
    mix = rng.random(n)[:, None]
    skin = _SKIN_LIGHT * (1.0 - mix) + _SKIN_DARK * mix + rng.normal(0, 6, (n, 3))
    face_visible = (rng.random(n) < _FACE_VISIBLE_PROBABILITY) & ~hats
    clothes = _random_colours(rng, n, sat=(0.0, 0.9), val=(0.1, 0.95))
    face_dx = rng.uniform(-0.15, 0.15, n)
    hair_c, skin_c, cloth_c = (np.clip(a, 0, 255).tolist() for a in (hair, skin, clothes))

    order = np.argsort(layout.points[:, 1], kind="stable")
    xs, ys, rs = layout.points[:, 0], layout.points[:, 1], layout.head_radii
    aa, shift = cv2.LINE_AA, _SHIFT
    for k in order.tolist():
        x, y, r = xs[k], ys[k], rs[k]
        if config.draw_bodies:
            cv2.ellipse(canvas, (_fx(x), _fx(y + 1.7 * r)), (_fx(1.35 * r), _fx(1.05 * r)), 0.0, 0, 360,
                        cloth_c[k], -1, aa, shift)
        cv2.circle(canvas, (_fx(x), _fx(y)), _fx(r), hair_c[k], -1, aa, shift)
        if face_visible[k]:
            cv2.ellipse(canvas, (_fx(x + face_dx[k] * r), _fx(y + 0.25 * r)), (_fx(0.62 * r), _fx(0.7 * r)),
                        0.0, 0, 360, skin_c[k], -1, aa, shift)


def _lighting_and_noise(image: np.ndarray, config, rng: np.random.Generator) -> np.ndarray:
    """Global brightness ramp, colour cast, optional slight blur and sensor noise; returns uint8."""
    height, width = config.height, config.width
    out = image.astype(np.float32)
    strength = config.lighting_strength
    if strength > 0:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        ramp = ((xx / width - 0.5) * np.cos(angle) + (yy / height - 0.5) * np.sin(angle)).astype(np.float32)
        gain = 1.0 + strength * (rng.uniform(-0.5, 0.5) + ramp)
        cast = 1.0 + strength * rng.normal(0.0, 0.15, 3).astype(np.float32)
        out *= gain[..., None] * cast[None, None, :]
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (3, 3), rng.uniform(0.4, 0.9))
    if config.noise_std > 0:
        out += rng.normal(0.0, config.noise_std, out.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def render_layout(config: SyntheticCrowdConfig, layout: CrowdLayout, rng: np.random.Generator) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB image of ``layout`` drawn with the appearance stream ``rng``.

    Most distractors are drawn behind the people; a few thin poles are drawn in front (they may
    cross heads; the points stay the ground truth).
    """
    canvas = np.clip(_background(config, rng) + 0.5, 0, 255).astype(np.uint8)
    n_distractors = int(rng.integers(config.min_distractors, config.max_distractors + 1))
    n_front = int(rng.binomial(n_distractors, 0.2))
    _draw_distractors(canvas, config, rng, n_distractors - n_front)
    _draw_people(canvas, layout, config, rng)
    _draw_distractors(canvas, config, rng, n_front, kinds=(1,))
    return _lighting_and_noise(canvas, config, rng)
