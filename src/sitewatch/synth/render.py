"""Paint a :class:`~sitewatch.synth.scene.Scene` into a multiband array for one date.

The world is drawn at ``supersample`` times the output resolution, so edges come out
anti-aliased, then passed through a simple sensor model: illumination from the date's sun,
per-band gain and haze, a Gaussian point-spread function, the date's misregistration (a
cubic-spline shift) and noise.  Texture that belongs to the ground (soil, fields, forest)
is seeded by the scene, so it is the same on every date; only the sensor noise differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio import features
from scipy import ndimage
from shapely import affinity
from shapely.geometry import Point, box
from shapely.geometry.base import BaseGeometry

from .scene import (
    BALLAST,
    CROP,
    FOREST,
    GRASS,
    SHADOW_TINT,
    SOIL,
    Acquisition,
    Scene,
    Structure,
)


def fractal_noise(shape: tuple[int, int], beta: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance noise with a ``1/f**beta`` power spectrum, shape ``(M, N)``."""
    white = rng.standard_normal(shape)
    spectrum = np.fft.rfft2(white)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = 1.0
    spectrum *= k ** (-beta / 2.0)
    spectrum[0, 0] = 0.0
    out = np.fft.irfft2(spectrum, s=shape)
    return ((out - out.mean()) / out.std()).astype(np.float32)


def _mask(geoms: list[BaseGeometry], shape: tuple[int, int], transform: Affine) -> np.ndarray:
    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros(shape, dtype=bool)
    return features.rasterize(
        ((g, 1) for g in geoms), out_shape=shape, transform=transform, fill=0, dtype="uint8"
    ).astype(bool)


def _paint(canvas: np.ndarray, mask: np.ndarray, colour, texture: np.ndarray | None = None) -> None:
    """Set ``canvas[:, mask]`` to ``colour`` (optionally modulated by ``texture``)."""
    col = np.asarray(colour, dtype=np.float32)[:, None]
    if texture is None:
        canvas[:, mask] = col
    else:
        canvas[:, mask] = col * texture[mask][None, :]


def shadow_polygon(footprint: BaseGeometry, acq: Acquisition, height_m: float) -> BaseGeometry:
    """Ground area shaded by a prism of ``height_m`` over a convex ``footprint``."""
    dx, dy = acq.shadow_vector(height_m)
    return footprint.union(affinity.translate(footprint, dx, dy)).convex_hull


def _sun_unit(acq: Acquisition) -> np.ndarray:
    az = np.radians(acq.sun_azimuth_deg)
    return np.array([np.sin(az), np.cos(az)])  # east, north components toward the sun


def _structure_layers(s: Structure, acq: Acquisition) -> list[tuple[BaseGeometry, np.ndarray]]:
    """Roof parts with their colour; pitched roofs get a sunlit and a shaded half."""
    roof = np.asarray(s.roof, dtype=np.float32)
    if not s.pitched:
        return [(s.footprint, roof)]
    theta = np.radians(s.ridge_angle_deg + 90.0)
    normal = np.array([np.cos(theta), np.sin(theta)])
    lit = float(np.dot(normal, _sun_unit(acq)))
    c = s.footprint.centroid
    big = 4 * (s.footprint.length + 1)
    half = affinity.rotate(box(c.x - big, c.y, c.x + big, c.y + big), s.ridge_angle_deg, origin=(c.x, c.y))
    side_a = s.footprint.intersection(half)
    side_b = s.footprint.difference(half)
    return [(side_a, roof * (1 + 0.15 * lit)), (side_b, roof * (1 - 0.15 * lit))]


@dataclass(frozen=True)
class _Canvas:
    """The supersampled grid a date is painted on, and the cell centres in map coordinates."""

    shape: tuple[int, int]
    step: float
    transform: Affine
    xs: np.ndarray
    ys: np.ndarray


