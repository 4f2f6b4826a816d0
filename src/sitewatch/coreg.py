"""Co-registration: find how far one image's content is displaced from another's.

Pure functions on arrays.  Convention used everywhere in sitewatch: a shift ``(dx, dy)``
is the displacement of MOVING's content relative to REFERENCE in columns and rows, so a
feature at ``(col, row)`` in REFERENCE appears at ``(col + dx, row + dy)`` in MOVING.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from .errors import AlignmentError


@dataclass(frozen=True)
class ShiftResult:
    """A shift estimate: ``dx, dy`` in pixels and the evidence behind it."""

    dx: float
    dy: float
    pixel_size: float
    correlation: float
    """Pearson correlation of the two edge images after alignment (1 = identical)."""
    correlation_unaligned: float

    @property
    def shift_m(self) -> tuple[float, float]:
        return (self.dx * self.pixel_size, self.dy * self.pixel_size)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shift_px"] = [round(self.dx, 3), round(self.dy, 3)]
        d["shift_m"] = [round(v, 3) for v in self.shift_m]
        return d


def edge_image(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Gradient magnitude of the band mean, shape (M, N), float32.

    Edges survive seasonal and illumination change far better than raw brightness, so
    the shift is estimated on them.
    """
    lum = np.asarray(image, dtype=np.float32).mean(axis=0) if image.ndim == 3 else np.asarray(image, np.float32)
    if valid is not None:
        lum = np.where(valid, lum, np.float32(np.median(lum[valid])) if valid.any() else 0)
    smooth = ndimage.gaussian_filter(lum, 1.0)
    grad = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))
    # compress the dynamic range so a few very strong edges do not dominate
    return np.sqrt(grad).astype(np.float32)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def estimate_shift(reference: np.ndarray, moving: np.ndarray, *, pixel_size: float = 1.0,
                   reference_valid: np.ndarray | None = None, moving_valid: np.ndarray | None = None,
                   upsample_factor: int = 50, min_correlation: float = 0.2) -> ShiftResult:
    """Global sub-pixel shift of ``moving`` relative to ``reference`` by windowed cross-correlation of edge images.

    Upsampled DFT cross-correlation (``skimage.registration.phase_cross_correlation`` with
    ``normalization=None``): on smooth texture it is biased less than the phase-normalised
    form, which amplifies noise at high frequencies.

    Parameters
    ----------
    reference, moving : ndarray of shape (B, M, N) or (M, N)
        Images on the same grid.
    pixel_size : float
        Metres per pixel, only to report the shift in metres.
    upsample_factor : int
        Sub-pixel precision is ``1 / upsample_factor`` pixels.
    min_correlation : float
        Refuse (raise) when the aligned edge images correlate less than this: the images
        do not show the same place, or too little of it.

    Returns
    -------
    ShiftResult

    Raises
    ------
    AlignmentError
        When the images are not comparable or no reliable shift is found.
    """
    if reference.shape[-2:] != moving.shape[-2:]:
        raise AlignmentError(f"images differ in size: {reference.shape[-2:]} vs {moving.shape[-2:]}")
    ref = edge_image(reference, reference_valid)
    mov = edge_image(moving, moving_valid)
    both = np.ones(ref.shape, bool)
    if reference_valid is not None:
        both &= reference_valid
    if moving_valid is not None:
        both &= moving_valid
    if both.mean() < 0.25:
        raise AlignmentError("the images share less than a quarter of their pixels; cannot co-register")
    window = np.outer(np.hanning(ref.shape[0]), np.hanning(ref.shape[1])).astype(np.float32)
    ref_w = (ref - ref[both].mean()) * window * both
    mov_w = (mov - mov[both].mean()) * window * both
    shift, _, _ = phase_cross_correlation(ref_w, mov_w, upsample_factor=upsample_factor, normalization=None)
    # skimage returns the shift that registers moving onto reference: the negative displacement
    dy, dx = -float(shift[0]), -float(shift[1])
    aligned = ndimage.shift(mov, (-dy, -dx), order=1, mode="nearest")
    margin = int(np.ceil(max(abs(dx), abs(dy)))) + 2
    inner = both.copy()
    inner[:margin] = inner[-margin:] = False
    inner[:, :margin] = inner[:, -margin:] = False
    corr = _corr(ref[inner], aligned[inner])
    corr0 = _corr(ref[inner], mov[inner])
    if corr < min_correlation:
        raise AlignmentError(
            f"no reliable shift: edge correlation {corr:.2f} after alignment is below {min_correlation}; "
            "the images may not show the same place"
        )
    return ShiftResult(dx, dy, float(pixel_size), corr, corr0)
