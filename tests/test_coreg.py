import numpy as np
import pytest
import rasterio
from scipy import ndimage

from sitewatch.coreg import estimate_shift
from sitewatch.errors import AlignmentError

from conftest import FIXTURES, textured


@pytest.mark.parametrize("dx, dy", [(0.0, 0.0), (3.4, -2.7), (-1.25, 0.6), (7.0, 5.5)])
def test_recovers_planted_shift_with_the_documented_sign(dx, dy):
    ref = textured((256, 256), seed=1)
    # content of MOVING appears at (col + dx, row + dy)
    mov = ndimage.shift(ref, (dy, dx), order=3, mode="reflect")
    mov = 0.8 * mov + 20 + np.random.default_rng(2).normal(0, 2, mov.shape)  # other gain, offset, noise
    res = estimate_shift(ref[None], mov[None].astype(np.float32), pixel_size=0.5)
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
