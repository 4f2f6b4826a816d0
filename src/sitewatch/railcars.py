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
    sample = pooled[:: max(1, len(pooled) // max_samples)]
    d = np.sqrt(((sample[:, None, :] - sample[None, :, :]) ** 2).sum(axis=-1))
    k = max(5, len(sample) // 10)
    radius = np.partition(d, k, axis=1)[:, k]
    members = np.argsort(d[int(np.argmin(radius))])[:k]
    colour = np.median(sample[members], axis=0)
    spread = float(np.median(np.sqrt(((sample[members] - colour) ** 2).sum(axis=1))))
    return colour, max(spread, 1e-6)


def occupancy_contrast(strip: TrackStrip, empty_colour: np.ndarray, *, pixel_size_m: float) -> np.ndarray:
    """How car-like each position is, in image units, shape (L,).

    The smaller of (a) the centre band's distance from empty ballast and (b) the contrast
    across a car's side (just inside against just outside, stronger side).  (a) alone fires
    on a neighbour's shadow lying across empty track; (b) alone on the ballast shoulder.
    """
    centre = _band_mean(strip, 0.0, 0.9)
    from_ballast = _distance(centre, empty_colour[:, None])
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
    return np.minimum(from_ballast, side_edge)


@dataclass
class TrackEvidence:
    """Per-position evidence along one track (all arrays of shape (L,)).

    ``occupancy`` is positive where a car is likely, negative where the track looks empty;
    ``boundary`` is large where one car ends and another begins (or the track empties).
    """

    occupancy: np.ndarray
    boundary: np.ndarray


def track_evidence(strip: TrackStrip, empty_colour: np.ndarray, empty_spread: float, *, pixel_size_m: float) -> TrackEvidence:
    """Occupancy and boundary evidence along a centred strip.

    Occupancy is :func:`occupancy_contrast` in units of the ballast cluster's own spread
    (so the scale adapts to the image's noise and contrast), 0 at ``OCCUPIED_SPREADS``
    spreads and saturating towards ±1.  Boundary is the stronger of a colour step in the
    centre band over about 2 m and a ~1 m dip or bump (a coupler gap), in units of four
    spreads.
    """
    step = float(strip.along_m[1] - strip.along_m[0])
    centre = _band_mean(strip, 0.0, 0.9)
    ratio = np.maximum(occupancy_contrast(strip, empty_colour, pixel_size_m=pixel_size_m) / (OCCUPIED_SPREADS * empty_spread), 1e-3)
    # log-ratio-like score: 0 at the threshold, saturating so one odd pixel cannot dominate
    smooth = max(1, int(round(max(0.5, pixel_size_m / 2) / step)))
    occupancy = np.tanh(np.log(np.maximum(ndimage.uniform_filter1d(ratio, smooth, mode="nearest"), 1e-3)))

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
    boundary = np.maximum(step_strength, dip) / (4.0 * empty_spread)
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
    strips = [centred_strip(s, o, 3.5, pixel_size_m=pixel_size_m) for s, o in zip(wide, offsets)]
    empty, spread = empty_track_colour([_band_mean(s, 0.0, 0.9) for s in strips])

    individual = pixel_size_m <= INDIVIDUAL_MAX_PIXEL_M
    method = METHOD_INDIVIDUAL if individual else METHOD_LENGTH
    results = []
    for track_id, strip, off in zip(ids, strips, offsets):
        step = float(strip.along_m[1] - strip.along_m[0])
        evidence = track_evidence(strip, empty, spread, pixel_size_m=pixel_size_m)
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
