"""Track centrelines found in the image itself, where no track lines are given.

At pixels up to :data:`RAIL_PAIR_MAX_PIXEL_M` a track shows as a pair of rails 1.5 m apart
(standard gauge 1.435 m between the heads' inner faces); a track full of cars hides its rails
but shows a row of rigid boxes 2.6-3.2 m wide; sleepers make a band 2.6 m wide; a lone track's
ballast bed a band about 4.6 m wide.  Each is an *oriented matched filter*: the image is turned
so that a candidate direction runs along the rows (:func:`scipy.ndimage.affine_transform`),
averaged over :data:`ALONG_M` along them and compared across at the offsets the feature
predicts, in every direction :data:`ANGLE_STEP_DEG` apart.  The strongest response and its
direction at every pixel give a ridge map; ridges are thinned across their direction
(non-maximum suppression), kept by hysteresis, skeletonised, cut at junctions into pieces,
and pieces that continue each other (close, parallel, in line) are chained into tracks.  Each
track's line is the median of its ridge points (centred to a fraction of a pixel) in short
bins along it.

Pixels coarser than :data:`FIND_MAX_PIXEL_M` do not show a car's sides apart from the next
track's, and are refused by the caller.

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

# --- ridges to lines ---------------------------------------------------------------------
RIDGE_LOW_Z = 3.0  # hysteresis: a ridge pixel continues a line above this ...
RIDGE_HIGH_Z = 5.0  # ... that somewhere rises above this
CREST_APART_M = 1.5  # a ridge point must be the strongest across its ridge out to here
MIN_PIECE_M = 4.0  # shorter skeleton pieces are noise
END_FIT_M = 12.0  # a piece's direction at an end is fitted over this much of it
CHAIN_MAX_GAP_M = 30.0  # pieces this far apart end to start may be one track ...
CHAIN_MAX_ANGLE_DEG = 6.0  # ... if their ends and the gap between them agree in direction to this ...
CHAIN_MAX_LATERAL_M = 0.5  # ... and each end lies this close to the other's line extended
BRIDGE_MAX_GAP_M = 150.0  # chains this far apart may still be one track (a long train hides it) ...
BRIDGE_MAX_ANGLE_DEG = 30.0  # ... if their ends agree in direction to this ...
BRIDGE_FIT_RMS_M = 0.25  # ... and one circle (or straight line) fits both this well ...
BRIDGE_FIT_MAX_M = 0.6  # ... no point of either further off it than this (95th percentile)
BRIDGE_MIN_CHAIN_M = 20.0  # only chains at least this long are bridged
MIN_SUPPORT = 0.6  # a track's ridge points must span at least this share of its length
BRIDGE_FIT_POINTS = 400  # points fitted per candidate pair (the chains' points thinned to this)
SEED_MIN_M = 8.0  # ridge pieces at least this long start a trace, strongest first
TRACE_STEP_M = 2.0  # a trace steps this far along, then looks across for the ridge ...
TRACE_FOLLOW_M = 0.3  # ... this far either side while it keeps finding it ...
TRACE_REACQUIRE_M = 0.9  # ... widening to this after a gap (tracks are >= 4.2 m apart)
TRACE_MIN_Z = 4.0  # the ridge is found where it is at least this strong
TRACE_MAX_GAP_M = 40.0  # a trace coasts (keeping its curvature) this far without finding the ridge
TRACE_DIRECTION_M = 12.0  # the direction is measured over this much of the trace behind
MIN_TRACK_M = 40.0  # shorter chains are sheds' edges, trees' shadows or crossovers
BIN_M = 5.0  # the line is the median of its ridge points in bins this long
DUPLICATE_M = 3.6  # of two lines closer than this over most of one, the weaker goes (tracks are >= 4.2 m apart)
SMOOTH_M = 10.0  # a trace's points are averaged over this much of it (a curve's radius is >= 250 m)
RAIL_SEEN_CORRELATION = 0.3  # a line shows rails where the pair's correlation reaches this (rails.py)
RANK_SCORE_CAP = 10.0  # lines are ranked by length times score, the score capped here (length counts most)


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
        Share of the line's steps on which the ridge was found (the rest bridged).
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
    weights = {"rail": RAIL_WEIGHT, "box": BOX_WEIGHT, "bed": BED_WEIGHT}
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
        sample = ok & (np.arange(ok.shape[0])[:, None] % NOISE_SAMPLE_EVERY == 0)
        score = np.zeros(smooth.shape, np.float32)
        for name, kernels in filters.items():
            parts = [ndimage.correlate1d(smooth, k, axis=0, mode="nearest") for k in kernels]
            noise = [1.4826 * float(np.median(np.abs(r[sample] - np.median(r[sample])))) + 1e-6 for r in parts]
            z = [r / n for r, n in zip(parts, noise)]
            # both sides alike (both rails dark or both bright; a band brighter or darker than
            # the ground either side): their sum, but no more than twice the weaker
            alike = np.maximum(
                np.minimum(-(z[0] + z[1]) / np.sqrt(2), -2 * np.maximum(z[0], z[1])),
                np.minimum((z[0] + z[1]) / np.sqrt(2), 2 * np.minimum(z[0], z[1])),
            )
            # a car between lit ground and its own shadow: an edge either side, of either sign
            resp = alike if name == "rail" else np.maximum(alike, np.minimum(np.abs(z[0]), np.abs(z[1])))
            resp = np.where(ok, resp * weights[name], 0.0).astype(np.float32)
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
    """A run of ridge points: positions (col, row) sorted along it, and its two ends."""

    points: np.ndarray  # (P, 2) pixel (col, row)
    strength: np.ndarray  # (P,)
    ends: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]  # (point, outward unit direction)


def _axis_order(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points' positions along and across their principal axis, and that axis (unit, (col, row))."""
    centred = points - points.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    along = centred @ axis
    across = centred @ np.array([-axis[1], axis[0]])
    return along, across, axis


