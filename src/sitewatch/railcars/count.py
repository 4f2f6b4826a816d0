"""``count_railcars``: place the tracks, read each one, count its cars and say how sure.

1. Bands on a common scale (:func:`_common_scale`).
2. Placement (:func:`_common_shift`, :func:`place`): the lines slid onto the real tracks by
   their rails, else by the bed's outline or footprint and each track's symmetry; at coarse
   pixels with the sun known, other placements across the tracks are unmixed quickly and
   the best explained kept (:func:`_best_placement`).
3. Per track (:func:`read_track`, :func:`count_track`): occupancy and boundary evidence cut
   into cars, or the unmixed cross-track profiles at coarse pixels; the count and its
   uncertainty (:func:`individual_uncertainty`, :func:`length_count`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import LineString

from .bed import BED_MAX_PIXEL_M, BED_SHADOW_HEIGHT_M, align_to_bed, align_to_bed_fill, bed_fill_scorer, best_fill_shift
from .boxes import BOX_REASON, BoxTrack, Shadows, box_cars, box_features, box_uncertainty
from .evidence import (
    CENTRE_BAND_M,
    COARSE_PIXEL_M,
    DEEPEST_SHADE,
    OCCUPIED_SPREADS,
    Ground,
    TrackEvidence,
    empty_track_ground,
    track_evidence,
    with_neighbour_shade,
    with_side_shade,
)
from .profile import DEFAULT_SHADOW_PER_HEIGHT, ShadowGeometry, profile_cars
from .rails import RAIL_MAX_PIXEL_M, RAIL_MIN_SEEN, RailFit, align_to_rails
from .segment import CAR_WIDTH_M, COUPLER_GAP_M, SegmentationPrior, segment_cars
from .shadows import DEFAULT_REACH_M, ShadowView, shadow_direction, shadow_reach, shadow_view, sun_first_order
from .strip import TrackStrip, align_tracks, band_mean, centred_strip, sample_strip

METHOD_INDIVIDUAL = "individual-cars"
METHOD_LENGTH = "occupied-length"

# Below this pixel size a one-metre coupler gap spans at least a pixel, so cars are cut at
# the gaps; above it cars blur into trains and are counted by occupied length.
INDIVIDUAL_MAX_PIXEL_M = 1.0
# How far the lines may be off the real tracks unless the caller says: an AOI drawn on a
# basemap a few pixels off, plus a hand-drawn line's half metre.
LINE_ERROR_PX = 3.0
LINE_ERROR_M = 0.5
# The wide strips searched for the tracks reach this far beyond the largest line error:
# half a metre of slack plus a bed's width and shoulder either side; along the track they
# extend past the line's ends by the same bed allowance.
WIDE_STRIP_SLACK_M = 0.5
WIDE_STRIP_MARGIN_M = 5.0
# Each track's centred strip: the car (1.55 m) and its shadow on the ballast either side.
CENTRED_HALF_WIDTH_M = 3.5
# Bands are put on a common scale between these percentiles, read from at most
# SCALE_SAMPLES pixels (a strided sample keeps a large window cheap).
SCALE_PERCENTILES = (2, 98)
SCALE_SAMPLES = 200_000
# A position is surely a car at this many times OCCUPIED_SPREADS from empty track, and
# surely empty ballast below this share of it (for finding where shadows fall).
CONFIDENT_SPREADS = 2
EMPTY_SPREADS = 0.5
# Cars closer than this (ends apart) are one train.
TRAIN_GAP_M = 2.0
# Individual cars: a cut where the boundary evidence is below WEAK_BOUNDARY (between
# touching cars) may be a car too many or too few, half a car each (variance 0.25); every
# train adds at least 0.3 cars (variance 0.09).
WEAK_BOUNDARY = 1.5
WEAK_CUT_VARIANCE = 0.25
TRAIN_VARIANCE = 0.09
# Occupied length: each train's two ends are uncertain by a pixel each.
TRAIN_END_PIXELS = 2
# Measured spread of occupied-length counts at 3 m on development yards (seeds 0-79): about
# two cars on any track, empty or not, plus a sixth of the count without sun angles; with
# them, a car plus 7 %.  Part of the uncertainty, so that it says honestly how little a 3 m
# count is worth.
LENGTH_DETECTION_FLOOR_CARS = 2.0
LENGTH_DETECTION_SHARE = 0.17
LENGTH_DETECTION_FLOOR_CARS_SUN = 1.0
LENGTH_DETECTION_SHARE_SUN = 0.07
# At coarse pixels with the sun known, the bed footprint's score can be nearly flat across
# several metres (cars' shadows pass for a bed, and the group may sit one track over): other
# placements across the tracks, every PLACEMENT_STEP_M where the footprint scores at least
# PLACEMENT_SCORE_SHARE of its best, are unmixed quickly (one pass, every
# PLACEMENT_STRIDE-th position) and the best-explained one kept.  On development yards
# 0-79 and 2000-2049, shares of 0.6-0.8, steps of 0.5-1 m and strides of 3-12 counted
# within half a point of each other.
PLACEMENT_STEP_M = 1.0
PLACEMENT_SCORE_SHARE = 0.6
PLACEMENT_STRIDE = 6
# Off the renderer it was built on, the counter errs more than its own evidence says (15-30 %
# of the cars on yards of other styles against 3-7 % on its own), so each one-by-one count's
# uncertainty is widened: scaled by CARRY_OVER_SCALE, with a floor of CARRY_OVER_FLOOR_CARS and
# CARRY_OVER_SHARE of the count added in quadrature; one set for pixels that resolve rails
# (up to FINE_PIXEL_M), one for coarser.  Chosen on the tuned styles only (classic, gravel,
# weedy; seeds 0-11; 0.3 and 0.5 m, then 1 m) for about 90 % coverage there (89 and 91 % at 0.3
# and 0.5 m, from 77 and 79 %; 90 % at 1 m, from 44 %), so that yards never seen are still
# covered about 80 %.  Occupied-length counts keep their own measured spread (LENGTH_*).
FINE_PIXEL_M = 0.6
CARRY_OVER_FINE = (1.25, 1.0, 0.2)  # (scale, floor in cars, share of the count)
CARRY_OVER_COARSE = (1.0, 2.0, 0.3)
# Below this share of the tracks' length showing rails, the rails do not vouch for the
# empty-track colour and cars are read as boxes instead.  On the classic yards (seeds 12-39,
# 0.3 and 0.5 m) rails showed on 27-91 % of the length; on an empty weedy yard on 11-27 %.
RAIL_TRUST_SHARE = 0.2
# spacing of the vertices of a train's outline along the track
OUTLINE_VERTEX_STEP_M = 2.0


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
    runs_px : list of ndarray of shape (P, 2)
        Each train (contiguous cars) as a polygon that follows the track, in pixel
        coordinates: one side from the train's start to its end (a vertex every
        ``OUTLINE_VERTEX_STEP_M``), then the other side back.
    offset_m : float
        Median sideways distance between the given line and the track found.
    reason : str
        Why the count is less sure than usual (the evidence that was missing), or empty.
    """

    track_id: str
    count: int
    occupied_m: float
    method: str
    uncertainty: float
    cars_px: list[np.ndarray] = field(default_factory=list, repr=False)
    runs_px: list[np.ndarray] = field(default_factory=list, repr=False)
    offset_m: float = 0.0
    reason: str = ""

    def to_dict(self) -> dict:
        out = {
            "track_id": self.track_id,
            "count": self.count,
            "occupied_m": round(self.occupied_m, 1),
            "method": self.method,
            "uncertainty": round(self.uncertainty, 2),
        }
        if self.reason:
            out["reason"] = self.reason
        return out


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


