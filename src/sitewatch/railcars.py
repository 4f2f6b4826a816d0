"""Railcar counting along track centrelines: pure NumPy/SciPy on arrays.

The image is resampled along each track into a straightened strip (along x cross-track),
the strip is slid sideways onto the real track (AOI centrelines are often a few pixels off),
and each along-track position gets two kinds of evidence:

* occupancy: how unlike empty ballast the track is there, and whether it has car-like
  edges 1.5 m either side of the centre (a car's sides, and its shadow on one of them);
* boundary: how much the track changes over about a metre (the coupler gap between two cars,
  or the step from one car's colour to the next).

A semi-Markov dynamic programme then cuts the track into empty stretches and cars whose
lengths lie in the freight-car range, rewarding cuts at boundaries and penalising lengths far
from the nominal.  Where the pixel is too coarse to see a one-metre gap, the count is the
occupied length divided by the nominal car pitch instead, and the result says so.

Geometry convention: track lines arrive in pixel coordinates of the image as ``(col, row)``
with rasterio's convention that ``(0, 0)`` is the outer corner of the top-left pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

# Freight cars on 1520 mm and standard gauge: bodies about 3.1 m wide, 12-25 m long, coupled
# with about a metre between bodies.
CAR_WIDTH_M = 3.1
CAR_LENGTH_RANGE_M = (11.0, 26.0)
NOMINAL_CAR_LENGTH_M = 15.5
COUPLER_GAP_M = 1.0

METHOD_INDIVIDUAL = "individual-cars"
METHOD_LENGTH = "occupied-length"

STEP_M = 0.25  # strip sampling step along and across the track
# a position is occupied when it is this many ballast-cluster spreads from empty track
OCCUPIED_SPREADS = 8.0
# pixels coarser than this cannot resolve a car's sides (3.1 m apart)
COARSE_PIXEL_M = 1.5
import os
USE_SHADE = os.environ.get('SW_SHADE', '1') == '1'
USE_RAILS = os.environ.get('SW_RAILS', '1') == '1'


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
    values = np.stack([
        ndimage.map_coordinates(band.astype(np.float32, copy=False), [rows, cols], order=1, mode="nearest")
        for band in image
    ]).astype(np.float32)
    return TrackStrip(values, along, across, pts, normal, float(dist[-1] * pixel_size_m))


# Seen from above, a track is symmetric about its centre out to the ballast shoulders: rails,
# car sides, the bed's edges.  Alignment looks for the offset about which the strip is most
# mirror-symmetric *relative to how much structure there is*, so that featureless ground
# (symmetric but empty) does not win.


def _symmetry_half_width_m(pixel_size_m: float) -> float:
    # Narrow enough to leave out most of a car's shadow (which would pull the centre toward
    # it), wide enough to hold the car sides and, on coarse pixels, a few pixels of context.
    return max(1.8, 1.4 + 0.6 * pixel_size_m)


def _symmetry_terms(strip: TrackStrip, pixel_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetry and structure of the strip about each candidate centre offset.

    Returns two arrays of shape (L, W): the summed colour difference between the strip at
    ``c + u`` and ``c - u`` over ``0 < u <= w`` (w from :func:`_symmetry_half_width_m`), and the summed difference of both from the
    value at ``c`` (zero where the window does not fit).
    """
    step = float(strip.across_m[1] - strip.across_m[0])
    values = strip.values
    W = values.shape[2]
    K = int(round(_symmetry_half_width_m(pixel_size_m) / step))
    centre = values[:, :, K:W - K]
    asym = np.zeros(centre.shape[1:], np.float32)
    struct = np.zeros_like(asym)
    for k in range(1, K + 1):
        right = values[:, :, K + k:W - K + k]
        left = values[:, :, K - k:W - K - k]
        asym += np.sqrt(((right - left) ** 2).sum(axis=0))
        struct += 0.5 * (np.sqrt(((right - centre) ** 2).sum(axis=0)) + np.sqrt(((left - centre) ** 2).sum(axis=0)))
    pad = ((0, 0), (K, K))
    return np.pad(asym, pad), np.pad(struct, pad)


def align_tracks(
    strips: list[TrackStrip],
    *,
    pixel_size_m: float,
    max_shift_m: float,
    max_track_residual_m: float = 0.3,
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

    best = np.zeros(2)
    for radius, grid_step in ((max_shift_m, max(step, max_shift_m / 12)), (1.0, step), (0.25, step / 2)):
        g = np.arange(-radius, radius + 1e-9, grid_step)
        cand = best + np.array(np.meshgrid(g, g)).reshape(2, -1).T
        cand = cand[np.hypot(*cand.T) <= max_shift_m + 1e-9]
        if len(cand):
            best = cand[int(np.argmin(cost(cand)))]
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
    return TrackStrip(values, strip.along_m, across, strip.centre_px + strip.normal_px * offsets_m[:, None] / pixel_size_m,
                      strip.normal_px, strip.line_length_m)
def _band_mean(strip: TrackStrip, lo_m: float, hi_m: float, side: int = 0) -> np.ndarray:
    """Mean of the strip over offsets with ``lo_m <= |offset| <= hi_m`` (one side if ``side`` is ±1), shape (B, L)."""
    across = strip.across_m if side == 0 else side * strip.across_m
    dist = np.abs(across) if side == 0 else across
    keep = (dist >= lo_m - 1e-9) & (dist <= hi_m + 1e-9)
    return strip.values[:, :, keep].mean(axis=2)


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a - b) ** 2).sum(axis=0))


