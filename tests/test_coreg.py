import numpy as np
import pytest
import rasterio
from conftest import FIXTURES, textured
from scipy import ndimage

from sitewatch.coreg import estimate_shift
from sitewatch.errors import AlignmentError


@pytest.mark.parametrize("dx, dy", [(0.0, 0.0), (3.4, -2.7), (-1.25, 0.6), (7.0, 5.5)])
def test_recovers_planted_shift_with_the_documented_sign(dx, dy):
    ref = textured((256, 256), seed=1)
    # content of MOVING appears at (col + dx, row + dy)
    mov = ndimage.shift(ref, (dy, dx), order=3, mode="reflect")
    mov = 0.8 * mov + 20 + np.random.default_rng(2).normal(0, 2, mov.shape)  # other gain, offset, noise
    res = estimate_shift(ref[None], mov[None].astype(np.float32), pixel_size_m=0.5)
    assert res.dx == pytest.approx(dx, abs=0.05)
    assert res.dy == pytest.approx(dy, abs=0.05)
    assert res.shift_m == pytest.approx((dx * 0.5, dy * 0.5), abs=0.03)


def test_real_texture_subpixel_shift():
    with rasterio.open(FIXTURES / "RGB.byte.tif") as src:
        img = src.read(window=((200, 456), (200, 456))).astype(np.float32)
    dx, dy = 2.3, -1.6
    mov = np.stack([ndimage.shift(b, (dy, dx), order=3, mode="nearest") for b in img]) * 1.1 + 5
    res = estimate_shift(img, mov)
    assert (res.dx, res.dy) == pytest.approx((dx, dy), abs=0.1)
    assert res.correlation > res.correlation_unaligned


def test_unrelated_images_are_refused():
    a = textured((200, 200), seed=3)
    b = textured((200, 200), seed=4)
    with pytest.raises(AlignmentError, match="no reliable shift"):
        estimate_shift(a[None], b[None])


def test_size_mismatch_is_refused():
    with pytest.raises(AlignmentError, match="differ in size"):
        estimate_shift(np.zeros((1, 10, 10)), np.zeros((1, 12, 10)))


def _warped(image: np.ndarray, amplitude_px: float, seed: int) -> np.ndarray:
    """``image`` under a smooth displacement that varies across it by about ``amplitude_px``
    (relief, sensor geometry)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float64)
    fields = [
        ndimage.zoom(rng.normal(0, 1, (4, 4)), image.shape[0] / 4, order=3)[: image.shape[0], : image.shape[1]]
        for _ in range(2)
    ]
    fx, fy = (amplitude_px * f / np.abs(f).max() for f in fields)
    return ndimage.map_coordinates(image, [rows + fy, cols + fx], order=3, mode="reflect")


@pytest.mark.parametrize("dx, dy", [(0.5, -0.3), (3.2, 1.7), (-7.6, 11.1)])
def test_known_extra_shift_is_recovered_where_windows_disagree(dx, dy):
    """Two dates whose local misalignment varies by up to 1.5 px, a fifth of the scene rebuilt, noise.

    Shifting the later image by a known amount must move the estimate by that amount: which
    windows pass must not decide the answer (when it did, this missed by up to 0.22 px).
    """
    size = 384
    world = textured((size + 64, size + 64), seed=12)
    later = _warped(world, 1.5, seed=13)
    rng = np.random.default_rng(14)
    for _ in range(12):  # new "buildings": blocks of other texture
        r, c = rng.integers(32, size, 2)
        later[r : r + 40, c : c + 30] = 0.5 * later[r : r + 40, c : c + 30] + rng.uniform(0, 120)
    later = later + rng.normal(0, 10, later.shape)
    crop = (slice(32, 32 + size), slice(32, 32 + size))
    before = world[crop][None]
    base = estimate_shift(before, later[crop][None])
    moved = estimate_shift(before, ndimage.shift(later, (dy, dx), order=3, mode="reflect")[crop][None])
    assert np.hypot(moved.dx - base.dx - dx, moved.dy - base.dy - dy) <= 0.05, (moved.dx - base.dx, moved.dy - base.dy)