def _outline(strip: TrackStrip, start: int, stop: int, half_width_m: float, pixel_size_m: float) -> np.ndarray:
    """The strip between positions ``start`` and ``stop`` (exclusive) as a polygon that follows
    the track, in pixel coords: one side from start to stop, then the other side back.

    A train can be hundreds of metres long on a curve, where a quadrilateral's middle would
    be a chord metres off the track.
    """
    stop = min(stop, len(strip.along_m)) - 1
    every = max(1, int(round(OUTLINE_VERTEX_STEP_M / (strip.along_m[1] - strip.along_m[0]))))
    at = np.unique(np.r_[np.arange(start, stop, every), stop])
    w = half_width_m / pixel_size_m
    centre, normal = strip.centre_px[at], strip.normal_px[at]
    return np.concatenate([centre - normal * w, (centre + normal * w)[::-1]])


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


def _placements_across(
    score: Callable[[np.ndarray], np.ndarray],
    best: tuple[float, float],
    lines_px: list[np.ndarray],
    *,
    pixel_size_m: float,
    max_shift_m: float,
) -> list[tuple[float, float]]:
    """Other common shifts worth unmixing: every ``PLACEMENT_STEP_M`` across the tracks from
    ``best``, within ``max_shift_m``, where the bed footprint scores at least
    ``PLACEMENT_SCORE_SHARE`` of its score at ``best``."""
    longest = max(lines_px, key=lambda ln: LineString(ln).length)
    chord = np.asarray(longest[-1], float) - np.asarray(longest[0], float)
    normal = np.array([-chord[1], chord[0]]) / max(np.hypot(*chord), 1e-9)
    here = np.asarray(best, float)
    steps = np.arange(-2 * max_shift_m, 2 * max_shift_m + 1e-9, PLACEMENT_STEP_M) / pixel_size_m
    cand = here + steps[:, None] * normal
    cand = cand[(np.abs(steps) > 1e-9) & (np.hypot(*cand.T) * pixel_size_m <= max_shift_m + 1e-9)]
    if not len(cand):
        return []
    keep = score(cand) >= PLACEMENT_SCORE_SHARE * float(score(here[None])[0])
    return [(float(c[0]), float(c[1])) for c in cand[keep]]


