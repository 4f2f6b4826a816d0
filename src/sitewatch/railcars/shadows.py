"""Neighbours' shadows: where a train on one track darkens the empty track beside it.

On pixels too coarse to show rails (:mod:`.rails`), a shadow lying across empty track is
only a colour, and a dark or grey car is nearly the same colour.  What tells them apart is
geometry.  A shadow lies on the side of a train away from the sun and reaches a certain
distance across the tracks; both are read from the image (the ballast beside confidently
occupied track is darker on the side away from the sun, out to the shadow's reach).  Tracks
are then counted from the sun's side outward, so each track's cars are known before the
track they shade, and for every position of a track this module says

* whether a neighbour's shadow reaches its middle, and so may explain a shadow colour there;
* where, beyond the track on the side away from the sun, a car of its own would cast shadow
  that the neighbour's shadow does not reach: dark there means a car, lit means none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .strip import TrackStrip, band_mean, sample_across

CAR_SIDE_M = 1.55  # track centre to a car's side
# beside a car, where its shadow falls first
SHADOW_BAND_M = (1.8, 3.3)
# the band tested for a track's own shadow: its width, and the margin kept from the far
# edge of a neighbour's shadow
OWN_BAND_START_M = 1.8
OWN_BAND_WIDTH_M = 0.8
OWN_BAND_MARGIN_M = 0.6
# the farthest across a shadow is looked for (a 4.6 m car under a 25 degree sun casts 9.9 m)
MAX_REACH_M = 11.0
# a shadow's reach where the image does not show it (no lone track with cars, no sun side)
DEFAULT_REACH_M = 4.0
# how much further along the lit-to-shade line than lit ground of its kind shadow must lie
SHADOW_DARKENING = 0.3
# the shadow's along-track slant and length: a neighbour's car this far along still counts
SHADOW_SLANT_M = 4.0
# share of confidently occupied positions whose sides must differ before the sun is placed
MIN_SIDEDNESS = 0.05
# positions needed on each side of the comparison before a reach is believed
MIN_REACH_SAMPLES = 40

# A track lies in a neighbour's shadow where the shadow's far edge reaches past this far on
# the near side of its centre (the centre band's half-width).
SHADOWED_FROM_M = 0.9
# Neighbours are looked for out to the shadows' reach beyond a car's side and this margin.
NEIGHBOUR_MARGIN_M = 1.0
# Samples across a band beside the track (averaged).
BAND_SAMPLES = 5


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


def _open_ground(
    k: int, strips: list[TrackStrip], occupied: list[np.ndarray], direction: np.ndarray, reach_px: float
) -> np.ndarray:
    """Positions of track ``k`` with no confidently occupied track within ``reach_px`` on the shadow side."""
    here = strips[k].centre_px
    open_ = np.ones(len(here), bool)
    for j, other in enumerate(strips):
        if j == k or not occupied[j].any():
            continue
        step = float(other.along_m[1] - other.along_m[0])
        grown = ndimage.binary_dilation(occupied[j], np.ones(2 * int(round(SHADOW_SLANT_M / step)) + 1, bool))
        dist, idx = cKDTree(other.centre_px).query(here, distance_upper_bound=reach_px)
        near = np.isfinite(dist)
        idx = np.minimum(idx, len(other.centre_px) - 1)
        ahead = ((other.centre_px[idx] - here) @ direction) > 0
        open_ &= ~(near & ahead & grown[idx])
    return open_


def shadow_reach(
    data: np.ndarray,
    strips: list[TrackStrip],
    occupied: list[np.ndarray],
    empty: list[np.ndarray],
    direction: np.ndarray,
    shade_fraction,
    *,
    pixel_size_m: float,
) -> float | None:
    """How far shadows reach beyond a car's side, across the tracks, metres.

    Read where nothing stands beside a track on the shadow side (no other track, or one
    without cars there): the ground there is compared between confidently occupied and
    confidently empty positions, outward from the car's side, until the two no longer differ.

    Parameters
    ----------
    data : ndarray of shape (B, M, N)
    strips : list of TrackStrip
        Centred strips.
    occupied, empty : list of ndarray of bool
        Confidently occupied and confidently empty positions, per strip.
    direction : ndarray of shape (2,)
        :func:`shadow_direction`.
    shade_fraction : callable
        Colours (B, N) to their place on the lit-to-shade line, :meth:`.evidence.Ground.shade_fraction`.
    pixel_size_m : float

    Returns
    -------
    float or None
        None where no track shows enough of both.
    """
    across = np.arange(SHADOW_BAND_M[0], CAR_SIDE_M + MAX_REACH_M, 0.25)
    reaches, weights = [], []
    for k, s in enumerate(strips):
        clear = _open_ground(k, strips, occupied, direction, (MAX_REACH_M + CAR_SIDE_M) / pixel_size_m)
        occ, emp = occupied[k] & clear, empty[k]
        if occ.sum() < MIN_REACH_SAMPLES or emp.sum() < MIN_REACH_SAMPLES:
            continue
        side = np.sign(s.normal_px @ direction)
        colours = sample_across(data, s, side[:, None] * across[None, :], pixel_size_m=pixel_size_m)  # (B, L, U)
        t = shade_fraction(colours.reshape(colours.shape[0], -1)).reshape(colours.shape[1:])
        darker = np.percentile(t[occ], 75, axis=0) - np.median(t[emp], axis=0) > SHADOW_DARKENING
        # next to the car's side its own colour blurs in: the shadow may start a little out
        dark = np.flatnonzero(darker)
        if len(dark) == 0 or across[dark[0]] > SHADOW_BAND_M[1]:
            continue
        lit_again = np.flatnonzero(~darker[dark[0] :])
        last = dark[0] + (lit_again[0] if len(lit_again) else len(across) - dark[0]) - 1
        reaches.append(across[last] - CAR_SIDE_M)
        weights.append(float(occ.sum()))
    if not reaches:
        return None
    return float(np.average(reaches, weights=weights))


@dataclass
class ShadowView:
    """What a neighbour's shadow does to one track, per position (arrays of length L).

    Attributes
    ----------
    shadowed : ndarray of bool
        A neighbour's shadow reaches the middle of the track here.
    beyond : ndarray of shape (B, L)
        Colour beyond the track on the shadow side, where a car on this track would cast
        shadow and a neighbour's shadow does not reach.
    testable : ndarray of bool
        Whether ``beyond`` lies within this track's own shadow's reach at all.
    sunward : ndarray of shape (B, L)
        Colour just beyond a car's side toward the sun.
    far_edge_m : ndarray
        How far past the track's centre a neighbour's shadow reaches, toward the shadow
        side (-inf where none does).
    """

    shadowed: np.ndarray
    beyond: np.ndarray
    testable: np.ndarray
    sunward: np.ndarray
    far_edge_m: np.ndarray

    @classmethod
    def nowhere(cls, bands: int, length: int) -> ShadowView:
        """No neighbour's shadow anywhere and no own shadow to test: colour alone decides."""
        never = np.zeros(length, bool)
        return cls(never, np.zeros((bands, length)), never, np.zeros((bands, length)), np.full(length, -np.inf))


