"""A scene too large to hold is co-registered from chips, with the shift the whole scene gives."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from conftest import textured, write_tif
from scipy import ndimage

from sitewatch.coreg import Chip, chip_rects, coarse_shift, estimate_shift, estimate_shift_from_chips
from sitewatch.coreg.chips import central_rect
from sitewatch.errors import AlignmentError

SIZE = 1000


def _pair(dx: float, dy: float, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    world = textured((SIZE + 64, SIZE + 64), seed=seed)
    later = ndimage.shift(world, (dy, dx), order=3, mode="reflect")
    later = 0.9 * later + 12 + np.random.default_rng(seed).normal(0, 2, later.shape)
    crop = (slice(32, 32 + SIZE), slice(32, 32 + SIZE))
    return world[crop][None], later[crop][None].astype(np.float32)


def _chips(ref: np.ndarray, mov: np.ndarray, rects) -> list[Chip]:
    return [Chip(r, c, ref[:, r : r + h, c : c + w], mov[:, r : r + h, c : c + w]) for r, c, h, w in rects]


@pytest.mark.parametrize("dx, dy", [(2.3, -1.7), (-9.4, 6.2)])
def test_chips_give_the_whole_scene_shift(dx, dy):
    ref, mov = _pair(dx, dy)
    whole = estimate_shift(ref, mov)
    r0, c0, h, w = central_rect(ref.shape[1:])
    base = coarse_shift(ref[:, r0 : r0 + h, c0 : c0 + w], mov[:, r0 : r0 + h, c0 : c0 + w])
    assert abs(base[0] - dx) <= 1 and abs(base[1] - dy) <= 1  # to a pixel of the decimated grid
    rects = chip_rects(ref.shape[1:], base)
    chips = estimate_shift_from_chips(ref.shape[1:], _chips(ref, mov, rects), base)
    # the whole-scene path misses this texture's planted shift by up to 0.07 px (before chips too)
    assert (chips.dx, chips.dy) == pytest.approx((dx, dy), abs=0.1)
    assert (chips.dx, chips.dy) == pytest.approx((whole.dx, whole.dy), abs=0.005)
    assert chips.windows_valid == whole.windows_valid
    assert len(rects) == len(chips.windows) + 1  # a chip for each window measured, and the centre


def test_chips_of_unrelated_scenes_are_refused():
    ref, _ = _pair(0, 0, seed=5)
    other, _ = _pair(0, 0, seed=6)
    r0, c0, h, w = central_rect(ref.shape[1:])
    base = coarse_shift(ref[:, r0 : r0 + h, c0 : c0 + w], other[:, r0 : r0 + h, c0 : c0 + w])
    with pytest.raises(AlignmentError, match="no reliable shift"):
        estimate_shift_from_chips(ref.shape[1:], _chips(ref, other, chip_rects(ref.shape[1:], base)), base)


def test_chips_mostly_off_the_moving_image_are_refused():
    ref, mov = _pair(1.0, 1.0)
    rects = chip_rects(ref.shape[1:], (1, 1))
    chips = [
        Chip(c.row, c.col, c.reference, c.moving, None, np.full(c.moving.shape[1:], c.row > SIZE * 0.9))
        for c in _chips(ref, mov, rects)
    ]
    with pytest.raises(AlignmentError, match="share less than a quarter"):
        estimate_shift_from_chips(ref.shape[1:], chips, (1, 1))


def test_coreg_command_reads_a_large_scene_as_chips(tmp_path, monkeypatch):
    """Above CHIPS_FROM_PX the coreg path never reads a whole image, and finds the planted shift."""
    coregister = importlib.import_module("sitewatch.pipeline.coregister")
    dx, dy = 2.3, -1.7
    world = textured((SIZE, SIZE), seed=8)
    ref = write_tif(tmp_path / "ref.tif", np.stack([world] * 3), dtype="uint8")
    # MOVING's georeference is off by (dx, dy) pixels: its content lies (dx, dy) from REFERENCE's
    mov = write_tif(tmp_path / "mov.tif", np.stack([world] * 3), dtype="uint8", origin=(500000.0 + dx, 4400000.0 - dy))
    whole = coregister.coregister(ref, mov)
    monkeypatch.setattr(coregister, "CHIPS_FROM_PX", SIZE * SIZE)

    def no_whole_read(*args, **kwargs):
        raise AssertionError("read a whole image")

    monkeypatch.setattr(coregister, "read_source", no_whole_read)
    chips = coregister.coregister(ref, mov, out=tmp_path / "fixed.tif")
    assert (chips.shift.dx, chips.shift.dy) == pytest.approx((dx, dy), abs=0.02)
    assert (chips.shift.dx, chips.shift.dy) == pytest.approx((whole.shift.dx, whole.shift.dy), abs=0.01)
    import rasterio

    with rasterio.open(mov) as a, rasterio.open(tmp_path / "fixed.tif") as b:  # copied block by block, pixels kept
        assert np.array_equal(a.read(), b.read()) and a.transform != b.transform
    again = coregister.coregister(ref, tmp_path / "fixed.tif")
    assert np.hypot(again.shift.dx, again.shift.dy) < 0.05
