import numpy as np
import pytest

from sitewatch.radiometry import histogram_match, invariant_regression

from conftest import textured


def test_regression_recovers_gain_offset_despite_changed_pixels():
    ref = np.stack([textured((120, 120), seed=s) for s in range(3)])
    gains, offsets = np.array([0.8, 1.2, 0.9]), np.array([10.0, -5.0, 3.0])
    mov = (ref - offsets[:, None, None]) / gains[:, None, None]  # so that ref = gain * mov + offset
    mov = mov.astype(np.float32)
    mov[:, 20:44, 20:44] = 250.0  # 4 % of the pixels changed to bright roofs: must not bend the fit
    out = invariant_regression(ref, mov)
    unchanged = np.ones((120, 120), bool)
    unchanged[20:44, 20:44] = False
    assert np.abs(out[:, unchanged] - ref[:, unchanged]).max() < 1.0
    assert mov[0, 0, 0] == pytest.approx((ref[0, 0, 0] - 10.0) / 0.8, abs=1e-3)  # input untouched


def test_histogram_match_keeps_dtype_and_shape():
    ref = np.stack([textured((50, 60), seed=1)])
    mov = ref * 0.5
    out = histogram_match(ref, mov)
    assert out.dtype == np.float32 and out.shape == mov.shape
    assert np.abs(out - ref).mean() < 2.0