def empty_track_colour(centres: list[np.ndarray], *, max_samples: int = 1500) -> tuple[np.ndarray, float]:
    """The colour of empty track (ballast), as the densest cluster of centre-band colours.

    Pooled over all tracks of a scene: ballast is one material, while cars come in many
    colours, so unless nearly every metre of every track is covered by cars of one colour
    the densest cluster is the ballast.

    Parameters
    ----------
    centres : list of ndarray of shape (B, L_i)
        Centre-band colours of each track.

    Returns
    -------
    colour : ndarray of shape (B,)
    spread : float
        Median distance of the cluster's members from ``colour``: the scale of
        "looks like empty track".
    """
    pooled = np.concatenate([c.T for c in centres])
    colour, spread, _ = _densest_cluster(pooled, max_samples)
    return colour, spread


@dataclass(frozen=True)
class Ground:
    """What empty track looks like in one image: lit ballast and, where found, shaded ballast.

    Attributes
    ----------
    lit : ndarray of shape (B,)
        Colour of sunlit ballast.
    lit_spread : float
        Spread of sunlit ballast colours about ``lit`` (the unit of "unlike empty track").
    shade : ndarray of shape (B,) or None
        Colour of ballast in a shadow, or None when the image shows too little of it.
    shade_spread : float
        Spread of shaded ballast colours about ``shade``.
    """

    lit: np.ndarray
    lit_spread: float
    shade: np.ndarray | None = None
    shade_spread: float = 0.0

    def contrast(self, colours: np.ndarray) -> np.ndarray:
        """Distance of colours of shape (B, L) from empty track, in spreads, shape (L,).

        Without a shadow colour this is the distance from lit ballast.  With one, it is the
        distance from the segment between lit and shaded ballast (a shadow's edge crossing
        the band mixes the two), in the spread interpolated along that segment: shadow is
        darker and so less noisy in absolute terms.
        """
        if self.shade is None:
            return _distance(colours, self.lit[:, None]) / self.lit_spread
        return np.minimum(_distance(colours, self.lit[:, None]) / self.lit_spread,
                          _distance(colours, self.shade[:, None]) / self.shade_spread)


