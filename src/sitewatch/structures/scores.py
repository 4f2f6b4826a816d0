"""Change scores and the per-pixel evidence masks used to interpret them.

All functions take arrays of shape (B, M, N) on one grid (after co-registration and
radiometric normalisation) and return (M, N) arrays; none modifies its inputs.
"""

from __future__ import annotations

import numpy as np
from skimage.exposure import match_histograms
from skimage.filters import threshold_otsu

# For the magnitude of three bands of Gaussian noise (a chi distribution, 3 degrees of
# freedom) the lower quartile is 0.717 of the median.
QUARTILE_TO_MEDIAN = 0.717


def robust_scale(score: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Divide by the unchanged pixels' median, estimated from the lower quartile.

    The lower quartile stays within unchanged ground until half the scene has changed (a
    neighbourhood built up between two dates), where the median itself would already sit
    on the change.  Scaled so that it equals the median when little has changed.
    """
    sample = score[valid] if valid is not None else score.ravel()
    scale = float(np.percentile(sample, 25)) / QUARTILE_TO_MEDIAN if sample.size else 1.0
    return (score / (scale if scale > 0 else 1.0)).astype(np.float32)


def cva_magnitude(before: np.ndarray, after: np.ndarray, *, valid: np.ndarray | None = None) -> np.ndarray:
    """Change-vector magnitude, in units of its median (so about 1 where nothing changed)."""
    diff = after.astype(np.float32) - before.astype(np.float32)
    return robust_scale(np.sqrt((diff * diff).sum(axis=0)), valid)


def log_ratio(before: np.ndarray, after: np.ndarray, *, valid: np.ndarray | None = None) -> np.ndarray:
    """Band-mean absolute log ratio, in units of its median; robust to multiplicative illumination."""
    eps = np.float32(1.0)
    ratio = np.abs(np.log((after.astype(np.float32) + eps) / (before.astype(np.float32) + eps))).mean(axis=0)
    return robust_scale(ratio, valid)


def otsu_threshold(score: np.ndarray, mask: np.ndarray, *, floor: float = 0.0) -> float:
    """Otsu's threshold of ``score`` over ``mask``, never below ``floor``."""
    sample = score[mask]
    if sample.size < 2 or np.ptp(sample) == 0:
        return float(max(floor, sample.max() if sample.size else floor))
    return float(max(floor, threshold_otsu(sample)))


def excess_green(image: np.ndarray) -> np.ndarray:
    """Chromatic excess-green index ``2g - r - b`` on an RGB image (B >= 3, bands R, G, B).

    About 0 for grey surfaces, > 0.05 for green and yellowing vegetation, < 0 for blue and
    red roofs.  Pixels whose blue is at least their green (teal and cyan roofs, water)
    get 0: leaves, green or autumn-yellow, absorb blue.
    """
    rgb = np.clip(image[:3].astype(np.float32), 0, None)
    total = rgb.sum(axis=0) + np.float32(1e-6)
    r, g, b = rgb / total
    return np.where(g > b, 2 * g - r - b, 0).astype(np.float32)


def ndvi(image: np.ndarray) -> np.ndarray:
    """Normalised difference vegetation index ``(nir - red) / (nir + red)`` (bands R, G, B, NIR)."""
    red = np.clip(image[0].astype(np.float32), 0, None)
    nir = np.clip(image[3].astype(np.float32), 0, None)
    return ((nir - red) / (nir + red + np.float32(1e-6))).astype(np.float32)


def vegetation_mask(image: np.ndarray, *, greenness_threshold: float = 0.05, ndvi_threshold: float = 0.3) -> np.ndarray:
    """Vegetated pixels: NDVI above ``ndvi_threshold`` where a fourth (near-infrared) band
    exists, else excess green above ``greenness_threshold``; none with fewer than 3 bands.

    NDVI sees leaves whatever their visible colour (autumn, dry grass stays lower) and is
    not fooled by green paint, which reflects little near-infrared.
    """
    if image.shape[0] >= 4:
        return ndvi(image) > ndvi_threshold
    if image.shape[0] >= 3:
        return excess_green(image) > greenness_threshold
    return np.zeros(image.shape[1:], bool)


def brightness(image: np.ndarray) -> np.ndarray:
    """Band mean, shape (M, N), float32."""
    return image.astype(np.float32).mean(axis=0)


def shadow_mask(
    image: np.ndarray, *, valid: np.ndarray | None = None, fraction: float = 0.5, median: float | None = None
) -> np.ndarray:
    """Pixels darker than ``fraction`` of the scene's median brightness: cast shadows and openings.

    ``median`` is that brightness where the caller has it (a block of a larger scene is
    judged against the scene's); by default it is taken over ``valid``.
    """
    lum = brightness(image)
    med = float(np.median(lum[valid] if valid is not None else lum)) if median is None else median
    return lum < fraction * med


def cva_otsu_baseline(
    before: np.ndarray, after: np.ndarray, *, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The classical change baseline: histogram matching, change-vector magnitude, Otsu's threshold.

    ``before`` is matched band by band to ``after``'s histogram (scikit-image),
    the magnitude of the difference vector is the score, and Otsu's threshold of it
    the change mask. Nothing is tuned: this is the yardstick a method must beat.

    Returns
    -------
    score : ndarray of shape (M, N), float32
    changed : ndarray of bool, shape (M, N)
    """
    valid = np.ones(before.shape[1:], bool) if valid is None else valid
    bands = min(before.shape[0], after.shape[0], 3)
    matched = match_histograms(
        np.moveaxis(before[:bands].astype(np.float32), 0, -1),
        np.moveaxis(after[:bands].astype(np.float32), 0, -1),
        channel_axis=-1,
    )
    matched = np.moveaxis(matched, -1, 0)
    diff = after[:bands].astype(np.float32) - matched
    score = np.where(valid, np.sqrt((diff * diff).sum(axis=0)), 0).astype(np.float32)
    threshold = otsu_threshold(score, valid)
    return score, valid & (score > threshold)
