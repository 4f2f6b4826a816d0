"""Radiometric normalisation: make MOVING's band values comparable with REFERENCE's.

The normalisations return a new float32 array of MOVING's shape and never modify inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from skimage.exposure import match_histograms


def histogram_match(
    reference: np.ndarray, moving: np.ndarray, *, valid: np.ndarray | None = None, candidates: np.ndarray | None = None
) -> np.ndarray:
    """Per-band histogram matching of ``moving`` to ``reference``, arrays of shape (B, M, N).

    ``candidates`` is accepted for a common signature and ignored: histograms are matched
    over all valid pixels.
    """
    out = np.array(moving, dtype=np.float32, copy=True)
    mask = np.ones(moving.shape[1:], bool) if valid is None else valid
    for b in range(moving.shape[0]):
        out[b][mask] = match_histograms(moving[b][mask], reference[b][mask]).astype(np.float32)
    return out


# Candidates (say, pixels neither vegetated nor in shadow) restrict a fit only where they are
# a fair share of the scene; where nearly all is vegetated they are mostly the change itself.
MIN_CANDIDATE_SHARE = 0.2
# Fewest pixels a fit or a score's scale is taken from when restricted to a subset (the
# candidates here, the unchanged ground in :mod:`sitewatch.structures.roof_change`): fewer, and
# a few odd pixels would set it; then it is taken from every valid pixel instead.
MIN_SAMPLE_PIXELS = 1000
# The first, robust fit maps the candidates' median and 5-95 % spread: wide enough to span
# dark and bright invariant surfaces, and a few percent of changed candidates do not tip it.
SPREAD_PERCENTILES = (5, 50, 95)


def _enough(candidates: np.ndarray | None, mask: np.ndarray) -> bool:
    if candidates is None:
        return False
    n = int((mask & candidates).sum())
    return n >= MIN_SAMPLE_PIXELS and n >= MIN_CANDIDATE_SHARE * int(mask.sum())


def _orthogonal_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of the total-least-squares line y = a x + b."""
    mx, my = x.mean(), y.mean()
    sxx = ((x - mx) ** 2).mean()
    syy = ((y - my) ** 2).mean()
    sxy = ((x - mx) * (y - my)).mean()
    if abs(sxy) < 1e-12:
        a = np.sqrt(syy / sxx) if sxx > 0 else 1.0
    else:
        a = (syy - sxx + np.sqrt((syy - sxx) ** 2 + 4 * sxy**2)) / (2 * sxy)
    return float(a), float(my - a * mx)


def invariant_regression(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
    keep_fraction: float = 0.6,
    max_samples: int = 200_000,
    seed: int = 0,
) -> np.ndarray:
    """Per-band linear mapping fitted on pseudo-invariant pixels.

    First a fit from the candidates' medians and 5-95 % spreads (wide enough to span
    dark and bright invariant surfaces; a few percent of changed candidates do not tip
    it, more do, which is why ``candidates`` matters); then a total-least-squares refit on the ``keep_fraction`` of
    candidates that the first fit explains best, so changed ground does not drag it.
    A simpler cousin of IR-MAD no-change selection followed by orthogonal regression
    (Canty's radcal).

    Parameters
    ----------
    reference, moving : ndarray of shape (B, M, N)
    valid : ndarray of bool, shape (M, N), optional
        Pixels valid in both images.
    candidates : ndarray of bool, shape (M, N), optional
        Pixels allowed to serve as invariant (e.g. not vegetated on either date, not in
        shadow): seasonal ground otherwise dominates the fit and bends greys.  Ignored
        when fewer than :data:`MIN_SAMPLE_PIXELS` of them, or under
        :data:`MIN_CANDIDATE_SHARE` of the valid pixels, are valid.

    Returns
    -------
    ndarray of shape (B, M, N), float32
        ``moving`` mapped to ``reference``'s radiometry.
    """
    mask = np.ones(moving.shape[1:], bool) if valid is None else valid
    if _enough(candidates, mask):
        mask = mask & candidates
    idx = np.flatnonzero(mask)
    if idx.size > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_samples, replace=False))
    ref = reference.reshape(reference.shape[0], -1)[:, idx].astype(np.float64)
    mov = moving.reshape(moving.shape[0], -1)[:, idx].astype(np.float64)
    coeffs = []
    for b in range(moving.shape[0]):
        r5, r50, r95 = np.percentile(ref[b], list(SPREAD_PERCENTILES))
        m5, m50, m95 = np.percentile(mov[b], list(SPREAD_PERCENTILES))
        a = (r95 - r5) / (m95 - m5) if m95 > m5 else 1.0
        coeffs.append((a, r50 - a * m50))
    resid = np.stack([(ref[b] - (a * mov[b] + c)) / (ref[b].std() + 1e-9) for b, (a, c) in enumerate(coeffs)])
    dist = np.sqrt((resid**2).sum(axis=0))
    keep = dist <= np.quantile(dist, keep_fraction)
    refined = [_orthogonal_fit(mov[b, keep], ref[b, keep]) for b in range(moving.shape[0])]
    # keep the refit only where it agrees with the robust fit: a degenerate kept set
    # (one colour) makes total least squares unstable
    coeffs = [r if 0.5 < r[0] / a < 2.0 else (a, c) for r, (a, c) in zip(refined, coeffs)]
    out = np.empty(moving.shape, np.float32)
    for b, (a, c) in enumerate(coeffs):
        out[b] = (a * moving[b] + c).astype(np.float32)
    return out


