"""Hostile and everyday inputs (issue 21): each is read right or refused clearly, never a confident wrong answer.

Every refusal is checked for its exit code (2), its ``error: FILE: problem`` line and what
is left on disk (nothing).
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import AOI_DIR, FIXTURES, textured, write_tif
from pyproj import Transformer
from rasterio.enums import ColorInterp, Resampling
from rasterio.transform import from_origin
from rasterio.warp import calculate_default_transform, reproject
from scipy import ndimage

from sitewatch.cli import main
from sitewatch.errors import ImageryError, OutputExistsError
from sitewatch.io import csv_safe, read_aoi_window, read_source, staged_outputs, write_csv
from sitewatch.io.raster import band_layout

ORIGIN = (500000.0, 4400000.0)  # UTM 52N, as conftest.write_tif
SHIFT = (2.3, -1.6)  # planted displacement of MOVING's content, pixels (columns, rows)


def _run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def _refused(res, *words: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert any(line.startswith(("error:", "Error:")) for line in res.output.splitlines()), res.output
    for w in words:
        assert w in res.output, res.output


def _rgb(seed: int = 0, shape=(200, 200)) -> np.ndarray:
    return np.stack([textured(shape, seed + k) for k in range(3)])


def _write_bands(path: Path, data: np.ndarray, interp, descriptions=None, **profile) -> Path:
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": "uint8",
        "crs": "EPSG:32652",
        "transform": from_origin(*ORIGIN, 1.0, 1.0),
        **profile,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.colorinterp = interp  # before the pixels: GDAL writes the TIFF's extra-sample (alpha) tag with them
        for i, d in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, d)
        dst.write(data.astype(profile["dtype"]))
    return path


# ------------------------------------------------------------------ quietly wrong: bands


def test_alpha_band_is_a_mask_never_near_infrared(tmp_path):
    rgb = _rgb()
    alpha = np.full((1, 200, 200), 255, np.uint8)
    alpha[0, :, :50] = 0  # a quarter with no data
    path = _write_bands(
        tmp_path / "rgba.tif",
        np.concatenate([rgb, alpha]),
        [*(ColorInterp.red, ColorInterp.green), ColorInterp.blue, ColorInterp.alpha],
        photometric="RGB",
    )
    src = read_source(path)
    assert src.data.shape[0] == 3  # red, green, blue: no fourth band to be read as NIR
    assert np.isnan(src.data[:, :, :50]).all() and np.isfinite(src.data[:, :, 50:]).all()
    np.testing.assert_array_equal(src.data[:, :, 50:], rgb[:, :, 50:].astype(np.uint8))


def test_blue_green_red_files_are_read_red_first(tmp_path):
    rgb = _rgb()
    path = _write_bands(tmp_path / "bgr.tif", rgb[::-1], [ColorInterp.blue, ColorInterp.green, ColorInterp.red])
    np.testing.assert_array_equal(read_source(path).data, rgb.astype(np.uint8))
    named = _write_bands(tmp_path / "named.tif", rgb[::-1], [ColorInterp.gray] * 3, ["Blue", "Green", "Red"])
    np.testing.assert_array_equal(read_source(named).data, rgb.astype(np.uint8))
    # --bands wins over whatever the file says
    np.testing.assert_array_equal(read_source(path, bands=(1, 2, 3)).data, rgb[::-1].astype(np.uint8))


def test_bands_that_cannot_be_mapped_are_refused_saying_what_was_found(tmp_path):
    rgb = _rgb()
    clash = _write_bands(
        tmp_path / "clash.tif",
        rgb,
        None or [ColorInterp.red, ColorInterp.green, ColorInterp.blue],
        ["blue", "green", "red"],
        photometric="RGB",
    )
    with pytest.raises(ImageryError, match="disagree on which band is red.*band 1: red, described 'blue'"):
        read_source(clash)
    partial = _write_bands(
        tmp_path / "partial.tif", rgb, [ColorInterp.red, ColorInterp.undefined, ColorInterp.undefined]
    )
    res = _run("coreg", partial, partial)
    _refused(res, f"{partial}: cannot tell which bands are red, green and blue", "band 1: red", "--bands")
    res = _run("coreg", partial, partial, "--bands", "1,2")
    _refused(res, "three or four different band numbers")
    res = _run("coreg", partial, partial, "--bands", "1,2,9")
    _refused(res, "the file has bands 1-3 only")


def test_single_band_images_are_refused_where_colour_is_needed_and_measured_where_not(tmp_path):
    base = textured((300, 300), 3)
    moved = ndimage.shift(base, (SHIFT[1], SHIFT[0]), order=3, mode="nearest")  # a feature at p lands at p + SHIFT
    ref = write_tif(tmp_path / "2023-01-01.tif", base, origin=ORIGIN)
    mov = write_tif(tmp_path / "2024-01-01.tif", moved, origin=ORIGIN)
    res = _run("coreg", ref, mov, "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert abs(got["dx"] - SHIFT[0]) < 0.05 and abs(got["dy"] - SHIFT[1]) < 0.05
    out = tmp_path / "run"
    res = _run("detect", ref, mov, "--aoi", "hamhung-feb11-plant", "-o", out)
    _refused(res, f"{ref}: has one colour band", "needs red, green and blue")
    assert not out.exists()


# ------------------------------------------------------------------ quietly wrong: no evidence


def test_coreg_refuses_a_shift_from_no_evidence(tmp_path):
    zeros = write_tif(tmp_path / "zeros.tif", np.zeros((3, 200, 200)))
    _refused(_run("coreg", zeros, zeros), f"{zeros}: no reliable shift", "featureless")
    tiny = write_tif(tmp_path / "tiny.tif", np.full((3, 1, 1), 7))
    _refused(_run("coreg", tiny, tiny), "1 x 1 px", "at least 16 px")


def _yard(tmp_path: Path, data: np.ndarray, nodata=None) -> tuple[Path, Path]:
    """An image 0.5 m pixels in UTM 52N and a tracks file with one track across it."""
    image = write_tif(tmp_path / "2023-05-01.tif", data, origin=ORIGIN, pixel=0.5, nodata=nodata)
    to_lonlat = Transformer.from_crs("EPSG:32652", "EPSG:4326", always_xy=True)
    y = ORIGIN[1] - 50.0
    line = [to_lonlat.transform(ORIGIN[0] + x, y) for x in (10.0, 90.0)]
    tracks = tmp_path / "tracks.geojson"
    tracks.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"track_id": "T1"},
                        "geometry": {"type": "LineString", "coordinates": line},
                    }
                ],
            }
        )
    )
    return image, tracks


def test_railcars_over_no_data_are_unknown_never_zero(tmp_path):
    image, tracks = _yard(tmp_path, np.zeros((3, 200, 200)))
    out = tmp_path / "out"
    _refused(_run("railcars", image, "--tracks", tracks, "-o", out), f"{image}:", "unknown, not 0")
    assert not out.exists()
    half = _rgb(shape=(200, 200))
    half[:, :, :100] = 0
    image, tracks = _yard(tmp_path, half, nodata=0)
    _refused(_run("railcars", image, "--tracks", tracks, "-o", out), "of track 'T1' lies on nodata", "unknown")
    assert not out.exists()


# ------------------------------------------------------------------ quietly wrong: CRS


def _in_crs(src_path: Path, out: Path, crs: str, resolution) -> Path:
    with rasterio.open(src_path) as src:
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds, resolution=resolution
        )
        data = np.zeros((src.count, height, width), np.float32)
        reproject(
            src.read().astype(np.float32),
            data,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=transform,
            dst_crs=crs,
            resampling=Resampling.cubic,
            dst_nodata=np.nan,
        )
    valid = np.all(np.isfinite(data), axis=0)
    alpha = np.where(valid, 255, 0)[None]
    return _write_bands(
        out,
        np.concatenate([np.nan_to_num(data), alpha]),
        [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha],
        crs=crs,
        transform=transform,
        photometric="RGB",
    )


def test_a_geographic_moving_image_gives_the_planted_shift_in_metres_and_map_axes(tmp_path):
    base = _rgb(5, shape=(320, 320))
    moved = np.stack([ndimage.shift(b, (SHIFT[1], SHIFT[0]), order=3, mode="nearest") for b in base])
    ref = write_tif(tmp_path / "ref.tif", base, origin=ORIGIN)
    utm = write_tif(tmp_path / "mov-utm.tif", moved, origin=ORIGIN)
    lat = 39.7  # of ORIGIN in UTM 52N
    geo = _in_crs(utm, tmp_path / "mov-4326.tif", "EPSG:4326", (0.5 / (111320 * np.cos(np.radians(lat))), 0.5 / 111320))
    res = _run("coreg", ref, geo, "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert abs(got["dx"] - SHIFT[0]) < 0.05 and abs(got["dy"] - SHIFT[1]) < 0.05
    assert got["pixel_size"] == 1.0 and got["crs"] == "EPSG:32652"
    # a feature drawn 2.3 columns right and 1.6 rows up: east and north
    assert got["shift_map"]["east_m"] == pytest.approx(SHIFT[0], abs=0.05)
    assert got["shift_map"]["north_m"] == pytest.approx(-SHIFT[1], abs=0.05)
    # and a geographic REFERENCE is measured on its local UTM grid, in metres
    res = _run("coreg", geo, ref, "--json")
    assert res.exit_code == 0, res.output
    back = json.loads(res.output)
    assert back["crs"] == "EPSG:32652" and back["pixel_size"] < 1.0
    assert back["shift_map"]["east_m"] == pytest.approx(-SHIFT[0], abs=0.05)
    assert back["shift_map"]["north_m"] == pytest.approx(SHIFT[1], abs=0.05)


def test_real_geographic_tiles_are_measured_in_metres(realdata):
    tiles = sorted((realdata / "buildings" / "kampala-oam" / "image").glob("*.tif"))
    if not tiles:
        pytest.skip("no Kampala EPSG:4326 tiles in the real-data folder")
    res = _run("coreg", tiles[0], tiles[0], "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert got["crs"].startswith("EPSG:326")  # its UTM zone, not degrees
    assert 0.01 < got["pixel_size"] < 5 and abs(got["dx"]) < 0.05 and abs(got["dy"]) < 0.05


# ------------------------------------------------------------------ injection


def _railcar_run(folder: Path, track_id: str = "T1", path: str = "2023-05-01.tif") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema_version": "1.0",
        "images": [
            {
                "path": path,
                "date": "2023-05-01",
                "total": 3,
                "tracks": [
                    {
                        "track_id": track_id,
                        "count": 3,
                        "uncertainty": 0.4,
                        "occupied_m": 50.0,
                        "method": "individual-cars",
                    }
                ],
            }
        ],
        "versions": {"sitewatch": "0"},
    }
    (folder / "railcars.json").write_text(json.dumps(doc))
    return folder


def test_report_escapes_every_text_and_refuses_a_crafted_summary(tmp_path):
    run = _railcar_run(tmp_path / "run", track_id="<img src=x onerror=alert(1)>", path="<script>x</script>.tif")
    res = _run("report", run)
    assert res.exit_code == 0, res.output
    page = (run / "report.html").read_text()
    assert "<img src=x" not in page and "<script>x" not in page and "&lt;img src=x" in page

    crafted = tmp_path / "crafted"
    crafted.mkdir()
    summary = json.loads((FIXTURES / "summary.json").read_text()) if (FIXTURES / "summary.json").exists() else None
    summary = summary or _minimal_summary()
    summary["method"]["threshold"] = "<script>alert(1)</script>"
    (crafted / "summary.json").write_text(json.dumps(summary))
    _refused(_run("report", crafted), f"{crafted / 'summary.json'}: method/threshold", "not a summary.json")
    assert not (crafted / "report.html").exists()


def _minimal_summary() -> dict:
    return {
        "schema_version": "1.0",
        "site_id": "s",
        "inputs": {"before": "a.tif", "after": "b.tif"},
        "dates": {"before": None, "after": None},
        "crs": "EPSG:32652",
        "pixel_size_m": 1.0,
        "window": {"rows": 10, "cols": 10},
        "shift": {"shift_px": [0.0, 0.0]},
        "method": {"change": "cva", "normalisation": "none", "threshold": 1.0, "min_area_m2": 40},
        "counts": {"new": 0, "removed": 0},
        "area_m2": {"new": 0.0, "removed": 0.0},
    }


def test_report_refuses_a_summary_of_the_wrong_shape(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    doc = _minimal_summary()
    doc["counts"] = [1, 2]
    (run / "summary.json").write_text(json.dumps(doc))
    _refused(_run("report", run), "summary.json: counts: [1, 2] is not of type 'object'")
    assert sorted(p.name for p in run.iterdir()) == ["summary.json"]


def test_webmap_popups_escape_names(tmp_path):
    pytest.importorskip("folium", reason="the notebooks extra is not installed")
    from shapely.geometry import box

    from sitewatch.webmap import LayerStyle, geojson_layer, new_map

    fmap = new_map((127.0, 39.0, 127.1, 39.1))
    rec = {
        "name": "<img src=x onerror=alert(1)>",
        "geometry": box(ORIGIN[0], ORIGIN[1], ORIGIN[0] + 50, ORIGIN[1] + 50),
    }
    geojson_layer([rec], "EPSG:32652", "<b>layer</b>", style=LayerStyle("#fff"), popup_fields=["name"]).add_to(fmap)
    page = fmap.get_root().render()
    assert "<img src=x" not in page and "onerror=alert(1)>" not in page.replace("&gt;", "")


def test_csv_cells_cannot_run_as_formulas(tmp_path):
    rows = [{"track_id": '=HYPERLINK("http://x")', "count": -3, "note": "@SUM(A1)"}, {"track_id": "+1", "count": 2}]
    write_csv(tmp_path / "t.csv", rows, ["track_id", "count", "note", "-cmd"])
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == "track_id,count,note,'-cmd"
    assert lines[1].startswith("\"'=HYPERLINK(") and lines[1].endswith(",-3,'@SUM(A1),")  # numbers stay numbers
    assert lines[2] == "'+1,2,,"
    assert csv_safe("2023-05-01") == "2023-05-01"


# ------------------------------------------------------------------ output folders


def test_a_second_run_into_a_locked_folder_stops_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)  # as a running sitewatch holds it
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(OutputExistsError, match="another sitewatch run is writing into this folder"):
            with staged_outputs(out, ["a.txt"]) as stage:
                (stage / "a.txt").write_text("x")
    finally:
        os.close(fd)
    assert list(out.iterdir()) == []


def test_staging_folders_a_killed_run_left_are_removed(tmp_path):
    out = tmp_path / "out"
    stale = out / ".sitewatch-k1ll3d"
    stale.mkdir(parents=True)
    (stale / "partial.tif").write_bytes(b"half")
    with staged_outputs(out, ["a.txt"]) as stage:
        (stage / "a.txt").write_text("x")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]


def test_report_never_writes_through_a_planted_symlink(tmp_path):
    run = _railcar_run(tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (run / ".report.html.tmp").symlink_to(victim)
    res = _run("report", run)
    assert res.exit_code == 0, res.output
    assert victim.read_text() == "precious" and "<!DOCTYPE html>" in (run / "report.html").read_text()


def test_an_unusable_output_folder_is_refused_before_any_work(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    missing = tmp_path / "missing.tif"  # would fail at reading, later: the folder is checked first
    _refused(
        _run("detect", missing, missing, "--aoi", "hamhung-feb11-plant", "-o", a_file / "run"), "not a writable folder"
    )
    _refused(
        _run("detect", missing, missing, "--aoi", "hamhung-feb11-plant", "-o", tmp_path / "a\nb"), "control character"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


# ------------------------------------------------------------------ tracebacks become refusals


def _huge(path: Path, crs: str, pixel: float, origin: tuple[float, float]) -> Path:
    """A 100 000 x 100 000 px GeoTIFF with no pixel written (sparse: a few kB on disk)."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=100_000,
        height=100_000,
        count=3,
        dtype="uint8",
        crs=crs,
        transform=from_origin(*origin, pixel, pixel),
        tiled=True,
        SPARSE_OK=True,
    ):
        pass
    assert path.stat().st_size < 50_000_000
    return path


