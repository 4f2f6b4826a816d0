"""Known answer: one synthetic pair written nine ways gives the same polygons and the same shift.

The Hamhung sample pair (new assembly building, six worker-housing blocks, a planted
misregistration of +3.44, +2.61 px) is cropped round the new buildings and written as RGB,
blue-green-red with colour tags, RGBA, 16-bit, EPSG:4326 (both images, and AFTER alone), the
neighbouring UTM zone (both images, and AFTER alone) and Web Mercator.  Bands are mapped by the files'
colour interpretation, alpha masks, a BEFORE not in metres at true scale (degrees, another
zone's UTM, Web Mercator) is warped onto an aligned grid in its local UTM zone and
an AFTER in any CRS onto BEFORE's grid, once; so every variant must find the objects the RGB
pair finds, within a pixel, and the same ground shift within 0.05 px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import SAMPLES
from pyproj import CRS, Transformer
from rasterio.enums import ColorInterp, Resampling
from rasterio.warp import calculate_default_transform, reproject
from rasterio.windows import Window
from shapely.geometry import shape

from sitewatch.pipeline import detect

SITE = "hamhung-feb11-plant"
PAIR = ("2023-06-15.tif", "2024-10-20.tif")
CROP = Window(col_off=220, row_off=520, width=560, height=350)  # the new buildings and their surroundings
NATIVE = "EPSG:32652"
POLYGON_TOLERANCE_M = 1.0  # one pixel
# Areas in m² agree this closely (an outline one pixel off changes a small block's area by a few %).
AREA_TOLERANCE = 0.05
SHIFT_TOLERANCE_PX = 0.05
LATITUDE = 39.92  # of the crop, for a geographic grid of about 1 m pixels


def _write(path: Path, data: np.ndarray, profile: dict, interp: tuple, descriptions: tuple) -> Path:
    profile = {**profile, "count": data.shape[0], "dtype": data.dtype.name}
    if tuple(interp[:3]) == RGB and data.dtype == np.uint8:
        profile["photometric"] = "RGB"  # a blue-green-red file carries its order as GDAL colour interpretation
    tags = profile.pop("tags")
    with rasterio.open(path, "w", **profile) as dst:
        dst.colorinterp = interp  # before the pixels: GDAL writes the TIFF's extra-sample (alpha) tag with them
        for i, d in enumerate(descriptions, start=1):
            dst.set_band_description(i, d)
        dst.write(data)
        dst.update_tags(**tags)
    return path


def _reprojected(data: np.ndarray, profile: dict, crs: str) -> tuple[np.ndarray, dict]:
    """RGB plus an alpha band (255 where the warp has data) in ``crs``."""
    h, w = data.shape[1:]
    left, top = profile["transform"] * (0, 0)
    right, bottom = profile["transform"] * (w, h)
    # about the source's 1 m each way (a geographic grid's default square degrees would be 1.2 m north-south)
    metres_per_degree = 111_320.0
    resolution = {
        "EPSG:4326": (1 / (metres_per_degree * np.cos(np.radians(LATITUDE))), 1 / metres_per_degree),
        "EPSG:3857": 1 / np.cos(np.radians(LATITUDE)),  # Web Mercator's metres are 1/cos(latitude) ground metres
    }.get(crs, 1.0)
    transform, width, height = calculate_default_transform(
        profile["crs"], crs, w, h, left, bottom, right, top, resolution=resolution
    )
    out = np.full((3, height, width), np.nan, np.float32)
    reproject(
        data.astype(np.float32),
        out,
        src_transform=profile["transform"],
        src_crs=profile["crs"],
        dst_transform=transform,
        dst_crs=crs,
        resampling=Resampling.cubic,
        src_nodata=np.nan,
        dst_nodata=np.nan,
    )
    alpha = np.where(np.all(np.isfinite(out), axis=0), 255, 0).astype(np.uint8)
    rgb = np.clip(np.nan_to_num(out), 0, 255).round().astype(np.uint8)
    return np.concatenate([rgb, alpha[None]]), {
        **profile,
        "crs": crs,
        "transform": transform,
        "width": width,
        "height": height,
    }


RGB = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
RGBA = (*RGB, ColorInterp.alpha)


def _variant(kind: str, src_path: Path, out: Path, *, moving: bool) -> Path:
    with rasterio.open(src_path) as src:
        data = src.read(window=CROP)
        profile = {
            "driver": "GTiff",
            "width": CROP.width,
            "height": CROP.height,
            "crs": src.crs,
            "transform": src.window_transform(CROP),
            "tags": src.tags(),
        }
    name = out / f"{kind}-{src_path.name}"
    if kind in ("after-4326", "after-utm53"):
        kind = kind.removeprefix("after-") if moving else "rgb"
    if kind == "rgb":
        return _write(name, data, profile, RGB, ("red", "green", "blue"))
    if kind == "bgr":
        return _write(name, data[::-1].copy(), profile, RGB[::-1], ("blue", "green", "red"))
    if kind == "rgba":
        alpha = np.full((1, *data.shape[1:]), 255, np.uint8)
        return _write(name, np.concatenate([data, alpha]), profile, RGBA, ("red", "green", "blue", "alpha"))
    if kind == "uint16":
        return _write(name, data.astype(np.uint16) * 257, profile, RGB, ("red", "green", "blue"))
    crs = {"4326": "EPSG:4326", "utm53": "EPSG:32653", "3857": "EPSG:3857"}[kind]
    warped, prof = _reprojected(data, profile, crs)
    return _write(name, warped, prof, RGBA, ("red", "green", "blue", "alpha"))


KINDS = ["bgr", "rgba", "uint16", "4326", "utm53", "3857", "after-4326", "after-utm53"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("variants")
    results = {}
    for kind in ["rgb", *KINDS]:
        before = _variant(kind, SAMPLES / SITE / PAIR[0], out, moving=False)
        after = _variant(kind, SAMPLES / SITE / PAIR[1], out, moving=True)
        results[kind] = detect(before, after, SITE)
    return results


def _native_polygons(result) -> list:
    to_native = Transformer.from_crs(result.grid.crs, NATIVE, always_xy=True)
    polys = []
    for o in result.objects:
        coords = np.asarray(o.geometry.exterior.coords)
        x, y = to_native.transform(coords[:, 0], coords[:, 1])
        polys.append((o.change, shape({"type": "Polygon", "coordinates": [list(zip(x, y))]})))
    return polys


def _ground_shift_px(result) -> np.ndarray:
    """The shift as a ground vector in the native UTM grid's pixels (1 m), from the grid's map axes."""
    rows, cols = result.grid.shape
    cx, cy = result.grid.transform * (cols / 2, rows / 2)
    east, north = result.grid.map_offset(result.shift.dx, result.shift.dy)
    to_native = Transformer.from_crs(result.grid.crs, NATIVE, always_xy=True)
    x0, y0 = to_native.transform(cx, cy)
    x1, y1 = to_native.transform(cx + east, cy + north)
    return np.array([x1 - x0, -(y1 - y0)])  # columns right, rows down, 1 m pixels


def _max_hausdorff(reference: list, other: list) -> tuple[float, float]:
    """Worst outline distance and worst centroid distance from each polygon to its nearest twin, metres."""
    worst, worst_centroid = 0.0, 0.0
    for change, poly in reference:
        twins = [p for c, p in other if c == change]
        if not twins:
            return np.inf, np.inf
        twin = min(twins, key=poly.hausdorff_distance)
        worst = max(worst, poly.hausdorff_distance(twin))
        worst_centroid = max(worst_centroid, poly.centroid.distance(twin.centroid))
    return worst, worst_centroid


@pytest.mark.parametrize("kind", KINDS)
def test_same_pair_any_layout_same_answer(runs, kind):
    base, got = runs["rgb"], runs[kind]
    assert len(base.objects) >= 3, "the crop must hold the new assembly building and housing"
    ref_polys, polys = _native_polygons(base), _native_polygons(got)
    shift_error = np.abs(_ground_shift_px(got) - _ground_shift_px(base)).max()
    (outline_a, centroid_a), (outline_b, centroid_b) = (
        _max_hausdorff(ref_polys, polys),
        _max_hausdorff(polys, ref_polys),
    )
    worst, centroid = max(outline_a, outline_b), max(centroid_a, centroid_b)
    print(
        f"{kind}: {len(polys)} objects (rgb {len(ref_polys)}), outlines within {worst:.2f} m, "
        f"centroids {centroid:.2f} m, shift {shift_error:.3f} px"
    )
    assert len(polys) == len(ref_polys)
    assert worst <= POLYGON_TOLERANCE_M
    # in m² on the ground: a Web Mercator or geographic BEFORE is measured on its local UTM grid
    area, base_area = (r.summary["area_m2"]["new"] for r in (got, base))
    assert abs(area - base_area) <= AREA_TOLERANCE * base_area, (area, base_area)
    assert centroid <= POLYGON_TOLERANCE_M
    assert shift_error <= SHIFT_TOLERANCE_PX


@pytest.mark.parametrize(
    "epsg, metres",
    [(32652, True), (5186, True), (32653, False), (3857, False), (4326, False), (2264, False)],
)
def test_a_grid_is_measured_on_only_in_metres_at_true_scale(epsg, metres):
    """At the crop (127.5 E, 39.9 N): its own UTM zone and the Korean central belt are true to 0.15 %; the next
    UTM zone (0.47 % off), Web Mercator (30 %), degrees and US survey feet (EPSG:2264) are not."""
    from rasterio.transform import from_origin

    from sitewatch.io import measures_in_metres

    crs = CRS.from_epsg(epsg)
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(127.5, LATITUDE)
    assert measures_in_metres(crs, from_origin(x, y, 1.0, 1.0), (2, 2)) is metres
