"""Neighbours' shadows: where a train on one track darkens the empty track beside it.

On pixels too coarse to show rails (:mod:`.rails`), a shadow lying across empty track is
only a colour, and a dark or grey car is nearly the same colour.  What tells them apart is
where they are: a shadow lies on the side of a train away from the sun, so a shadow-coloured
stretch of track is taken for shadow only where a neighbouring track on the sun's side
holds cars there.  The sun's side is read from the image: the ballast beside confidently
occupied track is darker on the side away from the sun.  Tracks are then counted from the
sun's side outward, so each track's cars are known before the track they shade.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .strip import TrackStrip, band_mean

# beside a car (whose body ends 1.55 m from the centre), where its shadow falls first
SHADOW_BAND_M = (1.8, 3.3)
# how far across a neighbour's shadow may reach (a 4.5 m car under a 25 degree sun)
SHADOW_REACH_M = 10.0
# the shadow's along-track slant and length: a neighbour's car this far along still counts
SHADOW_SLANT_M = 4.0
# share of confidently occupied positions whose sides must differ before the sun is placed
MIN_SIDEDNESS = 0.05


def shadow_direction(strips: list[TrackStrip], occupied: list[np.ndarray]) -> np.ndarray | None:
    """The direction shadows fall in, as a unit vector in pixel coordinates (col, row).

    Parameters
    ----------
    strips : list of TrackStrip
        Centred strips (half-width beyond ``SHADOW_BAND_M``).
    occupied : list of ndarray of bool, shape (L_i,)
        Positions confidently under a car, per strip.

    Returns
    -------
    ndarray of shape (2,) or None
        None where no side is consistently darker (a sun along the tracks, or no cars).
    """
    total = np.zeros(2)
    weight = 0.0
    for strip, occ in zip(strips, occupied):
        if not occ.any():
            continue
        left = band_mean(strip, *SHADOW_BAND_M, side=-1).mean(axis=0)
        right = band_mean(strip, *SHADOW_BAND_M, side=1).mean(axis=0)
        darker_right = (left - right)[occ]
        total += (darker_right[:, None] * strip.normal_px[occ]).sum(axis=0)
        weight += float(np.abs(darker_right).sum())
    norm = float(np.hypot(*total))
    if weight <= 0 or norm < MIN_SIDEDNESS * weight:
        return None
    return total / norm


def sun_first_order(strips: list[TrackStrip], direction: np.ndarray | None) -> list[int]:
    """Track indices ordered from the sun's side outward (input order without a direction)."""
    if direction is None:
        return list(range(len(strips)))
    depth = [float(np.median(s.centre_px @ direction)) for s in strips]
    return [int(i) for i in np.argsort(depth, kind="stable")]


def neighbour_shadow(k: int, strips: list[TrackStrip], occupied: dict[int, np.ndarray], direction: np.ndarray,
                     *, pixel_size_m: float) -> np.ndarray:
    """Positions of track ``k`` where a neighbour's shadow may lie, shape (L_k,).

    A position qualifies where a track already counted lies within ``SHADOW_REACH_M`` on the
    sun's side and holds a car within ``SHADOW_SLANT_M`` along.

    Parameters
    ----------
    k : int
        The track to look at.
    strips : list of TrackStrip
        Centred strips of all tracks.
    occupied : dict of int to ndarray of bool
        Per-position car cover of the tracks counted so far.
    direction : ndarray of shape (2,)
        :func:`shadow_direction`.
    pixel_size_m : float
    """
    here = strips[k].centre_px
    mask = np.zeros(len(here), bool)
    reach = SHADOW_REACH_M / pixel_size_m
    for j, occ in occupied.items():
        if j == k or not occ.any():
            continue
        step = float(strips[j].along_m[1] - strips[j].along_m[0])
        grown = ndimage.binary_dilation(occ, np.ones(2 * int(round(SHADOW_SLANT_M / step)) + 1, bool))
        dist, idx = cKDTree(strips[j].centre_px).query(here, distance_upper_bound=reach)
        near = np.isfinite(dist)
        idx = np.minimum(idx, len(occ) - 1)
        # the neighbour lies toward the sun: from it, this track is in the shadows' direction
        downsun = ((here - strips[j].centre_px[idx]) @ direction) > 0
        mask |= near & downsun & grown[idx]
    return mask
