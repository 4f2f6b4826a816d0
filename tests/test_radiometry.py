import numpy as np
import pytest
from conftest import textured

from sitewatch.radiometry import histogram_match, invariant_regression


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


def _seasonal_pair(changed_fraction_side=30):
    """REF, and MOV = a per-band linear change of REF (gain, offset, band mixing) + noise, with a changed square."""
    ref = np.stack([textured((160, 160), seed=s) for s in range(3)])
    rng = np.random.default_rng(4)
    mix = np.array([[0.9, 0.1, 0.0], [0.05, 1.1, 0.0], [0.0, 0.1, 0.8]])
    mov = np.einsum("ij,jmn->imn", mix, ref) + np.array([12.0, -6.0, 20.0])[:, None, None]
    mov = (mov + rng.normal(0, 1.0, mov.shape)).astype(np.float32)
    sq = slice(40, 40 + changed_fraction_side)
    mov[:, sq, sq] = np.array([250.0, 40.0, 40.0])[:, None, None]  # a red roof where there was ground
    changed = np.zeros((160, 160), bool)
    changed[sq, sq] = True
    return ref, mov, changed


def test_irmad_separates_change_from_a_linear_seasonal_shift():
    from sitewatch.radiometry import irmad_no_change

    ref, mov, changed = _seasonal_pair()
    p = irmad_no_change(ref, mov)
    # the planted roof is change; the linear shift is not.  (Reweighting by the no-change
    # probability shrinks the MAD variances, so unchanged pixels score well below a
    # uniform 0-1 spread; what matters is the gap.)
    assert p[changed].max() < 1e-4
    assert (p[~changed] > 1e-3).mean() > 0.8
    assert (p[~changed] > 0.95).sum() >= 200  # enough invariant pixels for the regression


def test_irmad_regression_maps_unchanged_pixels_onto_reference():
    from sitewatch.radiometry import irmad_regression

    ref, mov, changed = _seasonal_pair()
    out = irmad_regression(ref, mov)
    # per band a line cannot undo the band mixing exactly, but it must come close where
    # nothing changed, and leave the roof standing out
    assert np.abs(out[:, ~changed] - ref[:, ~changed]).mean() < 6.0
    assert np.abs(out[:, changed] - ref[:, changed]).mean() > 50.0


def test_vegetation_uses_ndvi_with_a_near_infrared_band():
    from sitewatch.structures.scores import vegetation_mask

    grey_leaf = np.array([60.0, 70.0, 65.0, 200.0])  # dull in the visible, bright in NIR: vegetation
    green_paint = np.array([40.0, 160.0, 60.0, 50.0])  # green to the eye, dark in NIR: not
    img = np.stack([np.full((4, 4), v) for v in grey_leaf])
    img[:, :2] = green_paint[:, None, None]
    veg = vegetation_mask(img)
    assert veg[2:].all() and not veg[:2].any()
    assert vegetation_mask(img[:3])[:2].all()  # RGB only: green paint looks like leaves
