"""Rails: two dark lines about 1.5 m apart down the middle of every empty track.

Seen from 0.3-0.5 m pixels wherever the track is empty, in sunlight and in shadow, and never
on a car's roof, rails are the surest sign of empty track: they tell a neighbour's shadow
lying across empty track from a dark car, and they place the track line to a few
centimetres.  Pixels coarser than :data:`RAIL_MAX_PIXEL_M` blur them away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .strip import STEP_M, TrackStrip, best_shift

RAIL_OFFSET_M = 0.74  # rail centres either side of the track centre (1435 and 1520 mm gauge)
RAIL_MAX_PIXEL_M = 0.6  # coarser pixels do not resolve a rail head
RAIL_WINDOW_M = 1.15  # the pair is matched over the bed to here; a car's sides (1.55 m) stay out
RAIL_SIDE_WINDOW_M = 0.45  # each rail on its own, over this much either side of it
RAIL_LOCAL_M = 0.2  # how far the rails may wander from a track's fitted centre
RAIL_SHARPENING = 0.5  # correlation taken off per metre of pixel finer than 0.5 m (see below)
# correlation from "says nothing" to "rails certainly visible"; and from "says nothing" to
# "rails certainly hidden"
RAIL_VISIBLE = (0.3, 0.55)
RAIL_HIDDEN = (-0.05, -0.25)
RAIL_MIN_SEEN = 0.1  # share of the track length showing rails before they are trusted
# The rails' fit is searched every RAIL_SEARCH_STEP_M across the tracks; the common shift on
# a coarse-to-fine grid: the whole range in about RAIL_COARSE_STEPS steps (no finer than
# RAIL_COARSE_MIN_STEP_M), then RAIL_FINE_HALF_M around the best in search steps, then
# RAIL_FINEST_HALF_M in half steps (a rail's position is known to a few centimetres).
RAIL_SEARCH_STEP_M = 0.05
RAIL_COARSE_STEPS = 15
RAIL_COARSE_MIN_STEP_M = 0.1
RAIL_FINE_HALF_M = 0.3
RAIL_FINEST_HALF_M = 0.06


def cross_profiles(
    data: np.ndarray,
    strip: TrackStrip,
    offsets_m: np.ndarray,
    *,
    pixel_size_m: float,
    half_width_m: float = 1.4,
    step_m: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Brightness profiles across the track, finely sampled about given centre offsets.

    Parameters
    ----------
    data : ndarray of shape (B, M, N)
        The image (bands on a common scale).
    strip : TrackStrip
        Gives the line's points and normals.
    offsets_m : ndarray of shape (L,)
        Centre of the profile at each position, metres across from the line.

    Returns
    -------
    profiles : ndarray of shape (L, U)
        Mean of all bands.
    across_m : ndarray of shape (U,)
        Offset of each sample from the centre.
    """
    across = np.arange(-half_width_m, half_width_m + 1e-9, step_m)
    off = (offsets_m[:, None] + across[None, :]) / pixel_size_m
    cols = strip.centre_px[:, 0, None] + strip.normal_px[:, 0, None] * off - 0.5
    rows = strip.centre_px[:, 1, None] + strip.normal_px[:, 1, None] * off - 0.5
    grey = data.mean(axis=0)
    return ndimage.map_coordinates(grey, [rows, cols], order=1, mode="nearest"), across


def rail_correlation(
    profiles: np.ndarray,
    across_m: np.ndarray,
    shifts_m: np.ndarray,
    *,
    pixel_size_m: float,
    smooth_m: float = 1.5,
    step_m: float = STEP_M,
) -> np.ndarray:
    """How much each profile looks like a pair of rails centred at each shift, shape (S, L).

    Profiles are averaged over ``smooth_m`` along the track first.  A rail is a Gaussian dip
    as wide as a rail head blurred by the pixel.  The result is the smallest of three
    correlation coefficients, so it is near 1 only where both rails show:

    * the pair, over the bed between and just beyond the rails (a car's sides stay outside);
    * each rail on its own, so that one rail and the bed's edge, or the strip of ground
      between two beds, do not pass for a pair.

    Correlation does not care about brightness or contrast, so rails in shadow count.
    """
    prof = ndimage.uniform_filter1d(profiles, max(1, int(round(smooth_m / step_m))), axis=0, mode="nearest")
    sigma = float(np.hypot(0.12, 0.6 * pixel_size_m))

    def corr(centre: float, half: float, dips: tuple[float, ...]) -> np.ndarray:
        window = np.abs(across_m - centre) <= half
        u = across_m[window]
        t = -sum(np.exp(-0.5 * ((u - x) / sigma) ** 2) for x in dips)
        t = t - t.mean()
        p = prof[:, window] - prof[:, window].mean(axis=1, keepdims=True)
        return (p @ (t / np.linalg.norm(t))) / np.maximum(np.linalg.norm(p, axis=1), 1e-9)

    out = np.empty((len(shifts_m), len(prof)), np.float32)
    for k, d in enumerate(shifts_m):
        pair = corr(d, RAIL_WINDOW_M, (d - RAIL_OFFSET_M, d + RAIL_OFFSET_M))
        left = corr(d - RAIL_OFFSET_M, RAIL_SIDE_WINDOW_M, (d - RAIL_OFFSET_M,))
        right = corr(d + RAIL_OFFSET_M, RAIL_SIDE_WINDOW_M, (d + RAIL_OFFSET_M,))
        out[k] = np.minimum(pair, np.minimum(left, right))
    return out


