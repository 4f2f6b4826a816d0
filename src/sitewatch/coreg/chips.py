"""Co-registration of a scene too large to hold: the same method, on chips read where it looks.

:func:`.estimate.estimate_shift` reads every pixel of both images, but it looks at few of them:
a grid of at most 8 x 8 windows of at most 256 px, and a central crop of at most 1024 px for
the whole-image steps.  On a 10 980 px scene that is under a tenth of the pixels.  Here the
caller reads only those parts (chips), in three steps:

1. :func:`coarse_shift` on the central crop (:func:`central_rect`) gives the shift to a pixel;
2. :func:`chip_rects` says which parts of the scene the windows will need for that shift;
3. :func:`estimate_shift_from_chips` runs steps 3-5 of the method on the chips read there.

The windows, consensus, refinement and refusals are those of the whole-image path: a scene
read as chips gives the shift the whole scene would, without holding it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AlignmentError
from .estimate import (
    CUBIC_PAD_PX,
    MIN_IMAGE_PX,
    WINDOW_EDGE_ROOM_PX,
    CoregSettings,
    ShiftResult,
    _central,
    _coarse_shift,
    _estimate,
    _fields,
    _refuse_apart,
    _refuse_featureless,
    gradient_field,
    window_corners,
    window_size,
)

# A chip reaches this far beyond its window, past the whole-pixel shift and the resampling room:
# the gradient's smoothing and Sobel edge (5 px), the refinement's grid moving by a pixel or two,
# and an affine displacement varying across the scene.
CHIP_SLACK_PX = 16


@dataclass(frozen=True)
class Chip:
    """Both images over one rectangle of REFERENCE's grid: rows ``row``.., columns ``col``...

    ``reference`` and ``moving`` are (B, M, N) or (M, N) arrays on the same grid (MOVING
    already warped onto REFERENCE's), with optional masks of valid pixels.
    """

    row: int
    col: int
    reference: np.ndarray
    moving: np.ndarray
    reference_valid: np.ndarray | None = None
    moving_valid: np.ndarray | None = None


def central_rect(shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(row, col, rows, cols) of the central crop the whole-image steps use (at most 1024 px a side)."""
    rows, cols = _central(shape)
    return rows.start, cols.start, rows.stop - rows.start, cols.stop - cols.start


def coarse_shift(
    reference: np.ndarray,
    moving: np.ndarray,
    reference_valid: np.ndarray | None = None,
    moving_valid: np.ndarray | None = None,
) -> tuple[int, int]:
    """The shift (dx, dy) to the nearest pixel between two images on one grid (the central crop).

    Raises
    ------
    AlignmentError
        As :func:`.estimate.estimate_shift`: too small, too little shared, or featureless.
    """
    return _coarse_shift(*_fields(reference, moving, reference_valid, moving_valid))


def _margin(base: tuple[int, int]) -> int:
    return int(max(abs(base[0]), abs(base[1]))) + WINDOW_EDGE_ROOM_PX + CUBIC_PAD_PX + CHIP_SLACK_PX


def _clipped(shape: tuple[int, int], r0: int, c0: int, rows: int, cols: int) -> tuple[int, int, int, int]:
    top, left = max(0, r0), max(0, c0)
    return top, left, min(shape[0], r0 + rows) - top, min(shape[1], c0 + cols) - left


def chip_rects(
    shape: tuple[int, int], base: tuple[int, int], settings: CoregSettings = CoregSettings()
) -> list[tuple[int, int, int, int]]:
    """(row, col, rows, cols) of every chip :func:`estimate_shift_from_chips` needs, in the scene's pixels.

    One chip round each window of the grid laid out for the whole-pixel shift ``base`` (dx, dy),
    and one round the central crop; each reaches past its window by the shift and a margin.
    """
    size = window_size(shape, settings)
    margin = _margin(base)
    rects = [
        _clipped(shape, r - margin, c - margin, size + 2 * margin, size + 2 * margin)
        for r, c in window_corners(shape, size, base)
    ]
    r0, c0, rows, cols = central_rect(shape)
    rects.append(_clipped(shape, r0 - margin, c0 - margin, rows + 2 * margin, cols + 2 * margin))
    return rects


class _ChipField:
    """A scene-sized 2-D array known only on chips: a slice is served by a chip that holds it whole.

    A slice no chip holds reads as ``fill`` (zero texture, no valid pixel), so a window that
    strays off the chips (an affine displacement larger than the margin) is skipped, as a window
    off the image would be.
    """

    ndim = 2

    def __init__(self, shape: tuple[int, int], pieces: list[tuple[int, int, np.ndarray]], fill) -> None:
        self.shape = shape
        self._pieces = pieces
        self._fill = fill
        self.dtype = pieces[0][2].dtype

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        (r0, r1, rstep), (c0, c1, cstep) = (k.indices(n) for k, n in zip(key, self.shape))
        if rstep != 1 or cstep != 1:
            raise IndexError("a field known on chips is read in whole-pixel slices only")
        for row, col, data in self._pieces:
            if row <= r0 and r1 <= row + data.shape[0] and col <= c0 and c1 <= col + data.shape[1]:
                return data[r0 - row : r1 - row, c0 - col : c1 - col]
        return np.full((max(0, r1 - r0), max(0, c1 - c0)), self._fill, dtype=self.dtype)


def estimate_shift_from_chips(
    shape: tuple[int, int],
    chips: list[Chip],
    base: tuple[int, int],
    *,
    pixel_size_m: float = 1.0,
    settings: CoregSettings = CoregSettings(),
) -> ShiftResult:
    """The shift of a scene of ``shape`` (rows, cols) from chips read at :func:`chip_rects`.

    Parameters
    ----------
    shape : tuple of int
        The scene's (rows, cols) on REFERENCE's grid.
    chips : list of Chip
        Both images over every rectangle :func:`chip_rects` gave for ``base``.
    base : tuple of int
        The whole-pixel shift (dx, dy) from :func:`coarse_shift`.
    pixel_size_m, settings
        As :func:`.estimate.estimate_shift`.

    Returns
    -------
    ShiftResult
        As :func:`.estimate.estimate_shift` would give on the whole scene; windows in scene pixels.

    Raises
    ------
    AlignmentError
        When too little is shared, the images are featureless, or too few windows agree.
    """
    if min(shape) < MIN_IMAGE_PX or not chips:
        raise AlignmentError(f"no reliable shift: a scene of {shape[1]} x {shape[0]} px read as {len(chips)} chips")
    ref_pieces, mov_pieces, both_pieces = [], [], []
    for chip in chips:
        both = np.ones(chip.reference.shape[-2:], bool)
        for v in (chip.reference_valid, chip.moving_valid):
            if v is not None:
                both &= v
        ref_pieces.append((chip.row, chip.col, gradient_field(chip.reference, chip.reference_valid)))
        mov_pieces.append((chip.row, chip.col, gradient_field(chip.moving, chip.moving_valid)))
        both_pieces.append((chip.row, chip.col, both))
    _refuse_apart(sum(b.sum() for *_, b in both_pieces) / sum(b.size for *_, b in both_pieces))
    _refuse_featureless(
        np.concatenate([f[b] for (*_, f), (*_, b) in zip(ref_pieces, both_pieces)]),
        np.concatenate([f[b] for (*_, f), (*_, b) in zip(mov_pieces, both_pieces)]),
    )
    return _estimate(
        _ChipField(shape, ref_pieces, 0),
        _ChipField(shape, mov_pieces, 0),
        _ChipField(shape, both_pieces, False),
        pixel_size_m,
        settings,
        base,
    )