@dataclass
class _Placement:
    """Where the tracks were found, their strips and the ground and shadows read from them."""

    offsets: list[np.ndarray]
    shift_px: tuple[float, float]
    strips: list[TrackStrip]
    ground: Ground
    direction: np.ndarray | None
    reach: float


def _shadow_geometry(
    data: np.ndarray, strips: list[TrackStrip], ground: Ground, *, pixel_size_m: float
) -> tuple[Ground, np.ndarray | None, float]:
    """Shadow colour, the side shadows fall to and their reach, for pixels without rails.

    Returns the ground (with a shadow colour where one is found), the shadows' direction
    (None where no side is darker) and their reach across the tracks in metres.
    """
    ground = with_side_shade(ground, strips, pixel_size_m=pixel_size_m)
    if ground.shade is None:
        return ground, None, DEFAULT_REACH_M
    centres = [band_mean(s, 0.0, CENTRE_BAND_M) for s in strips]
    # cars unlike ballast in sun or shade: not a neighbour's shadow lying across the track
    confident = [
        ground.contrast(c, np.ones(c.shape[1], bool), deepest=DEEPEST_SHADE) > CONFIDENT_SPREADS * OCCUPIED_SPREADS
        for c in centres
    ]
    direction = shadow_direction(strips, confident)
    if direction is None:
        return ground, None, DEFAULT_REACH_M
    empty = [ground.contrast(c) < EMPTY_SPREADS * OCCUPIED_SPREADS for c in centres]
    found = shadow_reach(data, strips, confident, empty, direction, ground.shade_fraction, pixel_size_m=pixel_size_m)
    reach = DEFAULT_REACH_M if found is None else found
    # where a confidently occupied neighbour's shadow covers a track's whole middle, that
    # track is mostly empty ballast in shadow: the surest shadow colour
    first = dict(enumerate(confident))
    ground = with_neighbour_shade(
        ground,
        centres,
        [
            shadow_view(data, k, strips, first, direction, reach, pixel_size_m=pixel_size_m).far_edge_m
            for k in range(len(strips))
        ],
    )
    return ground, direction, reach


@dataclass(frozen=True)
class _Yard:
    """One image's tracks, read once: the scaled bands, the wide strips and what the rails say.

    ``rails`` is the rail correlation along each track where pixels resolve rails (it marks
    empty track even where too few rails show to place the lines); ``rail_fit`` the tracks
    placed on their rails, where enough show (``RAIL_MIN_SEEN``).
    """

    data: np.ndarray
    ids: list[str]
    wide: list[TrackStrip]
    rails: list[np.ndarray] | None
    rail_fit: RailFit | None
    pixel_size_m: float
    max_line_error_m: float
    sun: ShadowGeometry | None

    @property
    def coarse(self) -> bool:
        """Pixels too coarse for a car's sides: the cross-track profiles are unmixed."""
        return self.pixel_size_m > COARSE_PIXEL_M


