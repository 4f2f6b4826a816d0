"""Co-registration of two images held whole: find how far one image's content is displaced from another's.

Pure functions on arrays.  Convention used everywhere in sitewatch: a shift ``(dx, dy)``
is the displacement of MOVING's content relative to REFERENCE in columns and rows, so a
feature at ``(col, row)`` in REFERENCE appears at ``(col + dx, row + dy)`` in MOVING.

Method (:func:`estimate_shift`):

1. Work on gradient fields (``gx + i·gy``, magnitude compressed), which survive seasons and
   illumination; correlating them matches the direction of edges, not only their strength.
2. A coarse whole-image cross-correlation gives the shift to the nearest pixel, so large
   shifts need no large windows.
3. A grid of windows each measures its own sub-pixel shift (upsampled DFT
   cross-correlation), after the coarse shift is taken out.
4. Outliers (new buildings, clouds, featureless ground) are rejected by consensus: RANSAC
   keeps the largest group of windows that agree on a translation or an affine displacement
   (within ``CoregSettings.radius_px``).  Too few agreeing windows, and no distinct
   whole-image peak, is a refusal, never a guess: unrelated images give windows that
   disagree.  (Steps 2-4: :func:`_window_estimate`.)
5. The shift is refined once more on the residual (the moving image resampled by the first
   estimate), where window edge effects no longer bias it.  Where the inlier windows show a
   significant gradient (rotation, scale, shear), an affine displacement model is fitted;
   otherwise a translation, whose last step is the whole residual image: windows on real
   pairs of dates differ by tenths of a pixel (relief, sensor geometry), so which of them
   pass would otherwise move the answer by as much.  (Step 5: :func:`_refined`.)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from ..errors import AlignmentError


@dataclass(frozen=True)
class WindowShift:
    """One window's measurement: its centre (col, row), shift, correlation and whether it was kept."""

    col: float
    row: float
    dx: float
    dy: float
    correlation: float
    inlier: bool

    def to_dict(self) -> dict:
        return {
            "col": round(self.col, 1),
            "row": round(self.row, 1),
            "dx": round(self.dx, 3),
            "dy": round(self.dy, 3),
            "correlation": round(self.correlation, 3),
            "inlier": self.inlier,
        }


@dataclass(frozen=True)
class ShiftResult:
    """A shift estimate: ``dx, dy`` in pixels and the evidence behind it.

    ``dx, dy`` is the displacement at the image centre.  With ``model == "affine"``,
    ``gradient`` holds ``(ddx/dcol, ddx/drow, ddy/dcol, ddy/drow)``: the displacement at
    ``(col, row)`` is ``(dx, dy) + gradient · (col - centre_col, row - centre_row)``.
    """

    dx: float
    dy: float
    pixel_size_m: float
    correlation: float
    """Correlation of the two gradient fields after alignment (1 = identical)."""
    correlation_unaligned: float
    windows_valid: int = 0
    windows_rejected: int = 0
    confidence: float = 0.0
    """Share of usable windows that agree with the shift, 0-1."""
    residual_px: float = 0.0
    """RMS distance of the inlier windows from the model, pixels."""
    model: str = "translation"
    gradient: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    centre: tuple[float, float] = (0.0, 0.0)
    windows: tuple[WindowShift, ...] = field(default=(), repr=False)

    @property
    def shift_m(self) -> tuple[float, float]:
        return (self.dx * self.pixel_size_m, self.dy * self.pixel_size_m)

    def to_dict(self, *, windows: bool = False) -> dict:
        d = {
            "dx": round(self.dx, 4),
            "dy": round(self.dy, 4),
            "pixel_size": self.pixel_size_m,
            "shift_px": [round(self.dx, 3), round(self.dy, 3)],
            "shift_m": [round(v, 3) for v in self.shift_m],
            "correlation": round(self.correlation, 4),
            "correlation_unaligned": round(self.correlation_unaligned, 4),
            "windows_valid": self.windows_valid,
            "windows_rejected": self.windows_rejected,
            "confidence": round(self.confidence, 3),
            "residual_px": round(self.residual_px, 3),
            "model": self.model,
        }
        if self.model == "affine":
            d["gradient"] = [round(v, 6) for v in self.gradient]
            d["centre"] = [round(v, 1) for v in self.centre]
        if windows:
            d["windows"] = [w.to_dict() for w in self.windows]
        return d


# Gradients are taken of the band mean smoothed by a Gaussian this wide, so pixel noise does
# not dominate them.
GRADIENT_SMOOTH_PX = 1.0
# Windows per side of the grid at most (64 windows): enough for a consensus and an affine fit.
MAX_WINDOWS_PER_SIDE = 8