def _ground(scene: Scene, acq: Acquisition, grid: _Canvas, world: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Grass and bare soil mixed by a smooth field, with fine texture; crop fields in rows over it.

    Returns the canvas (3, rows, cols) and the fine texture, which later layers share.
    """
    shape = grid.shape
    mix = fractal_noise(shape, 3.0, world)
    weight = np.clip(0.5 + 0.6 * mix, 0.0, 1.0)[None]
    fine = 1.0 + 0.07 * fractal_noise(shape, 1.2, world)
    grass = np.asarray(GRASS[acq.season], np.float32)[:, None, None]
    soil = np.asarray(SOIL, np.float32)[:, None, None]
    canvas = (weight * grass + (1 - weight) * soil) * fine[None]
    for poly, row_angle in scene.fields:
        m = _mask([poly], shape, grid.transform)
        a = np.radians(row_angle)
        along = -grid.xs[m] * np.sin(a) + grid.ys[m] * np.cos(a)
        rows_tex = 1.0 + 0.10 * np.sin(2 * np.pi * along / 1.6)
        canvas[:, m] = np.asarray(CROP[acq.season], np.float32)[:, None] * (rows_tex * fine[m])[None]
    return canvas, fine


def _paint_ways(canvas: np.ndarray, scene: Scene, grid: _Canvas, fine: np.ndarray) -> None:
    """Roads, aprons, track beds with their rails, and dark openings."""
    shape, transform = grid.shape, grid.transform
    for geom, colour in scene.roads:
        _paint(canvas, _mask([geom], shape, transform), colour, fine)
    _paint(canvas, _mask(scene.aprons, shape, transform), (0.50, 0.49, 0.47), fine)
    if scene.tracks:
        lines = [line for _, line in scene.tracks]
        _paint(canvas, _mask([ln.buffer(2.2, cap_style="flat") for ln in lines], shape, transform), BALLAST, fine)
        rails = [ln.offset_curve(off).buffer(0.12, cap_style="flat") for ln in lines for off in (-0.72, 0.72)]
        _paint(canvas, _mask(rails, shape, transform), (0.20, 0.19, 0.19))
    _paint(canvas, _mask(scene.dark_openings, shape, transform), (0.05, 0.05, 0.06))


def _paint_trees(canvas: np.ndarray, scene: Scene, acq: Acquisition, grid: _Canvas, forest_tex: np.ndarray) -> None:
    """Tree shadows, then crowns (seasonal colour, per-crown variation)."""
    if not scene.trees:
        return
    shape, transform = grid.shape, grid.transform
    tree_rng = np.random.default_rng([scene.seed, 11])
    crowns = [Point(x, y).buffer(r, quad_segs=6) for x, y, r in scene.trees]
    shade = [shadow_polygon(c, acq, 2.2 * r + 3) for c, (_, _, r) in zip(crowns, scene.trees)]
    m = _mask(shade, shape, transform)
    canvas[:, m] *= np.asarray(SHADOW_TINT, np.float32)[:, None]
    ids = features.rasterize(
        ((c, i + 1) for i, c in enumerate(crowns)), out_shape=shape, transform=transform, fill=0, dtype="int32"
    )
    tint = tree_rng.uniform(0.8, 1.2, (len(crowns) + 1, 1)).astype(np.float32)
    base = np.asarray(FOREST[acq.season], np.float32) * 1.3
    m = ids > 0
    canvas[:, m] = (base[None, :] * tint[ids[m]]).T * forest_tex[m][None]


def _shade_hills(canvas: np.ndarray, scene: Scene, acq: Acquisition, grid: _Canvas) -> None:
    """Hill shading multiplies all ground cover drawn so far (dark openings stay dark)."""
    if not scene.hills:
        return
    xs, ys = grid.xs, grid.ys
    dem = np.zeros(grid.shape, np.float32)
    for hx, hy, sigma, height in scene.hills:
        dem += height * np.exp(-((xs - hx) ** 2 + (ys - hy) ** 2) / (2 * sigma**2))
    gy, gx = np.gradient(dem, grid.step)
    slope = np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(-gx, gy)  # direction of steepest descent, from north
    zen = np.radians(90 - acq.sun_elevation_deg)
    az = np.radians(acq.sun_azimuth_deg)
    shade_factor = np.cos(zen) * np.cos(slope) + np.sin(zen) * np.sin(slope) * np.cos(az - aspect + np.pi)
    canvas *= np.clip(shade_factor / np.cos(zen), 0.35, 1.6)[None]
    canvas[:, _mask(scene.dark_openings, grid.shape, grid.transform)] = np.float32(0.04)


def _paint_structures(canvas: np.ndarray, scene: Scene, index: int, grid: _Canvas, world: np.random.Generator) -> None:
    """The structures visible on date ``index``: their shadows, then their roofs."""
    acq = scene.acquisitions[index]
    shape, transform = grid.shape, grid.transform
    visible = [s for s in scene.structures if s.visible(index)]
    shade = [shadow_polygon(s.footprint, acq, s.height_m) for s in visible]
    m = _mask(shade, shape, transform)
    canvas[:, m] *= np.asarray(SHADOW_TINT, np.float32)[:, None]
    roof_tex = 1.0 + 0.025 * fractal_noise(shape, 1.0, world)
    # all roofs in one pass, lowest first so taller parts are burned over lower ones
    layers = [layer for s in sorted(visible, key=lambda s: s.height_m) for layer in _structure_layers(s, acq)]
    layers = [(geom, colour) for geom, colour in layers if not geom.is_empty]
    if layers:
        ids = features.rasterize(
            ((geom, i + 1) for i, (geom, _) in enumerate(layers)),
            out_shape=shape,
            transform=transform,
            fill=0,
            dtype="int32",
        )
        palette = np.vstack([np.zeros(3, np.float32)] + [np.asarray(c, np.float32) for _, c in layers])
        m = ids > 0
        canvas[:, m] = palette[ids[m]].T * roof_tex[m][None]


def _sensor(canvas: np.ndarray, scene: Scene, index: int, supersample: int) -> np.ndarray:
    """Average down to the output grid, then sun, atmosphere, PSF, shift, noise; 8-bit."""
    acq = scene.acquisitions[index]
    rows, cols = scene.shape
    ss = supersample
    image = canvas.reshape(3, rows, ss, cols, ss).mean(axis=(2, 4))
    irradiance = (0.85 * np.sin(np.radians(acq.sun_elevation_deg)) + 0.15) / (0.85 * np.sin(np.radians(65)) + 0.15)
    gain = np.asarray(acq.band_gain, np.float32)[:, None, None] * irradiance
    offset = np.asarray(acq.band_offset, np.float32)[:, None, None]
    image = image * gain + offset
    dx, dy = acq.shift_px
    image = np.stack(
        [ndimage.shift(ndimage.gaussian_filter(band, 0.55), (dy, dx), order=3, mode="nearest") for band in image]
    )
    sensor = np.random.default_rng([scene.seed, 100 + index])
    noise = sensor.standard_normal(image.shape).astype(np.float32)
    image = image + noise * (acq.noise_sigma + 0.01 * np.sqrt(np.clip(image, 0, None)))
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def render(scene: Scene, index: int, *, supersample: int = 2) -> np.ndarray:
    """Render acquisition ``index`` of ``scene``.

    Layers are painted on a grid ``supersample`` times finer than the output, bottom up:
    ground and fields, forests, roads and tracks, trees, hill shading, structures with
    their shadows; then the sensor (:func:`_sensor`).  The ground's texture comes from one
    random stream per scene, in that order, so it is identical on every date.

    Returns
    -------
    ndarray of shape (3, M, N), uint8
        Red, green, blue digital numbers on the scene's grid.
    """
    acq = scene.acquisitions[index]
    rows, cols = scene.shape
    ss = supersample
    shape = (rows * ss, cols * ss)
    west, south, east, north = scene.bounds
    step = scene.pixel_size_m / ss
    transform = Affine(step, 0.0, west, 0.0, -step, north)
    world = np.random.default_rng([scene.seed, 7])  # ground texture: identical every date
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    grid = _Canvas(shape, step, transform, west + (xx + 0.5) * step, north - (yy + 0.5) * step)

    canvas, fine = _ground(scene, acq, grid, world)
    forest_tex = 1.0 + 0.25 * fractal_noise(shape, 1.6, world)
    _paint(canvas, _mask(scene.forests, shape, transform), FOREST[acq.season], forest_tex)
    _paint_ways(canvas, scene, grid, fine)
    _paint_trees(canvas, scene, acq, grid, forest_tex)
    _shade_hills(canvas, scene, acq, grid)
    _paint_structures(canvas, scene, index, grid, world)
    return _sensor(canvas, scene, index, ss)