def place(yard: _Yard, common_shift_px: tuple[float, float] | None) -> _Placement:
    """The tracks placed by their rails (``yard.rail_fit``), or by ``common_shift_px`` and each one's symmetry."""
    pixel_size_m = yard.pixel_size_m
    if yard.rail_fit is not None:
        offsets, shift = yard.rail_fit.offsets, yard.rail_fit.shift_px
    else:
        offsets, shift = align_tracks(
            yard.wide, pixel_size_m=pixel_size_m, max_shift_m=yard.max_line_error_m, common_shift_px=common_shift_px
        )
    strips = [centred_strip(s, o, CENTRED_HALF_WIDTH_M, pixel_size_m=pixel_size_m) for s, o in zip(yard.wide, offsets)]
    ground = empty_track_ground(strips, yard.rails, pixel_size_m=pixel_size_m)
    direction, reach = None, DEFAULT_REACH_M
    if yard.rails is None:
        # no rails to tell a neighbour's shadow from a dark car: where shadows can lie decides
        ground, direction, reach = _shadow_geometry(yard.data, strips, ground, pixel_size_m=pixel_size_m)
    return _Placement(offsets, shift, strips, ground, direction, reach)


def _shadows_of(yard: _Yard, placed: _Placement) -> ShadowGeometry | None:
    """Where shadows fall: from the sun's angles, else from the direction read from the image."""
    if yard.sun is None and placed.direction is not None:
        return ShadowGeometry(placed.direction, DEFAULT_SHADOW_PER_HEIGHT)
    return yard.sun