def _piece(points: np.ndarray, strength: np.ndarray, end_px: float) -> _Piece:
    along, _, axis = _axis_order(points)
    order = np.argsort(along)
    points, strength, along = points[order], strength[order], along[order]
    ends = []
    for sign, near in ((-1.0, along <= along[0] + end_px), (1.0, along >= along[-1] - end_px)):
        sel = points[near]
        direction = _axis_order(sel)[2] if len(sel) >= 3 else axis
        direction = direction if float(direction @ axis) * sign > 0 else -direction
        ends.append((points[0] if sign < 0 else points[-1], direction))
    return _Piece(points, strength, (ends[0], ends[1]))


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
        out.append(_piece(pts, s[r, c], END_FIT_M / pixel_size_m))
    return out


def _chain(pieces: list[_Piece], *, pixel_size_m: float) -> list[list[int]]:
    """Groups of pieces that continue each other end to start (greedy, shortest gap first)."""
    max_gap = CHAIN_MAX_GAP_M / pixel_size_m
    lateral = CHAIN_MAX_LATERAL_M / pixel_size_m
    cos_max = np.cos(np.radians(CHAIN_MAX_ANGLE_DEG))
    candidates = []
    for a, pa in enumerate(pieces):
        for ea, (qa, da) in enumerate(pa.ends):
            for b in range(a + 1, len(pieces)):
                for eb, (qb, db) in enumerate(pieces[b].ends):
                    g = qb - qa
                    dist = float(np.hypot(*g))
                    if dist > max_gap or float(da @ -db) < cos_max:
                        continue
                    if dist > 1e-6:
                        u = g / dist
                        if (
                            float(u @ da) < cos_max * 0.0 + np.cos(np.radians(2 * CHAIN_MAX_ANGLE_DEG))
                            and dist > lateral
                        ):
                            continue
                        if (
                            abs(float(da[0] * g[1] - da[1] * g[0]))
                            > lateral + dist * np.sin(np.radians(CHAIN_MAX_ANGLE_DEG)) / 2
                        ):
                            continue
                        if (
                            abs(float(db[0] * g[1] - db[1] * g[0]))
                            > lateral + dist * np.sin(np.radians(CHAIN_MAX_ANGLE_DEG)) / 2
                        ):
                            continue
                    angle = float(np.degrees(np.arccos(np.clip(da @ -db, -1, 1))))
                    candidates.append((dist * pixel_size_m + angle, a, ea, b, eb))
    parent = list(range(len(pieces)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    used: set[tuple[int, int]] = set()
    for _, a, ea, b, eb in sorted(candidates):
        if (a, ea) in used or (b, eb) in used or root(a) == root(b):
            continue
        used.update({(a, ea), (b, eb)})
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for i in range(len(pieces)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _fit_residual(points: np.ndarray) -> np.ndarray:
    """Distances of points from the best circle or straight line through them (whichever fits better)."""
    centred = points - points.mean(axis=0)
    scale = max(float(np.abs(centred).max()), 1e-9)
    x, y = (centred / scale).T
    line_res = np.abs(centred @ np.linalg.svd(centred, full_matrices=False)[2][1])
    a = np.column_stack([x, y, np.ones_like(x)])
    sol, *_ = np.linalg.lstsq(a, x**2 + y**2, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    r2 = sol[2] + cx**2 + cy**2
    if not np.isfinite(r2) or r2 <= 0:
        return line_res
    circle_res = np.abs(np.hypot(x - cx, y - cy) - np.sqrt(r2)) * scale
    return circle_res if np.sqrt(np.mean(circle_res**2)) < np.sqrt(np.mean(line_res**2)) else line_res


def _extent(points: np.ndarray) -> float:
    """Length of the points' spread along their principal axis."""
    along = _axis_order(points)[0] if len(points) > 1 else np.zeros(1)
    return float(along.max() - along.min())


def _bridge(chains: list[_Piece], *, pixel_size_m: float) -> list[list[int]]:
    """Join chains across long gaps (a train hiding the rails) where one circle or line fits them both."""
    max_gap = BRIDGE_MAX_GAP_M / pixel_size_m
    cos_max = np.cos(np.radians(BRIDGE_MAX_ANGLE_DEG))
    groups = [[i] if _extent(c.points) * pixel_size_m >= BRIDGE_MIN_CHAIN_M else [] for i, c in enumerate(chains)]
    pts = [c.points for c in chains]
    ends = [c.ends for c in chains]
    rng = np.random.default_rng(0)
    while True:
        best = None
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                if not groups[a] or not groups[b]:
                    continue
                gap = min(
                    (float(np.hypot(*(qb - qa))), float(da @ -db), float((qb - qa) @ da))
                    for qa, da in ends[a]
                    for qb, db in ends[b]
                )
                dist, agree, ahead = gap
                if dist > max_gap or agree < cos_max or (dist > 1.0 / pixel_size_m and ahead < 0):
                    continue
                if best is None or dist < best[0]:
                    union = np.concatenate([pts[a], pts[b]])
                    if len(union) > BRIDGE_FIT_POINTS:
                        union = union[rng.choice(len(union), BRIDGE_FIT_POINTS, replace=False)]
                    res = _fit_residual(union) * pixel_size_m
                    if np.sqrt(np.mean(res**2)) <= BRIDGE_FIT_RMS_M and np.percentile(res, 95) <= BRIDGE_FIT_MAX_M:
                        best = (dist, a, b)
        if best is None:
            alone = [[i] for i, c in enumerate(chains) if _extent(c.points) * pixel_size_m < BRIDGE_MIN_CHAIN_M]
            return [g for g in groups if g] + alone
        _, a, b = best
        groups[a] += groups[b]
        groups[b] = []
        pts[a] = np.concatenate([pts[a], pts[b]])
        merged = _piece(pts[a], np.zeros(len(pts[a])), END_FIT_M / pixel_size_m)
        ends[a] = merged.ends


def _trace(
    strength: np.ndarray, start: np.ndarray, direction: np.ndarray, *, pixel_size_m: float, taken
) -> tuple[np.ndarray, np.ndarray]:
    """Follow a ridge from ``start`` along ``direction``: positions (col, row) and whether each was found.

    Each step goes :data:`TRACE_STEP_M` ahead, turning as the trace has been turning, and
    moves onto the strongest ridge point across within a window; where none is strong
    enough it coasts, and stops after :data:`TRACE_MAX_GAP_M` without one, at the image's
    edge, or on a line already traced (``taken(point) -> bool``).
    """
    rows, cols = strength.shape
    step = TRACE_STEP_M / pixel_size_m
    back = max(2, int(round(TRACE_DIRECTION_M / TRACE_STEP_M)))
    fine = 0.05 / pixel_size_m
    pos = np.asarray(start, float)
    d = direction / np.hypot(*direction)
    turn = 0.0
    points, found = [pos], [True]
    gap_m = 0.0
    while True:
        c, s_ = np.cos(turn), np.sin(turn)
        d = np.array([c * d[0] - s_ * d[1], s_ * d[0] + c * d[1]])
        pred = pos + d * step
        if not (1 <= pred[0] < cols - 1 and 1 <= pred[1] < rows - 1) or taken(pred):
            break
        half = min(TRACE_FOLLOW_M + 0.02 * gap_m, TRACE_REACQUIRE_M) / pixel_size_m
        offs = np.arange(-half, half + 1e-9, fine)
        normal = np.array([-d[1], d[0]])
        cand = pred[None, :] + offs[:, None] * normal[None, :]
        vals = ndimage.map_coordinates(strength, [cand[:, 1] - 0.5, cand[:, 0] - 0.5], order=1, mode="nearest")
        k = int(np.argmax(vals))
        if vals[k] >= TRACE_MIN_Z:
            pos, gap_m = cand[k], 0.0
            found.append(True)
        else:
            pos, gap_m = pred, gap_m + TRACE_STEP_M
            found.append(False)
            if gap_m > TRACE_MAX_GAP_M:
                break
        points.append(pos)
        if len(points) > back:
            seg = points[-1] - points[-1 - back]
            new_d = seg / max(np.hypot(*seg), 1e-9)
            if len(points) > 2 * back:
                old = points[-1 - back] - points[-1 - 2 * back]
                old_d = old / max(np.hypot(*old), 1e-9)
                turn = float(np.arctan2(old_d[0] * new_d[1] - old_d[1] * new_d[0], old_d @ new_d)) / back
            if found[-1]:
                d = new_d
    pts, ok = np.asarray(points), np.asarray(found)
    last = int(np.nonzero(ok)[0].max())
    return pts[: last + 1], ok[: last + 1]


def _centreline(points: np.ndarray, bin_px: float) -> np.ndarray:
    """A polyline through points: their median across the principal axis in bins along it."""
    along, across, axis = _axis_order(points)
    normal = np.array([-axis[1], axis[0]])
    mean = points.mean(axis=0)
    edges = np.arange(along.min(), along.max() + bin_px, bin_px)
    which = np.clip(np.digitize(along, edges) - 1, 0, len(edges) - 1)
    verts = []
    for b in np.unique(which):
        sel = which == b
        verts.append(mean + np.median(along[sel]) * axis + np.median(across[sel]) * normal)
    # the line runs to the outermost points, not to its end bins' medians
    verts[0] = mean + along.min() * axis + np.median(across[which == which.min()]) * normal
    verts[-1] = mean + along.max() * axis + np.median(across[which == which.max()]) * normal
    return np.asarray(verts)


def _length(line: np.ndarray) -> float:
    return float(np.hypot(*np.diff(line, axis=0).T).sum())


def _near_share(a: np.ndarray, b: np.ndarray, within_px: float, step_px: float) -> float:
    """Share of polyline ``a`` (sampled every ``step_px``) within ``within_px`` of polyline ``b``."""
    from shapely.geometry import LineString, MultiPoint

    la, lb = LineString(a), LineString(b)
    pts = [la.interpolate(d) for d in np.arange(0.0, la.length + 1e-9, step_px)]
    near = lb.buffer(within_px)
    return float(np.mean([near.contains(p) for p in MultiPoint(pts).geoms])) if pts else 0.0


def _rails_seen(image: np.ndarray, line_px: np.ndarray, pixel_size_m: float) -> float:
    """Share of a line along which a pair of rails shows, centred within 0.2 m (0 on coarse pixels)."""
    if pixel_size_m > RAIL_PAIR_MAX_PIXEL_M:
        return 0.0
    from .rails import cross_profiles, rail_correlation
    from .strip import sample_strip

    grey = _grey(image)[None]
    strip = sample_strip(grey, line_px, pixel_size_m=pixel_size_m, half_width_m=0.25)
    shifts = np.arange(-0.2, 0.2 + 1e-9, 0.05)
    profiles, across = cross_profiles(
        grey, strip, np.zeros(len(strip.along_m)), pixel_size_m=pixel_size_m, half_width_m=1.6
    )
    corr = rail_correlation(profiles, across, shifts, pixel_size_m=pixel_size_m).max(axis=0)
    return float(np.mean(corr >= RAIL_SEEN_CORRELATION))


def find_tracks(image: np.ndarray, *, pixel_size_m: float) -> list[FoundTrack]:
    """Track centrelines found in an image, strongest first.

    Parameters
    ----------
    image : ndarray of shape (B, M, N)
        Any band count and value scale.
    pixel_size_m : float
        At most :data:`FIND_MAX_PIXEL_M`.

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
    ridges = ridge_map(image, pixel_size_m=pixel_size_m)
    pieces = ridge_pieces(ridges, pixel_size_m=pixel_size_m)
    from shapely.geometry import LineString, Point

    seeds = sorted(
        (p for p in pieces if _extent(p.points) * pixel_size_m >= SEED_MIN_M), key=lambda p: -float(p.strength.sum())
    )
    traced: list = []
    apart = CREST_APART_M / pixel_size_m

    def taken(pt: np.ndarray) -> bool:
        q = Point(*pt)
        return any(t.distance(q) < apart for t in traced)

    found = []
    for seed in seeds:
        mid = seed.points[len(seed.points) // 2]
        if taken(mid):
            continue
        axis = _axis_order(seed.points)[2]
        ahead, ok_a = _trace(ridges.strength, mid, axis, pixel_size_m=pixel_size_m, taken=taken)
        behind, ok_b = _trace(ridges.strength, mid, -axis, pixel_size_m=pixel_size_m, taken=taken)
        pts = np.concatenate([behind[::-1], ahead[1:]])
        ok = np.concatenate([ok_b[::-1], ok_a[1:]])
        if len(pts) < 2:
            continue
        length_m = _length(pts) * pixel_size_m
        if length_m < MIN_TRACK_M or ok.mean() < MIN_SUPPORT:
            continue
        traced.append(LineString(pts))
        vals = ndimage.map_coordinates(ridges.strength, [pts[ok, 1] - 0.5, pts[ok, 0] - 0.5], order=1)
        win = max(1, int(round(SMOOTH_M / TRACE_STEP_M)))
        smooth = np.column_stack([ndimage.uniform_filter1d(pts[:, i], win, mode="nearest") for i in (0, 1)])
        smooth[[0, -1]] = pts[[0, -1]]  # keep the ends where they were found
        found.append(FoundTrack(smooth, length_m, float(vals.mean()), float(ok.mean())))
    rails = {id(t): _rails_seen(image, t.line_px, pixel_size_m) for t in found}
    # a band between two tracks (grass between beds, ballast between two trains) is as long as
    # they are, but shows no rails: lines showing rails are kept first
    found.sort(key=lambda t: (-round(rails[id(t)], 1), -t.length_m * min(t.score, RANK_SCORE_CAP)))
    kept: list[FoundTrack] = []
    for t in found:
        if any(_near_share(t.line_px, k.line_px, DUPLICATE_M / pixel_size_m, 2.0 / pixel_size_m) > 0.5 for k in kept):
            continue
        kept.append(t)
    return kept
