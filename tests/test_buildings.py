"""Known-answer tests of the building methods: ``roofs`` (roof evidence confirmed by shadows),
the default ``building`` (``roofs`` less buildings that presence sees on both dates) and
``presence`` (a small network judging each date), and of the roof evidence
(sitewatch.structures.roofs)."""

import numpy as np
import pytest
from affine import Affine
from conftest import textured
from shapely.geometry import box

from sitewatch.structures import DetectSettings, detect_structure_changes
from sitewatch.structures.roofs import building_evidence, outline_share, roofness

PIXEL = 0.5
TRANSFORM = Affine(PIXEL, 0, 1000, 0, -PIXEL, 2000)
SMALL = DetectSettings(min_area_m2=20)  # the planted buildings are small
ROOFS = DetectSettings(min_area_m2=20, method="roofs")
PRESENCE = DetectSettings(min_area_m2=20, method="presence")
EVERY_METHOD = pytest.mark.parametrize("settings", [SMALL, ROOFS, PRESENCE], ids=["building", "roofs", "presence"])
SHADOW_METHODS = pytest.mark.parametrize("settings", [SMALL, ROOFS], ids=["building", "roofs"])
SOIL = np.array([0.38, 0.31, 0.23])
GRASS = np.array([0.15, 0.33, 0.10])
DRY_GRASS = np.array([0.50, 0.42, 0.21])


def footprint(r0, r1, c0, c1):
    """Map-coordinate box of pixel rows r0:r1, columns c0:c1."""
    return box(1000 + c0 * PIXEL, 2000 - r1 * PIXEL, 1000 + c1 * PIXEL, 2000 - r0 * PIXEL)


def put_building(image, r0, r1, c0, c1, colour, shadow_rows=6):
    """A flat roof of ``colour`` with its cast shadow below it (the sun in the north)."""
    image[:, r0:r1, c0:c1] = np.asarray(colour, float)[:, None, None]
    image[:, r1 : r1 + shadow_rows, c0:c1] *= 0.3


def ground(seed=0):
    """(3, 200, 200) textured soil with a lawn that is green before and dry after."""
    tex = textured((200, 200), seed=seed) / 255.0
    before = SOIL[:, None, None] * (0.85 + 0.3 * tex) * 255
    after = before.copy()
    lawn = (slice(120, 190), slice(10, 90))
    before[(slice(None), *lawn)] = GRASS[:, None, None] * 255 * (0.9 + 0.2 * tex[lawn])
    after[(slice(None), *lawn)] = DRY_GRASS[:, None, None] * 255 * (0.9 + 0.2 * tex[lawn])
    return before, after


def noisy(*images, seed=1):
    rng = np.random.default_rng(seed)
    return [(im + rng.normal(0, 1.5, im.shape)).astype(np.float32) for im in images]


def iou(a, b):
    return a.intersection(b).area / a.union(b).area


def test_roofness_tells_roof_materials_from_soil_and_leaves():
    colours = {
        "grey": (0.60, 0.59, 0.57),
        "white": (0.9, 0.9, 0.88),
        "blue paint": (0.22, 0.36, 0.56),
        "teal paint": (0.20, 0.45, 0.48),
        "red paint": (0.60, 0.20, 0.15),
        "soil": tuple(SOIL),
        "dry grass": tuple(DRY_GRASS),
        "grass": tuple(GRASS),
    }
    img = np.array(list(colours.values()), dtype=np.float32).T[:, None, :] * 255
    score = dict(zip(colours, roofness(img)[0]))
    assert all(score[k] > 0.7 for k in ("grey", "white", "blue paint", "teal paint", "red paint")), score
    assert all(score[k] < 0.1 for k in ("soil", "dry grass", "grass")), score
    # a near-infrared band sees leaves even where the visible colour is grey (NDVI 0.54 here)
    four = np.concatenate([img, np.array([[[2.0, 0.9, 0.2, 0.2, 0.2, 0.3, 0.3, 0.9]]], np.float32) * 255])
    assert roofness(four)[0, 0] == 0.0 and roofness(four)[0, 2] > 0.7


def test_outline_share_measures_the_ring_outside_each_label():
    labels = np.zeros((40, 40), int)
    labels[10:20, 10:20] = 1
    mask = np.zeros((40, 40), bool)
    mask[20:23, 10:20] = True  # a 3-pixel band along the south side only
    share = outline_share(labels, mask, ring_px=3)
    ring = 16 * 16 - 10 * 10  # expand_labels grows a square into a square with rounded corners
    assert share[0] == 0.0
    assert 30 / ring <= share[1] <= 30 / (ring - 4 * 9)  # 30 ring pixels covered, corners trimmed or not


@EVERY_METHOD
def test_new_building_found_season_and_relit_roof_ignored(settings):
    before, after = ground()
    put_building(after, 30, 54, 40, 70, (150, 148, 144))  # new grey roof, 15 x 12 m, with its shadow
    put_building(before, 30, 54, 120, 150, (56, 92, 143))  # a blue roof standing on both dates,
    put_building(after, 30, 54, 120, 150, (48, 78, 122))  # lit a little less on the second
    before, after = noisy(before, after)
    res = detect_structure_changes(before, after, pixel_size_m=PIXEL, transform=TRANSFORM, settings=settings)
    assert [o.change for o in res.objects] == ["new"], [(o.change, o.area_m2) for o in res.objects]
    obj = res.objects[0]
    assert iou(obj.geometry, footprint(30, 54, 40, 70)) > 0.8  # the roof, not its shadow
    assert obj.area_m2 == pytest.approx(15 * 12, rel=0.15)
    assert obj.orientation_deg == pytest.approx(90, abs=5)


