"""Radiometric normalisation: make MOVING's band values comparable with REFERENCE's.

Both functions return a new float32 array of MOVING's shape and never modify inputs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from skimage.exposure import match_histograms


def histogram_match(reference: np.ndarray, moving: np.ndarray, *, valid: np.ndarray | None = None,
                    candidates: np.ndarray | None = None) -> np.ndarray:
    """Per-band histogram matching of ``moving`` to ``reference``, arrays of shape (B, M, N).

    ``candidates`` is accepted for a common signature and ignored: histograms are matched
    over all valid pixels.
    """
    out = np.array(moving, dtype=np.float32, copy=True)
    mask = np.ones(moving.shape[1:], bool) if valid is None else valid
    for b in range(moving.shape[0]):
        out[b][mask] = match_histograms(moving[b][mask], reference[b][mask]).astype(np.float32)
    return out


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


def invariant_regression(reference: np.ndarray, moving: np.ndarray, *, valid: np.ndarray | None = None,
                         candidates: np.ndarray | None = None, keep_fraction: float = 0.6,
                         max_samples: int = 200_000, seed: int = 0) -> np.ndarray:
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
        when fewer than 1000 of them are valid.

    Returns
    -------
    ndarray of shape (B, M, N), float32
        ``moving`` mapped to ``reference``'s radiometry.
    """
    mask = np.ones(moving.shape[1:], bool) if valid is None else valid
    if candidates is not None and (mask & candidates).sum() >= 1000:
        mask = mask & candidates
    idx = np.flatnonzero(mask)
    if idx.size > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_samples, replace=False))
    ref = reference.reshape(reference.shape[0], -1)[:, idx].astype(np.float64)
    mov = moving.reshape(moving.shape[0], -1)[:, idx].astype(np.float64)
    coeffs = []
    for b in range(moving.shape[0]):
        r5, r50, r95 = np.percentile(ref[b], [5, 50, 95])
        m5, m50, m95 = np.percentile(mov[b], [5, 50, 95])
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


NORMALISATION_METHODS: dict[str, Callable[..., np.ndarray]] = {
    "regression": invariant_regression,
    "histogram": histogram_match,
}