def _densest_cluster(colours: np.ndarray, max_samples: int = 1500) -> tuple[np.ndarray, float, float]:
    """Centre, spread and radius of the densest tenth of colours of shape (N, B)."""
    sample = colours[:: max(1, len(colours) // max_samples)]
    d = np.sqrt(((sample[:, None, :] - sample[None, :, :]) ** 2).sum(axis=-1))
    k = max(5, len(sample) // 10)
    radius = np.partition(d, k, axis=1)[:, k]
    members = np.argsort(d[int(np.argmin(radius))])[:k]
    centre = np.median(sample[members], axis=0)
    spread = float(np.median(np.sqrt(((sample[members] - centre) ** 2).sum(axis=1))))
    return centre, max(spread, 1e-6), float(radius.min())


# a shadow colour is looked for only this many lit-ballast spreads darker than lit ballast,
# and accepted only from this many samples of the side bands
SHADE_MIN_DARKER_SPREADS = 8.0
SHADE_MAX_BRIGHTNESS = float(os.environ.get('SW_SMB', '0.5'))
SHADE_MIN_SAMPLES = 60
SHADE_MIN_RAIL_SAMPLES = 12
SHADE_SPREAD_FACTOR = float(os.environ.get('SW_SSF', '0.5'))


def shaded_track_colour(strips: list[TrackStrip], lit: np.ndarray, lit_spread: float, *,
                        pixel_size_m: float, rails: list[np.ndarray | None] | None = None) -> tuple[np.ndarray, float] | None:
    """The colour of ballast in shadow, from the bands just outside where a car's sides would be.

    Wherever a car stands, its shadow falls on the ballast beside it on the side away from
    the sun; the ballast shoulder there is the one place in a yard where shaded ballast is
    common and nothing else dark is (a car's body ends at 1.55 m, the next track's cars
    start beyond 2.4 m).  The densest cluster of clearly darker-than-ballast colours in those
    bands is taken as shaded ballast.  Shadows are the ground times a per-band factor that
    is the same for every material, so a neighbour's or a tree's shadow lying across empty
    track has this colour too.

    Returns
    -------
    (colour, spread) or None
        None where too few dark samples exist (the sun stands along the tracks, or the
        tracks are empty).
    """
    # shadow is lit only by the sky: far darker than sunlit ballast, not a shade of it
    darkest = SHADE_MAX_BRIGHTNESS * float(lit.mean())
    if rails is not None and all(r is not None for r in rails) and os.environ.get('SW_RS', '1') == '1':
        centre = np.concatenate([_band_mean(s, 0.0, 0.9).T for s in strips])
        empty = np.concatenate(rails) >= RAIL_EMPTY[1]
        dark = centre.mean(axis=1) < darkest
        if (empty & dark).sum() >= SHADE_MIN_RAIL_SAMPLES:
            colour, spread, _ = _densest_cluster(centre[empty & dark])
            return colour, spread * SHADE_SPREAD_FACTOR
        if os.environ.get('SW_SIDEFB', '1') != '1':
            return None
    lo = min(1.8 + 0.3 * max(pixel_size_m - 0.5, 0.0), 2.0)
    samples = np.concatenate([_band_mean(s, lo, lo + 0.3, side=side).T for s in strips for side in (-1, 1)])
    darker = samples.mean(axis=1) < darkest
    if darker.sum() < SHADE_MIN_SAMPLES:
        return None
    colour, spread, _ = _densest_cluster(samples[darker])
    return colour, min(spread, lit_spread) * SHADE_SPREAD_FACTOR


def occupancy_contrast(strip: TrackStrip, ground: Ground, *, pixel_size_m: float) -> np.ndarray:
    """How car-like each position is, in lit-ballast spreads, shape (L,).

    The smaller of (a) the centre band's distance from empty track (lit or shaded ballast)
    and (b) the contrast across a car's side (just inside against just outside, stronger
    side).  (a) alone fires on dark ground that is not shaded ballast; (b) alone on the
    ballast shoulder.
    """
    centre = _band_mean(strip, 0.0, 0.9)
    from_ballast = ground.contrast(centre)
    if pixel_size_m > COARSE_PIXEL_M:
        # a car's side and the ballast shoulder fall in the same pixel: colour is all there is
        return from_ballast
    # a car's side: just inside differs from just outside, on at least one side
    inner = max(0.9, 1.55 - 0.5 * pixel_size_m)
    outer = min(2.6, 1.55 + 0.5 * pixel_size_m)
    side_edge = np.maximum(
        _distance(_band_mean(strip, inner - 0.4, inner, side=-1), _band_mean(strip, max(outer, 1.8), max(outer, 1.8) + 0.4, side=-1)),
        _distance(_band_mean(strip, inner - 0.4, inner, side=1), _band_mean(strip, max(outer, 1.8), max(outer, 1.8) + 0.4, side=1)),
    )
    return np.minimum(from_ballast, side_edge / ground.lit_spread)


# Rails: two dark lines about 1.5 m apart (rail centres of standard and 1520 mm gauge).  Seen
# wherever the track is empty, in sun or in shade, and never on a car's roof, they tell a
# neighbour's shadow lying across empty track from a dark car.  Pixels coarser than
# RAIL_MAX_PIXEL_M blur them away.
RAIL_OFFSET_M = 0.74
RAIL_WINDOW_M = float(os.environ.get('SW_RW', '1.15'))
RAIL_SIDE_WINDOW_M = float(os.environ.get('SW_RSW', '0.45'))
RAIL_SYM = os.environ.get('SW_SYM', '1') == '1'
RAIL_DETREND = os.environ.get('SW_DT', '0') == '1'
RAIL_HIDDEN_SINGLE = os.environ.get('SW_HS', '0') == '1'
RAIL_MAX_PIXEL_M = 0.6
RAIL_SEARCH_M = 0.7        # how far the rails may lie from the centre found by symmetry
RAIL_LOCAL_M = 0.2         # and how far they may wander from the track's best fit
RAIL_TRACK_MIN_CORR = 0.3  # mean correlation a track needs before its rails move its centre
RAIL_EMPTY = tuple(float(v) for v in os.environ.get('SW_RE', '0.3,0.55').split(','))
RAIL_HIDDEN = tuple(float(v) for v in os.environ.get('SW_RH', '-0.05,-0.25').split(','))
RAIL_HIDDEN_GAIN = float(os.environ.get('SW_RHG', '0.8'))
RAIL_HIDDEN_FLOOR = float(os.environ.get('SW_RHF', '0.3'))
RAIL_MODE = os.environ.get('SW_RM', 'min')
RAIL_WEIGHT = float(os.environ.get('SW_RWT', '0.5'))
RAIL_MIN_SEEN = float(os.environ.get('SW_MINSEEN', '0.1'))  # rail correlation from "maybe" to "certainly" empty track


def cross_profiles(data: np.ndarray, strip: TrackStrip, offsets_m: np.ndarray, *, pixel_size_m: float,
                   half_width_m: float = 1.4, step_m: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Brightness profiles across the track, finely sampled about the centre found.

    Returns the profiles, shape (L, U), mean of all bands, and their offsets from the
    centre, shape (U,).
    """
    across = np.arange(-half_width_m, half_width_m + 1e-9, step_m)
    off = (offsets_m[:, None] + across[None, :]) / pixel_size_m
    cols = strip.centre_px[:, 0, None] + strip.normal_px[:, 0, None] * off - 0.5
    rows = strip.centre_px[:, 1, None] + strip.normal_px[:, 1, None] * off - 0.5
    grey = data.mean(axis=0)
    return ndimage.map_coordinates(grey, [rows, cols], order=1, mode="nearest"), across


def rail_correlation(profiles: np.ndarray, across_m: np.ndarray, shifts_m: np.ndarray, *,
                     pixel_size_m: float, smooth_m: float = 1.5, step_m: float = STEP_M) -> np.ndarray:
    """How much each profile looks like rails centred at each shift, shape (2, S, L).

    Profiles are averaged over ``smooth_m`` along the track first.  A rail is a Gaussian dip
    as wide as a rail head blurred by the pixel.  ``[0]`` is the smallest of three
    correlations, near 1 only where both rails show: the pair over the bed between and just
    beyond the rails (a car's sides, 1.55 m out, stay outside), and each rail on its own (so
    one rail and the bed's edge do not pass for a pair).  ``[1]`` is the larger of the two
    single-rail correlations, low only where neither rail shows.  Single rails are matched
    after removing a linear trend, so a shadow's edge across the bed does not hide them.
    """
    prof = ndimage.uniform_filter1d(profiles, max(1, int(round(smooth_m / step_m))), axis=0, mode="nearest")
    sigma = float(np.hypot(0.12, 0.6 * pixel_size_m))

    def corr(centre: float, half: float, dips: tuple[float, ...], detrend: bool) -> np.ndarray:
        window = np.abs(across_m - centre) <= half
        u = across_m[window]
        t = -sum(np.exp(-0.5 * ((u - x) / sigma) ** 2) for x in dips)
        basis = np.vstack([np.ones_like(u), u - centre] if detrend else [np.ones_like(u)]).T
        q, _ = np.linalg.qr(basis)
        t -= q @ (q.T @ t)
        p = prof[:, window]
        p = p - (p @ q) @ q.T
        return (p @ (t / np.linalg.norm(t))) / np.maximum(np.linalg.norm(p, axis=1), 1e-9)

    out = np.empty((2, len(shifts_m), len(prof)), np.float32)
    for k, d in enumerate(shifts_m):
        pair = corr(d, RAIL_WINDOW_M, (d - RAIL_OFFSET_M, d + RAIL_OFFSET_M), False)
        left = corr(d - RAIL_OFFSET_M, RAIL_SIDE_WINDOW_M, (d - RAIL_OFFSET_M,), RAIL_DETREND)
        right = corr(d + RAIL_OFFSET_M, RAIL_SIDE_WINDOW_M, (d + RAIL_OFFSET_M,), RAIL_DETREND)
        out[0, k] = np.minimum(pair, np.minimum(left, right))
        out[1, k] = np.maximum(left, right)
    return out


def rail_visibility(correlation: np.ndarray) -> np.ndarray:
    """0 where a rail correlation says nothing, rising to 1 where rails are certainly visible."""
    lo, hi = RAIL_EMPTY
    return np.clip((correlation - lo) / (hi - lo), 0.0, 1.0)


@dataclass
class RailFit:
    """Tracks placed on their rails.

    Attributes
    ----------
    offsets : list of ndarray of shape (L,)
        For each track, the offset (metres across) of the rails' centre at each position.
    rails : list of ndarray of shape (L,)
        For each track, the rail correlation at each position (near 1: rails visible).
    single : list of ndarray of shape (L,)
        For each track, the better single-rail correlation (low: neither rail shows).
    shift_px : (float, float)
        The common shift of the lines found, in pixels (columns, rows).
    seen : float
        Share of the tracks' length on which rails are clearly visible at the fit.
    """

    offsets: list[np.ndarray]
    rails: list[np.ndarray]
    single: list[np.ndarray]
    shift_px: tuple[float, float]
    score: float


def align_to_rails(data: np.ndarray, strips: list[TrackStrip], *, pixel_size_m: float, max_shift_m: float,
                   max_track_residual_m: float = 0.3) -> RailFit:
    """Find where the tracks are from their rails: one common shift, then a little per track.

    Like :func:`align_tracks`, but scoring a candidate position by how well the profile
    across it matches a pair of rails.  Rails show on empty track in sun and shade alike,
    so neighbours' shadows, which can make a yard look symmetric about a line between
    two tracks, do not mislead it.  Needs pixels fine enough to see rails.
    """
    step = 0.05
    reach = max_shift_m + max_track_residual_m + RAIL_LOCAL_M
    grid = np.arange(-reach, reach + 1e-9, step)
    tables = []
    for s in strips:
        profiles, across = cross_profiles(data, s, np.zeros(len(s.along_m)), pixel_size_m=pixel_size_m,
                                          half_width_m=reach + RAIL_WINDOW_M + step, step_m=step)
        inside = (s.along_m >= 0) & (s.along_m <= s.line_length_m)
        # finer pixels resolve rails more sharply and give everything narrow a higher correlation
        sharper = float(os.environ.get('SW_K', '0.5')) * max(0.0, 0.5 - pixel_size_m)
        tables.append((rail_correlation(profiles, across, grid, pixel_size_m=pixel_size_m) - sharper, inside))

    def lookup(i: int, off: np.ndarray) -> np.ndarray:
        """Correlation of track ``i`` at offsets of shape (..., L)."""
        idx = np.clip(np.rint((off + reach) / step).astype(int), 0, len(grid) - 1)
        return tables[i][0][:, idx, np.arange(idx.shape[-1])]

    def score(shift: np.ndarray) -> np.ndarray:
        total = np.zeros(len(shift))
        count = 0
        for i, s in enumerate(strips):
            inside = tables[i][1]
            # count positions where rails show rather than sum correlations, so a track full
            # of cars (all noise) cannot outvote one showing rails
            total += rail_visibility(lookup(i, shift @ s.normal_px.T)[0][:, inside]).sum(axis=1)
            count += int(inside.sum())
        return total / max(count, 1)

    best = np.zeros(2)
    for radius, grid_step in ((max_shift_m, max(0.1, max_shift_m / 15)), (0.3, step), (0.06, step / 2)):
        g = np.arange(-radius, radius + 1e-9, grid_step)
        cand = best + np.array(np.meshgrid(g, g)).reshape(2, -1).T
        cand = cand[np.hypot(*cand.T) <= max_shift_m + 1e-9]
        if len(cand):
            best = cand[int(np.argmax(score(cand)))]
    offsets, rails, singles = [], [], []
    residual = np.arange(-max_track_residual_m, max_track_residual_m + 1e-9, step)
    local = np.arange(-RAIL_LOCAL_M, RAIL_LOCAL_M + 1e-9, step)
    for i, s in enumerate(strips):
        base = s.normal_px @ best
        inside = tables[i][1]
        fit = rail_visibility(lookup(i, base[None, :] + residual[:, None])[0][:, inside]).mean(axis=1)
        # a track full of cars shows no rails: its own residual would be noise
        off = base + (residual[int(np.argmax(fit))] if fit.max() >= RAIL_MIN_SEEN else 0.0)
        offsets.append(off)
        near = lookup(i, off[None, :] + local[:, None]).max(axis=1)
        rails.append(near[0])
        singles.append(near[1])
    inside = np.concatenate([tables[i][1] for i in range(len(strips))])
    seen = float(np.mean(np.concatenate(rails)[inside] >= RAIL_EMPTY[1]))
    return RailFit(offsets, rails, singles, (float(best[0] / pixel_size_m), float(best[1] / pixel_size_m)), seen)


@dataclass
class TrackEvidence:
    """Per-position evidence along one track (all arrays of shape (L,)).

    ``occupancy`` is positive where a car is likely, negative where the track looks empty;
    ``boundary`` is large where one car ends and another begins (or the track empties).
    """

    occupancy: np.ndarray
    boundary: np.ndarray


def track_evidence(strip: TrackStrip, ground: Ground, *, pixel_size_m: float,
                   rails: np.ndarray | None = None, single_rail: np.ndarray | None = None) -> TrackEvidence:
    """Occupancy and boundary evidence along a centred strip.

    Occupancy is :func:`occupancy_contrast` in units of the ballast cluster's own spread
    (so the scale adapts to the image's noise and contrast), 0 at ``OCCUPIED_SPREADS``
    spreads and saturating towards ±1.  Boundary is the stronger of a colour step in the
    centre band over about 2 m and a ~1 m dip or bump (a coupler gap), in units of four
    spreads.
    """
    step = float(strip.along_m[1] - strip.along_m[0])
    centre = _band_mean(strip, 0.0, 0.9)
    ratio = np.maximum(occupancy_contrast(strip, ground, pixel_size_m=pixel_size_m) / OCCUPIED_SPREADS, 1e-3)
    # log-ratio-like score: 0 at the threshold, saturating so one odd pixel cannot dominate
    smooth = max(1, int(round(max(0.5, pixel_size_m / 2) / step)))
    occupancy = np.tanh(np.log(np.maximum(ndimage.uniform_filter1d(ratio, smooth, mode="nearest"), 1e-3)))
    if rails is not None and os.environ.get('SW_RAILVETO', '1') == '1':
        # visible rails: empty track, however dark (a shadow lying across it)
        if RAIL_MODE == "min":
            occupancy = np.minimum(occupancy, 1.0 - 2.0 * rail_visibility(rails))
            ref = single_rail if (single_rail is not None and RAIL_HIDDEN_SINGLE) else rails
            hidden = np.clip((RAIL_HIDDEN[0] - ref) / (RAIL_HIDDEN[0] - RAIL_HIDDEN[1]), 0.0, 1.0)
            if RAIL_SYM:
                # a car covers both rails alike; a shadow's edge crossing the bed hides the
                # rails too, but leaves one side like ballast and the other not
                left, right = _band_mean(strip, 0.4, 1.3, side=-1), _band_mean(strip, 0.4, 1.3, side=1)
                apart = _distance(left, right) / np.maximum(np.maximum(_distance(left, ground.lit[:, None]),
                                                                       _distance(right, ground.lit[:, None])), 1e-9)
                hidden = hidden * (1.0 - np.clip((apart - 0.3) / 0.4, 0.0, 1.0))
            occupancy = np.where(occupancy > -RAIL_HIDDEN_FLOOR, np.maximum(occupancy, RAIL_HIDDEN_GAIN * hidden), occupancy)
        else:
            occupancy = np.clip(occupancy + RAIL_WEIGHT * (1.0 - 2.0 * rail_visibility(rails)), -1.0, 1.0)

    # boundary: a step in centre colour over ~2 m, or a narrow (~1 m) dip or bump
    def window_mean(lo: float, hi: float) -> np.ndarray:
        """Mean of ``centre`` over [x + lo, x + hi] metres, for every x (edges repeated)."""
        a, b = int(round(lo / step)), int(round(hi / step))
        pad = max(abs(a), abs(b)) + 1
        padded = np.pad(centre, ((0, 0), (pad, pad)), mode="edge")
        csum = np.concatenate([np.zeros((centre.shape[0], 1)), np.cumsum(padded, axis=1)], axis=1)
        idx = np.arange(centre.shape[1]) + pad
        return (csum[:, idx + b + 1] - csum[:, idx + a]) / (b - a + 1)

    reach = max(2.5, 2 * pixel_size_m)
    near = max(0.6, pixel_size_m)
    before = window_mean(-reach, -near)
    after = window_mean(near, reach)
    middle = window_mean(-0.4, 0.4)
    step_strength = _distance(before, after)
    dip = np.minimum(_distance(middle, before), _distance(middle, after))
    boundary = np.maximum(step_strength, dip) / (4.0 * ground.lit_spread)
    return TrackEvidence(occupancy.astype(np.float32), boundary.astype(np.float32))


@dataclass(frozen=True)
class SegmentationPrior:
    """What a railcar looks like along the track, for the segmentation.

    Attributes
    ----------
    length_range_m : (float, float)
        Hard limits on one car's length along the track (coupler gap included).
    nominal_length_m : float
        The most likely car length; counts by occupied length divide by it plus the gap.
    length_sigma_m : float
        Spread of car lengths about the nominal.
    boundary_weight : float
        Reward for a car end where the boundary evidence is strong (and penalty where none).
    occupancy_margin : float
        Taken from the occupancy inside a car, so a stretch must look clearly occupied
        (mean occupancy above half the margin) to become a car.
    """

    length_range_m: tuple[float, float] = CAR_LENGTH_RANGE_M
    nominal_length_m: float = NOMINAL_CAR_LENGTH_M
    length_sigma_m: float = 6.0
    boundary_weight: float = 2.0
    occupancy_margin: float = 0.3

    @property
    def pitch_m(self) -> float:
        """Track length one coupled car takes up: body plus coupler gap."""
        return self.nominal_length_m + COUPLER_GAP_M


def segment_cars(evidence: TrackEvidence, *, step_m: float, prior: SegmentationPrior = SegmentationPrior()) -> list[tuple[int, int]]:
    """Cut a track into empty stretches and cars: a semi-Markov dynamic programme.

    Each car spans a run of positions whose length is within ``prior.length_range_m``.  A
    segmentation scores the occupancy evidence (per metre: + inside cars, - outside), the
    boundary evidence at each car end, and the length prior; the best-scoring one is exact.

    Parameters
    ----------
    evidence : TrackEvidence
    step_m : float
        Spacing of the evidence positions, metres.
    prior : SegmentationPrior

    Returns
    -------
    list of (start, stop)
        Position indices of each car, ``stop`` exclusive, in order along the track.
    """
    occ = evidence.occupancy.astype(np.float64) * step_m
    ends = prior.boundary_weight * np.clip(evidence.boundary.astype(np.float64) - 1.5, -1.5, 0.5)
    margin = prior.occupancy_margin * step_m
    n = len(occ)
    lo = max(1, int(np.ceil(prior.length_range_m[0] / step_m)))
    hi = int(np.floor(prior.length_range_m[1] / step_m))
    lengths = np.arange(lo, hi + 1)
    length_score = -0.5 * ((lengths * step_m - prior.nominal_length_m) / prior.length_sigma_m) ** 2
    # boundary evidence at a cut between positions i-1 and i: take the stronger neighbour
    cut = np.maximum(np.concatenate([[ends[0]], ends]), np.concatenate([ends, [ends[-1]]]))
    csum = np.concatenate([[0.0], np.cumsum(occ)])
    best = np.full(n + 1, -np.inf)
    best[0] = 0.0
    back = np.zeros(n + 1, dtype=np.int64)  # start of the last segment; -1 marks an empty step
    for j in range(1, n + 1):
        best[j] = best[j - 1] - occ[j - 1]
        back[j] = -1
        starts = j - lengths
        ok = starts >= 0
        if not ok.any():
            continue
        s = starts[ok]
        score = best[s] + (csum[j] - csum[s]) - margin * (j - s) + cut[s] + cut[j] + length_score[ok]
        k = int(np.argmax(score))
        if score[k] > best[j]:
            best[j] = score[k]
            back[j] = s[k]
    cars = []
    j = n
    while j > 0:
        if back[j] < 0:
            j -= 1
        else:
            cars.append((int(back[j]), j))
            j = int(back[j])
    return cars[::-1]


# Below this pixel size a one-metre coupler gap spans at least a pixel, so cars are cut at
# the gaps; above it cars blur into trains and are counted by occupied length.
INDIVIDUAL_MAX_PIXEL_M = 1.0


@dataclass
class TrackCount:
    """Railcars found on one track in one image.

    Attributes
    ----------
    track_id : str
    count : int
    occupied_m : float
        Track length covered by cars (coupler gaps inside a train included).
    method : str
        ``"individual-cars"`` (cut at the gaps) or ``"occupied-length"`` (occupied length
        divided by the nominal car pitch, for pixels too coarse to see a gap).
    uncertainty : float
        A one-sigma spread of the count in cars (see :func:`count_railcars`).
    cars_px : list of ndarray of shape (4, 2)
        Each car as a quadrilateral in pixel coordinates (col, row); empty for the
        occupied-length method, which does not locate single cars.
    runs_px : list of ndarray of shape (4, 2)
        Each train (contiguous cars) as a quadrilateral in pixel coordinates.
    offset_m : float
        Median sideways distance between the given line and the track found.
    """

    track_id: str
    count: int
    occupied_m: float
    method: str
    uncertainty: float
    cars_px: list[np.ndarray] = field(default_factory=list, repr=False)
    runs_px: list[np.ndarray] = field(default_factory=list, repr=False)
    offset_m: float = 0.0

    def to_dict(self) -> dict:
        return {"track_id": self.track_id, "count": self.count, "occupied_m": round(self.occupied_m, 1),
                "method": self.method, "uncertainty": round(self.uncertainty, 2)}


@dataclass
class RailcarCount:
    """All tracks of one image, plus the common shift of the track lines that was found."""

    tracks: list[TrackCount]
    line_shift_px: tuple[float, float]
    method: str

    @property
    def total(self) -> int:
        return int(sum(t.count for t in self.tracks))

    @property
    def uncertainty(self) -> float:
        return float(np.sqrt(sum(t.uncertainty**2 for t in self.tracks)))


def _quad(strip: TrackStrip, start: int, stop: int, half_width_m: float, pixel_size_m: float) -> np.ndarray:
    """Corners of the strip between positions ``start`` and ``stop`` (exclusive), in pixel coords."""
    stop = min(stop, len(strip.along_m)) - 1
    a, b = strip.centre_px[start], strip.centre_px[stop]
    na, nb = strip.normal_px[start], strip.normal_px[stop]
    w = half_width_m / pixel_size_m
    return np.array([a - na * w, b - nb * w, b + nb * w, a + na * w])


def _runs(cars: list[tuple[int, int]], max_gap: int) -> list[tuple[int, int, int]]:
    """Group cars whose ends are within ``max_gap`` positions: (start, stop, n_cars)."""
    runs: list[list[int]] = []
    for a, b in cars:
        if runs and a - runs[-1][1] <= max_gap:
            runs[-1][1] = b
            runs[-1][2] += 1
        else:
            runs.append([a, b, 1])
    return [tuple(r) for r in runs]


def count_railcars(
    image: np.ndarray,
    tracks_px: dict[str, np.ndarray],
    *,
    pixel_size_m: float,
    max_line_error_m: float | None = None,
    prior: SegmentationPrior = SegmentationPrior(),
) -> RailcarCount:
    """Count railcars along each track of one image.

    Parameters
    ----------
    image : ndarray of shape (B, M, N)
        The image; any numeric dtype, any band count (all bands are used).
    tracks_px : dict of str to ndarray of shape (K, 2)
        Track centrelines in pixel coordinates (col, row), keyed by track id.
    pixel_size_m : float
        Ground size of a pixel, metres.
    max_line_error_m : float, optional
        How far the lines may be off the real tracks; default 3 pixels plus half a metre.
    prior : SegmentationPrior
        Car lengths and how strongly the segmentation trusts the evidence.

    Returns
    -------
    RailcarCount

    Notes
    -----
    Uncertainty: for individual cars, each cut made where the boundary evidence is weak
    counts as a possible extra or missing car (half a car each, added in quadrature with a
    floor of 0.3 cars per train); for the occupied-length method it is the spread of car
    lengths (``prior.length_sigma_m``) over the pitch, times the square root of the count,
    plus one pixel at each train end.
    """
    if image.ndim != 3:
        raise ValueError(f"image must have shape (bands, rows, cols), got {image.shape}")
    if not tracks_px:
        raise ValueError("no tracks to count along")
    if max_line_error_m is None:
        max_line_error_m = 3.0 * pixel_size_m + 0.5
    data = image.astype(np.float32, copy=False)
    # bands on a common scale, so no band dominates the colour distances
    scale = np.percentile(data.reshape(data.shape[0], -1)[:, :: max(1, data[0].size // 200_000)], [2, 98], axis=1)
    data = (data - scale[0][:, None, None]) / np.maximum(scale[1] - scale[0], 1e-6)[:, None, None]

    ids = list(tracks_px)
    wide = [sample_strip(data, np.asarray(tracks_px[t], float), pixel_size_m=pixel_size_m,
                         half_width_m=max_line_error_m + 0.5 + 5.0, extend_m=max_line_error_m + 5.0) for t in ids]
    offsets, shift_px = align_tracks(wide, pixel_size_m=pixel_size_m, max_shift_m=max_line_error_m)
    rails: list[np.ndarray | None] = [None] * len(ids)
    singles: list[np.ndarray | None] = [None] * len(ids)
    if pixel_size_m <= RAIL_MAX_PIXEL_M and USE_RAILS:
        fit = align_to_rails(data, wide, pixel_size_m=pixel_size_m, max_shift_m=max_line_error_m)
        rails = fit.rails
        singles = fit.single
        if os.environ.get("SW_DBG"): print("SCORE", round(fit.score, 3), fit.shift_px, shift_px)
        if fit.score >= RAIL_MIN_SEEN or os.environ.get("SW_RAILFORCE") == "1":
            offsets, shift_px = fit.offsets, fit.shift_px
    strips = [centred_strip(s, o, 3.5, pixel_size_m=pixel_size_m) for s, o in zip(wide, offsets)]
    centres = [_band_mean(s, 0.0, 0.9) for s in strips]
    empty, spread = empty_track_colour(centres)
    if all(r is not None for r in rails) and os.environ.get('SW_LITRAIL', '1') == '1':
        # the densest colour on the tracks should be ballast, and ballast shows its rails;
        # where it does not, a long train of one colour won: take the densest colour among
        # the places that do show rails
        pooled = np.concatenate(centres, axis=1)
        visible = np.concatenate(rails) >= RAIL_EMPTY[1]
        near = _distance(pooled, empty[:, None]) <= 3 * spread
        if near.any() and visible[near].mean() < 0.3 and visible.sum() >= SHADE_MIN_RAIL_SAMPLES:
            empty, spread = empty_track_colour([pooled[:, visible]])
    shaded = shaded_track_colour(strips, empty, spread, pixel_size_m=pixel_size_m, rails=rails) if USE_SHADE and rails[0] is not None else None
    ground = Ground(empty, spread, *(shaded or (None, 0.0)))

    individual = pixel_size_m <= INDIVIDUAL_MAX_PIXEL_M
    method = METHOD_INDIVIDUAL if individual else METHOD_LENGTH
    results = []
    for track_id, strip, off, rail, single in zip(ids, strips, offsets, rails, singles):
        step = float(strip.along_m[1] - strip.along_m[0])
        evidence = track_evidence(strip, ground, pixel_size_m=pixel_size_m, rails=rail, single_rail=single)
        cars = segment_cars(evidence, step_m=step, prior=prior)
        # a car belongs to this track when its middle is on the line
        cars = [(a, b) for a, b in cars if 0.0 <= strip.along_m[(a + b - 1) // 2] <= strip.line_length_m]
        runs = _runs(cars, max_gap=int(round(2.0 / step)))
        occupied = float(sum((b - a) * step for a, b, _ in runs))
        if individual:
            count = len(cars)
            weak = sum(1 for (a, b), (c, d) in zip(cars, cars[1:]) if c - b <= 1 and evidence.boundary[c] < 1.5)
            uncertainty = float(np.sqrt(0.25 * weak + 0.09 * len(runs)))
        else:
            per_run = [max(1, int(round(((b - a) * step + COUPLER_GAP_M) / prior.pitch_m))) for a, b, _ in runs]
            count = int(sum(per_run))
            rel = prior.length_sigma_m / prior.pitch_m
            uncertainty = float(np.sqrt(sum(rel**2 * n + (2 * pixel_size_m / prior.pitch_m) ** 2 for n in per_run)))
        results.append(TrackCount(
            track_id, count, occupied, method, uncertainty,
            cars_px=[_quad(strip, a, b, CAR_WIDTH_M / 2, pixel_size_m) for a, b in cars] if individual else [],
            runs_px=[_quad(strip, a, b, CAR_WIDTH_M / 2, pixel_size_m) for a, b, _ in runs],
            offset_m=float(np.median(off)),
        ))
    return RailcarCount(results, shift_px, method)
