"""Track centrelines found in the image itself, where no track lines are given.

At pixels up to :data:`RAIL_PAIR_MAX_PIXEL_M` a track shows as a pair of rails 1.5 m apart
(standard gauge, 1.435 m between the heads' inner faces); a track full of cars hides its rails
but shows a row of rigid boxes 2.6-3.2 m wide; sleepers make a band 2.6 m wide; a lone track's
ballast bed a band about 4.6 m wide.  Each is an *oriented matched filter*
(:func:`ridge_map`): the image is turned so that a candidate direction runs along the rows
(:func:`scipy.ndimage.affine_transform`), averaged over :data:`ALONG_M` along them and compared
across at the offsets the feature predicts, in every direction :data:`ANGLE_STEP_DEG` apart;
the rail pair must also correlate with its shape.  The strongest z-score and its direction at
every pixel make a ridge map.

Ridges are thinned across their direction, kept by hysteresis and skeletonised
(:func:`ridge_pieces`); the strongest pieces seed *streamlines* that follow the ridges'
smoothed direction, which parallel tracks share (:func:`_streamline`).  Across each
streamline the ridge map is sampled into a strip, and tracks are the best paths through it
that run nearly parallel to the streamline and on through stretches that show little (a
train, a shadow), a local alignment by dynamic programming (:func:`_strip_tracks`).  Lines
that continue each other across a longer gap and lie on one circle or straight line are
joined; lines wandering more than a track bends, or shorter than :data:`MIN_TRACK_M`, are
dropped; each line is moved onto the centre of its rails where they show
(:func:`centre_on_rails`); of two lines closer than tracks can be, the one showing rails (or
else the longer and stronger) is kept.

Pixels coarser than :data:`FIND_MAX_PIXEL_M` do not show a car's sides apart from the next
track's, and are refused.

Geometry convention: lines are pixel ``(col, row)`` with ``(0, 0)`` the outer corner of the
top-left pixel, as in :mod:`sitewatch.railcars`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import apply_hysteresis_threshold
from skimage.measure import label
from skimage.morphology import skeletonize

# --- range -------------------------------------------------------------------------------
FIND_MAX_PIXEL_M = 1.0  # coarser pixels blur neighbouring tracks' cars together: refused
RAIL_PAIR_MAX_PIXEL_M = 0.6  # rails are looked for up to here; coarser, cars, sleepers and beds only

# --- the matched filters (metres across the track from its centre) -------------------------
RAIL_OFFSET_M = 0.74  # each rail's centre: (1.435 m gauge + a 0.07 m head) / 2
RAIL_FLANK_M = 0.4  # a rail is compared with the ground this far either side of it
RAIL_WINDOW_M = 1.15  # the pair's shape is matched over this much either side of the centre ...
RAIL_MIN_CORR = 0.5  # ... and must correlate with it at least this well
BOX_INSIDE_M = (0.3, 1.1)  # inside a car (2.6-3.2 m wide) or a sleeper band (2.6 m) ...
BOX_OUTSIDE_M = (1.75, 2.2)  # ... against just outside it (the next track is >= 4.2 m away)
BED_INSIDE_M = (0.3, 1.7)  # inside a lone track's ballast bed (about 4.6 m wide) ...
BED_OUTSIDE_M = (2.9, 3.6)  # ... against the ground beyond it
ALONG_M = 6.0  # every filter averages this far along the candidate direction
ANGLE_STEP_DEG = 4.0  # directions tried; ALONG_M * tan(step / 2) stays well under a rail's width

ALONG_SAMPLES = 4  # samples kept per averaging length along (the average changes little between them)
NOISE_SAMPLE_EVERY = 3  # each filter's noise (MAD) is measured on every third row across

# --- weights of each filter's z-score in the ridge map --------------------------------------
RAIL_WEIGHT = 1.0
BOX_WEIGHT = 0.8
BED_WEIGHT = 0.6
EITHER_SIGN_WEIGHT = 0.7  # an edge either side of opposite signs counts this much of one of like signs

# --- ridges to lines ---------------------------------------------------------------------
RIDGE_LOW_Z = 3.0  # hysteresis: a ridge pixel continues a line above this ...
RIDGE_HIGH_Z = 5.0  # ... that somewhere rises above this
CREST_APART_M = 1.5  # a ridge point must be the strongest across its ridge out to here
MIN_PIECE_M = 4.0  # shorter skeleton pieces are noise
SEED_MIN_M = 8.0  # ridge pieces at least this long seed a streamline, strongest first
TRACE_STEP_M = 2.0  # found lines keep a vertex this often
TRACE_MIN_Z = 4.0  # a line's ridge counts as found where at least this strong (FoundTrack.found_share)
ORIENT_SIGMA_M = 4.0  # the ridges' direction is averaged over this (Gaussian sigma) ...
STREAM_STEP_M = 1.0  # ... and a streamline follows it in steps this long ...
STREAM_MIN_Z = 4.0  # ... while the ridges around are at least this strong (root mean square) ...
STREAM_MAX_GAP_M = 30.0  # ... or have been for the last this much of it
STREAM_TURN_SPAN_M = 20.0  # a streamline stops where its direction turns over this much of it ...
STREAM_MAX_TURN_DEG = 30.0  # ... by more than this (the field is noisy; a 250 m radius turns 4.6 degrees)
STRIP_HALF_M = 12.0  # across a streamline, tracks are looked for this far either side ...
STRIP_STEP_M = 0.1  # ... every this much ...
PEAK_APART_M = 3.5  # ... and this far apart (tracks are >= 4.2 m apart)
PATH_SLOPE = 0.1  # a track's path may drift across the streamline by this much per metre along ...
PATH_COST_Z = 5.0  # ... gaining its strength less this at every metre ...
PATH_TURN_COST_Z = 2.0  # ... less this for every STRIP_STEP_M it moves across ...
PATH_MIN_SCORE = 150.0  # ... and is a track where it gains at least this
JOIN = 1  # 0: leave broken lines broken (for measuring what joining gives)
MIN_PATH_M = 10.0  # shorter paths are not kept, not even to be joined
JOIN_MAX_GAP_M = 120.0  # lines whose ends are this close ...
JOIN_MAX_ANGLE_DEG = 15.0  # ... and run on into each other to this ...
JOIN_FIT_M = 0.3  # ... and lie on one circle or line to this (RMS) are one track
WIGGLE_SPAN_M = 60.0  # over this much of it a track is a circle's arc or straight ...
MAX_WIGGLE_M = 1.0  # ... to this (RMS); a line wandering more follows trees, sheds or noise
MIN_TRACK_M = 60.0  # shorter lines are sheds' edges, trees' shadows or crossovers
RANK_SCORE_CAP = 10.0  # lines are ranked by length times score, the score capped here
DUPLICATE_M = 3.6  # of two lines this close over most of one, the weaker goes (tracks are >= 4.2 m apart)
SMOOTH_M = 10.0  # a path's offsets are averaged over this much of it (a curve's radius is >= 250 m)
RAIL_SEEN_CORRELATION = 0.5  # a line shows rails where the pair's correlation reaches this (rails.py) ...
CENTRE_ON_RAILS = 1  # 0: leave the traced lines where they are (for measuring what centring gives)
CENTRE_SMOOTH_M = 6.0  # ... averaged over this much along
CENTRE_REACH_M = 0.6  # a line is moved onto its rails by up to this (the next pair is 1.5 m over) ...
CENTRE_MEDIAN_M = 20.0  # ... the offsets found smoothed (median) over this much of it


@dataclass(frozen=True)
class FoundTrack:
    """One track centreline found in the image.

    Attributes
    ----------
    line_px : ndarray of shape (K, 2)
        Vertices, pixel ``(col, row)``.
    length_m : float
    score : float
        Mean ridge strength (weighted z-score of the best filter) along the line's points.
    found_share : float
        Share of the line's vertices on which the ridge is at least :data:`TRACE_MIN_Z` (the
        rest bridged: a train, a shadow, faint rails).
    """

    line_px: np.ndarray
    length_m: float
    score: float
    found_share: float


@dataclass
class RidgeMap:
    """The strongest matched-filter response at each pixel and its direction.

    Attributes
    ----------
    strength : ndarray of shape (M, N), float32
        Weighted z-score of the best filter in the best direction.
    angle : ndarray of shape (M, N), float32
        That direction, radians, of the track's run in (col, row) pixel axes, in [0, pi).
    """

    strength: np.ndarray
    angle: np.ndarray


def _grey(image: np.ndarray) -> np.ndarray:
    """Mean of the bands, scaled so that the median is 1 (8-bit, 16-bit and reflectance alike)."""
    grey = np.asarray(image, np.float32).mean(axis=0)
    med = float(np.median(grey))
    return grey / (med if med > 0 else max(float(grey.max()), 1.0))


def _kernel(weights: list[tuple[float, float]], pixel_size_m: float) -> np.ndarray:
    """A 1-D correlation kernel from (offset metres, weight) taps placed by linear interpolation."""
    offs = np.array([o for o, _ in weights]) / pixel_size_m
    reach = int(np.ceil(np.abs(offs).max())) + 1
    k = np.zeros(2 * reach + 1)
    for o, w in zip(offs, (w for _, w in weights)):
        lo = int(np.floor(o))
        f = o - lo
        k[reach + lo] += w * (1 - f)
        k[reach + lo + 1] += w * f
    return k


def _band(lo_m: float, hi_m: float, pixel_size_m: float, sign: float) -> list[tuple[float, float]]:
    """Taps averaging the band [lo, hi] metres (at least one pixel wide) to weight ``sign`` in all."""
    width = max(hi_m - lo_m, pixel_size_m)
    mid = (lo_m + hi_m) / 2
    n = max(2, int(np.ceil(width / (pixel_size_m / 2))) + 1)
    return [(float(x), sign / n) for x in np.linspace(mid - width / 2, mid + width / 2, n)]


def _filters(pixel_size_m: float) -> dict[str, list[np.ndarray]]:
    """The cross-track kernels: each filter is a set of linear responses combined by their smallest."""
    p = pixel_size_m
    flank = max(RAIL_FLANK_M, 1.2 * p)
    out: dict[str, list[np.ndarray]] = {}
    if p <= RAIL_PAIR_MAX_PIXEL_M:
        out["rail"] = [
            _kernel([(s * RAIL_OFFSET_M, 1.0), (s * RAIL_OFFSET_M - flank, -0.5), (s * RAIL_OFFSET_M + flank, -0.5)], p)
            for s in (-1.0, 1.0)
        ]
    for name, inside, outside in (("box", BOX_INSIDE_M, BOX_OUTSIDE_M), ("bed", BED_INSIDE_M, BED_OUTSIDE_M)):
        out[name] = [
            _kernel(_band(s * inside[0], s * inside[1], p, 1.0) + _band(s * outside[0], s * outside[1], p, -1.0), p)
            for s in (-1.0, 1.0)
        ]
    return out


def _frame(shape: tuple[int, int], theta: float) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Matrix and offset taking a frame whose rows run along ``theta`` to image (row, col) indices."""
    rows, cols = shape
    c, s = np.cos(theta), np.sin(theta)
    # frame index (w across, u along) -> image (row, col): along is (col, row) = (c, s); across (-s, c)
    matrix = np.array([[c, s], [-s, c]])
    fh = int(np.ceil(abs(cols * s) + abs(rows * c))) + 2
    fw = int(np.ceil(abs(cols * c) + abs(rows * s))) + 2
    centre_img = np.array([(rows - 1) / 2, (cols - 1) / 2])
    centre_frame = np.array([(fh - 1) / 2, (fw - 1) / 2])
    offset = centre_img - matrix @ centre_frame
    return matrix, offset, (fh, fw)