def test_a_raster_declaring_a_huge_size_is_refused_before_reading(tmp_path):
    # on a metric grid coreg reads only chips round its windows: it gets as far as the evidence
    path = _huge(tmp_path / "huge.tif", "EPSG:32652", 1, ORIGIN)
    _refused(_run("coreg", path, path), f"{path}: no reliable shift", "featureless")
    # a geographic one is read whole onto its local UTM grid: refused by its size, before reading
    geo = _huge(tmp_path / "huge-lonlat.tif", "EPSG:4326", 1e-5, (127.0, 40.0))
    _refused(_run("coreg", geo, geo), f"{geo}: the part to read is 100000 x 100000 px", "crop it")


def test_non_utf8_aoi_and_sidecar(tmp_path):
    aoi = tmp_path / "site.geojson"
    aoi.write_bytes((AOI_DIR / "hamhung-feb11-plant.geojson").read_bytes().replace(b"February", b"F\xe9bruary"))
    res = _run("aoi", "validate", aoi)
    _refused(res, f"error: {aoi}: not UTF-8 text")
    img = write_tif(tmp_path / "2023-01-01.tif", _rgb())
    (tmp_path / "2023-01-01.json").write_bytes(b'{"properties": {"datetime": "\xff"}}')
    _refused(
        _run("timeline", img, "--aoi", "tumangang-rail-crossing", "-o", tmp_path / "out"),
        "2023-01-01.json: not UTF-8 text",
    )


