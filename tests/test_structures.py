"""Known-answer tests of the structure-change core on tiny planted scenes."""

import numpy as np
import pytest
from affine import Affine
from conftest import textured
from shapely.geometry import box

from sitewatch.structures import DetectSettings, assign_relative_size, detect_structure_changes, rectangle_measures
from sitewatch.structures.scores import cva_magnitude, excess_green


def scene(seed=0):
    """Soil-coloured textured ground (3, 160, 160) with a green field, before and after."""
    rng = np.random.default_rng(seed)
    tex = textured((160, 160), seed=seed) / 255.0
    soil = np.array([0.38, 0.31, 0.23])[:, None, None] * (0.85 + 0.3 * tex)
    before = soil.copy() * 255
    after = soil.copy() * 255
    # a crop field: green before, yellow after (seasonal, not a structure)
    before[:, 100:150, 10:70] = np.array([0.15, 0.33, 0.10])[:, None, None] * 255 * (0.9 + 0.2 * tex[100:150, 10:70])
    after[:, 100:150, 10:70] = np.array([0.50, 0.42, 0.21])[:, None, None] * 255 * (0.9 + 0.2 * tex[100:150, 10:70])
    # new building: grey roof 30 x 14 px with a 6 px shadow to its south in AFTER
    after[:, 20:34, 20:50] = np.array([150.0, 148.0, 144.0])[:, None, None]
    after[:, 34:40, 20:50] *= 0.3
    # removed building: blue roof 20 x 16 px with its 6 px shadow, present only BEFORE
    before[:, 40:56, 100:120] = np.array([56.0, 92.0, 143.0])[:, None, None]
    before[:, 56:62, 100:120] *= 0.3

    def noise() -> np.ndarray:
        return rng.normal(0, 1.5, before.shape)

    return (before + noise()).astype(np.float32), (after + noise()).astype(np.float32)


def iou(a, b):
    return a.intersection(b).area / a.union(b).area


def test_new_and_removed_buildings_found_with_direction_and_area():
    before, after = scene()
    # transform: 0.5 m pixels, origin (1000, 2000)
    t = Affine(0.5, 0, 1000, 0, -0.5, 2000)
    res = detect_structure_changes(
        before, after, pixel_size_m=0.5, transform=t, settings=DetectSettings(min_area_m2=20)
    )
    new_truth = box(1000 + 20 * 0.5, 2000 - 34 * 0.5, 1000 + 50 * 0.5, 2000 - 20 * 0.5)
    removed_truth = box(1000 + 100 * 0.5, 2000 - 56 * 0.5, 1000 + 120 * 0.5, 2000 - 40 * 0.5)
    new = [o for o in res.objects if o.change == "new"]
    removed = [o for o in res.objects if o.change == "removed"]
    assert len(new) == 1 and len(removed) == 1, [(o.change, o.area_m2) for o in res.objects]
    assert iou(new[0].geometry, new_truth) > 0.8  # the shadow is not part of the footprint
    assert iou(removed[0].geometry, removed_truth) > 0.8
    assert new[0].area_m2 == pytest.approx(15 * 7, rel=0.15)
    assert new[0].length_m == pytest.approx(15, rel=0.1) and new[0].width_m == pytest.approx(7, rel=0.15)
    assert new[0].orientation_deg == pytest.approx(90, abs=5)  # long axis east-west


def test_seasonal_field_is_not_a_structure():
    before, after = scene()
    res = detect_structure_changes(before, after, pixel_size_m=0.5, settings=DetectSettings(min_area_m2=20))
    for o in res.objects:
        x, y = o.geometry.centroid.x, -o.geometry.centroid.y  # identity transform: y is -row
        assert not (10 <= x <= 70 and 100 <= y <= 150), "the crop field was reported as a structure"
    # and the naive difference does flag it: the field is real change, just not a structure
    cva = cva_magnitude(before, after)
    assert np.median(cva[100:150, 10:70]) > 4.0


def test_inputs_untouched_and_same_image_gives_nothing():
    before, after = scene()
    b0 = before.copy()
    res = detect_structure_changes(before, before.copy(), pixel_size_m=0.5)
    assert res.objects == []
    assert np.array_equal(before, b0)
    assert res.score.dtype == np.float32


def test_bad_arguments():
    before, after = scene()
    with pytest.raises(ValueError, match="differ in shape"):
        detect_structure_changes(before, after[:, :-1], pixel_size_m=1.0)
    with pytest.raises(ValueError, match="unknown change method"):
        detect_structure_changes(before, after, pixel_size_m=1.0, settings=DetectSettings(method="magic"))


def test_rectangle_measures_and_relative_size():
    from shapely import affinity

    r = affinity.rotate(box(0, 0, 40, 10), 30, origin=(0, 0))
    length, width, orient, rect = rectangle_measures(r)
    assert (length, width, rect) == pytest.approx((40, 10, 1.0), rel=1e-6)
    assert orient == pytest.approx(60, abs=1e-6)  # 30 deg north of east = 60 deg from north

    from sitewatch.structures import ChangeObject

    obj = ChangeObject("new", box(100, 0, 130, 20), 600.0, 30, 20, 90, 5.0, 1.0)
    assign_relative_size([obj], [("far", box(1000, 0, 1010, 10)), ("near", box(0, 0, 40, 25))])
    assert obj.relative_to == "near" and obj.relative_size == pytest.approx(0.6)


def test_excess_green_separates_vegetation_from_roofs():
    colours = {
        "grass": (0.20, 0.31, 0.13),
        "dry": (0.50, 0.42, 0.21),
        "grey": (0.6, 0.59, 0.57),
        "blue": (0.22, 0.36, 0.56),
        "teal": (0.2, 0.45, 0.48),
        "rust": (0.47, 0.22, 0.16),
    }
    img = np.array(list(colours.values()), dtype=np.float32).T[:, None, :]
    exg = dict(zip(colours, excess_green(img)[0]))
    assert exg["grass"] > 0.05 and exg["dry"] > 0.05
    assert all(exg[k] < 0.05 for k in ("grey", "blue", "teal", "rust"))