def gradient_field(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Gradient of the band mean as a complex field ``gx + i·gy``, its magnitude compressed, shape (M, N).

    Gradients survive seasonal and illumination change far better than raw brightness, and
    their direction carries what their strength loses between dates (a different sensor or
    sun makes the same edge stronger or weaker, but it still points the same way).  The
    magnitude is compressed to its square root so a few very strong edges do not dominate;
    correlating the complex fields matches gradient vectors (gradient correlation).
    """
    lum = np.asarray(image, dtype=np.float32).mean(axis=0) if image.ndim == 3 else np.asarray(image, np.float32)
    if valid is not None:
        lum = np.where(valid, lum, np.float32(np.median(lum[valid])) if valid.any() else 0)
    smooth = ndimage.gaussian_filter(lum, GRADIENT_SMOOTH_PX)
    grad = ndimage.sobel(smooth, 1) + 1j * ndimage.sobel(smooth, 0)
    return (grad / np.sqrt(np.maximum(np.abs(grad), 1e-12))).astype(np.complex64)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two (complex) fields: the real part of their inner product."""
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((np.abs(a) ** 2).sum() * (np.abs(b) ** 2).sum())
    return float(np.real((a * np.conj(b)).sum()) / den) if den > 0 else 0.0


def _xcorr_shift(ref: np.ndarray, mov: np.ndarray, mask: np.ndarray, upsample: int) -> tuple[float, float]:
    """(dx, dy) of ``mov`` relative to ``ref`` by Hann-windowed, upsampled DFT cross-correlation.

    Not phase-normalised: on smooth texture the phase-normalised form amplifies noise at high
    frequencies and is biased by several hundredths of a pixel.
    """
    hann = np.outer(np.hanning(ref.shape[0]), np.hanning(ref.shape[1])).astype(np.float32)
    r = (ref - ref[mask].mean()) * hann * mask
    m = (mov - mov[mask].mean()) * hann * mask
    shift = _correlation_peak(r, m, upsample)
    return -float(shift[1]), -float(shift[0])  # the peak is the correction; we report the displacement


# The sub-pixel peak is found in two steps: on a grid of 1/COARSE_UPSAMPLE px over 1.5 px, then
# on the final grid over 1.5 of those steps round the first peak.
COARSE_UPSAMPLE = 10


def _correlation_peak(reference: np.ndarray, moving: np.ndarray, upsample: int) -> np.ndarray:
    """The (row, col) correction that aligns ``moving`` onto ``reference``, to 1/``upsample`` px.

    The efficient subpixel registration of Guizar-Sicairos et al. (2008), as
    ``skimage.registration.phase_cross_correlation(..., normalization=None)`` computes it,
    with its upsampled DFT in two steps and in the fields' own single precision: the same
    peak (to 1e-6 px on gradient fields) at a fifth of the cost.
    """
    product = sfft.fft2(reference) * np.conj(sfft.fft2(moving))
    surface = np.abs(sfft.ifft2(product))
    peak = np.array(np.unravel_index(int(np.argmax(surface)), surface.shape), float)
    half = np.array(surface.shape) // 2
    shift = np.where(peak > half, peak - np.array(surface.shape), peak)
    if upsample <= 1:
        return shift
    first = min(upsample, COARSE_UPSAMPLE)
    shift = _upsampled_peak(product, shift, first, int(np.ceil(first * 1.5)))
    if upsample > first:
        shift = _upsampled_peak(product, shift, upsample, int(np.ceil(1.5 * upsample / first)))
    return shift


def _upsampled_peak(product: np.ndarray, shift: np.ndarray, upsample: int, region: int) -> np.ndarray:
    """The correlation's peak on a grid of 1/``upsample`` px, ``region`` steps a side, round ``shift``."""
    centre = np.fix(region / 2.0)
    shift = np.round(shift * upsample) / upsample
    offsets = centre - shift * upsample
    data = np.conj(product)
    for axis_len, offset in zip(product.shape[::-1], offsets[::-1]):  # a matrix DFT per axis
        kernel = np.exp(
            (-2j * np.pi) * (np.arange(region) - offset)[:, None] * np.fft.fftfreq(axis_len, upsample)[None, :]
        )
        data = np.tensordot(kernel.astype(data.dtype), data, axes=(1, -1))
    surface = np.abs(data)
    peak = np.array(np.unravel_index(int(np.argmax(surface)), surface.shape), float)
    return shift + (peak - centre) / upsample


# The whole-image peak's distinctness is measured against the highest value beyond this many
# pixels of it (the peak's own shoulders are not a rival).
PEAK_EXCLUSION_PX = 5


def _global_peak(ref: np.ndarray, mov: np.ndarray, mask: np.ndarray, upsample: int) -> tuple[float, float, float]:
    """Whole-image shift (dx, dy) and how distinct its peak is: peak ÷ the highest value beyond
    :data:`PEAK_EXCLUSION_PX` of it.

    Unrelated images give ratios close to 1: at most 1.2 over 26 pairs of LEVIR-CD 1024-px
    tiles and xBD scenes, but up to 1.65 over 110 pairs of 256-px LEVIR-CD crops, which hold
    few independent edges.  The same place seen years apart gives 2.4-5.9 on the 1024 tiles.
    """
    hann = np.outer(np.hanning(ref.shape[0]), np.hanning(ref.shape[1])).astype(np.float32)
    r = np.fft.fft2((ref - ref[mask].mean()) * hann * mask)
    m = np.fft.fft2((mov - mov[mask].mean()) * hann * mask)
    surface = np.fft.fftshift(np.real(np.fft.ifft2(r * np.conj(m))))
    peak = np.unravel_index(int(np.argmax(surface)), surface.shape)
    rest = surface.copy()
    near = PEAK_EXCLUSION_PX
    rest[max(0, peak[0] - near) : peak[0] + near + 1, max(0, peak[1] - near) : peak[1] + near + 1] = -np.inf
    ratio = float(surface[peak] / rest.max()) if rest.max() > 0 else np.inf
    dx, dy = _xcorr_shift(ref, mov, mask, upsample)
    return dx, dy, ratio


# Whole-image correlations (the fallback peak, the residual step) read at most this many pixels
# a side, from the centre: plenty of texture (the fallback's peak ratios were measured on 1024 px
# tiles), and an upsampled correlation whose cost does not grow with the scene.
WHOLE_IMAGE_MAX_PX = 1024


def _central(shape: tuple[int, ...], size: int = WHOLE_IMAGE_MAX_PX) -> tuple[slice, slice]:
    """The central window of at most ``size`` a side."""
    starts = [max(0, (n - size) // 2) for n in shape[-2:]]
    return tuple(slice(a, a + min(n, size)) for a, n in zip(starts, shape[-2:]))


# The residual step is skipped (no correction) where less than this share of the central
# crop is left valid after resampling.
MIN_RESIDUAL_SHARE = 0.25


def _residual_shift(
    ref: np.ndarray, mov: np.ndarray, valid: np.ndarray, offset: np.ndarray, upsample: int
) -> np.ndarray:
    """Whole-image shift left after ``mov`` is resampled by ``offset`` (dx, dy), as an array (dx, dy)."""
    crop = _central(ref.shape)
    ref, mov, valid = ref[crop], mov[crop], valid[crop]
    moved = _shift_image(mov, float(offset[0]), float(offset[1]))
    margin = int(np.ceil(np.abs(offset).max())) + WINDOW_EDGE_ROOM_PX  # resampled from beyond the edge: not data
    # valid only where every pixel the resampling read was valid (a linear resampling of the mask is 1)
    mask = valid & (_shift_image(valid.astype(np.float32), float(offset[0]), float(offset[1]), order=1) > 0.999)
    mask[:margin] = mask[-margin:] = False
    mask[:, :margin] = mask[:, -margin:] = False
    if mask.mean() < MIN_RESIDUAL_SHARE:
        return np.zeros(2)
    return np.array(_xcorr_shift(ref, moved, mask, upsample))


def _window_grid(shape: tuple[int, int], size: int, max_per_side: int = MAX_WINDOWS_PER_SIDE) -> list[tuple[int, int]]:
    """Top-left corners of up to ``max_per_side``² evenly spread windows, overlapping by half or more."""
    corners = []
    for extent in shape:
        count = min(max_per_side, max(1, 2 * (extent - size) // size + 1))
        corners.append(np.linspace(0, extent - size, count).round().astype(int) if extent > size else np.array([0]))
    return [(int(r), int(c)) for r in corners[0] for c in corners[1]]


def window_corners(shape: tuple[int, int], size: int, displacement: tuple[float, float]) -> list[tuple[int, int]]:
    """Top-left corners (row, col) of the windows measured for a displacement (dx, dy) at the image centre.

    The grid is laid out where the displaced windows, plus room to resample, stay inside the image.
    """
    rows, cols = shape
    cx, cy = displacement
    room = WINDOW_EDGE_ROOM_PX
    top, left = max(0, -int(np.floor(cy))) + room, max(0, -int(np.floor(cx))) + room
    bottom, right = max(0, int(np.ceil(cy))) + room, max(0, int(np.ceil(cx))) + room
    inner_shape = (rows - top - bottom, cols - left - right)
    if min(inner_shape) < size:
        return []
    return [(r + top, c + left) for r, c in _window_grid(inner_shape, size)]


def _affine_fit(centres: np.ndarray, shifts: np.ndarray, centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares displacement ``offset + gradient @ (xy - centre)``: (offset (2,), gradient (2, 2))."""
    design = np.column_stack([np.ones(len(centres)), centres[:, 0] - centre[0], centres[:, 1] - centre[1]])
    coef, *_ = np.linalg.lstsq(design, shifts, rcond=None)
    return coef[0], coef[1:].T


def _model_residual(
    centres: np.ndarray, shifts: np.ndarray, offset: np.ndarray, grad: np.ndarray, centre: tuple[float, float]
) -> np.ndarray:
    predicted = offset[None, :] + (centres - np.asarray(centre)) @ grad.T
    return np.hypot(*(shifts - predicted).T)


# RANSAC draws at most this many random triples of windows (4 n² for n windows, when fewer):
# 64 windows at most, so a few hundred triples find any affine model most of them share.
MAX_TRIPLES = 400


def _robust_model(
    centres: np.ndarray,
    shifts: np.ndarray,
    centre: tuple[float, float],
    *,
    radius: float,
    min_affine_inliers: int,
    min_gradient_effect: float,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """RANSAC over window shifts: a translation, or an affine displacement where the misalignment varies.

    Every window proposes a translation; random triples propose affine models.  The model
    with most windows within ``radius`` px wins; an affine one only when it gathers at
    least ``min_affine_inliers`` windows, more than the best translation, and moves the
    outermost windows by more than ``min_gradient_effect`` px.

    Returns (inlier mask, offset, gradient, is_affine), refitted on the inliers.
    """
    zero = np.zeros((2, 2))
    best_t = max((_model_residual(centres, shifts, s, zero, centre) <= radius for s in shifts), key=lambda m: m.sum())
    best_a = None
    n = len(shifts)
    if n >= min_affine_inliers:
        rng = np.random.default_rng(seed)
        triples = rng.choice(n, size=(min(MAX_TRIPLES, 4 * n * n), 3), replace=True)
        for tri in triples:
            if len(set(tri.tolist())) < 3:
                continue
            pts = centres[tri]
            if abs(np.linalg.det(np.column_stack([np.ones(3), pts]))) < 1e-6 * (np.ptp(centres) ** 2 + 1):
                continue  # collinear windows cannot define an affine model
            off, grad = _affine_fit(pts, shifts[tri], centre)
            inl = _model_residual(centres, shifts, off, grad, centre) <= radius
            if best_a is None or inl.sum() > best_a.sum():
                best_a = inl
    if best_a is not None and best_a.sum() >= min_affine_inliers and best_a.sum() > best_t.sum():
        off, grad = _affine_fit(centres[best_a], shifts[best_a], centre)
        inl = _model_residual(centres, shifts, off, grad, centre) <= radius
        reach = np.abs(centres[inl] - np.asarray(centre)).max(axis=0)
        effect = float(np.abs(grad * reach[None, :]).sum(axis=1).max())
        if inl.sum() >= min_affine_inliers and effect > min_gradient_effect:
            off, grad = _affine_fit(centres[inl], shifts[inl], centre)
            return inl, off, grad, True
    off = shifts[best_t].mean(axis=0)
    inl = _model_residual(centres, shifts, off, zero, centre) <= radius
    return inl, shifts[inl].mean(axis=0), zero, False


def _shift_image(image: np.ndarray, dx: np.ndarray | float, dy: np.ndarray | float, order: int = 3) -> np.ndarray:
    """Sample ``image`` at (col + dx, row + dy): undoes a displacement (scalar or per-pixel)."""
    if np.ndim(dx) == 0 and np.ndim(dy) == 0:
        return ndimage.shift(image, (-float(dy), -float(dx)), order=order, mode="nearest").astype(image.dtype)
    rows, cols = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float32)
    return ndimage.map_coordinates(image, [rows + dy, cols + dx], order=order, mode="nearest").astype(image.dtype)


def _corr_at(ref_w: np.ndarray, aligned: np.ndarray, ox: int, oy: int) -> float:
    """Correlation of a reference window with an aligned moving window moved by whole pixels.

    Both are compared inside a margin of an eighth of the window, so whole-pixel steps from
    the aligned window are exact slices of it.
    """
    size = ref_w.shape[0]
    lo, hi = size // 8, size - size // 8
    return _corr(ref_w[lo:hi, lo:hi], aligned[lo + oy : hi + oy, lo + ox : hi + ox])


# A window's moving part is cut this many pixels inside the image beyond the displacement
# (room for resampling), and padded by CUBIC_PAD_PX for a cubic resampling of a fractional shift.
WINDOW_EDGE_ROOM_PX = 4
CUBIC_PAD_PX = 3
# A window counts only with this share of its pixels valid in both images, and texture above
# FEATURELESS_STD in the gradient field (compressed magnitude units).
MIN_WINDOW_VALID = 0.8
FEATURELESS_STD = 1e-3
# A window's residual peak this far off (share of the window side) is noise, not a shift.
MAX_WINDOW_SHIFT_SHARE = 0.25
# The aperture test: a window's correlation must fall by MIN_PEAK_DROP of itself APERTURE_STEP_PX
# away along both axes (one straight edge pins the shift across it only).
APERTURE_STEP_PX = 2
MIN_PEAK_DROP = 0.25
# Windows are measured on this many threads at once.
WINDOW_THREADS = os.cpu_count() or 1


def _measure_windows(
    ref_e: np.ndarray,
    mov_e: np.ndarray,
    valid: np.ndarray,
    size: int,
    upsample: int,
    base: tuple[float, float] | None = None,
    model=None,
    min_peak_drop: float = MIN_PEAK_DROP,
) -> list[tuple[float, float, float, float, float]]:
    """Per window: (centre col, centre row, dx, dy, correlation), the prior displacement included.

    The moving window is cut where the content should be: ``base`` pixels over (integers), or
    where ``model(col, row)`` puts it, resampling just that window for the fractional part.
    Windows are measured on :data:`WINDOW_THREADS` threads (FFTs and resampling release the
    GIL); the result is the same, in the same order, on any number.
    """
    rows, cols = ref_e.shape
    cx, cy = base if model is None else model((cols - 1) / 2, (rows - 1) / 2)

    def measure(corner: tuple[int, int]) -> tuple[float, float, float, float, float] | None:
        prior = base if model is None else model(corner[1] + size / 2, corner[0] + size / 2)
        return _measure_window(ref_e, mov_e, valid, corner, size, prior, upsample, min_peak_drop)

    corners = window_corners((rows, cols), size, (cx, cy))
    with ThreadPoolExecutor(max(1, min(WINDOW_THREADS, len(corners)))) as pool:
        return [m for m in pool.map(measure, corners) if m is not None]


def _measure_window(
    ref_e: np.ndarray,
    mov_e: np.ndarray,
    valid: np.ndarray,
    corner: tuple[int, int],
    size: int,
    prior: tuple[float, float],
    upsample: int,
    min_peak_drop: float,
) -> tuple[float, float, float, float, float] | None:
    """One window at ``corner`` (row, col) against MOVING displaced by ``prior``; None where it does not count."""
    rows, cols = ref_e.shape
    r0, c0 = corner
    bx, by = prior
    ix, iy = int(np.floor(bx)), int(np.floor(by))
    pad = 0 if (bx == ix and by == iy) else CUBIC_PAD_PX
    mr0, mc0 = r0 + iy - pad, c0 + ix - pad
    if mr0 < 0 or mc0 < 0 or mr0 + size + 2 * pad > rows or mc0 + size + 2 * pad > cols:
        return None
    ref_w = ref_e[r0 : r0 + size, c0 : c0 + size]
    patch = mov_e[mr0 : mr0 + size + 2 * pad, mc0 : mc0 + size + 2 * pad]
    if bx != ix or by != iy:
        patch = _shift_image(patch, bx - ix, by - iy)
    mov_w = patch[pad : pad + size, pad : pad + size]
    mask = valid[r0 : r0 + size, c0 : c0 + size] & valid[mr0 + pad : mr0 + pad + size, mc0 + pad : mc0 + pad + size]
    if (
        mask.mean() < MIN_WINDOW_VALID
        or np.abs(ref_w[mask]).std() < FEATURELESS_STD
        or np.abs(mov_w[mask]).std() < FEATURELESS_STD
    ):
        return None  # a window half outside the data, or featureless
    dx, dy = _xcorr_shift(ref_w, mov_w, mask, upsample)
    if max(abs(dx), abs(dy)) > size * MAX_WINDOW_SHIFT_SHARE:
        return None  # a peak this far off in a residual is noise, not a shift
    aligned = _shift_image(mov_w, dx, dy, order=1)
    corr = _corr_at(ref_w, aligned, 0, 0)
    # the aperture problem: one straight edge (a road) pins the shift across it, not along
    # it; a window counts only if its correlation falls off APERTURE_STEP_PX away along both axes
    step = APERTURE_STEP_PX
    along_x = max(_corr_at(ref_w, aligned, -step, 0), _corr_at(ref_w, aligned, step, 0))
    along_y = max(_corr_at(ref_w, aligned, 0, -step), _corr_at(ref_w, aligned, 0, step))
    if corr - max(along_x, along_y) < min_peak_drop * corr:
        return None
    return (c0 + size / 2, r0 + size / 2, bx + dx, by + dy, corr)


@dataclass(frozen=True)
class CoregSettings:
    """How :func:`estimate_shift` measures and when it refuses.

    Attributes
    ----------
    upsample_factor : int
        Sub-pixel step of each window's correlation is ``1 / upsample_factor`` pixels.
    window : int, optional
        Window side in pixels; by default :data:`WINDOW_SHARE` of the shorter side, between
        :data:`WINDOW_MIN_PX` and :data:`WINDOW_MAX_PX`.
    min_windows : int
        Refuse unless at least this many windows agree on the shift (or the whole-image
        peak is distinct).
    min_window_correlation : float
        A window counts only if its gradient fields correlate at least this well once aligned.
    radius_px : float
        A window agrees with a model when its shift is within this distance of it.
    min_agreement : float
        ... and unless this share of the correlating windows agree.
    min_peak_ratio : float
        Where too few windows agree, accept the whole-image shift only if its correlation
        peak is at least this many times the highest value more than
        :data:`PEAK_EXCLUSION_PX` away (see :func:`_global_peak` for the ratios measured).
    min_gradient_effect_px : float
        Fit an affine displacement only where it moves the outermost windows by more than
        this against a translation.
    """

    upsample_factor: int = 100
    window: int | None = None
    min_windows: int = 3
    min_window_correlation: float = 0.15
    radius_px: float = 1.5
    min_agreement: float = 0.2
    min_peak_ratio: float = 1.7
    min_gradient_effect_px: float = 0.3


# Images sharing less than this share of valid pixels are not co-registered.
MIN_SHARED_SHARE = 0.25
# Smallest image side co-registered: the gradient field's Sobel and smoothing take 3-4 px at
# each edge, and a correlation peak needs room round it; a thumbnail holds no shift to measure.
MIN_IMAGE_PX = 16
# Default window: this share of the shorter side, clipped to a range (enough texture in each,
# enough windows across a scene).
WINDOW_SHARE = 0.25
WINDOW_MIN_PX = 64
WINDOW_MAX_PX = 256
# The whole-image shift to the nearest pixel is measured on a grid of about this many pixels
# a side (a coarser grid is plenty for whole pixels).
COARSE_GRID_PX = 512
# An affine displacement needs at least this many agreeing windows (three define one).
MIN_AFFINE_INLIERS = 6
# On the residual, windows agree within this distance (the estimate is already sub-pixel).
RESIDUAL_RADIUS_PX = 0.5
# Gradient correlation before and after alignment is reported over a central crop of at most
# this many pixels a side (a large scene needs no more), CORRELATION_MARGIN_PX inside the
# largest displacement from its edges.
CORRELATION_CROP_PX = 1024
CORRELATION_MARGIN_PX = 2


@dataclass(frozen=True)
class _Displacement:
    """A displacement model: ``offset + gradient · ((col, row) - centre)``, in pixels."""

    offset: np.ndarray
    gradient: np.ndarray
    centre: tuple[float, float]

    def __call__(self, c, r):
        """The displacement (dx, dy) at column ``c`` and row ``r`` (scalars or arrays)."""
        off, grad, centre = self.offset, self.gradient, self.centre
        return (
            off[0] + grad[0, 0] * (c - centre[0]) + grad[0, 1] * (r - centre[1]),
            off[1] + grad[1, 0] * (c - centre[0]) + grad[1, 1] * (r - centre[1]),
        )


@dataclass(frozen=True)
class _Estimate:
    """Where the windows stand: their table, which agree, how many, and the model they support."""

    table: np.ndarray
    inlier: np.ndarray
    n_in: int
    model: _Displacement
    affine: bool


def _fields(
    reference: np.ndarray,
    moving: np.ndarray,
    reference_valid: np.ndarray | None,
    moving_valid: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both images' gradient fields and the pixels valid in both."""
    if reference.shape[-2:] != moving.shape[-2:]:
        raise AlignmentError(f"images differ in size: {reference.shape[-2:]} vs {moving.shape[-2:]}")
    both = np.ones(reference.shape[-2:], bool)
    for v in (reference_valid, moving_valid):
        if v is not None:
            both &= v
    if min(both.shape) < MIN_IMAGE_PX:
        raise AlignmentError(
            f"no reliable shift: the images are {both.shape[1]} x {both.shape[0]} px; co-registration needs "
            f"at least {MIN_IMAGE_PX} px a side"
        )
    _refuse_apart(float(both.mean()))
    fields = gradient_field(reference, reference_valid), gradient_field(moving, moving_valid)
    _refuse_featureless(fields[0][both], fields[1][both])
    return fields[0], fields[1], both


def _refuse_apart(shared_share: float) -> None:
    """Refuse images sharing less than :data:`MIN_SHARED_SHARE` of their pixels."""
    if shared_share < MIN_SHARED_SHARE:
        raise AlignmentError("the images share less than a quarter of their pixels; cannot co-register")


def _refuse_featureless(reference_values: np.ndarray, moving_values: np.ndarray) -> None:
    """Refuse where either gradient field has no texture over the pixels both share."""
    for name, values in (("reference", reference_values), ("moving", moving_values)):
        if np.abs(values).std() < FEATURELESS_STD:
            raise AlignmentError(
                f"no reliable shift: the {name} image is featureless (one value, or no edges, over every "
                "pixel shared); there is no evidence to measure a shift from"
            )


def _coarse_shift(ref_e: np.ndarray, mov_e: np.ndarray, both: np.ndarray) -> tuple[int, int]:
    """Step 2: the whole-image shift (dx, dy) to the nearest pixel, on a grid of about :data:`COARSE_GRID_PX`."""
    step = max(1, min(ref_e.shape) // COARSE_GRID_PX)
    coarse = _xcorr_shift(ref_e[::step, ::step], mov_e[::step, ::step], both[::step, ::step], upsample=1)
    return int(round(coarse[0] * step)), int(round(coarse[1] * step))


def _window_estimate(
    ref_e: np.ndarray,
    mov_e: np.ndarray,
    both: np.ndarray,
    size: int,
    settings: CoregSettings,
    base: tuple[int, int] | None = None,
) -> tuple[_Estimate, np.ndarray]:
    """Steps 2-4: the whole-image shift to a pixel (unless given as ``base``), then the windows and their consensus.

    Where too few windows agree (large change, floods, parallax), the whole-image shift is
    accepted only when its correlation peak stands clearly above every other, and then no
    window counts as agreeing.  Returns the estimate and every window measured.

    Raises
    ------
    AlignmentError
        When neither the windows nor the whole-image peak give a reliable shift.
    """
    shape = ref_e.shape
    if base is None:
        base = _coarse_shift(ref_e, mov_e, both)
    measured = _measure_windows(ref_e, mov_e, both, size, settings.upsample_factor, base=base)
    if len(measured) < settings.min_windows and base != (0, 0):
        measured = _measure_windows(ref_e, mov_e, both, size, settings.upsample_factor, base=(0, 0))
    centre = ((shape[1] - 1) / 2, (shape[0] - 1) / 2)
    table = np.array(measured).reshape(-1, 5)
    kept = table[table[:, 4] >= settings.min_window_correlation]
    inlier = np.zeros(len(kept), bool)
    if len(kept) >= settings.min_windows:
        inlier, offset, grad, affine = _robust_model(
            kept[:, :2],
            kept[:, 2:4],
            centre,
            radius=settings.radius_px,
            min_affine_inliers=MIN_AFFINE_INLIERS,
            min_gradient_effect=settings.min_gradient_effect_px,
        )
    n_in = int(inlier.sum())
    if n_in >= settings.min_windows and n_in >= settings.min_agreement * len(kept):
        return _Estimate(kept, inlier, n_in, _Displacement(offset, grad, centre), affine), table
    central = _central(shape)
    gdx, gdy, ratio = _global_peak(ref_e[central], mov_e[central], both[central], settings.upsample_factor)
    if ratio < settings.min_peak_ratio:
        raise AlignmentError(
            f"no reliable shift: only {n_in} of {len(table)} windows agree on one and the "
            "whole-image correlation peak is not distinct "
            f"(ratio {ratio:.2f} < {settings.min_peak_ratio}); the images may not show the same place"
        )
    # no window agreed: confidence 0, the shift rests on the whole image
    whole = _Displacement(np.array([gdx, gdy]), np.zeros((2, 2)), centre)
    return _Estimate(np.array([[centre[0], centre[1], gdx, gdy, 0.0]]), np.array([True]), 0, whole, False), table


def _refined(
    ref_e: np.ndarray, mov_e: np.ndarray, both: np.ndarray, size: int, first: _Estimate, settings: CoregSettings
) -> _Estimate:
    """Step 5: each window resampled by the estimate and measured again near zero.

    The windows' residual moves the offset where enough agree; a translation then takes a
    last whole-image step on the residual: windows on real pairs disagree by tenths of a
    pixel (relief, a scanning sensor), so which windows count would move a translation by
    as much, and the whole image resampled by the estimate gives one stable answer.
    """
    model = first.model
    offset, centre = model.offset, model.centre
    residual = [
        w
        for w in _measure_windows(ref_e, mov_e, both, size, settings.upsample_factor, model=model)
        if w[4] >= settings.min_window_correlation
    ]
    table, inlier, n_in = first.table, first.inlier, first.n_in
    if len(residual) >= settings.min_windows:
        res = np.array(residual)
        prior = np.array([model(c, r) for c, r in res[:, :2]])
        res_in, r_off, _, _ = _robust_model(
            res[:, :2],
            res[:, 2:4] - prior,
            centre,
            radius=min(settings.radius_px, RESIDUAL_RADIUS_PX),
            min_affine_inliers=np.inf,
            min_gradient_effect=np.inf,
        )
        if res_in.sum() >= settings.min_windows:
            offset = offset + r_off
            table, inlier, n_in = res, res_in, int(res_in.sum())
    if not first.affine:
        offset = offset + _residual_shift(ref_e, mov_e, both, offset, settings.upsample_factor)
    return _Estimate(table, inlier, n_in, _Displacement(offset, model.gradient, centre), first.affine)


def _alignment_correlations(
    ref_e: np.ndarray, mov_e: np.ndarray, both: np.ndarray, model: _Displacement
) -> tuple[float, float]:
    """Gradient correlation after and before the model's correction, on a central crop."""
    shape = ref_e.shape
    crop = min(CORRELATION_CROP_PX, shape[0], shape[1])
    r0, c0 = (shape[0] - crop) // 2, (shape[1] - crop) // 2
    rr, cc = np.mgrid[r0 : r0 + crop, c0 : c0 + crop].astype(np.float32)
    mx, my = model(cc, rr)
    margin = int(np.ceil(np.abs(np.concatenate([mx.ravel(), my.ravel()])).max())) + CORRELATION_MARGIN_PX
    # the moving field only round the crop (a field known on chips is read by slices)
    top, left = max(0, r0 - margin), max(0, c0 - margin)
    around = mov_e[top : min(shape[0], r0 + crop + margin), left : min(shape[1], c0 + crop + margin)]
    aligned = ndimage.map_coordinates(around, [rr + my - top, cc + mx - left], order=1, mode="nearest")
    inner = both[r0 : r0 + crop, c0 : c0 + crop].copy()
    inner[:margin] = inner[-margin:] = False
    inner[:, :margin] = inner[:, -margin:] = False
    ref_c, mov_c = ref_e[r0 : r0 + crop, c0 : c0 + crop], mov_e[r0 : r0 + crop, c0 : c0 + crop]
    return _corr(ref_c[inner], aligned[inner]), _corr(ref_c[inner], mov_c[inner])


def estimate_shift(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    pixel_size_m: float = 1.0,
    reference_valid: np.ndarray | None = None,
    moving_valid: np.ndarray | None = None,
    settings: CoregSettings = CoregSettings(),
) -> ShiftResult:
    """Sub-pixel shift of ``moving`` relative to ``reference`` from a grid of windows with outlier rejection.

    Parameters
    ----------
    reference, moving : ndarray of shape (B, M, N) or (M, N)
        Images on the same grid.
    pixel_size_m : float
        Metres per pixel, only to report the shift in metres.
    reference_valid, moving_valid : ndarray of bool, optional
        Pixels holding data.
    settings : CoregSettings
        Window size, sub-pixel step and the thresholds for agreeing and refusing.

    Returns
    -------
    ShiftResult

    Raises
    ------
    AlignmentError
        When the images differ in size, share too little, or too few windows agree: the
        images may not show the same place.
    """
    ref_e, mov_e, both = _fields(reference, moving, reference_valid, moving_valid)
    return _estimate(ref_e, mov_e, both, pixel_size_m, settings)


def window_size(shape: tuple[int, int], settings: CoregSettings = CoregSettings()) -> int:
    """The side of the windows measured over an image of ``shape`` (rows, cols)."""
    size = settings.window or int(np.clip(int(min(shape) * WINDOW_SHARE), WINDOW_MIN_PX, WINDOW_MAX_PX))
    return min(size, min(shape))


def _estimate(
    ref_e: np.ndarray,
    mov_e: np.ndarray,
    both: np.ndarray,
    pixel_size_m: float,
    settings: CoregSettings,
    base: tuple[int, int] | None = None,
) -> ShiftResult:
    """Steps 2-5 on two gradient fields (arrays, or fields known on chips) and where both are valid."""
    shape = ref_e.shape
    size = window_size(shape, settings)
    first, measured_all = _window_estimate(ref_e, mov_e, both, size, settings, base)
    final = _refined(ref_e, mov_e, both, size, first, settings)
    table, inlier, n_in, model = final.table, final.inlier, final.n_in, final.model
    if n_in == 0:  # the whole-image peak carries the shift: report every window measured, none agreeing
        table, inlier = measured_all, np.zeros(len(measured_all), bool)
    predicted = np.array([model(c, r) for c, r in table[:, :2]])
    rms = float(np.sqrt(((table[inlier, 2:4] - predicted[inlier]) ** 2).sum(axis=1).mean())) if n_in else 0.0
    correlation, unaligned = _alignment_correlations(ref_e, mov_e, both, model)
    windows = tuple(
        WindowShift(float(c), float(r), float(x), float(y), float(k), bool(i))
        for (c, r, x, y, k), i in zip(table, inlier)
    )
    return ShiftResult(
        float(model.offset[0]),
        float(model.offset[1]),
        float(pixel_size_m),
        correlation=correlation,
        correlation_unaligned=unaligned,
        windows_valid=n_in,
        windows_rejected=len(table) - n_in,
        confidence=n_in / max(len(table), 1),
        residual_px=rms,
        model="affine" if final.affine else "translation",
        gradient=tuple(float(v) for v in model.gradient.ravel()) if final.affine else (0.0, 0.0, 0.0, 0.0),
        centre=model.centre,
        windows=windows,
    )