def _responses(
    smooth: np.ndarray, ok: np.ndarray, filters: dict[str, list[np.ndarray]], pixel_size_m: float
) -> dict[str, np.ndarray]:
    """Each filter's weighted z-score in a frame averaged along its rows (shape (W, U) each)."""
    weights = {"rail": RAIL_WEIGHT, "box": BOX_WEIGHT, "bed": BED_WEIGHT}
    sample = ok & (np.arange(ok.shape[0])[:, None] % NOISE_SAMPLE_EVERY == 0)
    out = {}
    for name, kernels in filters.items():
        parts = [ndimage.correlate1d(smooth, k, axis=0, mode="nearest") for k in kernels]
        noise = [1.4826 * float(np.median(np.abs(r[sample] - np.median(r[sample])))) + 1e-6 for r in parts]
        z = [r / n for r, n in zip(parts, noise)]
        # both sides alike (both rails dark or both bright; a band brighter or darker than
        # the ground either side): their sum, but no more than twice the weaker
        dark = np.minimum(-(z[0] + z[1]) / np.sqrt(2), -2 * np.maximum(z[0], z[1]))
        bright = np.minimum((z[0] + z[1]) / np.sqrt(2), 2 * np.minimum(z[0], z[1]))
        if name == "rail":
            # the profile must look like the pair (correlation, whatever the contrast): a
            # half-shifted pair (ballast between dark rails taken for a bright rail) does not
            corr = _pair_correlation(smooth, pixel_size_m)
            resp = np.maximum(np.where(corr >= RAIL_MIN_CORR, dark, 0.0), np.where(-corr >= RAIL_MIN_CORR, bright, 0.0))
        else:
            # or, for a car between lit ground and its own shadow, an edge either side of either sign
            resp = np.maximum(np.maximum(dark, bright), EITHER_SIGN_WEIGHT * np.minimum(np.abs(z[0]), np.abs(z[1])))
        out[name] = np.where(ok, resp * weights[name], 0.0).astype(np.float32)
    return out


