"""Coarse pixels: each track's cross-track profile unmixed, with its neighbours and shadows.

Where a pixel is about as wide as a car (3 m), a car is a pixel-wide smear and the tracks
of a group, 4-5 m apart, share pixels: the colour at a track's centre mixes its car (or
ballast) with its neighbours', with the countryside beyond the bed, and with shadows.  So
the colour alone cannot say whether a track is occupied.  This module models the profile
across the tracks at each position instead, the way a sensor forms it:

* the ground: ballast within ``BED_HALF_WIDTH_M`` of any track, the countryside beyond
  (read from the profile's far ends, which no car or shadow of the group reaches);
* on each occupied track, a car ``CAR_WIDTH_M`` wide of its own (free) colour;
* beside each car, on the side away from the sun, its shadow: the ground times a tint, out
  to the car's height times the shadow length per metre of height (car heights from
  ``CAR_HEIGHTS_M``);
* all of it blurred by the pixel (``PROFILE_BLUR_PX``).

For each position every pattern of occupied tracks is fitted by least squares (car colours
are linear) and scored by a Huber loss (``HUBER_SIGMAS``: samples far off every pattern,
such as a tree beside the track, count linearly, not quadratically); the log-likelihood
ratio of the best pattern with this track occupied against the best without it is this
track's occupancy evidence.  A shadow is evidence of a car whatever the car's colour, so
cars the colour of ballast are found by their shadows, and a neighbour's car cannot pass
for this track's because both are in the model.  The evidence is cut into cars by
:func:`.segment.segment_cars`; then each track is evaluated again with its neighbours' cars
where the last pass put them (``PASSES``).

The shadows' direction and length come from the sun's azimuth and elevation
(:class:`ShadowGeometry`, from image metadata); without them the direction read from the
image (:func:`.shadows.shadow_direction`) is used with ``DEFAULT_SHADOW_PER_HEIGHT``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .bed import BED_HALF_WIDTH_M
from .evidence import Ground, TrackEvidence
from .segment import CAR_WIDTH_M, SegmentationPrior, segment_cars
from .strip import TrackStrip, sample_across

PROFILE_STEP_M = 0.5  # sampling step across the tracks
POSITION_STRIDE = 3  # evaluate every third strip position (0.75 m)
NEIGHBOUR_REACH_M = 12.0  # tracks this close (centre to centre) are modelled together
# The profile is a bilinear sample of pixels that are themselves a box blurred by the
# optics; a Gaussian of half a pixel fitted the development yards best (0.4-0.6 within a
# point of error, 0.75 four points worse).
PROFILE_BLUR_PX = 0.5
# Heights a car's shadow is tried at: flat cars, gondolas, box, tank and hopper cars.
CAR_HEIGHTS_M = (1.4, 3.0, 4.5)
MAX_SHADOW_M = 12.0
# Without sun angles: shadow length per metre of height (a 34 degree sun).
DEFAULT_SHADOW_PER_HEIGHT = 1.5
# Shadow tint (shaded over lit ground, per band) where the image shows no shadow colour.
DEFAULT_TINT = 0.35
# Log-likelihood cost of each occupied track in a pattern (its colour is three more numbers).
PATTERN_PENALTY = 4.0
# Occupancy handed to the segmentation: tanh((llr - OCCUPIED_LLR) / LLR_SCALE).
OCCUPIED_LLR = 45.0
LLR_SCALE = 50.0
PASSES = 3
# a car's fitted colour is held within 0 and this many times the image's 98th percentile:
# a brighter fit is explaining something other than a roof
MAX_CAR_COLOUR = 1.8
# Residuals are scored by a Huber loss: quadratic out to this many noise sigmas, linear
# beyond.  What the model leaves out (trees beside the track, the ballast's texture, loads
# on flat cars) then cannot pass for a car by a few very wrong samples.  Measured at 3 m on
# development yards 0-79, 3000-3099 and 2000-2049 (with OCCUPIED_LLR 45): 13.2, 13.5 and
# 12.9 % error, against 14.0, 14.5 and 12.7 % with squared residuals (OCCUPIED_LLR 60).
HUBER_SIGMAS = 2.0
FAR_BAND_M = 2.0  # the profile's far ends averaged for the countryside colour
# The residual is counted over the beds and the shadows' reach, and this much beyond (the
# pixel's blur carries a car's or a shadow's edge about that far).
WINDOW_MARGIN_M = 1.0
FAR_SMOOTH_POSITIONS = 15  # ... and median-filtered along the track over this many positions


@dataclass(frozen=True)
class ShadowGeometry:
    """Where and how far shadows fall, in the image's pixel frame.

    Attributes
    ----------
    direction_px : ndarray of shape (2,)
        Unit vector (columns, rows) pointing the way shadows fall.
    per_height : float
        Ground length of a shadow per metre of height (the cotangent of the sun's elevation).
    """

    direction_px: np.ndarray
    per_height: float


def shadow_geometry(azimuth_deg: float, elevation_deg: float, transform: tuple[float, ...]) -> ShadowGeometry:
    """Shadow geometry from the sun's azimuth and elevation and the image's geotransform.

    Parameters
    ----------
    azimuth_deg : float
        Sun azimuth, degrees clockwise from north (as STAC ``view:sun_azimuth``).
    elevation_deg : float
        Sun elevation above the horizon, degrees (> 0).
    transform : sequence of 6 floats
        The affine geotransform ``(a, b, c, d, e, f)`` (rasterio order) of a projected CRS
        whose axes point east and north.

    Returns
    -------
    ShadowGeometry
    """
    if not 0.0 < elevation_deg < 90.0:
        raise ValueError(f"sun elevation must be between 0 and 90 degrees, got {elevation_deg}")
    a, b, _, d, e, _ = transform[:6]
    az = np.radians(azimuth_deg)
    ground = np.array([-np.sin(az), -np.cos(az)])  # (east, north): away from the sun
    # pixel offsets (columns, rows) that move the ground point by ``ground``
    px = np.linalg.solve(np.array([[a, b], [d, e]], float), ground)
    return ShadowGeometry(px / np.hypot(*px), float(1.0 / np.tan(np.radians(elevation_deg))))


def noise_sigma(data: np.ndarray) -> np.ndarray:
    """Per-band noise, from the spread of differences between neighbouring rows, shape (B,)."""
    diff = np.diff(data, axis=1).reshape(data.shape[0], -1)
    mad = np.median(np.abs(diff - np.median(diff, axis=1, keepdims=True)), axis=1)
    return np.maximum(1.4826 * mad / np.sqrt(2.0), 1e-4)


@dataclass
class _Profiles:
    """One track's profiles and where its neighbours cross them (all per evaluated position)."""

    positions: np.ndarray  # (L,) strip indices evaluated
    values: np.ndarray  # (B, L, U) the image across the track
    across_m: np.ndarray  # (U,)
    offsets_m: np.ndarray  # (K, L) track centres across the profile (row 0: this track)
    neighbours: list[tuple[int, np.ndarray]]  # (strip index, nearest position on it) per row 1..K-1
    cos_shadow: np.ndarray  # (L,) cosine between the profile and the shadows' direction


def _profiles(
    data: np.ndarray,
    strips: list[TrackStrip],
    k: int,
    shadow: ShadowGeometry | None,
    *,
    pixel_size_m: float,
    stride: int = POSITION_STRIDE,
) -> _Profiles:
    strip = strips[k]
    pos = np.arange(0, len(strip.along_m), stride)
    here, normal = strip.centre_px[pos], strip.normal_px[pos]
    offsets, neighbours = [np.zeros(len(pos))], []
    for j, other in enumerate(strips):
        if j == k:
            continue
        dist, q = cKDTree(other.centre_px).query(here)
        across = ((other.centre_px[q] - here) * normal).sum(axis=1) * pixel_size_m
        beside = (dist * pixel_size_m <= NEIGHBOUR_REACH_M) & (q > 0) & (q < len(other.centre_px) - 1)
        if beside.mean() > 0.05:  # a neighbour for a few metres only is left out
            offsets.append(np.where(beside, across, np.nan))
            neighbours.append((j, q))
    cos_shadow = np.zeros(len(pos)) if shadow is None else normal @ shadow.direction_px
    longest = 0.0 if shadow is None else min(max(CAR_HEIGHTS_M) * shadow.per_height, MAX_SHADOW_M)
    half = NEIGHBOUR_REACH_M + CAR_WIDTH_M / 2 + longest + FAR_BAND_M + 1.0 + 2 * pixel_size_m
    across_m = np.arange(-half, half + 1e-9, PROFILE_STEP_M)
    values = sample_across(
        data, strip, np.broadcast_to(across_m, (len(strip.along_m), len(across_m))), pixel_size_m=pixel_size_m
    )[:, pos, :]
    return _Profiles(pos, values.astype(np.float64), across_m, np.array(offsets), neighbours, cos_shadow)


def _huber(z: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of residuals ``z`` in noise sigmas: Gaussian near 0, Laplacian
    beyond ``HUBER_SIGMAS``."""
    a = np.abs(z)
    return np.where(a <= HUBER_SIGMAS, 0.5 * a**2, HUBER_SIGMAS * (a - 0.5 * HUBER_SIGMAS))


def _ground_profile(prof: _Profiles, rel: np.ndarray, ballast: np.ndarray) -> np.ndarray:
    """The profiles without cars or shadows, shape (B, L, U): ballast on the beds and between
    them, the countryside beyond the group on either side (read from the profiles' far ends,
    ``FAR_BAND_M`` wide, median-filtered along the track).

    ``rel`` (K, L, U) is each sample's offset from each track of the profile.
    """
    y, u = prof.values, prof.across_m
    bed = (np.abs(rel) <= BED_HALF_WIDTH_M).any(axis=0)
    lo = np.nanmin(prof.offsets_m, axis=0)[:, None]
    hi = np.nanmax(prof.offsets_m, axis=0)[:, None]
    far = max(1, int(round(FAR_BAND_M / PROFILE_STEP_M)))
    smooth = (1, FAR_SMOOTH_POSITIONS)
    left = ndimage.median_filter(y[:, :, :far].mean(axis=2), size=smooth, mode="nearest")
    right = ndimage.median_filter(y[:, :, -far:].mean(axis=2), size=smooth, mode="nearest")
    outside = np.where(u[None, None, :] < lo[None], left[:, :, None], right[:, :, None])
    inside = bed[None] | ((u[None, :] > lo) & (u[None, :] < hi))[None]
    return np.where(inside, ballast[:, None, None], outside)


def _occupancy_llr(
    prof: _Profiles,
    ballast: np.ndarray,
    tint: np.ndarray,
    sigma: np.ndarray,
    shadow: ShadowGeometry | None,
    *,
    pixel_size_m: float,
    neighbour_cars: list[np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood ratio, per evaluated position, that this track (row 0) is occupied,
    and the best pattern's log-likelihood per residual sample.

    ``neighbour_cars`` (per strip, bool per position) fixes where the neighbours' cars are;
    without it every pattern of occupied neighbours is tried.
    """
    y, u = prof.values, prof.across_m
    n_pos = y.shape[1]
    present = ~np.isnan(prof.offsets_m)
    rel = u[None, None, :] - np.where(present, prof.offsets_m, 1e6)[:, :, None]  # (K, L, U)
    car = np.abs(rel) <= CAR_WIDTH_M / 2
    ground = _ground_profile(prof, rel, ballast)
    if shadow is None:
        lengths: tuple[float, ...] = (0.0,)
    else:
        lengths = tuple(min(h * shadow.per_height, MAX_SHADOW_M) for h in CAR_HEIGHTS_M)
    side = np.sign(prof.cos_shadow)[:, None]
    reach = np.abs(prof.cos_shadow)[:, None]
    # the residual counts over the beds and wherever the group's shadows can fall
    window = (np.abs(rel) <= BED_HALF_WIDTH_M + WINDOW_MARGIN_M).any(axis=0)
    window |= ((side * rel > 0) & (side * rel <= CAR_WIDTH_M / 2 + max(lengths) * reach + WINDOW_MARGIN_M)).any(axis=0)
    sigma_px = PROFILE_BLUR_PX * pixel_size_m / PROFILE_STEP_M

    def blur(z: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter1d(z.astype(np.float64), sigma_px, axis=-1, mode="nearest")

    car_blurred = blur(car)
    n_rows = rel.shape[0]
    # where each row's car may stand: wherever its track is in the profile, and for
    # neighbours in a later pass, only where the last pass put cars
    cars_at = present.copy()
    if neighbour_cars is not None:
        for row, (j, q) in enumerate(prof.neighbours, start=1):
            cars_at[row] &= neighbour_cars[j][q]
    choices = [(False, 0.0)] + [(True, length) for length in lengths]
    if neighbour_cars is None:
        patterns = itertools.product(choices, repeat=n_rows)
    else:
        # neighbours stand where the last pass put them; only their shadows' lengths vary
        patterns = ((own,) + rest for own in choices for rest in itertools.product(choices[1:], repeat=n_rows - 1))
    best = {True: np.full(n_pos, -np.inf), False: np.full(n_pos, -np.inf)}
    for pattern in patterns:
        on = np.array([p[0] for p in pattern])[:, None] & cars_at
        body = (car & on[:, :, None]).any(axis=0)
        shaded = np.zeros_like(body)
        for row, (_, length) in enumerate(pattern):
            if length > 0:
                r = side * rel[row]
                shaded |= on[row][:, None] & (r > CAR_WIDTH_M / 2) & (r <= CAR_WIDTH_M / 2 + length * reach)
        # shadows fall on the ground, not on cars
        lit = np.where((shaded & ~body)[None], ground * tint[:, None, None], ground) * ~body[None]
        residual = y - blur(lit)
        rows = np.flatnonzero(on.any(axis=1))
        if len(rows):
            design = car_blurred[rows] * on[rows][:, :, None]  # (m, L, U)
            gram = np.einsum("ilu,jlu->lij", design * window[None], design) + 1e-6 * np.eye(len(rows))[None]
            rhs = np.einsum("ilu,blu->lbi", design * window[None], residual)
            colour = np.clip(np.linalg.solve(gram[:, None], rhs[..., None])[..., 0], 0.0, MAX_CAR_COLOUR)  # (L, B, m)
            residual = residual - np.einsum("lbi,ilu->blu", colour, design)
        score = -(_huber(residual / sigma[:, None, None]) * window[None]).sum(axis=(0, 2)) - PATTERN_PENALTY * on.sum(
            axis=0
        )
        key = bool(pattern[0][0])
        best[key] = np.maximum(best[key], score)
    samples = np.maximum(window.sum(axis=1) * y.shape[0], 1)
    return best[True] - best[False], np.maximum(best[True], best[False]) / samples


def profile_cars(
    data: np.ndarray,
    strips: list[TrackStrip],
    ground: Ground,
    shadow: ShadowGeometry | None,
    *,
    pixel_size_m: float,
    prior: SegmentationPrior = SegmentationPrior(),
    passes: int = PASSES,
    position_stride: int = POSITION_STRIDE,
) -> tuple[list[list[tuple[int, int]]], list[TrackEvidence], float]:
    """Cars on every track from the unmixed cross-track profiles.

    Parameters
    ----------
    data : ndarray of shape (B, M, N)
        The image on a scale proportional to radiance (no offset removed), so a shadow is
        the ground times a tint.
    strips : list of TrackStrip
        Centred strips of all tracks, on the tracks.
    ground : Ground
        Lit ballast (and, where found, shaded ballast) in the units of ``data``.
    shadow : ShadowGeometry or None
        Where shadows fall; None models no shadows.
    pixel_size_m : float
    prior : SegmentationPrior
    passes : int
        Evaluations of every track; after the first, neighbours' cars stand where the last
        pass put them.
    position_stride : int
        Evaluate every this many strip positions (the rest are interpolated).

    Returns
    -------
    cars : list (per strip) of list of (start, stop)
        Strip positions of each car, as :func:`.segment.segment_cars`.
    evidence : list of TrackEvidence
        The last pass's occupancy per strip position (boundary evidence is zero: a pixel
        this coarse cannot see the gaps between cars).
    fit : float
        How well the model explains the profiles: the mean, over tracks and positions, of
        the best pattern's log-likelihood per residual sample (0 is perfect).
    """
    sigma = noise_sigma(data)
    if ground.shade is not None:
        tint = np.clip(ground.shade / np.maximum(ground.lit, 1e-6), 0.1, 0.8)
    else:
        tint = np.full(data.shape[0], DEFAULT_TINT)
    profiles = [
        _profiles(data, strips, k, shadow, pixel_size_m=pixel_size_m, stride=position_stride)
        for k in range(len(strips))
    ]
    placed: list[np.ndarray] | None = None
    for _ in range(passes):
        cars, evidence, occupied, fits = [], [], [], []
        for strip, prof in zip(strips, profiles):
            llr, fit = _occupancy_llr(
                prof, ground.lit, tint, sigma, shadow, pixel_size_m=pixel_size_m, neighbour_cars=placed
            )
            llr = np.interp(np.arange(len(strip.along_m)), prof.positions, llr)
            ev = TrackEvidence(
                np.tanh((llr - OCCUPIED_LLR) / LLR_SCALE).astype(np.float32), np.zeros(len(llr), np.float32)
            )
            found = segment_cars(ev, step_m=float(strip.along_m[1] - strip.along_m[0]), prior=prior)
            cover = np.zeros(len(llr), bool)
            for a, b in found:
                cover[a:b] = True
            cars.append(found)
            evidence.append(ev)
            occupied.append(cover)
            fits.append(fit)
        placed = occupied
    return cars, evidence, float(np.mean(np.concatenate(fits)))