def irmad_no_change(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    max_iterations: int = 30,
    tolerance: float = 1e-4,
    max_samples: int = 200_000,
    seed: int = 0,
) -> np.ndarray:
    """Probability of no change per pixel by iteratively reweighted MAD (Nielsen 2007).

    Canonical correlation analysis between the two images' bands gives MAD variates (the
    differences of paired canonical variates), which are mutually uncorrelated with known
    variances; the sum of their squared standardised values is chi-square with B degrees of
    freedom where nothing changed.  Each iteration weights pixels by their probability of
    no change and recomputes the CCA, until the canonical correlations settle.  It is
    invariant to any linear (affine) transformation of either image's bands, so gains,
    offsets and haze do not count as change.

    Parameters
    ----------
    reference, moving : ndarray of shape (B, M, N)
    valid : ndarray of bool, shape (M, N), optional

    Returns
    -------
    ndarray of float32, shape (M, N)
        P(no change) in 0-1; 0 outside ``valid``.
    """
    from scipy.linalg import eigh
    from scipy.stats import chi2

    bands = reference.shape[0]
    mask = np.ones(reference.shape[1:], bool) if valid is None else valid
    idx = np.flatnonzero(mask)
    if idx.size > max_samples:  # the statistics settle on a sample; every pixel is scored at the end
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_samples, replace=False))
    x = reference.reshape(bands, -1)[:, idx].astype(np.float64)
    y = moving.reshape(bands, -1)[:, idx].astype(np.float64)
    weights = np.ones(idx.size)
    rho_old = np.zeros(bands)
    for _ in range(max_iterations):
        w = weights / weights.sum()
        mx, my = x @ w, y @ w
        xc, yc = x - mx[:, None], y - my[:, None]
        sxx = (xc * w) @ xc.T + 1e-9 * np.eye(bands)
        syy = (yc * w) @ yc.T + 1e-9 * np.eye(bands)
        sxy = (xc * w) @ yc.T
        # generalised eigenproblems for the canonical vectors a (reference) and b (moving)
        rho2, a = eigh(sxy @ np.linalg.solve(syy, sxy.T), sxx)
        rho = np.sqrt(np.clip(rho2, 0, 1))
        b = np.linalg.solve(syy, sxy.T @ a) / np.maximum(rho, 1e-9)
        b /= np.sqrt(np.einsum("ij,ij->j", b, syy @ b))[None, :]  # unit variance
        # pair each a with a positively correlated b
        sign = np.sign(np.einsum("ij,ij->j", a, sxy @ b))
        b *= np.where(sign == 0, 1, sign)[None, :]
        mad = a.T @ xc - b.T @ yc
        var = np.maximum(2 * (1 - rho), 1e-9)
        z = ((mad**2) / var[:, None]).sum(axis=0)
        weights = 1 - chi2.cdf(z, bands)
        if np.max(np.abs(rho - rho_old)) < tolerance:
            break
        rho_old = rho
    # score every pixel with the final transformation
    xa = reference.reshape(bands, -1).astype(np.float64) - mx[:, None]
    ya = moving.reshape(bands, -1).astype(np.float64) - my[:, None]
    z_all = (((a.T @ xa - b.T @ ya) ** 2) / var[:, None]).sum(axis=0)
    p = (1 - chi2.cdf(z_all, bands)).reshape(reference.shape[1:]).astype(np.float32)
    return np.where(mask, p, 0.0).astype(np.float32)


def irmad_regression(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
    no_change_probability: float = 0.95,
    min_pixels: int = 200,
) -> np.ndarray:
    """Per-band orthogonal regression of ``moving`` on ``reference`` over IR-MAD no-change pixels.

    Canty's radcal: pixels IR-MAD finds unchanged with probability above
    ``no_change_probability`` (and among ``candidates``, when enough are) define a
    total-least-squares line per band.  Seasonal and illumination change that is linear in
    the bands is corrected; change that is not (new roofs, floods) is left standing.  Falls
    back to :func:`invariant_regression` when too few pixels qualify.
    """
    mask = np.ones(moving.shape[1:], bool) if valid is None else valid
    p = irmad_no_change(reference, moving, valid=mask)
    invariant = mask & (p > no_change_probability)
    if _enough(candidates, mask) and (invariant & candidates).sum() >= min_pixels:
        invariant &= candidates
    if invariant.sum() < min_pixels:
        return invariant_regression(reference, moving, valid=valid, candidates=candidates)
    out = np.empty(moving.shape, np.float32)
    for band in range(moving.shape[0]):
        a, c = _orthogonal_fit(
            moving[band][invariant].astype(np.float64), reference[band][invariant].astype(np.float64)
        )
        out[band] = (a * moving[band] + c).astype(np.float32)
    return out


def no_normalisation(
    reference: np.ndarray, moving: np.ndarray, *, valid: np.ndarray | None = None, candidates: np.ndarray | None = None
) -> np.ndarray:
    """``moving`` as it is (float32): for imagery already calibrated alike (surface
    reflectance), or scenes so changed that any fit would be bent by the change."""
    return np.array(moving, dtype=np.float32, copy=True)


# Every normalisation ``detect`` and ``evaluate`` offer (``--normalisation``), in the order shown.
NORMALISATION_METHODS: dict[str, Callable[..., np.ndarray]] = {
    "regression": invariant_regression,
    "irmad": irmad_regression,
    "histogram": histogram_match,
    "none": no_normalisation,
}
