"""Railcar counting along track centrelines: pure NumPy/SciPy on arrays.

The image is resampled along each track into a straightened strip (along x cross-track,
:mod:`.strip`); the strip is slid sideways onto the real track, since AOI centrelines are
often a few pixels off: by its rails where the pixels show them (:mod:`.rails`), otherwise
by the outline of the group's ballast bed (:mod:`.bed`) and each track's mirror symmetry.
Each along-track position then gets occupancy and boundary evidence (:mod:`.evidence`);
without rails, where neighbours' shadows lie and where a car's own would fall decide what a
shadow colour means (:mod:`.shadows`).  On pixels about as wide as a car, where tracks share
pixels, each profile across the tracks is unmixed instead: ballast, cars, their shadows and
the pixel's blur, all tracks of a group at once (:mod:`.profile`; shadows from the sun's
angles where the image's metadata gives them).  A semi-Markov dynamic programme cuts the
track into empty stretches and cars (:mod:`.segment`).  Where the pixel is too coarse to see
a one-metre gap, the count is the occupied length divided by the nominal car pitch instead,
and the result says so.

Geometry convention: track lines arrive in pixel coordinates of the image as ``(col, row)``
with rasterio's convention that ``(0, 0)`` is the outer corner of the top-left pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import LineString

from .bed import BED_MAX_PIXEL_M, BED_SHADOW_HEIGHT_M, align_to_bed, align_to_bed_fill, bed_fill_scorer, best_fill_shift
from .evidence import (
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
from .profile import DEFAULT_SHADOW_PER_HEIGHT, ShadowGeometry, profile_cars, shadow_geometry
from .rails import RAIL_MAX_PIXEL_M, RAIL_MIN_SEEN, RailFit, align_to_rails
from .segment import (
    CAR_LENGTH_RANGE_M,
    CAR_WIDTH_M,
    COUPLER_GAP_M,
    NOMINAL_CAR_LENGTH_M,
    SegmentationPrior,
    segment_cars,
)
from .shadows import DEFAULT_REACH_M, ShadowView, shadow_direction, shadow_reach, shadow_view, sun_first_order
from .strip import TrackStrip, align_tracks, band_mean, centred_strip, sample_strip

__all__ = [
    "CAR_LENGTH_RANGE_M",
    "CAR_WIDTH_M",
    "COARSE_PIXEL_M",
    "COUPLER_GAP_M",
    "METHOD_INDIVIDUAL",
    "METHOD_LENGTH",
    "NOMINAL_CAR_LENGTH_M",
    "Ground",
    "RailcarCount",
    "SegmentationPrior",
    "ShadowGeometry",
    "TrackCount",
    "TrackEvidence",
    "TrackStrip",
    "count_railcars",
    "segment_cars",
    "shadow_geometry",
    "track_evidence",
]

METHOD_INDIVIDUAL = "individual-cars"
METHOD_LENGTH = "occupied-length"

# Below this pixel size a one-metre coupler gap spans at least a pixel, so cars are cut at
# the gaps; above it cars blur into trains and are counted by occupied length.
INDIVIDUAL_MAX_PIXEL_M = 1.0
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
# PLACEMENT_STRIDE-th position) and the best-explained one kept.
# (Development yards 0-79 and 2000-2049: shares of 0.6-0.8, steps of 0.5-1 m and strides
# of 3-12 within half a point of each other.)
PLACEMENT_STEP_M = 1.0
PLACEMENT_SCORE_SHARE = 0.6
PLACEMENT_STRIDE = 6
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
        return {
            "track_id": self.track_id,
            "count": self.count,
            "occupied_m": round(self.occupied_m, 1),
            "method": self.method,
            "uncertainty": round(self.uncertainty, 2),
        }


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


def _place(
    data: np.ndarray,
    wide: list[TrackStrip],
    rails: list[np.ndarray] | None,
    rail_fit: RailFit | None,
    common_shift_px: tuple[float, float] | None,
    *,
    pixel_size_m: float,
    max_line_error_m: float,
) -> _Placement:
    """Tracks placed by the rails (``rail_fit``) or by a common shift and each track's symmetry."""
    if rail_fit is not None:
        offsets, shift = rail_fit.offsets, rail_fit.shift_px
    else:
        offsets, shift = align_tracks(
            wide, pixel_size_m=pixel_size_m, max_shift_m=max_line_error_m, common_shift_px=common_shift_px
        )
    strips = [centred_strip(s, o, 3.5, pixel_size_m=pixel_size_m) for s, o in zip(wide, offsets)]
    ground = empty_track_ground(strips, rails, pixel_size_m=pixel_size_m)
    direction, reach = None, DEFAULT_REACH_M
    if rails is None:
        # no rails to tell a neighbour's shadow from a dark car: where shadows can lie decides
        ground, direction, reach = _shadow_geometry(data, strips, ground, pixel_size_m=pixel_size_m)
    return _Placement(offsets, shift, strips, ground, direction, reach)


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
    centres = [band_mean(s, 0.0, 0.9) for s in strips]
    # cars unlike ballast in sun or shade: not a neighbour's shadow lying across the track
    confident = [
        ground.contrast(c, np.ones(c.shape[1], bool), deepest=DEEPEST_SHADE) > 2 * OCCUPIED_SPREADS for c in centres
    ]
    direction = shadow_direction(strips, confident)
    if direction is None:
        return ground, None, DEFAULT_REACH_M
    empty = [ground.contrast(c) < 0.5 * OCCUPIED_SPREADS for c in centres]
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
        How far the lines may be off the real tracks; default 3 pixels plus half a metre.
    prior : SegmentationPrior
        Car lengths and how strongly the segmentation trusts the evidence.
    sun : ShadowGeometry, optional
        Where shadows fall, from the sun's azimuth and elevation in the image's metadata
        (:func:`shadow_geometry`).  Used on pixels coarser than ``COARSE_PIXEL_M``, where a
        car's shadow is often the surest sign of it (:mod:`.profile`); without it the
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
        max_line_error_m = 3.0 * pixel_size_m + 0.5
    data = image.astype(np.float32, copy=False)
    coarse = pixel_size_m > COARSE_PIXEL_M
    # bands on a common scale, so no band dominates the colour distances; on coarse pixels
    # without removing the offset, so that a shadow stays the ground times a tint
    scale = np.percentile(data.reshape(data.shape[0], -1)[:, :: max(1, data[0].size // 200_000)], [2, 98], axis=1)
    if coarse:
        data = data / np.maximum(scale[1], 1e-6)[:, None, None]
    else:
        data = (data - scale[0][:, None, None]) / np.maximum(scale[1] - scale[0], 1e-6)[:, None, None]

    ids = list(tracks_px)
    wide = [
        sample_strip(
            data,
            np.asarray(tracks_px[t], float),
            pixel_size_m=pixel_size_m,
            half_width_m=max_line_error_m + 0.5 + 5.0,
            extend_m=max_line_error_m + 5.0,
        )
        for t in ids
    ]
    rails: list[np.ndarray] | None = None
    fit = None
    if pixel_size_m <= RAIL_MAX_PIXEL_M:
        fit = align_to_rails(data, wide, pixel_size_m=pixel_size_m, max_shift_m=max_line_error_m)
        # the rails that show mark empty track even where too few show to place the lines
        rails = fit.rails
    alternatives: list[tuple[float, float]] = []
    common = None
    if fit is None or fit.seen < RAIL_MIN_SEEN:
        # the bed's outline places the group (symmetry alone can slide it one track over);
        # symmetry then moves each track a little on its own
        lines = [np.asarray(tracks_px[t], float) for t in ids]
        if pixel_size_m <= BED_MAX_PIXEL_M:
            common = align_to_bed(data, lines, pixel_size_m=pixel_size_m, max_shift_m=max_line_error_m)
        elif sun is not None:
            score = bed_fill_scorer(
                data,
                lines,
                pixel_size_m=pixel_size_m,
                max_shift_m=max_line_error_m,
                shadow_px=sun.direction_px,
                shadow_m=BED_SHADOW_HEIGHT_M * sun.per_height,
            )
            if score is not None:
                common = best_fill_shift(score, pixel_size_m=pixel_size_m, max_shift_m=max_line_error_m)
                if coarse:
                    # the footprint can still prefer the group one track over, where the cars'
                    # shadows pass for a bed: the unmixing, which knows cars and shadows, decides
                    alternatives = _placements_across(
                        score, common, lines, pixel_size_m=pixel_size_m, max_shift_m=max_line_error_m
                    )
        else:
            common = align_to_bed_fill(data, lines, pixel_size_m=pixel_size_m, max_shift_m=max_line_error_m)

    individual = pixel_size_m <= INDIVIDUAL_MAX_PIXEL_M
    method = METHOD_INDIVIDUAL if individual else METHOD_LENGTH
    rail_placed = fit if fit is not None and fit.seen >= RAIL_MIN_SEEN else None

    def place(option: tuple[float, float] | None) -> _Placement:
        return _place(
            data, wide, rails, rail_placed, option, pixel_size_m=pixel_size_m, max_line_error_m=max_line_error_m
        )

    def shadows_of(p: _Placement) -> ShadowGeometry | None:
        if sun is None and p.direction is not None:
            return ShadowGeometry(p.direction, DEFAULT_SHADOW_PER_HEIGHT)
        return sun

    if alternatives:
        # a quick unmixing (one pass, sparse positions) of each placement; the best explained wins
        options = [common] + alternatives
        fits = []
        for option in options:
            p = place(option)
            fits.append(
                profile_cars(
                    data,
                    p.strips,
                    p.ground,
                    shadows_of(p),
                    pixel_size_m=pixel_size_m,
                    prior=prior,
                    passes=1,
                    position_stride=PLACEMENT_STRIDE,
                )[2]
            )
        common = options[int(np.argmax(fits))]
    placed = place(common)
    offsets, shift_px, strips, ground = placed.offsets, placed.shift_px, placed.strips, placed.ground
    direction, reach = placed.direction, placed.reach
    unmixed = None
    if coarse:
        # a car is a pixel wide and tracks share pixels: unmix each profile across the tracks
        unmixed = profile_cars(data, strips, ground, shadows_of(placed), pixel_size_m=pixel_size_m, prior=prior)[:2]
    by_track: dict[int, TrackCount] = {}
    covered: dict[int, np.ndarray] = {}
    for k in sun_first_order(strips, direction):
        track_id, strip, off = ids[k], strips[k], offsets[k]
        step = float(strip.along_m[1] - strip.along_m[0])
        if unmixed is not None:
            cars, evidence = unmixed[0][k], unmixed[1][k]
        else:
            shadows = None
            if direction is not None:
                shadows = shadow_view(data, k, strips, covered, direction, reach, pixel_size_m=pixel_size_m)
            elif rails is None:
                # no shadow side found: shade counts nowhere as empty track
                shadows = ShadowView.nowhere(strip.values.shape[0], len(strip.along_m))
            evidence = track_evidence(
                strip, ground, pixel_size_m=pixel_size_m, rails=None if rails is None else rails[k], shadows=shadows
            )
            cars = segment_cars(evidence, step_m=step, prior=prior)
            # the neighbours counted later see where this track's cars throw shadow
            covered[k] = np.zeros(len(strip.along_m), bool)
            for a, b in cars:
                covered[k][a:b] = True
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
            # sun angles narrow the spread only where the unmixing used them
            floor, share = (
                (LENGTH_DETECTION_FLOOR_CARS_SUN, LENGTH_DETECTION_SHARE_SUN)
                if coarse and sun is not None
                else (LENGTH_DETECTION_FLOOR_CARS, LENGTH_DETECTION_SHARE)
            )
            uncertainty = float(
                np.sqrt(
                    sum(rel**2 * n + (2 * pixel_size_m / prior.pitch_m) ** 2 for n in per_run)
                    + floor**2
                    + (share * count) ** 2
                )
            )
        by_track[k] = TrackCount(
            track_id,
            count,
            occupied,
            method,
            uncertainty,
            cars_px=[_quad(strip, a, b, CAR_WIDTH_M / 2, pixel_size_m) for a, b in cars] if individual else [],
            runs_px=[_outline(strip, a, b, CAR_WIDTH_M / 2, pixel_size_m) for a, b, _ in runs],
            offset_m=float(np.median(off)),
        )
    return RailcarCount([by_track[k] for k in range(len(ids))], shift_px, method)
