"""Known-answer tests of building presence (sitewatch.structures.presence) and of presence change."""

from importlib import resources

import numpy as np
import pytest
from conftest import textured

from sitewatch.structures import presence
from sitewatch.structures.presence import MODEL_FILE, building_presence
from sitewatch.structures.presence_change import presence_change

SOIL = np.array([0.38, 0.31, 0.23])


def scene(size=256, seed=0):
    """(3, size, size) textured soil at 0.5 m with two pale roofs (and shadows); their boxes."""
    tex = textured((size, size), seed=seed) / 255.0
    image = SOIL[:, None, None] * (0.85 + 0.3 * tex) * 255
    roofs = [(40, 70, 50, 100), (150, 190, 140, 170)]
    for r0, r1, c0, c1 in roofs:
        image[:, r0:r1, c0:c1] = np.array([170.0, 165.0, 160.0])[:, None, None]
        image[:, r1 : r1 + 6, c0:c1] *= 0.3
    return image.astype(np.float32), roofs


def inside(mask_or_prob, box):
    r0, r1, c0, c1 = box
    return mask_or_prob[r0 + 3 : r1 - 3, c0 + 3 : c1 - 3]


def test_shipped_weights_are_small_and_load():
    path = resources.files("sitewatch.models").joinpath(MODEL_FILE)
    assert path.is_file() and path.stat().st_size < 20 * 2**20  # the 20 MB limit
    assert presence._weights()["head.w"].shape[:2] == (1, presence._weights()["dec.0.3.w"].shape[0])


def test_roofs_read_as_buildings_and_soil_does_not():
    image, roofs = scene()
    p = building_presence(image, pixel_size_m=0.5)
    for box in roofs:
        assert inside(p, box).mean() > 0.8
    ground = np.ones(p.shape, bool)
    for r0, r1, c0, c1 in roofs:
        ground[r0 - 8 : r1 + 14, c0 - 8 : c1 + 8] = False
    assert (p[ground] > 0.5).mean() < 0.01


def test_tiles_do_not_change_the_answer(monkeypatch):
    image, _ = scene(size=300, seed=2)
    whole = building_presence(image, pixel_size_m=0.5)
    monkeypatch.setattr(presence, "TILE_PX", 96)  # seams cross both roofs
    tiled = building_presence(image, pixel_size_m=0.5)
    assert np.abs(whole - tiled).max() < 0.05


def test_finer_pixels_are_judged_at_the_trained_size():
    image, roofs = scene(seed=3)
    fine = np.repeat(np.repeat(image, 2, axis=1), 2, axis=2)  # the same scene at 0.25 m
    coarse_p = building_presence(image, pixel_size_m=0.5)
    fine_p = building_presence(fine, pixel_size_m=0.25)[::2, ::2]
    assert fine_p.shape == coarse_p.shape
    assert ((fine_p > 0.5) == (coarse_p > 0.5)).mean() > 0.98


def test_pixels_without_data_make_no_building_at_their_edge():
    image, _ = scene(seed=4)
    valid = np.ones(image.shape[1:], bool)
    valid[:, 200:] = False
    image[:, ~valid] = 0  # a black collar beyond the image edge, as a reprojected scene has
    p = building_presence(image, pixel_size_m=0.5, valid=valid)
    assert (p[:, 200:] == 0).all()
    assert (p[:, 185:200] > 0.5).mean() < 0.01  # the straight edge of the collar is not a roof


def test_a_building_is_new_where_none_stood_nearby():
    before = np.zeros((100, 100), np.float32)
    after = np.zeros((100, 100), np.float32)
    before[20:40, 20:40] = 1  # standing on both dates, seen 1 m (2 px) apart
    after[22:42, 21:41] = 1
    after[60:80, 60:90] = 1  # new
    before[60:75, 5:20] = 1  # removed
    new, removed = presence_change(before, after, pixel_size_m=0.5)
    assert new[70, 75] > 0.9 and removed[67, 12] > 0.9
    assert new[:50, :50].max() < 0.4 and removed[:50, :50].max() < 0.4
    assert new[60:75, 5:20].max() < 0.01 and removed[60:80, 60:90].max() < 0.01


@pytest.mark.parametrize("scale", [1.0 / 255.0, 1.0, 257.0])
def test_same_presence_for_reflectance_8_and_16_bit(scale):
    image, _ = scene(seed=5)
    reference = building_presence(image, pixel_size_m=0.5)
    assert np.abs(building_presence(image * scale, pixel_size_m=0.5) - reference).max() < 1e-3
