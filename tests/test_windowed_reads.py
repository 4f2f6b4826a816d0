"""Known answer: AFTER is read only round BEFORE's window, and the answer is the one the whole AFTER gives."""

from __future__ import annotations

import numpy as np
import rasterio
from conftest import SAMPLES
from rasterio.windows import Window

import sitewatch.io.raster as raster_io
from sitewatch.pipeline import detect

SITE = "hamhung-feb11-plant"
PAIR = ("2023-06-15.tif", "2024-10-20.tif")
CROP = Window(col_off=220, row_off=520, width=560, height=350)  # the new buildings and their surroundings


def _crop(src_path, dst_path, window):
    with rasterio.open(src_path) as src:
        profile = {**src.profile, "width": window.width, "height": window.height}
        profile["transform"] = src.window_transform(window)
        with rasterio.open(dst_path, "w", **profile) as dst:
            dst.write(src.read(window=window))
            dst.update_tags(**src.tags())
    return dst_path


def test_after_is_read_round_before_only_and_gives_the_same_objects(tmp_path, monkeypatch):
    before = _crop(SAMPLES / SITE / PAIR[0], tmp_path / PAIR[0], CROP)
    after_whole = SAMPLES / SITE / PAIR[1]
    margin = 64  # the samples are 1000 px a side: a smaller margin than the default shows the window
    monkeypatch.setattr(raster_io, "SOURCE_MARGIN_PX", margin)
    near = Window(CROP.col_off - margin, CROP.row_off - margin, CROP.width + 2 * margin, CROP.height + 2 * margin)
    (tmp_path / "near").mkdir()
    after_near = _crop(after_whole, tmp_path / "near" / PAIR[1], near)
    read_shapes = []
    real_read_layout = raster_io._read_layout

    def spy(src, path, layout, win, *factor):
        data, valid = real_read_layout(src, path, layout, win, *factor)
        read_shapes.append((str(path), data.shape[1:]))
        return data, valid

    monkeypatch.setattr(raster_io, "_read_layout", spy)
    whole = detect(before, after_whole, SITE)
    after_reads = [shape for path, shape in read_shapes if path == str(after_whole)]
    assert after_reads == [(CROP.height + 2 * margin, CROP.width + 2 * margin)]  # of 1000 x 1000
    cropped = detect(before, after_near, SITE)
    assert len(whole.objects) >= 3
    assert [o.geometry.wkt for o in whole.objects] == [o.geometry.wkt for o in cropped.objects]
    assert np.isclose(whole.shift.dx, cropped.shift.dx) and np.isclose(whole.shift.dy, cropped.shift.dy)
