"""The ballast bed's outline: where a yard's tracks are, seen from pixels too coarse for rails.

Every track lies on a bed of ballast a little over four metres wide, and beds of parallel
tracks merge.  The outer edges of a group's bed are long, straight, continuous boundaries
against the countryside, and unlike the tracks inside, a group has only two of them: a
common shift that slides every line onto its neighbour's track (which symmetry alone
cannot tell from the right one) moves those edges onto nothing.  The outline is matched to
the image's gradient across it (:func:`align_to_bed`).  Where a pixel is about as wide as a
bed, its two edges blur into one, and the beds' whole footprint is matched instead
(:func:`align_to_bed_fill`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import shapely
from scipy import ndimage
from shapely.geometry import LineString

from .strip import best_shift

BED_HALF_WIDTH_M = 2.2  # ballast shoulder to track centre (a 4-4.5 m bed on 1435 and 1520 mm lines)
OUTLINE_STEP_M = 0.5  # spacing of the outline samples
OUTLINE_END_MARGIN_M = 4.0  # a drawn line's ends need not be the bed's: skip the outline there
OUTLINE_QUANTILE = 40  # the outline's score: this percentile of the gradient across it
# Coarser pixels blur a single track's two bed edges (4.4 m apart) into one: the outline
# then matches anything bed-sized, and the footprint does better.
BED_MAX_PIXEL_M = 1.5
# With the sun known, the shadow template beside the beds reaches as far as a 2 m high
# object's shadow: the part every car type shades (development yards: lines off by more
# than 2 m in 2 of 80, against 8 of 80 without it; 3 m and 4.5 m reaches did worse).
BED_SHADOW_HEIGHT_M = 2.0
# The outline is matched to image gradients smoothed by a Gaussian of this many pixels, or
# metres where that is wider.
EDGE_SIGMA_PX = 0.7
EDGE_SIGMA_M = 0.5
# Coarse-to-fine search for the common shift, in pixels: the whole radius in about
# *_COARSE_STEPS steps (no finer than *_COARSE_MIN_STEP_PX), then (half-width, step) stages
# around the best.  The outline is sharp and is refined to a few hundredths of a pixel; the
# footprint is a broad template and stops at a tenth.
OUTLINE_COARSE_STEPS = 12
OUTLINE_COARSE_MIN_STEP_PX = 0.25
OUTLINE_FINE_PX = ((0.6, 0.1), (0.12, 0.03))
FILL_COARSE_STEPS = 14
FILL_COARSE_MIN_STEP_PX = 0.2
FILL_FINE_PX = ((0.4, 0.08),)


def bed_outline(
    lines_px: list[np.ndarray], *, pixel_size_m: float, half_width_m: float = BED_HALF_WIDTH_M
) -> tuple[np.ndarray, np.ndarray]:
    """Points on the outer edges of the beds of the given track lines, with outward normals.

    An edge point of one track that lies within the bed of another (between parallel
    tracks) is left out: beds merge there.

    Parameters
    ----------
    lines_px : list of ndarray of shape (K, 2)
        Track lines in pixel coordinates (col, row).
    pixel_size_m : float
    half_width_m : float
        Track centre to bed edge.

    Returns
    -------
    points : ndarray of shape (P, 2)
        Pixel coordinates (col, row).
    normals : ndarray of shape (P, 2)
        Unit normals, pointing away from the track, in pixel coordinates.
    """
    half = half_width_m / pixel_size_m
    step = OUTLINE_STEP_M / pixel_size_m
    margin = OUTLINE_END_MARGIN_M / pixel_size_m
    shapes = [LineString(np.asarray(ln, float)) for ln in lines_px]
    points, normals = [], []
    for i, line in enumerate(shapes):
        dist = np.arange(margin, line.length - margin, step)
        if len(dist) == 0:
            continue
        at = np.array([line.interpolate(d).coords[0] for d in dist])
        ahead = np.array([line.interpolate(min(d + step, line.length)).coords[0] for d in dist])
        behind = np.array([line.interpolate(max(d - step, 0.0)).coords[0] for d in dist])
        tangent = ahead - behind
        tangent /= np.maximum(np.hypot(*tangent.T), 1e-12)[:, None]
        normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
        for side in (-1.0, 1.0):
            edge = at + side * half * normal
            probes = shapely.points(edge)
            outer = np.ones(len(edge), bool)
            for j, other in enumerate(shapes):
                if j != i:
                    outer &= shapely.distance(probes, other) > half
            points.append(edge[outer])
            normals.append(side * normal[outer])
    if not points:
        return np.zeros((0, 2)), np.zeros((0, 2))
    return np.concatenate(points), np.concatenate(normals)


def align_to_bed(
    data: np.ndarray, lines_px: list[np.ndarray], *, pixel_size_m: float, max_shift_m: float
) -> tuple[float, float] | None:
    """The common shift that puts the track lines' bed outline on the image's edges.

    Parameters
    ----------
    data : ndarray of shape (B, M, N)
        The image, bands on a common scale.
    lines_px : list of ndarray of shape (K, 2)
        Track lines in pixel coordinates (col, row).
    pixel_size_m : float
    max_shift_m : float
        Largest shift considered, metres.

    Returns
    -------
    (float, float) or None
        The shift in pixels (columns, rows) from the lines to the tracks; None when the
        lines leave no outline to match (every line shorter than its end margins).
    """
    points, normals = bed_outline(lines_px, pixel_size_m=pixel_size_m)
    if len(points) == 0:
        return None
    # gradient at the scale of a pixel: a bed edge spans one or two pixels at any resolution
    sigma = max(EDGE_SIGMA_PX, EDGE_SIGMA_M / pixel_size_m)
    grads = []
    for band in data:
        grads.append(
            (ndimage.gaussian_filter(band, sigma, order=(0, 1)), ndimage.gaussian_filter(band, sigma, order=(1, 0)))
        )

    def score(shifts: np.ndarray) -> np.ndarray:
        at = points[None, :, :] + shifts[:, None, :]  # (S, P, 2)
        coords = [at[..., 1].ravel() - 0.5, at[..., 0].ravel() - 0.5]
        total = np.zeros(at.shape[:2])
        for gx, gy in grads:
            across = (
                ndimage.map_coordinates(gx, coords, order=1, mode="nearest").reshape(at.shape[:2]) * normals[None, :, 0]
                + ndimage.map_coordinates(gy, coords, order=1, mode="nearest").reshape(at.shape[:2])
                * normals[None, :, 1]
            )
            total += across**2
        # most of the outline must sit on an edge: a strong shadow edge along part of it
        # must not carry a shift that leaves the rest on nothing
        return np.percentile(np.sqrt(total), OUTLINE_QUANTILE, axis=1)

    radius_px = max_shift_m / pixel_size_m
    return best_shift(
        score,
        radius_px,
        ((radius_px, max(OUTLINE_COARSE_MIN_STEP_PX, radius_px / OUTLINE_COARSE_STEPS)), *OUTLINE_FINE_PX),
    )


def align_to_bed_fill(
    data: np.ndarray,
    lines_px: list[np.ndarray],
    *,
    pixel_size_m: float,
    max_shift_m: float,
    shadow_px: np.ndarray | None = None,
    shadow_m: float = 0.0,
) -> tuple[float, float] | None:
    """The common shift that best lines the beds of the track lines up with the image, for coarse pixels.

    Where a pixel is about as wide as a single bed, its edges cannot be told apart, but the
    bed as a whole can: a band of its own colour (ballast and the cars on it) through the
    countryside.  The template is the beds' footprint (pixel coverage of everything within
    ``BED_HALF_WIDTH_M`` of a line); a candidate shift scores by how much of each band of the
    image (its variance over a window that holds the beds at every candidate) the template
    explains, summed over bands.

    Under a low sun the cars' shadows beside the beds are a darker, wider band than the beds
    themselves, and the footprint alone is drawn onto them.  Where the shadows' direction is
    known (``shadow_px``, a unit vector in pixel coordinates), the ground the beds would shade
    out to ``shadow_m`` is a second template fitted with the first, so the shadows are
    explained where they lie and the beds stay on the beds.

    Parameters and return as for :func:`align_to_bed`, and
    shadow_px : ndarray of shape (2,), optional
        The way shadows fall, (columns, rows).
    shadow_m : float
        How far beyond the beds the shadow template reaches, metres.
    """
    score = bed_fill_scorer(
        data, lines_px, pixel_size_m=pixel_size_m, max_shift_m=max_shift_m, shadow_px=shadow_px, shadow_m=shadow_m
    )
    if score is None:
        return None
    return best_fill_shift(score, pixel_size_m=pixel_size_m, max_shift_m=max_shift_m)


def best_fill_shift(
    score: Callable[[np.ndarray], np.ndarray], *, pixel_size_m: float, max_shift_m: float
) -> tuple[float, float]:
    """The shift, within ``max_shift_m``, that maximises a :func:`bed_fill_scorer` score."""
    radius_px = max_shift_m / pixel_size_m
    return best_shift(
        score, radius_px, ((radius_px, max(FILL_COARSE_MIN_STEP_PX, radius_px / FILL_COARSE_STEPS)), *FILL_FINE_PX)
    )


def _shade_template(distance_m: np.ndarray, shadow_px: np.ndarray, reach_m: float, *, cell_m: float) -> np.ndarray:
    """The ground the beds would shade, out to ``reach_m`` the way ``shadow_px`` points, on the template grid.

    ``distance_m`` is each template cell's distance from the nearest track line; the beds are
    swept along the shadow direction in half-cell steps.  Returns 1 on shaded ground off the
    beds, 0 elsewhere.
    """
    beds = distance_m <= BED_HALF_WIDTH_M
    beds_u8 = beds.astype(np.uint8)
    swept = np.zeros(distance_m.shape, bool)
    for t in np.arange(cell_m / 2, reach_m + 1e-9, cell_m / 2):
        swept |= (
            ndimage.shift(
                beds_u8, (shadow_px[1] * t / cell_m, shadow_px[0] * t / cell_m), order=0, mode="constant", cval=0
            )
            > 0
        )
    return (swept & ~beds).astype(np.float64)


def bed_fill_scorer(
    data: np.ndarray,
    lines_px: list[np.ndarray],
    *,
    pixel_size_m: float,
    max_shift_m: float,
    shadow_px: np.ndarray | None = None,
    shadow_m: float = 0.0,
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The score :func:`align_to_bed_fill` maximises, as a function of candidate shifts.

    Returns a callable taking shifts of shape (S, 2) in pixels (columns, rows) and returning
    their scores, shape (S,); None when the lines leave nothing to score.
    """
    fine = 0.5 / pixel_size_m  # template grid step, pixels
    reach = shadow_m if shadow_px is not None else 0.0
    margin = (max_shift_m + BED_HALF_WIDTH_M + reach + 4.0 * max(pixel_size_m, 1.0)) / pixel_size_m
    pts = np.concatenate([np.asarray(ln, float) for ln in lines_px])
    lo = pts.min(axis=0) - margin - 2.0
    hi = pts.max(axis=0) + margin + 2.0
    shape = (int(np.ceil((hi[1] - lo[1]) / fine)) + 1, int(np.ceil((hi[0] - lo[0]) / fine)) + 1)
    on_line = np.zeros(shape, bool)
    for ln in lines_px:
        line = LineString(np.asarray(ln, float))
        if line.length == 0:
            continue
        along = np.arange(0.0, line.length + 1e-9, fine / 2)
        xy = np.array([line.interpolate(d).coords[0] for d in along])
        on_line[
            np.clip(np.rint((xy[:, 1] - lo[1]) / fine).astype(int), 0, shape[0] - 1),
            np.clip(np.rint((xy[:, 0] - lo[0]) / fine).astype(int), 0, shape[1] - 1),
        ] = True
    if not on_line.any():
        return None
    distance_m = ndimage.distance_transform_edt(~on_line) * fine * pixel_size_m
    shade = None if reach <= 0 else _shade_template(distance_m, shadow_px, reach, cell_m=fine * pixel_size_m)

    def at(grid: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(grid, [(rows - lo[1]) / fine, (cols - lo[0]) / fine], order=1, mode="nearest")

    _, rows_n, cols_n = data.shape
    r0, c0 = max(int(lo[1]), 0), max(int(lo[0]), 0)
    r1, c1 = min(int(np.ceil(hi[1])), rows_n), min(int(np.ceil(hi[0])), cols_n)
    rr, cc = np.mgrid[r0:r1, c0:c1]
    cols, rows = cc.ravel() + 0.5, rr.ravel() + 0.5
    window = at(distance_m, cols, rows) <= max_shift_m + BED_HALF_WIDTH_M + reach + 3.0 * max(pixel_size_m, 1.0)
    if window.sum() < 50:
        return None
    cols, rows = cols[window], rows[window]
    values = data[:, rr.ravel()[window], cc.ravel()[window]].astype(np.float64)
    values = values - values.mean(axis=1, keepdims=True)
    variance = np.maximum((values**2).sum(axis=1), 1e-12)

    def score(shifts: np.ndarray) -> np.ndarray:
        out = np.empty(len(shifts))
        for i, (dx, dy) in enumerate(shifts):
            # coverage of a pixel by the beds: 1 inside, 0 outside, ramping across one pixel
            d = at(distance_m, cols - dx, rows - dy)
            templates = [np.clip((BED_HALF_WIDTH_M - d) / pixel_size_m + 0.5, 0.0, 1.0)]
            if shade is not None:
                templates.append(np.clip(at(shade, cols - dx, rows - dy), 0.0, 1.0))
            design = np.column_stack(templates)
            design -= design.mean(axis=0)
            coef, *_ = np.linalg.lstsq(design, values.T, rcond=None)
            out[i] = float((((design @ coef) ** 2).sum(axis=0) / variance).sum())
        return out

    return score