@pytest.mark.parametrize(
    "feature, words",
    [
        (
            {"properties": {"track_id": 7}, "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
            "track_id 7 is a int",
        ),
        (
            {"properties": [1], "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
            "feature 0 has no properties object",
        ),
        (
            {
                "properties": {"track_id": "T"},
                "geometry": {"type": "LineString", "coordinates": [[0, 0], [float("nan"), 1]]},
            },
            "not a finite number",
        ),
        # found by tests/test_fuzz.py: shapely's own error, and PROJ's on a longitude of 1e308
        ({"properties": {"track_id": "T"}, "geometry": {"type": "", "coordinates": []}}, "unreadable geometry"),
        (
            {"properties": {"track_id": "T"}, "geometry": {"type": "LineString", "coordinates": [[0, 0], [1e308, 1]]}},
            "outside lon/lat range",
        ),
    ],
)
def test_bad_tracks_files(tmp_path, feature, words):
    img = write_tif(tmp_path / "2023-01-01.tif", _rgb())
    tracks = tmp_path / "tracks.geojson"
    tracks.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", **feature}]}))
    _refused(_run("railcars", img, "--tracks", tracks), f"{tracks}:", words)


@pytest.mark.parametrize(
    "args",
    [
        ["synth", "hamhung-feb11-plant", "-o", "{tmp}/s", "--seed", "-1"],
        ["synth", "hamhung-feb11-plant", "-o", "{tmp}/s", "--gsd", "nan"],
        ["detect", "a.tif", "b.tif", "--aoi", "hamhung-feb11-plant", "-o", "{tmp}/d", "--min-area", "nan"],
        ["railcars", "a.tif", "--aoi", "tumangang-rail-crossing", "--car-length", "nan"],
        ["evaluate", "{tmp}", "--gsd", "inf"],
    ],
)
def test_numbers_that_are_not_numbers_are_refused(tmp_path, args):
    res = _run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert "is not a finite number" in res.output or "is not in the range" in res.output, res.output
    assert list(tmp_path.iterdir()) == []


def test_synth_on_an_aoi_without_the_scenarios_buildings(tmp_path):
    doc = json.loads((AOI_DIR / "hamhung-feb11-plant.geojson").read_text())
    for f in doc["features"]:
        if f["properties"].get("name") == "Building B":
            f["properties"]["name"] = "Building Z"
    aoi = tmp_path / "hamhung-feb11-plant.geojson"
    aoi.write_text(json.dumps(doc))
    _refused(_run("synth", aoi, "-o", tmp_path / "s"), f"{aoi}: the synthetic scenario needs", "Building B")
    assert not (tmp_path / "s").exists()


def test_a_decompression_bomb_picture_is_refused(tmp_path, monkeypatch):
    from PIL import Image

    from sitewatch.io import read_picture

    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10 000 px: twice over, as a 100 000² bomb is for the default
    with pytest.raises(ImageryError, match="bomb.png: declares more pixels.*decompression bomb"):
        read_picture(tmp_path / "bomb.png", 0.5)


def test_a_picture_without_georeference_is_one_clear_error(tmp_path):
    png = tmp_path / "screenshot.png"
    from PIL import Image

    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(png)
    res = _run("coreg", png, png)
    _refused(res, f"{png}: has no CRS")
    assert "warnings.warn" not in res.output and "NotGeoreferencedWarning:" not in res.output
    assert len(res.output.strip().splitlines()) <= 2


def test_read_aoi_window_masks_alpha(tmp_path):
    rgb = _rgb()
    alpha = np.full((1, 200, 200), 255, np.uint8)
    alpha[0, :100] = 0
    interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    path = _write_bands(tmp_path / "rgba.tif", np.concatenate([rgb, alpha]), interp, photometric="RGB")
    with rasterio.open(path) as src:
        assert band_layout(src, path).colour == (1, 2, 3) and band_layout(src, path).alpha == 4
    import shapely
    from shapely.geometry import box

    to_lonlat = Transformer.from_crs("EPSG:32652", "EPSG:4326", always_xy=True)
    fp = shapely.transform(
        box(ORIGIN[0], ORIGIN[1] - 200, ORIGIN[0] + 200, ORIGIN[1]),
        lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])),
    )
    win = read_aoi_window(path, fp)
    assert win.data.shape[0] == 3 and not win.valid[:100].any() and win.valid[100:].all()
