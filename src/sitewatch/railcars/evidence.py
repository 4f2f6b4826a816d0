"""What empty track looks like in one image, and how car-like each position along a track is.

Each along-track position of a centred strip gets two kinds of evidence:

* occupancy: how unlike empty track it is there (sunlit ballast, ballast in shadow, or, where
  rails show, a mix of the two), whether it has car-like edges 1.5 m either side of the
  centre, and whether its rails show (empty) or are covered (a car);
* boundary: how much the track changes over about a metre (the coupler gap between two cars,
  or the step from one car's colour to the next).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .rails import RAIL_VISIBLE, rail_visibility, rails_hidden
from .shadows import CAR_SIDE_M, ShadowView
from .strip import TrackStrip, band_mean, colour_distance

# a position is occupied when it is this many ballast-cluster spreads from empty track
OCCUPIED_SPREADS = 8.0
# ... and without rails, where shadows' geometry already tells shaded track from a dark car,
# a lower bar catches cars nearly the ballast's colour
OCCUPIED_SPREADS_NO_RAILS = 6.5
# pixels coarser than this cannot resolve a car's sides (3.1 m apart)
COARSE_PIXEL_M = 1.5
# Shadow is lit by the sky alone: at most this fraction of sunlit ballast's brightness.
SHADE_MAX_BRIGHTNESS = 0.5
# samples needed before a shadow colour is believed: of rail-verified track, of side bands
SHADE_MIN_RAIL_SAMPLES = 12
SHADE_MIN_SIDE_SAMPLES = 60
# The densest-cluster spread of shaded samples is inflated by samples only partly in shadow
# (a shadow's edge crossing the band); halving it matched shade's real scatter on dev scenes.
SHADE_SPREAD_FACTOR = 0.5
# Where rails are covered, the occupancy is raised to this much of the evidence, unless the
# colour says firmly (below minus HIDDEN_FLOOR) that this is empty track.
HIDDEN_GAIN = 0.8
HIDDEN_FLOOR = 0.3
# Without rails: how far along the lit-to-shade line the ground beyond a track must be to be
# a car's own shadow (:class:`.shadows.ShadowView`); how much deeper than the learnt shadow
# colour a shadow may be.
OWN_SHADOW_FRACTION = 0.6
DEEPEST_SHADE = 1.5
# ... and where a shadow beside the track (with lit ballast on the sun's side) makes a car of
# any colour: the contrast it counts as, and how unshaded the sun's side must be
CAST_SHADOW_SPREADS = 2 * OCCUPIED_SPREADS
SUNWARD_LIT_FRACTION = 0.4
# the centre band's half-width (see band_mean calls), and how far past it a neighbour's shadow must reach before
# the band is taken to lie wholly in it
CENTRE_BAND_M = 0.9
COVER_MARGIN_M = 0.5
# Without rails, ballast is looked for where the centre matches both shoulders of the bed
# (beyond a car's side, inside the bed's edge): among this most even share of positions.
SHOULDER_BAND_M = (1.7, 2.1)
EVEN_SHARE = 0.3
# ... leaving out the darkest share of them, which may be whole beds in shadow
EVEN_DARKEST_SHARE = 0.4
# weight kept by a boundary whose middle looks no more like empty track than either side of it
# (without rails, at 1 m, a one-metre gap is a single blurred pixel and shows less of the track)
INSIDE_CAR_BOUNDARY = 0.2
INSIDE_CAR_BOUNDARY_NO_RAILS = 0.5
# Without rails, the shadow colour is read from a band SIDE_SHADE_BAND_M wide starting just
# beyond a car's side (1.8 m at fine pixels, moving out by 0.3 m per metre of pixel over 0.5 m
# as the blur spreads the car, to 2 m at most): where its shadow lies and nothing else is dark.
SIDE_SHADE_START_M = 1.8
SIDE_SHADE_BLUR_SHIFT = 0.3
SIDE_SHADE_SHARP_PIXEL_M = 0.5
SIDE_SHADE_MAX_START_M = 2.0
SIDE_SHADE_BAND_M = 0.3
# The densest centre colour is taken for ballast only if positions near it (within
# NEAR_LIT_SPREADS of its spread) show rails in at least RAILS_NEAR_LIT_SHARE of them; else a
# long train of one colour won, and the densest colour where rails show is taken instead.
NEAR_LIT_SPREADS = 3
RAILS_NEAR_LIT_SHARE = 0.3
# A car's side: the band just inside it (CAR_SIDE_M less half a pixel of blur, not inside
# the centre band) against the band just outside (CAR_SIDE_M plus half a pixel, from
# SIDE_OUTER_MIN_M to SIDE_OUTER_MAX_M, short of the next track's cars), each SIDE_BAND_M wide.
SIDE_BAND_M = 0.4
SIDE_OUTER_MIN_M = 1.8
SIDE_OUTER_MAX_M = 2.6
# Occupancy ratios are floored here before the log (tanh(log) then saturates near -1), and
# smoothed along the track over OCCUPANCY_SMOOTH_M or half a pixel, whichever is longer.
RATIO_FLOOR = 1e-3
OCCUPANCY_SMOOTH_M = 0.5
# Each half of the bed, between the rails' middle and a car's side: a car covers both alike,
# a shadow's edge crossing the bed does not.  Halves differing by more than
# HALVES_APART_START (relative to their distance from lit ballast), fully by
# HALVES_APART_START + HALVES_APART_RAMP, cancel what hidden rails say.
BED_HALF_BAND_M = (0.4, 1.3)
HALVES_APART_START = 0.3
HALVES_APART_RAMP = 0.4
# Boundary evidence compares the track before and after each position, from BOUNDARY_NEAR_M
# (or a pixel) to BOUNDARY_REACH_M (or two pixels) away, and the GAP_HALF_M either side of it
# (a coupler gap is about a metre); it is in units of BOUNDARY_SPREADS lit-ballast spreads.
BOUNDARY_NEAR_M = 0.6
BOUNDARY_REACH_M = 2.5
BOUNDARY_REACH_PX = 2
GAP_HALF_M = 0.4
BOUNDARY_SPREADS = 4.0


def _densest_cluster(colours: np.ndarray, max_samples: int = 1500) -> tuple[np.ndarray, float]:
    """Centre and spread of the densest tenth of colours of shape (N, B)."""
    sample = colours[:: max(1, len(colours) // max_samples)]
    d = np.sqrt(((sample[:, None, :] - sample[None, :, :]) ** 2).sum(axis=-1))
    k = max(5, len(sample) // 10)
    radius = np.partition(d, k, axis=1)[:, k]
    members = np.argsort(d[int(np.argmin(radius))])[:k]
    centre = np.median(sample[members], axis=0)
    spread = float(np.median(np.sqrt(((sample[members] - centre) ** 2).sum(axis=1))))
    return centre, max(spread, 1e-6)


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
    colour, spread = _densest_cluster(pooled, max_samples)
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

    def shade_fraction(self, colours: np.ndarray) -> np.ndarray:
        """Where colours of shape (B, L) lie on the line from lit (0) to shaded (1) ballast, shape (L,)."""
        if self.shade is None:
            return np.zeros(colours.shape[1])
        axis = self.shade - self.lit
        return ((colours - self.lit[:, None]) * axis[:, None]).sum(axis=0) / float(axis @ axis)

    def contrast(
        self, colours: np.ndarray, partly_shaded: np.ndarray | None = None, *, deepest: float = 1.0
    ) -> np.ndarray:
        """Distance of colours of shape (B, L) from empty track, in spreads, shape (L,).

        The distance from lit ballast or, nearer, from shaded ballast, each in its own
        spread (shadow is darker, so less noisy).  Where ``partly_shaded`` (L,) is true,
        also from any mix of the two, as where a shadow's edge crosses the band, and from
        shade up to ``deepest`` times as far from lit ballast as the shadow colour (a
        shadow colour learnt where shadows' edges blur into lit ground is too light).  Mixes
        are allowed only where something else says the track may be empty: a grey car is a
        mix of lit and shaded ballast in colour.
        """
        dist = colour_distance(colours, self.lit[:, None]) / self.lit_spread
        if self.shade is None:
            return dist
        dist = np.minimum(dist, colour_distance(colours, self.shade[:, None]) / self.shade_spread)
        if partly_shaded is not None and partly_shaded.any():
            axis = self.shade - self.lit
            t = np.clip(self.shade_fraction(colours), 0.0, deepest)
            nearest = self.lit[:, None] + t[None, :] * axis[:, None]
            w = np.minimum(t, 1.0)
            mixed = colour_distance(colours, nearest) / ((1 - w) * self.lit_spread + w * self.shade_spread)
            dist = np.where(partly_shaded, np.minimum(dist, mixed), dist)
        return dist


def shaded_track_colour(
    strips: list[TrackStrip],
    centre: np.ndarray,
    rails: np.ndarray,
    lit: np.ndarray,
    lit_spread: float,
    *,
    pixel_size_m: float,
) -> tuple[np.ndarray, float] | None:
    """The colour of ballast in shadow, and its spread.

    Shadows are the ground times a per-band factor that is the same for every material, so
    a neighbour's or a tree's shadow lying across empty track is one colour.  Where rails
    show on clearly dark track, that is it: the densest cluster of those colours.  Failing
    that, the bands just outside where a car's sides would be: wherever a car stands, its
    shadow falls on the ballast beside it on the side away from the sun, and nothing else
    there is dark (a car's body ends at 1.55 m, the next track's cars start beyond 2.4 m).

    Parameters
    ----------
    strips : list of TrackStrip
        Centred strips of all tracks.
    centre : ndarray of shape (B, N)
        Their centre-band colours, all tracks end to end.
    rails : ndarray of shape (N,)
        The rail correlation at the same positions.
    lit, lit_spread
        Sunlit ballast's colour and spread.

    Returns
    -------
    (colour, spread) or None
        None where too few dark samples exist (the sun stands along the tracks, or the
        tracks are empty).
    """
    darkest = SHADE_MAX_BRIGHTNESS * float(lit.mean())
    verified = (rails >= RAIL_VISIBLE[1]) & (centre.mean(axis=0) < darkest)
    if verified.sum() >= SHADE_MIN_RAIL_SAMPLES:
        colour, spread = _densest_cluster(centre[:, verified].T)
        return colour, spread * SHADE_SPREAD_FACTOR
    lo = min(
        SIDE_SHADE_START_M + SIDE_SHADE_BLUR_SHIFT * max(pixel_size_m - SIDE_SHADE_SHARP_PIXEL_M, 0.0),
        SIDE_SHADE_MAX_START_M,
    )
    samples = np.concatenate(
        [band_mean(s, lo, lo + SIDE_SHADE_BAND_M, side=side).T for s in strips for side in (-1, 1)]
    )
    # a shadow darkens every band; grass beyond the bed's edge is darker than ballast too, but
    # not in green
    darker = (samples < SHADE_MAX_BRIGHTNESS * np.maximum(lit, 0.0)[None, :]).all(axis=1)
    if darker.sum() < SHADE_MIN_SIDE_SAMPLES:
        return None
    colour, spread = _densest_cluster(samples[darker])
    return colour, min(spread, lit_spread) * SHADE_SPREAD_FACTOR


def empty_track_ground(strips: list[TrackStrip], rails: list[np.ndarray] | None, *, pixel_size_m: float) -> Ground:
    """Lit and, where rails can be seen, shaded ballast for one image's centred strips.

    Without rails (coarse pixels) this is the densest centre-band colour alone.  With them,
    that colour is checked: ballast shows its rails, so if few positions near it do, a long
    train of one colour won, and the densest colour among positions showing rails is taken
    instead; then the shadow colour is looked for.
    """
    centres = [band_mean(s, 0.0, CENTRE_BAND_M) for s in strips]
    if rails is None and pixel_size_m <= COARSE_PIXEL_M:
        # Without rails, a long train of one colour can outnumber the ballast.  Empty track
        # is one colour across the whole bed; a car differs from the shoulders beside it.
        uneven = [
            np.maximum(
                colour_distance(c, band_mean(s, *SHOULDER_BAND_M, side=-1)),
                colour_distance(c, band_mean(s, *SHOULDER_BAND_M, side=1)),
            )
            for c, s in zip(centres, strips)
        ]
        even = np.concatenate(uneven) <= np.quantile(np.concatenate(uneven), EVEN_SHARE)
        pooled = np.concatenate(centres, axis=1)[:, even]
        # a long shadow lying across a whole bed is even too, and darker than lit ballast
        brightness = pooled.mean(axis=0)
        lit, spread = empty_track_colour([pooled[:, brightness >= np.quantile(brightness, EVEN_DARKEST_SHARE)]])
        # the even positions are the quietest ballast too: its spread is kept from all of them
        return Ground(lit, max(spread, empty_track_colour(centres)[1]))
    lit, spread = empty_track_colour(centres)
    if rails is None:
        return Ground(lit, spread)
    pooled = np.concatenate(centres, axis=1)
    correlation = np.concatenate(rails)
    visible = correlation >= RAIL_VISIBLE[1]
    near = colour_distance(pooled, lit[:, None]) <= NEAR_LIT_SPREADS * spread
    if near.any() and visible[near].mean() < RAILS_NEAR_LIT_SHARE and visible.sum() >= SHADE_MIN_RAIL_SAMPLES:
        lit, spread = empty_track_colour([pooled[:, visible]])
    shade = shaded_track_colour(strips, pooled, correlation, lit, spread, pixel_size_m=pixel_size_m)
    return Ground(lit, spread, *(shade or (None, 0.0)))


def occupancy_contrast(
    strip: TrackStrip,
    ground: Ground,
    *,
    pixel_size_m: float,
    partly_shaded: np.ndarray | None = None,
    shadows: ShadowView | None = None,
) -> np.ndarray:
    """How car-like each position is, in lit-ballast spreads, shape (L,).

    The smaller of (a) the centre band's distance from empty track (:meth:`Ground.contrast`)
    and (b) the contrast across a car's side (just inside against just outside, stronger
    side).  (a) alone fires on dark ground that is not shaded ballast; (b) alone on the
    ballast shoulder.

    With ``shadows`` (pixels without rails, :mod:`.shadows`), shaded ballast and mixes of
    lit and shaded ballast count as empty track only where a neighbour's shadow reaches the
    track and the ground beyond it, where a car of its own would cast shadow, is lit.  A
    shadow there, with lit ground on the sun's side, makes the position a car whatever the
    colour of its roof, and vouches for sides a dark car hides against its shadow.
    """
    centre = band_mean(strip, 0.0, CENTRE_BAND_M)
    casts_shadow = np.zeros(centre.shape[1], bool)
    if shadows is None:
        from_ballast = ground.contrast(centre, partly_shaded)
    else:
        from_ballast = colour_distance(centre, ground.lit[:, None]) / ground.lit_spread
        if ground.shade is not None:
            beyond = shadows.testable & (ground.shade_fraction(shadows.beyond) >= OWN_SHADOW_FRACTION)
            explained = shadows.shadowed & ~beyond
            casts_shadow = beyond
            sunward_lit = ground.shade_fraction(shadows.sunward) < SUNWARD_LIT_FRACTION
            from_ballast = np.where(
                beyond & sunward_lit & ~shadows.shadowed, np.maximum(from_ballast, CAST_SHADOW_SPREADS), from_ballast
            )
            shaded = ground.contrast(centre, explained, deepest=DEEPEST_SHADE)
            from_ballast = np.where(explained, shaded, from_ballast)
    if pixel_size_m > COARSE_PIXEL_M:
        # a car's side and the ballast shoulder fall in the same pixel: colour is all there is
        return from_ballast
    # a car's side: just inside differs from just outside, on at least one side
    inner = max(CENTRE_BAND_M, CAR_SIDE_M - 0.5 * pixel_size_m)
    outer = max(min(SIDE_OUTER_MAX_M, CAR_SIDE_M + 0.5 * pixel_size_m), SIDE_OUTER_MIN_M)
    side_edge = np.maximum(
        colour_distance(
            band_mean(strip, inner - SIDE_BAND_M, inner, side=-1),
            band_mean(strip, outer, outer + SIDE_BAND_M, side=-1),
        ),
        colour_distance(
            band_mean(strip, inner - SIDE_BAND_M, inner, side=1),
            band_mean(strip, outer, outer + SIDE_BAND_M, side=1),
        ),
    )
    # beside its own shadow a dark car's side can be invisible: the shadow vouches for it
    return np.where(casts_shadow, from_ballast, np.minimum(from_ballast, side_edge / ground.lit_spread))


@dataclass
class TrackEvidence:
    """Per-position evidence along one track (all arrays of shape (L,)).

    ``occupancy`` is positive where a car is likely, negative where the track looks empty;
    ``boundary`` is large where one car ends and another begins (or the track empties).
    """

    occupancy: np.ndarray
    boundary: np.ndarray


def _occupancy(
    strip: TrackStrip,
    ground: Ground,
    *,
    pixel_size_m: float,
    rails: np.ndarray | None,
    shadows: ShadowView | None,
) -> np.ndarray:
    """Occupancy along a centred strip, -1 (empty track) to 1 (a car): see :func:`track_evidence`."""
    step = float(strip.along_m[1] - strip.along_m[0])
    mixable = None if rails is None else rails >= RAIL_VISIBLE[0]
    ratio = np.maximum(
        occupancy_contrast(strip, ground, pixel_size_m=pixel_size_m, partly_shaded=mixable, shadows=shadows)
        / (OCCUPIED_SPREADS if shadows is None else OCCUPIED_SPREADS_NO_RAILS),
        RATIO_FLOOR,
    )
    # log-ratio-like score: 0 at the threshold, saturating so one odd pixel cannot dominate
    smooth = max(1, int(round(max(OCCUPANCY_SMOOTH_M, pixel_size_m / 2) / step)))
    occupancy = np.tanh(np.log(np.maximum(ndimage.uniform_filter1d(ratio, smooth, mode="nearest"), RATIO_FLOOR)))
    if rails is None:
        return occupancy
    # visible rails cap it: from 1 where they say nothing down to -1 where they surely show
    occupancy = np.minimum(occupancy, 1.0 - 2.0 * rail_visibility(rails))
    left, right = band_mean(strip, *BED_HALF_BAND_M, side=-1), band_mean(strip, *BED_HALF_BAND_M, side=1)
    lit = ground.lit[:, None]
    apart = colour_distance(left, right) / np.maximum(
        np.maximum(colour_distance(left, lit), colour_distance(right, lit)), 1e-9
    )
    covered = rails_hidden(rails) * (1.0 - np.clip((apart - HALVES_APART_START) / HALVES_APART_RAMP, 0.0, 1.0))
    return np.where(occupancy > -HIDDEN_FLOOR, np.maximum(occupancy, HIDDEN_GAIN * covered), occupancy)


def _window_mean(values: np.ndarray, lo: float, hi: float, step: float) -> np.ndarray:
    """Mean of ``values`` (B, L) over [x + lo, x + hi] metres, for every position x (edges repeated)."""
    a, b = int(round(lo / step)), int(round(hi / step))
    pad = max(abs(a), abs(b)) + 1
    padded = np.pad(values, ((0, 0), (pad, pad)), mode="edge")
    csum = np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(padded, axis=1)], axis=1)
    idx = np.arange(values.shape[1]) + pad
    return (csum[:, idx + b + 1] - csum[:, idx + a]) / (b - a + 1)


def _boundary_reach(pixel_size_m: float) -> tuple[float, float]:
    """How far before and after a position the track is compared: (farthest, nearest), metres."""
    return max(BOUNDARY_REACH_M, BOUNDARY_REACH_PX * pixel_size_m), max(BOUNDARY_NEAR_M, pixel_size_m)


def _boundary(centre: np.ndarray, ground: Ground, step: float, *, pixel_size_m: float) -> np.ndarray:
    """A step in centre colour over ~2 m, or a narrow (~1 m) dip or bump, in boundary units, shape (L,)."""
    reach, near = _boundary_reach(pixel_size_m)
    before = _window_mean(centre, -reach, -near, step)
    after = _window_mean(centre, near, reach, step)
    middle = _window_mean(centre, -GAP_HALF_M, GAP_HALF_M, step)
    step_strength = colour_distance(before, after)
    dip = np.minimum(colour_distance(middle, before), colour_distance(middle, after))
    return np.maximum(step_strength, dip) / (BOUNDARY_SPREADS * ground.lit_spread)


def track_evidence(
    strip: TrackStrip,
    ground: Ground,
    *,
    pixel_size_m: float,
    rails: np.ndarray | None = None,
    shadows: ShadowView | None = None,
) -> TrackEvidence:
    """Occupancy and boundary evidence along a centred strip.

    Occupancy is :func:`occupancy_contrast` in units of the ballast cluster's own spread
    (so the scale adapts to the image's noise and contrast), 0 at ``OCCUPIED_SPREADS``
    (``OCCUPIED_SPREADS_NO_RAILS`` with ``shadows``) spreads and saturating towards ±1.  Where
    ``rails`` (the rail correlation along the track, :func:`.rails.rail_correlation`) is given:

    * visible rails cap it: empty track, however dark (a shadow lying across it);
    * covered rails raise it, unless the colour is firmly that of empty track, or the two
      halves of the bed differ (a shadow's edge crossing the bed hides rails too, but a car
      covers both halves alike).

    Boundary is the stronger of a colour step in the centre band over about 2 m and a ~1 m
    dip or bump (a coupler gap), in units of four spreads.  With rails or ``shadows`` (pixels
    that resolve a car's sides), it is weakened to ``INSIDE_CAR_BOUNDARY`` (or
    ``INSIDE_CAR_BOUNDARY_NO_RAILS``) where its middle is no closer to empty track than
    either side: a step inside a car, not the gap between two.  ``shadows`` says where
    neighbours' shadows lie (:func:`occupancy_contrast`), for pixels without rails.
    """
    step = float(strip.along_m[1] - strip.along_m[0])
    centre = band_mean(strip, 0.0, CENTRE_BAND_M)
    occupancy = _occupancy(strip, ground, pixel_size_m=pixel_size_m, rails=rails, shadows=shadows)
    boundary = _boundary(centre, ground, step, pixel_size_m=pixel_size_m)
    if rails is not None or shadows is not None:
        # between two coupled cars the ~1 m gap shows the track (lit or shaded); inside a car
        # (a container's end on a flat car's deck) the colour steps but stays unlike track
        far = ground.contrast(centre)[None, :]
        reach, near = _boundary_reach(pixel_size_m)
        beside = np.minimum(_window_mean(far, -reach, -near, step), _window_mean(far, near, reach, step))[0]
        gap = np.clip(1.0 - _window_mean(far, -GAP_HALF_M, GAP_HALF_M, step)[0] / np.maximum(beside, 1e-9), 0.0, 1.0)
        floor = INSIDE_CAR_BOUNDARY if rails is not None else INSIDE_CAR_BOUNDARY_NO_RAILS
        boundary = boundary * (floor + (1.0 - floor) * gap)
    return TrackEvidence(occupancy.astype(np.float32), boundary.astype(np.float32))


def with_side_shade(ground: Ground, strips: list[TrackStrip], *, pixel_size_m: float) -> Ground:
    """``ground`` with a shadow colour taken from beside the tracks, for pixels without rails.

    Beside a car, on the side away from the sun, lies its shadow on ballast
    (:func:`shaded_track_colour`); where the image shows too little, ``ground`` is returned
    as it is.
    """
    centre = np.concatenate([band_mean(s, 0.0, CENTRE_BAND_M) for s in strips], axis=1)
    shade = shaded_track_colour(
        strips, centre, np.zeros(centre.shape[1]), ground.lit, ground.lit_spread, pixel_size_m=pixel_size_m
    )
    return ground if shade is None else Ground(ground.lit, ground.lit_spread, *shade)


def with_neighbour_shade(ground: Ground, centres: list[np.ndarray], far_edges: list[np.ndarray]) -> Ground:
    """``ground`` with the shadow colour of track lying wholly in a neighbour's shadow.

    Parameters
    ----------
    ground : Ground
    centres : list of ndarray of shape (B, L_i)
        Centre-band colours of each track.
    far_edges : list of ndarray of shape (L_i,)
        How far past each position's centre a neighbour's shadow reaches
        (:attr:`.shadows.ShadowView.far_edge_m`).

    Returns
    -------
    Ground
        Unchanged where too few positions lie wholly in shadow.
    """
    covered = [c[:, f >= CENTRE_BAND_M + COVER_MARGIN_M] for c, f in zip(centres, far_edges)]
    samples = np.concatenate(covered, axis=1) if covered else np.zeros((len(ground.lit), 0))
    if samples.shape[1] < SHADE_MIN_SIDE_SAMPLES:
        return ground
    colour, spread = _densest_cluster(samples.T)
    if colour.mean() >= SHADE_MAX_BRIGHTNESS * float(ground.lit.mean()):
        return ground  # not a shadow: cars of one colour stand there
    return Ground(ground.lit, ground.lit_spread, colour, min(spread, ground.lit_spread) * SHADE_SPREAD_FACTOR)