def rail_visibility(correlation: np.ndarray) -> np.ndarray:
    """0 where a rail correlation says nothing, rising to 1 where rails are certainly visible."""
    lo, hi = RAIL_VISIBLE
    return np.clip((correlation - lo) / (hi - lo), 0.0, 1.0)


def rails_hidden(correlation: np.ndarray) -> np.ndarray:
    """0 where a rail correlation says nothing, rising to 1 where something certainly covers the rails."""
    lo, hi = RAIL_HIDDEN
    return np.clip((lo - correlation) / (lo - hi), 0.0, 1.0)


@dataclass
class RailFit:
    """Tracks placed on their rails.

    Attributes
    ----------
    offsets : list of ndarray of shape (L,)
        For each track, the offset (metres across from its line) of the rails' centre at
        each position.
    rails : list of ndarray of shape (L,)
        For each track, the rail correlation there (near 1: rails visible).
    shift_px : (float, float)
        The common shift of the lines found, in pixels (columns, rows).
    seen : float
        Share of the tracks' length on which rails are clearly visible at the fit.
    """

    offsets: list[np.ndarray]
    rails: list[np.ndarray]
    shift_px: tuple[float, float]
    seen: float


def align_to_rails(
    data: np.ndarray,
    strips: list[TrackStrip],
    *,
    pixel_size_m: float,
    max_shift_m: float,
    max_track_residual_m: float = 0.6,
) -> RailFit:
    """Find where the tracks are from their rails: one common shift, then a little per track.

    Like :func:`.strip.align_tracks`, a common shift (the AOI drawn over a misregistered
    basemap) is searched in 2-D over all tracks at once, and then each track may move a
    little on its own (``max_track_residual_m``: lines drawn by hand are each a few tenths
    of a metre off).  A candidate scores by how much of the tracks' length shows rails there
    (a count, not a sum of correlations, so a track full of cars, all noise, cannot outvote
    one showing rails).  Neighbours' shadows, which can make a yard look symmetric about a
    line between two tracks, do not mislead it.

    Parameters
    ----------
    data : ndarray of shape (B, M, N)
    strips : list of TrackStrip
        One per track; their lines and normals are used.
    pixel_size_m : float
    max_shift_m : float
        Largest common shift considered, metres.
    max_track_residual_m : float
        Largest further sideways move of one track, metres.
    """
    step = RAIL_SEARCH_STEP_M
    reach = max_shift_m + max_track_residual_m + RAIL_LOCAL_M
    grid = np.arange(-reach, reach + 1e-9, step)
    # finer pixels resolve rails more sharply, and give anything narrow on a car a higher
    # correlation too: the bar rises with them
    sharpening = RAIL_SHARPENING * max(0.0, 0.5 - pixel_size_m)
    tables, insides = [], []
    for s in strips:
        profiles, across = cross_profiles(
            data,
            s,
            np.zeros(len(s.along_m)),
            pixel_size_m=pixel_size_m,
            half_width_m=reach + RAIL_WINDOW_M + step,
            step_m=step,
        )
        tables.append(rail_correlation(profiles, across, grid, pixel_size_m=pixel_size_m) - sharpening)
        insides.append((s.along_m >= 0) & (s.along_m <= s.line_length_m))

    def lookup(i: int, off: np.ndarray) -> np.ndarray:
        """Correlation of track ``i`` at offsets of shape (..., L)."""
        idx = np.clip(np.rint((off + reach) / step).astype(int), 0, len(grid) - 1)
        return tables[i][idx, np.arange(idx.shape[-1])]

    def seen(shift: np.ndarray) -> np.ndarray:
        total = np.zeros(len(shift))
        for i, s in enumerate(strips):
            total += rail_visibility(lookup(i, shift @ s.normal_px.T)[:, insides[i]]).sum(axis=1)
        return total / max(sum(int(m.sum()) for m in insides), 1)

    stages = (
        (max_shift_m, max(RAIL_COARSE_MIN_STEP_M, max_shift_m / RAIL_COARSE_STEPS)),
        (RAIL_FINE_HALF_M, step),
        (RAIL_FINEST_HALF_M, step / 2),
    )
    best = np.array(best_shift(seen, max_shift_m, stages))

    offsets, rails = [], []
    residual = np.arange(-max_track_residual_m, max_track_residual_m + 1e-9, step)
    local = np.arange(-RAIL_LOCAL_M, RAIL_LOCAL_M + 1e-9, step)
    for i, s in enumerate(strips):
        base = s.normal_px @ best
        fit = rail_visibility(lookup(i, base[None, :] + residual[:, None])[:, insides[i]]).mean(axis=1)
        # a track full of cars shows no rails: its own residual would be noise
        off = base + (residual[int(np.argmax(fit))] if fit.max() >= RAIL_MIN_SEEN else 0.0)
        offsets.append(off)
        rails.append(lookup(i, off[None, :] + local[:, None]).max(axis=0))
    inside = np.concatenate(insides)
    share = float(np.mean(np.concatenate(rails)[inside] >= RAIL_VISIBLE[1]))
    return RailFit(offsets, rails, (float(best[0] / pixel_size_m), float(best[1] / pixel_size_m)), share)
