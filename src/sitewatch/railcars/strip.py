"""Track strips: an image resampled along a track line, and the line slid onto the track.

Geometry convention: track lines arrive in pixel coordinates of the image as ``(col, row)``
with rasterio's convention that ``(0, 0)`` is the outer corner of the top-left pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

STEP_M = 0.25  # strip sampling step along and across the track


@dataclass
class TrackStrip:
    """An image resampled along one track.

    Attributes
    ----------
    values : ndarray of shape (B, L, W), float32
        Band values at ``L`` positions along the track and ``W`` offsets across it.
    along_m : ndarray of shape (L,)
        Distance along the track line of each row of the strip, metres (negative before
        the line's start, beyond its length after its end).
    across_m : ndarray of shape (W,)
        Offset of each column from the line, metres (positive to the right of travel).
    centre_px, normal_px : ndarray of shape (L, 2)
        Pixel coordinates (col, row) of the line at each position, and the unit normal
        (towards positive offsets) in pixel units.
    line_length_m : float
        Length of the track line itself.
    """

    values: np.ndarray
    along_m: np.ndarray
    across_m: np.ndarray
    centre_px: np.ndarray
    normal_px: np.ndarray
    line_length_m: float


def _resample_polyline(coords: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step`` along a polyline, and the distance of each from its start."""
    seg = np.diff(coords, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    keep = np.concatenate([[True], seg_len > 1e-9])
    coords = coords[keep]
    cum = np.concatenate([[0.0], np.cumsum(seg_len[seg_len > 1e-9])])
    dist = np.arange(0.0, cum[-1] + 1e-9, step)
    pts = np.column_stack([np.interp(dist, cum, coords[:, 0]), np.interp(dist, cum, coords[:, 1])])
    return pts, dist


def sample_strip(
    image: np.ndarray,
    line_px: np.ndarray,
    *,
    pixel_size_m: float,
    half_width_m: float,
    extend_m: float = 0.0,
    step_m: float = STEP_M,
) -> TrackStrip:
    """Resample ``image`` into a straightened strip along a track line.

    Parameters
    ----------
    image : ndarray of shape (B, M, N)
        The image, any numeric dtype.
    line_px : ndarray of shape (K, 2)
        Track vertices as pixel coordinates (col, row), K >= 2.
    pixel_size_m : float
        Ground size of a pixel, metres.
    half_width_m : float
        The strip covers offsets from ``-half_width_m`` to ``+half_width_m``.
    extend_m : float
        Also sample this far beyond both ends of the line, along its end directions.
    step_m : float
        Sampling step along and across, metres.

    Returns
    -------
    TrackStrip
    """
    step_px = step_m / pixel_size_m
    pts, dist = _resample_polyline(np.asarray(line_px, dtype=np.float64), step_px)
    if len(pts) < 2:
        raise ValueError("track line is shorter than one sampling step")
    # tangents from a smoothed copy, so polyline corners do not kink the strip
    smooth = ndimage.gaussian_filter1d(pts, sigma=max(1.0, 2.0 / step_m), axis=0, mode="nearest")
    tangent = np.gradient(smooth, axis=0)
    tangent /= np.maximum(np.hypot(tangent[:, 0], tangent[:, 1])[:, None], 1e-12)
    n_ext = int(round(extend_m / step_m))
    if n_ext:
        k = np.arange(1, n_ext + 1)[:, None] * step_px
        before = pts[0] - k[::-1] * tangent[0]
        after = pts[-1] + k * tangent[-1]
        pts = np.vstack([before, pts, after])
        tangent = np.vstack([np.repeat(tangent[:1], n_ext, 0), tangent, np.repeat(tangent[-1:], n_ext, 0)])
    along = (np.arange(len(pts)) - n_ext) * step_m
    # right-hand normal in image space (rows point down, so this is the right of travel on the ground)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    across = np.arange(-half_width_m, half_width_m + 1e-9, step_m)
    off_px = across / pixel_size_m
    cols = pts[:, 0, None] + normal[:, 0, None] * off_px[None, :] - 0.5
    rows = pts[:, 1, None] + normal[:, 1, None] * off_px[None, :] - 0.5
    values = np.stack(
        [
            ndimage.map_coordinates(band.astype(np.float32, copy=False), [rows, cols], order=1, mode="nearest")
            for band in image
        ]
    ).astype(np.float32)
    return TrackStrip(values, along, across, pts, normal, float(dist[-1] * pixel_size_m))


# Seen from above, a track is symmetric about its centre out to the ballast shoulders: rails,
# car sides, the bed's edges.  Alignment looks for the offset about which the strip is most
# mirror-symmetric *relative to how much structure there is*, so that featureless ground
# (symmetric but empty) does not win.  Where rails are visible, :mod:`.rails` does better.


# The symmetry window's half-width: narrow enough to leave out most of a car's shadow (which
# would pull the centre toward it), wide enough to hold the car sides (SYMMETRY_MIN_HALF_M)
# and, on coarse pixels, a few pixels of context (SYMMETRY_BASE_M plus SYMMETRY_PER_PIXEL
# metres per metre of pixel).
SYMMETRY_MIN_HALF_M = 1.8
SYMMETRY_BASE_M = 1.4
SYMMETRY_PER_PIXEL = 0.6


def _symmetry_half_width_m(pixel_size_m: float) -> float:
    return max(SYMMETRY_MIN_HALF_M, SYMMETRY_BASE_M + SYMMETRY_PER_PIXEL * pixel_size_m)


def _symmetry_terms(strip: TrackStrip, pixel_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetry and structure of the strip about each candidate centre offset.

    Returns two arrays of shape (L, W): the summed colour difference between the strip at
    ``c + u`` and ``c - u`` over ``0 < u <= w`` (w from :func:`_symmetry_half_width_m`), and the
    summed difference of both from the value at ``c`` (zero where the window does not fit).
    """
    step = float(strip.across_m[1] - strip.across_m[0])
    values = strip.values
    W = values.shape[2]
    K = int(round(_symmetry_half_width_m(pixel_size_m) / step))
    centre = values[:, :, K : W - K]
    asym = np.zeros(centre.shape[1:], np.float32)
    struct = np.zeros_like(asym)
    for k in range(1, K + 1):
        right = values[:, :, K + k : W - K + k]
        left = values[:, :, K - k : W - K - k]
        asym += np.sqrt(((right - left) ** 2).sum(axis=0))
        struct += 0.5 * (np.sqrt(((right - centre) ** 2).sum(axis=0)) + np.sqrt(((left - centre) ** 2).sum(axis=0)))
    pad = ((0, 0), (K, K))
    return np.pad(asym, pad), np.pad(struct, pad)


def best_shift(
    score: Callable[[np.ndarray], np.ndarray], radius: float, stages: tuple[tuple[float, float], ...]
) -> tuple[float, float]:
    """Coarse-to-fine grid search for the 2-D shift maximising ``score``.

    Each stage is (half-width, grid step) around the last stage's best, starting at zero; no
    shift beyond ``radius`` from zero is tried.  Units are the caller's (pixels or metres).
    """
    best = np.zeros(2)
    for half_width, grid_step in stages:
        g = np.arange(-half_width, half_width + 1e-9, grid_step)
        cand = best + np.array(np.meshgrid(g, g)).reshape(2, -1).T
        cand = cand[np.hypot(*cand.T) <= radius + 1e-9]
        if len(cand):
            best = cand[int(np.argmax(score(cand)))]
    return float(best[0]), float(best[1])


def align_tracks(
    strips: list[TrackStrip],
    *,
    pixel_size_m: float,
    max_shift_m: float,
    max_track_residual_m: float = 0.3,
    common_shift_px: tuple[float, float] | None = None,
) -> tuple[list[np.ndarray], tuple[float, float]]:
    """Find where the real tracks are, relative to their lines.

    A common shift (the AOI drawn on a slightly misregistered basemap) is searched in 2-D
    over all tracks at once, so parallel tracks a few metres apart cannot each jump to a
    neighbour; then each track may move a little more on its own.

    Parameters
    ----------
    strips : list of TrackStrip
        Wide strips (half-width at least ``max_shift_m + max_track_residual_m + 2.5`` m).
    pixel_size_m : float
        Ground size of a pixel, metres.
    max_shift_m : float
        Largest common shift considered, metres.
    max_track_residual_m : float
        Largest further sideways move of one track, metres.
    common_shift_px : (float, float), optional
        The common shift, when something else has found it (:func:`.bed.align_to_bed`);
        then only each track's own move is searched.

    Returns
    -------
    offsets : list of ndarray of shape (L,)
        For each strip, the offset (metres across) of the track centre at each position.
    shift_px : (float, float)
        The common shift found, in pixels (columns, rows).
    """
    terms = [_symmetry_terms(s, pixel_size_m) for s in strips]
    step = float(strips[0].across_m[1] - strips[0].across_m[0])

    def gather(i: int, off: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = strips[i]
        asym, struct = terms[i]
        idx = np.clip(np.rint((off - s.across_m[0]) / step).astype(int), 0, asym.shape[1] - 1)
        rows = np.flatnonzero(inside)[None, :]
        return asym[rows, idx].sum(axis=-1), struct[rows, idx].sum(axis=-1)

    def cost(shift: np.ndarray) -> np.ndarray:
        """Relative asymmetry for each candidate shift of shape (S, 2), metres along (col, row)."""
        asym_total = np.zeros(len(shift))
        struct_total = np.zeros(len(shift))
        for i, s in enumerate(strips):
            inside = (s.along_m >= 0) & (s.along_m <= s.line_length_m)
            a, b = gather(i, shift @ s.normal_px[inside].T, inside)
            asym_total += a
            struct_total += b
        return asym_total / np.maximum(struct_total, 1e-9)

    if common_shift_px is not None:
        best = np.asarray(common_shift_px, float) * pixel_size_m
    else:
        best = np.array(
            best_shift(
                lambda cand: -cost(cand),
                max_shift_m,
                ((max_shift_m, max(step, max_shift_m / 12)), (1.0, step), (0.25, step / 2)),
            )
        )
    offsets = []
    residual_grid = np.arange(-max_track_residual_m, max_track_residual_m + 1e-9, step)
    for i, s in enumerate(strips):
        base = s.normal_px @ best
        inside = (s.along_m >= 0) & (s.along_m <= s.line_length_m)
        a, b = gather(i, base[None, inside] + residual_grid[:, None], inside)
        offsets.append(base + residual_grid[int(np.argmin(a / np.maximum(b, 1e-9)))])
    return offsets, (float(best[0] / pixel_size_m), float(best[1] / pixel_size_m))


def centred_strip(strip: TrackStrip, offsets_m: np.ndarray, half_width_m: float, *, pixel_size_m: float) -> TrackStrip:
    """The part of ``strip`` within ``half_width_m`` of the track centre found at each position."""
    step = float(strip.across_m[1] - strip.across_m[0])
    across = np.arange(-half_width_m, half_width_m + 1e-9, step)
    idx = np.rint((offsets_m[:, None] + across[None, :] - strip.across_m[0]) / step).astype(int)
    idx = np.clip(idx, 0, strip.values.shape[2] - 1)
    values = np.take_along_axis(strip.values, np.broadcast_to(idx[None], (strip.values.shape[0],) + idx.shape), axis=2)
    return TrackStrip(
        values,
        strip.along_m,
        across,
        strip.centre_px + strip.normal_px * offsets_m[:, None] / pixel_size_m,
        strip.normal_px,
        strip.line_length_m,
    )


def sample_across(image: np.ndarray, strip: TrackStrip, offsets_m: np.ndarray, *, pixel_size_m: float) -> np.ndarray:
    """Image values at given offsets across each position of a strip's line, shape (B, L, U).

    ``offsets_m`` has shape (L, U): metres across (positive to the right of travel) from the
    strip's centre line at each position, as many per position as needed.
    """
    off = offsets_m / pixel_size_m
    cols = strip.centre_px[:, 0, None] + strip.normal_px[:, 0, None] * off - 0.5
    rows = strip.centre_px[:, 1, None] + strip.normal_px[:, 1, None] * off - 0.5
    return np.stack(
        [
            ndimage.map_coordinates(band.astype(np.float32, copy=False), [rows, cols], order=1, mode="nearest")
            for band in image
        ]
    )


def band_mean(strip: TrackStrip, lo_m: float, hi_m: float, side: int = 0) -> np.ndarray:
    """Mean of the strip over offsets with ``lo_m <= |offset| <= hi_m`` (one side if ``side`` is ±1), shape (B, L)."""
    across = strip.across_m if side == 0 else side * strip.across_m
    dist = np.abs(across) if side == 0 else across
    keep = (dist >= lo_m - 1e-9) & (dist <= hi_m + 1e-9)
    return strip.values[:, :, keep].mean(axis=2)


def colour_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between colours along the first axis."""
    return np.sqrt(((a - b) ** 2).sum(axis=0))