def _pair_correlation(smooth: np.ndarray, pixel_size_m: float) -> np.ndarray:
    """Correlation of each profile across (over RAIL_WINDOW_M either side) with two dark rails."""
    p = pixel_size_m
    half = int(np.ceil(RAIL_WINDOW_M / p))
    x = np.arange(-half, half + 1) * p
    sigma = float(np.hypot(0.12, 0.6 * p))
    t = -(np.exp(-0.5 * ((x - RAIL_OFFSET_M) / sigma) ** 2) + np.exp(-0.5 * ((x + RAIL_OFFSET_M) / sigma) ** 2))
    t = (t - t.mean()) / np.linalg.norm(t - t.mean())
    n = len(x)
    num = ndimage.correlate1d(smooth, t, axis=0, mode="nearest")
    mean = ndimage.uniform_filter1d(smooth, n, axis=0, mode="nearest")
    sq = ndimage.uniform_filter1d(smooth * smooth, n, axis=0, mode="nearest")
    spread = np.sqrt(np.maximum(sq - mean * mean, 0.0) * n)
    return num / np.maximum(spread, 1e-9)


def ridge_map(image: np.ndarray, *, pixel_size_m: float) -> RidgeMap:
    """Matched-filter response of rail pairs, car rows and beds, in every direction.

    Parameters
    ----------
    image : ndarray of shape (B, M, N)
        Any band count and scale; the mean of the bands is used.
    pixel_size_m : float

    Returns
    -------
    RidgeMap
    """
    grey = _grey(image)
    filters = _filters(pixel_size_m)
    along = max(3, int(round(ALONG_M / pixel_size_m)))
    sub = max(1, along // ALONG_SAMPLES)
    reach = max(len(k) for ks in filters.values() for k in ks) // 2
    best = np.zeros(grey.shape, np.float32)
    best_angle = np.zeros(grey.shape, np.float32)
    for theta in np.radians(np.arange(0.0, 180.0, ANGLE_STEP_DEG)):
        matrix, offset, fshape = _frame(grey.shape, theta)
        frame = ndimage.affine_transform(grey, matrix, offset, output_shape=fshape, order=1, cval=np.nan)
        valid = np.isfinite(frame)
        # averaged along, the frame needs only a few samples per averaging length along it
        smooth = ndimage.uniform_filter1d(np.where(valid, frame, 0.0), along, axis=1)[:, ::sub]
        cover = ndimage.uniform_filter1d(valid.astype(np.float32), along, axis=1)[:, ::sub]
        smooth = smooth / np.maximum(cover, 1e-6)
        # a filter's response counts only where all it averages lies inside the image
        ok = ndimage.minimum_filter1d(cover > 0.99, 2 * reach + 1, axis=0)
        score = np.zeros(smooth.shape, np.float32)
        for resp in _responses(smooth, ok, filters, pixel_size_m).values():
            score = np.maximum(score, resp)
        # image (row, col) -> frame (across, along / sub)
        inv = np.diag([1.0, 1.0 / sub]) @ matrix.T
        back = ndimage.affine_transform(score, inv, -inv @ offset, output_shape=grey.shape, order=1)
        better = back > best
        best = np.where(better, back, best)
        best_angle = np.where(better, np.float32(theta), best_angle)
    return RidgeMap(best, best_angle)


@dataclass
class _Piece:
    """A run of ridge points, sorted along it: positions (col, row) and the ridge's strength there."""

    points: np.ndarray  # (P, 2)
    strength: np.ndarray  # (P,)


def _axis_order(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points' positions along and across their principal axis, and that axis (unit, (col, row))."""
    centred = points - points.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    return centred @ axis, centred @ np.array([-axis[1], axis[0]]), axis


def ridge_pieces(ridges: RidgeMap, *, pixel_size_m: float) -> list[_Piece]:
    """Thin the ridge map across each ridge, keep ridges by hysteresis, and cut them into simple pieces.

    Each ridge point is centred across the ridge to a fraction of a pixel (a parabola
    through the strength there and one pixel either side).
    """
    s = ridges.strength
    n_col, n_row = -np.sin(ridges.angle), np.cos(ridges.angle)
    rows, cols = np.indices(s.shape, dtype=np.float32)
    plus = ndimage.map_coordinates(s, [rows + n_row, cols + n_col], order=1, mode="nearest")
    minus = ndimage.map_coordinates(s, [rows - n_row, cols - n_col], order=1, mode="nearest")
    crest = (s >= plus) & (s > minus) & apply_hysteresis_threshold(s, RIDGE_LOW_Z, RIDGE_HIGH_Z)
    # a track's centre is the strongest ridge across it out to CREST_APART_M (tracks are further apart)
    for k in range(2, int(np.ceil(CREST_APART_M / pixel_size_m)) + 1):
        for sign in (-1.0, 1.0):
            crest &= s >= ndimage.map_coordinates(
                s, [rows + sign * k * n_row, cols + sign * k * n_col], order=1, mode="nearest"
            )
    # close one-pixel breaks in the crest before thinning it to a skeleton
    skeleton = skeletonize(ndimage.binary_closing(crest, np.ones((3, 3), bool)) | crest)
    neighbours = ndimage.convolve(skeleton.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - 1
    pieces_mask = skeleton & (neighbours <= 2)
    labels = label(pieces_mask, connectivity=2)
    curv = plus - 2 * s + minus
    delta = np.where(curv < -1e-6, 0.5 * (minus - plus) / np.where(curv < -1e-6, curv, -1.0), 0.0)
    delta = np.clip(delta, -0.5, 0.5)
    min_px = MIN_PIECE_M / pixel_size_m
    out = []
    idx = ndimage.find_objects(labels)
    for k, sl in enumerate(idx, start=1):
        if sl is None:
            continue
        r, c = np.nonzero(labels[sl] == k)
        if len(r) < min_px:
            continue
        r = r + sl[0].start
        c = c + sl[1].start
        d = delta[r, c]
        pts = np.column_stack([c + 0.5 + d * n_col[r, c], r + 0.5 + d * n_row[r, c]])
        order = np.argsort(_axis_order(pts)[0])
        out.append(_Piece(pts[order], s[r, c][order]))
    return out


def _extent(points: np.ndarray) -> float:
    """Length of the points' spread along their principal axis."""
    along = _axis_order(points)[0] if len(points) > 1 else np.zeros(1)
    return float(along.max() - along.min())


def _length(line: np.ndarray) -> float:
    return float(np.hypot(*np.diff(line, axis=0).T).sum())


def _near_share(a: np.ndarray, b: np.ndarray, within_px: float, step_px: float) -> float:
    """Share of polyline ``a`` (sampled every ``step_px``) within ``within_px`` of polyline ``b``."""
    from shapely.geometry import LineString, MultiPoint

    la, lb = LineString(a), LineString(b)
    pts = [la.interpolate(d) for d in np.arange(0.0, la.length + 1e-9, step_px)]
    near = lb.buffer(within_px)
    return float(np.mean([near.contains(p) for p in MultiPoint(pts).geoms])) if pts else 0.0


def centre_on_rails(image: np.ndarray, line_px: np.ndarray, *, pixel_size_m: float) -> tuple[np.ndarray, float]:
    """Move a line onto the centre between its rails where they show, and say how much of it shows them.

    The image is sampled across the line every 0.25 m along it, and each position's profile
    is matched with a pair of rails (:func:`.rails.rail_correlation`, averaged over
    :data:`CENTRE_SMOOTH_M` along) at offsets up to :data:`CENTRE_REACH_M`.  Where the pair
    shows, the line moves onto it (offsets smoothed over :data:`CENTRE_MEDIAN_M`); between
    such stretches (a train hides the rails) the offset is interpolated.  On pixels coarser
    than :data:`RAIL_PAIR_MAX_PIXEL_M`, or where no rails show, the line stays as it is.

    Returns
    -------
    line_px : ndarray of shape (K, 2)
    rails_seen : float
        Share of the line along which the pair shows.
    """
    if pixel_size_m > RAIL_PAIR_MAX_PIXEL_M or not CENTRE_ON_RAILS:
        return line_px, 0.0
    from .rails import cross_profiles, rail_correlation
    from .strip import sample_strip

    grey = _grey(image)[None]
    strip = sample_strip(grey, line_px, pixel_size_m=pixel_size_m, half_width_m=0.25)
    shifts = np.arange(-CENTRE_REACH_M, CENTRE_REACH_M + 1e-9, 0.05)
    profiles, across = cross_profiles(
        grey,
        strip,
        np.zeros(len(strip.along_m)),
        pixel_size_m=pixel_size_m,
        half_width_m=CENTRE_REACH_M + RAIL_WINDOW_M + 0.1,
    )
    corr = rail_correlation(profiles, across, shifts, pixel_size_m=pixel_size_m, smooth_m=CENTRE_SMOOTH_M)
    best = corr.max(axis=0)
    seen = best >= RAIL_SEEN_CORRELATION
    if seen.sum() < 2:
        return line_px, float(seen.mean())
    offset = shifts[np.argmax(corr, axis=0)]
    along = strip.along_m
    win = max(1, int(round(CENTRE_MEDIAN_M / 0.25)))
    smooth = ndimage.median_filter(offset[seen], size=min(win, int(seen.sum())), mode="nearest")
    full = np.interp(along, along[seen], smooth)
    keep = np.unique(np.r_[np.arange(0, len(along), max(1, int(round(TRACE_STEP_M / 0.25)))), len(along) - 1])
    moved = strip.centre_px[keep] + strip.normal_px[keep] * (full[keep] / pixel_size_m)[:, None]
    return moved, float(seen.mean())


def _orientation(ridges: RidgeMap, pixel_size_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ridges' local direction as a unit vector field (cos, sin of the angle) and their local RMS strength."""
    w = ridges.strength.astype(np.float32) ** 2
    sigma = ORIENT_SIGMA_M / pixel_size_m
    vx = ndimage.gaussian_filter(w * np.cos(2 * ridges.angle), sigma)
    vy = ndimage.gaussian_filter(w * np.sin(2 * ridges.angle), sigma)
    energy = np.sqrt(ndimage.gaussian_filter(w, sigma))
    phi = 0.5 * np.arctan2(vy, vx)
    return np.cos(phi).astype(np.float32), np.sin(phi).astype(np.float32), energy.astype(np.float32)


def _streamline(field, start: np.ndarray, *, pixel_size_m: float) -> np.ndarray:
    """Points (col, row) every STREAM_STEP_M along the ridges' direction through ``start``, both ways."""
    cx, cy, energy = field
    rows, cols = energy.shape
    step = STREAM_STEP_M / pixel_size_m

    def at(a: np.ndarray, p: np.ndarray) -> float:
        return float(ndimage.map_coordinates(a, [[p[1] - 0.5], [p[0] - 0.5]], order=1, mode="nearest")[0])

    d0 = np.array([at(cx, start), at(cy, start)])
    halves = []
    for sign in (1.0, -1.0):
        pos, d = np.asarray(start, float), sign * d0 / max(np.hypot(*d0), 1e-9)
        pts, strong, weak = [], [], 0.0
        while True:
            nd = np.array([at(cx, pos), at(cy, pos)])
            nd = nd / max(np.hypot(*nd), 1e-9)
            d = nd if nd @ d >= 0 else -nd
            back = int(round(STREAM_TURN_SPAN_M / STREAM_STEP_M))
            if len(pts) > back:
                before = pts[-1] - pts[-1 - back]
                if before @ d < np.cos(np.radians(STREAM_MAX_TURN_DEG)) * np.hypot(*before):
                    break  # no track bends that sharply: the streamline has left the tracks
            pos = pos + d * step
            if not (0 <= pos[0] < cols and 0 <= pos[1] < rows):
                break
            ok = at(energy, pos) >= STREAM_MIN_Z
            weak = 0.0 if ok else weak + STREAM_STEP_M
            if weak > STREAM_MAX_GAP_M:
                break
            pts.append(pos)
            strong.append(ok)
        if strong and any(strong):
            pts = pts[: int(np.nonzero(strong)[0].max()) + 1]
        else:
            pts = []
        halves.append(pts)
    return np.asarray(halves[1][::-1] + [np.asarray(start, float)] + halves[0])


def _strip_tracks(strength: np.ndarray, spine: np.ndarray, *, pixel_size_m: float) -> list[np.ndarray]:
    """Tracks along a streamline: the best paths through the ridges' strength in a strip across it.

    The strip holds the strength at offsets across the streamline at each of its points.  A
    path moves across by at most :data:`PATH_SLOPE` per metre along (tracks run parallel to
    the streamline) and gains its strength less :data:`PATH_COST_Z` at every metre, so it
    runs on through a stretch where the track shows little (a train, a shadow) between two
    where it shows, and ends where nothing does (a local alignment, as Smith-Waterman's).
    Paths are taken best first, each blanking the strip within :data:`PEAK_APART_M` of it,
    while one scores at least :data:`PATH_MIN_SCORE`.
    """
    if len(spine) < 3:
        return []
    tangent = np.gradient(ndimage.uniform_filter1d(spine, 9, axis=0, mode="nearest"), axis=0)
    tangent /= np.maximum(np.hypot(tangent[:, 0], tangent[:, 1]), 1e-9)[:, None]
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    across = np.arange(-STRIP_HALF_M, STRIP_HALF_M + 1e-9, STRIP_STEP_M)
    pts = spine[:, None, :] + normal[:, None, :] * (across / pixel_size_m)[None, :, None]
    strip = ndimage.map_coordinates(strength, [pts[..., 1] - 0.5, pts[..., 0] - 0.5], order=1, mode="constant")
    gain = strip - PATH_COST_Z * STREAM_STEP_M
    reach = max(1, int(round(PATH_SLOPE * STREAM_STEP_M / STRIP_STEP_M)))
    blank = int(round(PEAK_APART_M / STRIP_STEP_M))
    out = []
    while True:
        n, m = gain.shape
        score = np.zeros((n, m), np.float32)
        came = np.zeros((n, m), np.int16)
        prev = np.zeros(m, np.float32)
        for i in range(n):
            stack = np.stack([np.roll(prev, k) - PATH_TURN_COST_Z * abs(k) for k in range(-reach, reach + 1)])
            stack[:reach, -reach:] = 0.0  # no wrapping round the strip's edges
            stack[reach + 1 :, :reach] = 0.0
            k = np.argmax(stack, axis=0)
            best_prev = np.maximum(stack[k, np.arange(m)], 0.0)
            score[i] = best_prev + gain[i]
            came[i] = np.where(stack[k, np.arange(m)] > 0, k - reach, 32767)
            prev = np.maximum(score[i], 0.0)
        end = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[end] < PATH_MIN_SCORE:
            return out
        path = []
        i, j = int(end[0]), int(end[1])
        while i >= 0:
            path.append((i, j))
            step = int(came[i, j])
            if step == 32767:
                break
            i, j = i - 1, j - step
        path = path[::-1]
        rows_ = np.array([r for r, _ in path])
        cols_ = np.array([c for _, c in path])
        for r, c in path:
            gain[r, max(0, c - blank) : c + blank + 1] = -PATH_COST_Z
        off = ndimage.uniform_filter1d(across[cols_], max(1, int(round(SMOOTH_M / STREAM_STEP_M))), mode="nearest")
        out.append(spine[rows_] + normal[rows_] * (off / pixel_size_m)[:, None])


def _fit_residual(points: np.ndarray) -> np.ndarray:
    """Distances of points from the best circle or straight line through them (whichever fits better)."""
    centred = points - points.mean(axis=0)
    scale = max(float(np.abs(centred).max()), 1e-9)
    x, y = (centred / scale).T
    line_res = np.abs(centred @ np.linalg.svd(centred, full_matrices=False)[2][1])
    sol, *_ = np.linalg.lstsq(np.column_stack([x, y, np.ones_like(x)]), x**2 + y**2, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    r2 = sol[2] + cx**2 + cy**2
    if not np.isfinite(r2) or r2 <= 0:
        return line_res
    circle_res = np.abs(np.hypot(x - cx, y - cy) - np.sqrt(r2)) * scale
    return circle_res if np.mean(circle_res**2) < np.mean(line_res**2) else line_res


def _join(lines: list[np.ndarray], *, pixel_size_m: float) -> list[np.ndarray]:
    """Join lines that continue each other (a train or a shadow broke a track in two).

    Two lines join where an end of one lies within :data:`JOIN_MAX_GAP_M` of an end of the
    other, the gap runs on in both lines' directions (to :data:`JOIN_MAX_ANGLE_DEG`), and one
    circle or straight line fits both to :data:`JOIN_FIT_M` (root mean square).
    """
    lines = [np.asarray(ln, float) for ln in lines]
    max_gap = JOIN_MAX_GAP_M / pixel_size_m
    cos_max = np.cos(np.radians(JOIN_MAX_ANGLE_DEG))

    def ends(ln: np.ndarray):
        k = max(1, min(len(ln) - 1, 5))
        a = ln[0] - ln[k]
        b = ln[-1] - ln[-1 - k]
        return ((ln[0], a / max(np.hypot(*a), 1e-9)), (ln[-1], b / max(np.hypot(*b), 1e-9)))

    joined = True
    while joined:
        joined = False
        best = None
        for i in range(len(lines)):
            for j in range(i + 1, len(lines)):
                for ei, (pi, di) in enumerate(ends(lines[i])):
                    for ej, (pj, dj) in enumerate(ends(lines[j])):
                        gap = pj - pi
                        dist = float(np.hypot(*gap))
                        if dist > max_gap or float(di @ -dj) < cos_max:
                            continue
                        if dist > 1e-6 and (float(gap @ di) / dist < cos_max or float(-gap @ dj) / dist < cos_max):
                            continue
                        if best is not None and dist >= best[0]:
                            continue
                        union = np.concatenate([lines[i], lines[j]])
                        if np.sqrt(np.mean(_fit_residual(union) ** 2)) * pixel_size_m > JOIN_FIT_M:
                            continue
                        best = (dist, i, ei, j, ej)
        if best is not None:
            _, i, ei, j, ej = best
            a = lines[i] if ei == 1 else lines[i][::-1]
            b = lines[j] if ej == 0 else lines[j][::-1]
            lines[i] = np.concatenate([a, b])
            del lines[j]
            joined = True
    return lines


def _wiggle(line: np.ndarray, pixel_size_m: float) -> float:
    """The largest RMS distance of a line's points from a circle or straight line fitted over WIGGLE_SPAN_M of it."""
    step = float(np.median(np.hypot(*np.diff(line, axis=0).T))) * pixel_size_m if len(line) > 1 else 1.0
    n = max(3, int(round(WIGGLE_SPAN_M / max(step, 1e-9))))
    worst = 0.0
    for a in range(0, max(1, len(line) - n + 1), max(1, n // 2)):
        part = line[a : a + n]
        if len(part) >= 3:
            worst = max(worst, float(np.sqrt(np.mean(_fit_residual(part) ** 2))) * pixel_size_m)
    return worst


def find_tracks(image: np.ndarray, *, pixel_size_m: float, ridges: RidgeMap | None = None) -> list[FoundTrack]:
    """Track centrelines found in an image, strongest first.

    Parameters
    ----------
    image : ndarray of shape (B, M, N)
        Any band count and value scale.
    pixel_size_m : float
        At most :data:`FIND_MAX_PIXEL_M`.
    ridges : RidgeMap, optional
        The image's :func:`ridge_map`, if already made.

    Returns
    -------
    list of FoundTrack

    Raises
    ------
    ValueError
        If the pixels are coarser than :data:`FIND_MAX_PIXEL_M`.
    """
    if pixel_size_m > FIND_MAX_PIXEL_M:
        raise ValueError(f"tracks are found on pixels of at most {FIND_MAX_PIXEL_M:g} m, not {pixel_size_m:g} m")
    if ridges is None:
        ridges = ridge_map(image, pixel_size_m=pixel_size_m)
    pieces = ridge_pieces(ridges, pixel_size_m=pixel_size_m)
    from shapely.geometry import LineString, Point

    seeds = sorted(
        (p for p in pieces if _extent(p.points) * pixel_size_m >= SEED_MIN_M), key=lambda p: -float(p.strength.sum())
    )
    traced: list = []
    apart = 2.0 * CREST_APART_M / pixel_size_m

    def taken(pt: np.ndarray) -> bool:
        q = Point(*pt)
        return any(t.distance(q) < apart for t in traced)

    field = _orientation(ridges, pixel_size_m)
    paths = []
    for seed in seeds:
        mid = seed.points[len(seed.points) // 2]
        if taken(mid):
            continue
        spine = _streamline(field, mid, pixel_size_m=pixel_size_m)
        for pts in _strip_tracks(ridges.strength, spine, pixel_size_m=pixel_size_m):
            if _length(pts) * pixel_size_m < MIN_PATH_M:
                continue
            if any(_near_share(pts, np.asarray(t.coords), apart, 2.0 / pixel_size_m) > 0.5 for t in traced):
                continue
            traced.append(LineString(pts))
            paths.append(pts)
    found = []
    every = max(1, int(TRACE_STEP_M / STREAM_STEP_M))
    for pts in _join(paths, pixel_size_m=pixel_size_m) if JOIN else paths:
        length_m = _length(pts) * pixel_size_m
        if length_m < MIN_TRACK_M or _wiggle(pts, pixel_size_m) > MAX_WIGGLE_M:
            continue
        vals = ndimage.map_coordinates(ridges.strength, [pts[:, 1] - 0.5, pts[:, 0] - 0.5], order=1)
        keep = np.unique(np.r_[np.arange(0, len(pts), every), len(pts) - 1])
        found.append(FoundTrack(pts[keep], length_m, float(vals.mean()), float(np.mean(vals >= TRACE_MIN_Z))))
    centred = []
    for t in found:
        line, seen = centre_on_rails(image, t.line_px, pixel_size_m=pixel_size_m)
        centred.append((FoundTrack(line, t.length_m, t.score, t.found_share), seen))
    found = [t for t, _ in centred]
    rails = {id(t): seen for t, seen in centred}
    # a band between two tracks (grass between beds, ballast between two trains) is as long as
    # they are, but shows no rails: lines showing rails are kept first
    found.sort(key=lambda t: (-round(rails[id(t)], 1), -t.length_m * min(t.score, RANK_SCORE_CAP)))
    kept: list[FoundTrack] = []
    for t in found:
        if any(_near_share(t.line_px, k.line_px, DUPLICATE_M / pixel_size_m, 2.0 / pixel_size_m) > 0.5 for k in kept):
            continue
        kept.append(t)
    return kept