def _common_scale(image: np.ndarray, *, coarse: bool) -> np.ndarray:
    """Bands on a common scale, so no band dominates the colour distances.

    On coarse pixels without removing the offset, so that a shadow stays the ground times a tint.
    """
    data = image.astype(np.float32, copy=False)
    sample = data.reshape(data.shape[0], -1)[:, :: max(1, data[0].size // SCALE_SAMPLES)]
    scale = np.percentile(sample, list(SCALE_PERCENTILES), axis=1)
    if coarse:
        return data / np.maximum(scale[1], 1e-6)[:, None, None]
    return (data - scale[0][:, None, None]) / np.maximum(scale[1] - scale[0], 1e-6)[:, None, None]


def _common_shift(yard: _Yard, lines: list[np.ndarray]) -> tuple[tuple[float, float] | None, list[tuple[float, float]]]:
    """Where the bed puts the group of tracks, for images whose rails do not place them.

    The bed's outline (or, on pixels as wide as a bed, its footprint) places the group, which
    symmetry alone can slide one track over; symmetry then moves each track a little on its
    own.  Returns the common shift in pixels (None where the lines leave nothing to match)
    and, at coarse pixels with the sun known, the other placements across the tracks worth
    unmixing.
    """
    pixel_size_m, max_shift_m = yard.pixel_size_m, yard.max_line_error_m
    if pixel_size_m <= BED_MAX_PIXEL_M:
        return align_to_bed(yard.data, lines, pixel_size_m=pixel_size_m, max_shift_m=max_shift_m), []
    if yard.sun is None:
        return align_to_bed_fill(yard.data, lines, pixel_size_m=pixel_size_m, max_shift_m=max_shift_m), []
    score = bed_fill_scorer(
        yard.data,
        lines,
        pixel_size_m=pixel_size_m,
        max_shift_m=max_shift_m,
        shadow_px=yard.sun.direction_px,
        shadow_m=BED_SHADOW_HEIGHT_M * yard.sun.per_height,
    )
    if score is None:
        return None, []
    common = best_fill_shift(score, pixel_size_m=pixel_size_m, max_shift_m=max_shift_m)
    if not yard.coarse:
        return common, []
    # the footprint can still prefer the group one track over, where the cars' shadows pass
    # for a bed: the unmixing, which knows cars and shadows, decides
    return common, _placements_across(score, common, lines, pixel_size_m=pixel_size_m, max_shift_m=max_shift_m)


def _best_placement(
    yard: _Yard, options: list[tuple[float, float] | None], prior: SegmentationPrior
) -> tuple[float, float] | None:
    """The placement whose quick unmixing (one pass, sparse positions) explains the image best."""
    fits = []
    for option in options:
        p = place(yard, option)
        fits.append(
            profile_cars(
                yard.data,
                p.strips,
                p.ground,
                _shadows_of(yard, p),
                pixel_size_m=yard.pixel_size_m,
                prior=prior,
                passes=1,
                position_stride=PLACEMENT_STRIDE,
            )[2]
        )
    return options[int(np.argmax(fits))]


def read_track(
    yard: _Yard, placed: _Placement, k: int, covered: dict[int, np.ndarray], prior: SegmentationPrior
) -> tuple[list[tuple[int, int]], TrackEvidence]:
    """Cars (start, stop positions) and the evidence along track ``k`` of a placement.

    ``covered`` holds, for the tracks read before this one, where their cars stand: where
    they throw shadow on this one.  This track's cars are added to it.
    """
    strip = placed.strips[k]
    shadows = None
    if placed.direction is not None:
        shadows = shadow_view(
            yard.data, k, placed.strips, covered, placed.direction, placed.reach, pixel_size_m=yard.pixel_size_m
        )
    elif yard.rails is None:
        # no shadow side found: shade counts nowhere as empty track
        shadows = ShadowView.nowhere(strip.values.shape[0], len(strip.along_m))
    evidence = track_evidence(
        strip,
        placed.ground,
        pixel_size_m=yard.pixel_size_m,
        rails=None if yard.rails is None else yard.rails[k],
        shadows=shadows,
    )
    cars = segment_cars(evidence, step_m=float(strip.along_m[1] - strip.along_m[0]), prior=prior)
    # the neighbours counted later see where this track's cars throw shadow
    covered[k] = np.zeros(len(strip.along_m), bool)
    for a, b in cars:
        covered[k][a:b] = True
    return cars, evidence


def individual_uncertainty(
    cars: list[tuple[int, int]], runs: list[tuple[int, int, int]], boundary: np.ndarray
) -> float:
    """One-sigma spread of a count of individual cars, in cars.

    Each cut between touching cars where the boundary evidence is weak may be a car too many
    or too few; every train adds a floor.
    """
    weak = sum(1 for (a, b), (c, d) in zip(cars, cars[1:]) if c - b <= 1 and boundary[c] < WEAK_BOUNDARY)
    return float(np.sqrt(WEAK_CUT_VARIANCE * weak + TRAIN_VARIANCE * len(runs)))


def carried_over(uncertainty: float, count: int, pixel_size_m: float) -> float:
    """A one-by-one count's uncertainty widened for imagery unlike the counter's own (``CARRY_OVER_*``)."""
    scale, floor, share = CARRY_OVER_FINE if pixel_size_m <= FINE_PIXEL_M else CARRY_OVER_COARSE
    return float(np.sqrt((scale * uncertainty) ** 2 + floor**2 + (share * count) ** 2))


def length_count(
    runs: list[tuple[int, int, int]], step_m: float, prior: SegmentationPrior, *, pixel_size_m: float, sun_used: bool
) -> tuple[int, float]:
    """Cars counted from occupied length (each train's length over the car pitch) and the spread.

    The spread: the car lengths' (``prior.length_sigma_m`` over the pitch) times the square
    root of the count, a pixel at each train end, and how far the occupied length itself
    was off on the development yards (``LENGTH_DETECTION_*``; smaller where the unmixing
    used the sun's angles).
    """
    per_run = [max(1, int(round(((b - a) * step_m + COUPLER_GAP_M) / prior.pitch_m))) for a, b, _ in runs]
    count = int(sum(per_run))
    rel = prior.length_sigma_m / prior.pitch_m
    floor, share = (
        (LENGTH_DETECTION_FLOOR_CARS_SUN, LENGTH_DETECTION_SHARE_SUN)
        if sun_used
        else (LENGTH_DETECTION_FLOOR_CARS, LENGTH_DETECTION_SHARE)
    )
    uncertainty = float(
        np.sqrt(
            sum(rel**2 * n + (TRAIN_END_PIXELS * pixel_size_m / prior.pitch_m) ** 2 for n in per_run)
            + floor**2
            + (share * count) ** 2
        )
    )
    return count, uncertainty


def count_track(
    yard: _Yard,
    placed: _Placement,
    k: int,
    cars: list[tuple[int, int]],
    evidence: TrackEvidence,
    prior: SegmentationPrior,
    *,
    boxes: bool = False,
) -> TrackCount:
    """Track ``k``'s count, occupied length, uncertainty and outlines from the cars found on it.

    ``boxes``: the cars were read as boxes (:mod:`.boxes`), whose weaker evidence widens the
    uncertainty, and the count says why.
    """
    strip, pixel_size_m = placed.strips[k], yard.pixel_size_m
    step = float(strip.along_m[1] - strip.along_m[0])
    # a car belongs to this track when its middle is on the line
    cars = [(a, b) for a, b in cars if 0.0 <= strip.along_m[(a + b - 1) // 2] <= strip.line_length_m]
    runs = _runs(cars, max_gap=int(round(TRAIN_GAP_M / step)))
    occupied = float(sum((b - a) * step for a, b, _ in runs))
    individual = method_for(pixel_size_m) == METHOD_INDIVIDUAL
    if individual:
        count, uncertainty = len(cars), individual_uncertainty(cars, runs, evidence.boundary)
        if boxes:
            uncertainty = box_uncertainty(cars, evidence.occupancy, step, uncertainty)
        uncertainty = carried_over(uncertainty, count, pixel_size_m)
    else:
        # sun angles narrow the spread only where the unmixing used them
        sun_used = yard.coarse and yard.sun is not None
        count, uncertainty = length_count(runs, step, prior, pixel_size_m=pixel_size_m, sun_used=sun_used)
    return TrackCount(
        yard.ids[k],
        count,
        occupied,
        method_for(pixel_size_m),
        uncertainty,
        cars_px=[_quad(strip, a, b, CAR_WIDTH_M / 2, pixel_size_m) for a, b in cars] if individual else [],
        runs_px=[_outline(strip, a, b, CAR_WIDTH_M / 2, pixel_size_m) for a, b, _ in runs],
        offset_m=float(np.median(placed.offsets[k])),
        reason=BOX_REASON if boxes else "",
    )


def _yard(
    image: np.ndarray,
    tracks_px: dict[str, np.ndarray],
    *,
    pixel_size_m: float,
    max_line_error_m: float,
    sun: ShadowGeometry | None,
) -> _Yard:
    """The image's bands on a common scale, a wide strip along every track, and the rails' fit."""
    data = _common_scale(image, coarse=pixel_size_m > COARSE_PIXEL_M)
    ids = list(tracks_px)
    wide = [
        sample_strip(
            data,
            np.asarray(tracks_px[t], float),
            pixel_size_m=pixel_size_m,
            half_width_m=max_line_error_m + WIDE_STRIP_SLACK_M + WIDE_STRIP_MARGIN_M,
            extend_m=max_line_error_m + WIDE_STRIP_MARGIN_M,
        )
        for t in ids
    ]
    rails: list[np.ndarray] | None = None
    placing = None
    if pixel_size_m <= RAIL_MAX_PIXEL_M:
        fit = align_to_rails(data, wide, pixel_size_m=pixel_size_m, max_shift_m=max_line_error_m)
        # the rails that show mark empty track even where too few show to place the lines
        rails = fit.rails
        placing = fit if fit.seen >= RAIL_MIN_SEEN else None
    return _Yard(data, ids, wide, rails, placing, pixel_size_m, max_line_error_m, sun)


def count_railcars(
    image: np.ndarray,
    tracks_px: dict[str, np.ndarray],
    *,
    pixel_size_m: float,
    max_line_error_m: float | None = None,
    prior: SegmentationPrior = SegmentationPrior(),
    sun: ShadowGeometry | None = None,
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
        How far the lines may be off the real tracks; default ``LINE_ERROR_PX`` pixels plus
        ``LINE_ERROR_M``.
    prior : SegmentationPrior
        Car lengths and how strongly the segmentation trusts the evidence.
    sun : ShadowGeometry, optional
        Where shadows fall, from the sun's azimuth and elevation in the image's metadata
        (:func:`~.profile.shadow_geometry`).  Used on pixels coarser than ``COARSE_PIXEL_M``,
        where a car's shadow is often the surest sign of it (:mod:`.profile`); without it the
        shadows' direction is read from the image where it can be.

    Returns
    -------
    RailcarCount

    Notes
    -----
    Uncertainty: for individual cars, each cut made where the boundary evidence is weak
    counts as a possible extra or missing car (half a car each, added in quadrature with a
    floor of 0.3 cars per train); for the occupied-length method it is the spread of car
    lengths (``prior.length_sigma_m``) over the pitch, times the square root of the count,
    plus one pixel at each train end, plus how far the occupied length itself was off on the
    development yards of ``benchmarks/bench_railcars.py`` at 3 m (``LENGTH_DETECTION_*``,
    smaller with ``sun``).
    """
    if image.ndim != 3:
        raise ValueError(f"image must have shape (bands, rows, cols), got {image.shape}")
    if not tracks_px:
        raise ValueError("no tracks to count along")
    if max_line_error_m is None:
        max_line_error_m = LINE_ERROR_PX * pixel_size_m + LINE_ERROR_M
    yard = _yard(image, tracks_px, pixel_size_m=pixel_size_m, max_line_error_m=max_line_error_m, sun=sun)
    common, alternatives = None, []
    if yard.rail_fit is None:
        common, alternatives = _common_shift(yard, [np.asarray(tracks_px[t], float) for t in yard.ids])
    if alternatives:
        common = _best_placement(yard, [common] + alternatives, prior)
    placed = place(yard, common)
    unmixed = None
    if yard.coarse:
        # a car is a pixel wide and tracks share pixels: unmix each profile across the tracks
        unmixed = profile_cars(
            yard.data, placed.strips, placed.ground, _shadows_of(yard, placed), pixel_size_m=pixel_size_m, prior=prior
        )[:2]
    boxes = not yard.coarse and boxes_needed(yard)
    if boxes:
        unmixed = read_boxes(yard, placed, prior)
    by_track: dict[int, TrackCount] = {}
    covered: dict[int, np.ndarray] = {}
    for k in sun_first_order(placed.strips, placed.direction):
        if unmixed is not None:
            cars, evidence = unmixed[0][k], unmixed[1][k]
        else:
            cars, evidence = read_track(yard, placed, k, covered, prior)
        by_track[k] = count_track(yard, placed, k, cars, evidence, prior, boxes=boxes)
    return RailcarCount([by_track[k] for k in range(len(yard.ids))], placed.shift_px, method_for(pixel_size_m))


def boxes_needed(yard: _Yard) -> bool:
    """Pixels that resolve rails, on which too few rails show to trust them (under
    ``RAIL_TRUST_SHARE`` of the tracks' length): the empty-track colour learnt over all lines
    cannot be vouched for, so cars are read as boxes (:mod:`.boxes`)."""
    return yard.rails is not None and (yard.rail_fit is None or yard.rail_fit.seen < RAIL_TRUST_SHARE)


def read_boxes(
    yard: _Yard, placed: _Placement, prior: SegmentationPrior
) -> tuple[list[list[tuple[int, int]]], list[TrackEvidence]]:
    """Cars along every track read as boxes with their shadows, against empty track nearby."""
    tracks = []
    for k, strip in enumerate(placed.strips):
        side = 0
        if yard.sun is not None:
            side = int(np.sign(np.median(strip.normal_px @ yard.sun.direction_px)))
        rails = None if yard.rails is None else yard.rails[k]
        tracks.append(BoxTrack(strip, box_features(strip, shadow_side=side), rails))
    shadows = None
    if yard.sun is not None:
        shadows = Shadows(yard.sun.direction_px, yard.sun.per_height, yard.pixel_size_m)
    return box_cars(tracks, pixel_size_m=yard.pixel_size_m, prior=prior, shadows=shadows)


def method_for(pixel_size_m: float) -> str:
    """How cars are counted at a pixel size: one by one, or by occupied length."""
    return METHOD_INDIVIDUAL if pixel_size_m <= INDIVIDUAL_MAX_PIXEL_M else METHOD_LENGTH
