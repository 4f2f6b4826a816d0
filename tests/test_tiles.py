"""Known answers for block-wise ``detect``: the blocks cover the window once, and a scene with
buildings planted on the block edges gives the objects the whole window gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rasterio
from conftest import AOI_DIR, write_tif
from rasterio.warp import transform_bounds
from scipy import ndimage
from shapely.geometry import box

import sitewatch.structures.roofs as roofs
from sitewatch.aoi import AOIFeature, load_aoi
from sitewatch.coreg import ShiftResult, WindowShift
from sitewatch.errors import ImageryError
from sitewatch.pipeline import detect, tiles
from sitewatch.pipeline.detect import Tiling
from sitewatch.structures.roofs import _tile_cuts

BLOCK = 256
SIZE = 2 * BLOCK
# (row, col, height, width) of new pale roofs, in pixels: across the row edge, the column
# edge, the corner where four blocks meet, and two inside a block
ROOFS = [(240, 60, 30, 44), (60, 234, 36, 40), (236, 238, 40, 36), (380, 330, 26, 50), (90, 400, 44, 26)]


def test_blocks_cover_the_window_once_with_a_clipped_halo():
    blocks = tiles.plan_blocks((1000, 700), 256, 64)
    cover = np.zeros((1000, 700), int)
    for b in blocks:
        r, c, h, w = b.core
        cover[r : r + h, c : c + w] += 1
        r0, c0, rh, rw = b.read
        assert r0 == max(r - 64, 0) and c0 == max(c - 64, 0)
        assert r0 + rh == min(r + h + 64, 1000) and c0 + rw == min(c + w + 64, 700)
    assert (cover == 1).all() and len(blocks) == 4 * 3


def test_segmentation_tiles_are_cut_where_the_scene_cuts_them():
    cuts = _tile_cuts(3000, 1024 - 100)  # a block starting 100 px before a tile edge
    assert [(s.start, s.stop) for s in cuts] == [(0, 100), (100, 1124), (1124, 2148), (2148, 3000)]
    assert [(s.start, s.stop) for s in _tile_cuts(2048, 0)] == [(0, 1024), (1024, 2048)]


def test_preview_factor_is_a_power_of_two_leaving_at_most_the_preview_size():
    assert tiles.preview_factor((1000, 1024)) == 1
    assert tiles.preview_factor((4096, 100)) == 4
    assert tiles.preview_factor((16384, 16384)) == 16


def test_a_linear_normalisation_is_carried_exactly_and_a_curve_by_its_quantiles():
    rng = np.random.default_rng(0)
    after = rng.uniform(100, 1000, (2, 50, 60)).astype(np.float32)
    valid = np.ones((50, 60), bool)
    linear = np.stack([1.2 * after[0] + 5, 0.8 * after[1] - 3])
    mapping = tiles.fit_band_mapping(after, linear, valid)
    assert mapping.linear is not None
    np.testing.assert_allclose(mapping(after), linear, rtol=1e-5, atol=1e-3)
    curved = np.sqrt(after)
    mapping = tiles.fit_band_mapping(after, curved, valid)
    assert mapping.tables is not None
    np.testing.assert_allclose(mapping(after), curved, atol=0.05)


def test_a_shift_measured_on_a_crop_is_moved_onto_the_window():
    shift = ShiftResult(1.5, -0.5, 1.0, 0.9, 0.5, centre=(99.5, 99.5), windows=(WindowShift(10, 20, 1, 0, 0.9, True),))
    moved = tiles.shifted_from_crop(shift, 300, 200)
    assert moved.centre == (299.5, 399.5) and (moved.windows[0].col, moved.windows[0].row) == (210, 320)
    assert (moved.dx, moved.dy) == (1.5, -0.5)


def _ground(shape, seed):
    rng = np.random.default_rng(seed)
    fine = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0) * 7.0
    coarse = ndimage.gaussian_filter(rng.standard_normal(shape), 12.0) * 40.0
    return 0.6 * fine + 0.4 * coarse


def _pair(tmp_path):
    """BEFORE: textured ground; AFTER: the same with new pale roofs, each with its shadow to the south."""
    ground = _ground((SIZE, SIZE), 0)
    levels = np.array([900.0, 1100.0, 1000.0, 2200.0])[:, None, None]
    before = levels + 180.0 * ground[None] * np.array([1.0, 0.9, 0.8, 1.3])[:, None, None]
    after = before.copy()
    for r, c, h, w in ROOFS:
        after[:, r + h : r + h + max(3, h // 3), c : c + w] *= 0.35
        after[:, r : r + h, c : c + w] = np.array([2600.0, 2500.0, 2400.0, 2300.0])[:, None, None]
    rng = np.random.default_rng(7)
    before += rng.normal(0, 15, before.shape)
    after += rng.normal(0, 15, after.shape)
    paths = [
        write_tif(tmp_path / name, np.clip(data, 0, 65535), dtype="uint16")
        for name, data in (("2023-01-01.tif", before), ("2024-01-01.tif", after))
    ]
    with rasterio.open(paths[0]) as src:
        lonlat = box(*transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21))
    site = load_aoi(AOI_DIR / "hamhung-feb11-plant.geojson")
    site = dataclasses.replace(site, features=(AOIFeature("footprint", "the synthetic scene", lonlat, "test"),))
    return paths, site


def _iou(a, b):
    return a.intersection(b).area / a.union(b).area


@pytest.fixture
def segment_tiles_of_a_block(monkeypatch):
    """Segmentation tiles of one block a side, so blocks of 256 px hold whole tiles (as 1024 px blocks do)."""
    monkeypatch.setattr(roofs, "SEGMENT_TILE_PX", BLOCK)


def test_buildings_on_block_edges_give_the_objects_of_the_whole_window(tmp_path, segment_tiles_of_a_block):
    (before, after), site = _pair(tmp_path)
    whole = detect(before, after, site, tiling=Tiling(block_px=None))
    blocked = detect(before, after, site, tiling=Tiling(block_px=BLOCK, workers=2))
    assert blocked.summary["stats"]["blocks"] == 4
    assert blocked.summary["stats"]["objects_cut_at_halo"] == 0
    planted = [box(500000.0 + c, 4400000.0 - r - h, 500000.0 + c + w, 4400000.0 - r) for r, c, h, w in ROOFS]
    for found in (whole, blocked):  # every planted roof, once, whole
        new = [o for o in found.objects if o.change == "new"]
        assert len(new) == len(ROOFS)
        assert all(max(_iou(p, o.geometry) for o in new) > 0.85 for p in planted)
    assert len(blocked.objects) == len(whole.objects)
    for o in whole.objects:
        twin = max(blocked.objects, key=lambda b: _iou(o.geometry, b.geometry))
        assert twin.change == o.change
        assert _iou(o.geometry, twin.geometry) > 0.98
        assert twin.area_m2 == pytest.approx(o.area_m2, rel=0.02)
    assert blocked.shift.dx == pytest.approx(whole.shift.dx) and blocked.shift.dy == pytest.approx(whole.shift.dy)


def test_outputs_written_by_blocks_match_the_window(tmp_path, segment_tiles_of_a_block):
    (before, after), site = _pair(tmp_path)
    done = []
    result = detect(
        before,
        after,
        site,
        out_dir=tmp_path / "out",
        tiling=Tiling(block_px=BLOCK, workers=1, on_block=lambda i, n: done.append((i, n))),
    )
    assert done == [(i, 4) for i in range(1, 5)]
    with rasterio.open(tmp_path / "out" / "change_score.tif") as src:
        assert (src.height, src.width) == (SIZE, SIZE) and src.dtypes[0] == "float32"
        assert src.tags()["threshold"] and "change score" in src.descriptions[0]
        score = src.read(1)
    r, c, h, w = ROOFS[2]  # the roof on the corner of four blocks scores high in all four
    assert np.nanmean(score[r + 4 : r + h - 4, c + 4 : c + w - 4]) > result.changes.threshold
    assert result.score_file is None  # the block-wise scratch file is gone once written


def test_a_blank_after_image_is_refused_naming_both_files(tmp_path, segment_tiles_of_a_block):
    (before, after), site = _pair(tmp_path)
    with rasterio.open(after) as src:
        blank = write_tif(tmp_path / "2024-02-01.tif", np.zeros((src.count, SIZE, SIZE)), dtype="uint16", nodata=0)
    with pytest.raises(ImageryError) as err:
        detect(before, blank, site, tiling=Tiling(block_px=BLOCK, workers=1), assume_registered=True)
    assert blank.name in str(err.value)