@EVERY_METHOD
def test_removed_building_found_with_direction(settings):
    before, after = ground(seed=3)
    put_building(before, 60, 84, 100, 130, (150, 148, 144))  # gone by the second date: soil again
    before, after = noisy(before, after)
    res = detect_structure_changes(before, after, pixel_size_m=PIXEL, transform=TRANSFORM, settings=settings)
    assert [o.change for o in res.objects] == ["removed"], [(o.change, o.area_m2) for o in res.objects]
    assert iou(res.objects[0].geometry, footprint(60, 84, 100, 130)) > 0.8


@SHADOW_METHODS
def test_a_roof_like_patch_without_a_shadow_is_not_a_structure(settings):
    before, after = ground(seed=4)
    after[:, 30:54, 40:70] = np.array([150.0, 148.0, 144.0])[:, None, None]  # a grey slab, flat on the ground
    before, after = noisy(before, after)
    evidence = building_evidence(before, after, pixel_size_m=PIXEL)
    assert evidence.new[40, 55] > 0.45  # roof-like where it was soil: the evidence sees it
    res = detect_structure_changes(before, after, pixel_size_m=PIXEL, transform=TRANSFORM, settings=settings)
    assert res.objects == [] and res.stats["objects_dropped"]["no_shadow"] >= 1


@SHADOW_METHODS
def test_shadow_methods_report_a_replaced_roof_as_new_and_removed(settings):
    before, after = ground(seed=5)
    put_building(before, 40, 70, 60, 90, (150, 45, 35))  # a red roof ...
    put_building(after, 40, 70, 60, 90, (50, 110, 125))  # ... replaced by a teal one, same shadow
    before, after = noisy(before, after)
    res = detect_structure_changes(before, after, pixel_size_m=PIXEL, transform=TRANSFORM, settings=settings)
    truth = footprint(40, 70, 60, 90)
    for change in ("new", "removed"):
        found = [o for o in res.objects if o.change == change]
        assert found and max(iou(o.geometry, truth) for o in found) > 0.7, (
            change,
            [(o.change, o.area_m2) for o in res.objects],
        )


@EVERY_METHOD
def test_same_answer_for_8_bit_and_16_bit_data(settings):
    before, after = ground(seed=6)
    put_building(after, 30, 54, 40, 70, (150, 148, 144))
    before, after = noisy(before, after)
    small = detect_structure_changes(before, after, pixel_size_m=PIXEL, transform=TRANSFORM, settings=settings)
    large = detect_structure_changes(
        before * 16, after * 16, pixel_size_m=PIXEL, transform=TRANSFORM, settings=settings
    )
    assert [o.change for o in small.objects] == [o.change for o in large.objects] == ["new"]
    assert iou(small.objects[0].geometry, large.objects[0].geometry) > 0.95


def test_presence_method_reports_a_replaced_roof_once_as_new():
    before, after = ground(seed=5)
    put_building(before, 40, 70, 60, 90, (150, 45, 35))  # a red roof ...
    put_building(after, 40, 70, 60, 90, (50, 110, 125))  # ... replaced by a teal one, same shadow
    before, after = noisy(before, after)
    res = detect_structure_changes(before, after, pixel_size_m=PIXEL, transform=TRANSFORM, settings=PRESENCE)
    assert [o.change for o in res.objects] == ["new"], [(o.change, o.area_m2) for o in res.objects]
    assert iou(res.objects[0].geometry, footprint(40, 70, 60, 90)) > 0.7


def test_presence_method_ignores_a_roof_only_lit_differently():
    before, after = ground(seed=7)
    put_building(before, 40, 70, 60, 90, (150, 148, 144))
    put_building(after, 40, 70, 60, 90, (120, 118, 115))  # the same roof, a fifth darker
    before, after = noisy(before, after)
    res = detect_structure_changes(before, after, pixel_size_m=PIXEL, transform=TRANSFORM, settings=PRESENCE)
    assert res.objects == [], [(o.change, o.area_m2) for o in res.objects]


def test_cli_offers_every_structure_method_with_building_first():
    from sitewatch.cli import detect
    from sitewatch.structures import METHODS

    option = next(p for p in detect.params if p.name == "method")
    assert list(option.type.choices) == list(METHODS) and option.default == "building"


def test_building_method_drops_a_standing_building_whose_shadow_changed():
    before, after = ground(seed=8)
    put_building(before, 40, 70, 60, 90, (60, 100, 140), shadow_rows=0)  # a blue roof at noon ...
    put_building(after, 40, 70, 60, 90, (46, 100, 142), shadow_rows=8)  # ... and under a lower sun
    before, after = noisy(before, after)
    roofs = detect_structure_changes(before, after, pixel_size_m=PIXEL, transform=TRANSFORM, settings=ROOFS)
    building = detect_structure_changes(before, after, pixel_size_m=PIXEL, transform=TRANSFORM, settings=SMALL)
    assert [o.change for o in roofs.objects] == ["new"]  # the shadow that appeared confirms it
    assert building.objects == [] and building.stats["objects_dropped"]["standing_both_dates"] == 1