def shadow_view(
    data: np.ndarray,
    k: int,
    strips: list[TrackStrip],
    occupied: dict[int, np.ndarray],
    direction: np.ndarray,
    reach_m: float,
    *,
    pixel_size_m: float,
) -> ShadowView:
    """Where neighbours' shadows lie on track ``k``, and where to look for its own.

    Parameters
    ----------
    data : ndarray of shape (B, M, N)
    k : int
        The track to look at.
    strips : list of TrackStrip
        Centred strips of all tracks.
    occupied : dict of int to ndarray of bool
        Per-position car cover of the tracks counted so far.
    direction : ndarray of shape (2,)
        :func:`shadow_direction`.
    reach_m : float
        :func:`shadow_reach`.
    pixel_size_m : float
    """
    strip = strips[k]
    here = strip.centre_px
    far_edge = np.full(len(here), -np.inf)  # of a neighbour's shadow, metres toward the shadow side
    limit = (reach_m + CAR_SIDE_M + NEIGHBOUR_MARGIN_M) / pixel_size_m
    for j, occ in occupied.items():
        if j == k or not occ.any():
            continue
        step = float(strips[j].along_m[1] - strips[j].along_m[0])
        grown = ndimage.binary_dilation(occ, np.ones(2 * int(round(SHADOW_SLANT_M / step)) + 1, bool))
        dist, idx = cKDTree(strips[j].centre_px).query(here, distance_upper_bound=limit)
        near = np.isfinite(dist)
        idx = np.minimum(idx, len(occ) - 1)
        # the neighbour lies toward the sun: from it, this track is in the shadows' direction
        downsun = ((here - strips[j].centre_px[idx]) @ direction) > 0
        edge = reach_m + CAR_SIDE_M - np.where(near, dist, np.inf) * pixel_size_m
        far_edge = np.where(near & downsun & grown[idx], np.maximum(far_edge, edge), far_edge)
    shadowed = far_edge > -SHADOWED_FROM_M
    # on coarse pixels the band must clear the pixel that holds the car itself
    lo = np.maximum(max(OWN_BAND_START_M, pixel_size_m), np.where(shadowed, far_edge + OWN_BAND_MARGIN_M, -np.inf))
    side = np.sign(strip.normal_px @ direction)
    offsets = side[:, None] * (lo[:, None] + np.linspace(0.0, OWN_BAND_WIDTH_M, BAND_SAMPLES)[None, :])
    beyond = sample_across(data, strip, offsets, pixel_size_m=pixel_size_m).mean(axis=2)
    sun_offsets = (
        -side[:, None] * np.linspace(SHADOW_BAND_M[0], SHADOW_BAND_M[0] + OWN_BAND_WIDTH_M, BAND_SAMPLES)[None, :]
    )
    sunward = sample_across(data, strip, sun_offsets, pixel_size_m=pixel_size_m).mean(axis=2)
    testable = lo + 0.5 * OWN_BAND_WIDTH_M < reach_m + CAR_SIDE_M
    return ShadowView(shadowed, beyond, testable, sunward, far_edge)
