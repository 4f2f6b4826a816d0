"""Known answers for tracks and images that do not line up: a geographic image, a track barely
inside, and a timeline whose last image does not show every track (its count is unknown, not 0)."""

from __future__ import annotations

import csv
import json

import numpy as np
import rasterio
from click.testing import CliRunner
from conftest import SAMPLES, write_tif
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject
from rasterio.windows import Window
from shapely.geometry import LineString
from test_railcars import UTM52, planted_scene

from sitewatch.cli import main
from sitewatch.synth import render

TUMANGANG = SAMPLES / "tumangang-rail-crossing"
PLANTED = {"t1": 5, "t2": 3}


def _tracks_geojson(lines, path):
    to_lonlat = Transformer.from_crs(UTM52, "EPSG:4326", always_xy=True).transform
    feats = [
        {
            "type": "Feature",
            "properties": {"track_id": tid},
            "geometry": {"type": "LineString", "coordinates": [list(to_lonlat(x, y)) for x, y in ln.coords]},
        }
        for tid, ln in lines
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def _to_geographic(src_path, dst_path):
    """The image warped (cubic) onto an EPSG:4326 grid of about its pixel size, as a delivery in degrees."""
    with rasterio.open(src_path) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds)
        data = np.zeros((src.count, height, width), np.uint8)
        reproject(
            src.read(),
            data,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=transform,
            dst_crs="EPSG:4326",
            resampling=Resampling.cubic,
        )
        profile = {**src.profile, "crs": "EPSG:4326", "transform": transform, "width": width, "height": height}
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(data)
    return dst_path


def _count(image, tracks_path, *extra):
    res = CliRunner().invoke(main, ["railcars", str(image), "--tracks", str(tracks_path), "--json", *extra])
    assert res.exit_code == 0, res.output
    (img,) = json.loads(res.output)["images"]
    return img, {t["track_id"]: t["count"] for t in img["tracks"]}


def test_a_geographic_yard_is_counted_in_metres_like_its_utm_original(tmp_path):
    scene = planted_scene(list(PLANTED.values()), pixel_size_m=0.5)
    west, _, _, north = scene.bounds
    utm = write_tif(tmp_path / "2024-05-01.tif", render(scene, 0), crs="EPSG:32652", origin=(west, north), pixel=0.5)
    (tmp_path / "geo").mkdir()
    geographic = _to_geographic(utm, tmp_path / "geo" / "2024-05-01.tif")
    tracks = _tracks_geojson(scene.tracks, tmp_path / "tracks.geojson")
    _, on_utm = _count(utm, tracks)
    img, on_geographic = _count(geographic, tracks, "--date", f"{geographic}=2024-06-02")
    assert img["date"] == "2024-06-02"  # as given, over the file name's 2024-05-01
    assert on_utm["t1"] == PLANTED["t1"] and abs(on_utm["t2"] - PLANTED["t2"]) <= 1  # as test_railcars finds
    assert on_geographic == on_utm
    assert abs(img["pixel_size_m"] - 0.5) < 0.05  # warped onto metres, not reported in degrees


def test_a_track_barely_inside_says_how_much_is_inside(tmp_path):
    scene = planted_scene(list(PLANTED.values()), pixel_size_m=0.5)
    west, _, east, north = scene.bounds
    utm = write_tif(tmp_path / "2024-05-01.tif", render(scene, 0), crs="EPSG:32652", origin=(west, north), pixel=0.5)
    # t2 ends 12 m inside the image's east edge
    lines = [scene.tracks[0], ("t2", LineString([(east - 12.0, north - 50.0), (east + 200, north - 50.0)]))]
    res = CliRunner().invoke(main, ["railcars", str(utm), "--tracks", str(_tracks_geojson(lines, tmp_path / "t.json"))])
    assert res.exit_code == 2
    assert "track 't2' has only 1" in res.output and "at least 20 m must be inside" in res.output


def _aoi_with_spur(tmp_path):
    """The Tumangang AOI plus a spur track near the top edge of the sample images."""
    doc = json.loads((SAMPLES.parent / "aoi" / "tumangang-rail-crossing.geojson").read_text())
    with rasterio.open(TUMANGANG / "2023-03-10.tif") as src:
        west, _, _, north = src.bounds
        crs = src.crs
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform
    spur = [list(to_lonlat(west + x, north - 10.0)) for x in (20.0, 200.0)]
    doc["features"].append(
        {
            "type": "Feature",
            "properties": {"role": "rail_track", "name": "Spur", "track_id": "spur", "basis": "estimate"},
            "geometry": {"type": "LineString", "coordinates": spur},
        }
    )
    path = tmp_path / "tumangang-with-spur.geojson"
    path.write_text(json.dumps(doc))
    return path


def _crop_top(src_path, dst_path, rows):
    with rasterio.open(src_path) as src:
        win = Window(0, rows, src.width, src.height - rows)
        profile = {**src.profile, "height": win.height, "transform": src.window_transform(win)}
        with rasterio.open(dst_path, "w", **profile) as dst:
            dst.write(src.read(window=win))
            dst.update_tags(**src.tags())
    return dst_path


def test_a_track_outside_one_date_is_unknown_there_not_zero(tmp_path):
    images = sorted(TUMANGANG.glob("*.tif"))
    last = _crop_top(images[-1], tmp_path / images[-1].name, rows=60)  # 30 m: the spur 10 m from the top is gone
    out = tmp_path / "tl"
    args = ["timeline", *map(str, [*images[:-1], last]), "--aoi", str(_aoi_with_spur(tmp_path))]
    res = CliRunner().invoke(main, [*args, "-o", str(out), "--no-structures", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["dates"]
    assert rows[0]["track:spur"] is not None and rows[0]["tracks_outside_image"] == ""
    assert rows[-1]["track:spur"] is None and rows[-1]["tracks_outside_image"] == "spur"
    yard = [t for t in rows[0] if t.startswith("track:") and t != "track:spur"]  # the yard (and main line)
    assert rows[-1]["railcars_total"] == sum(rows[-1][t] for t in yard)
    statement = json.loads((out / "timeline.json").read_text())["statement"]
    first, last_total = (sum(r[t] for t in yard) for r in (rows[0], rows[-1]))
    assert f"({first} → {last_total}) on the {len(yard)} track(s) both images show" in statement
    with (out / "timeline.csv").open() as fh:
        csv_rows = list(csv.DictReader(fh))
    assert csv_rows[-1]["track:spur"] == "" and csv_rows[0]["track:spur"] != ""


def test_a_timeline_with_no_track_in_common_gives_no_factor():
    from sitewatch.pipeline.timeline import change_statement

    first = {"date": "2023-01-01", "railcars_total": 4, "track:a": 4, "track:b": None}
    last = {"date": "2023-06-01", "railcars_total": 7, "track:a": None, "track:b": 7}
    assert "no track is in both" in change_statement([first, last])


def _undated_copy(src_path, dst_path):
    """The image's pixels and georeference only: no date tag, no date in the name, no sidecar."""
    with rasterio.open(src_path) as src:
        with rasterio.open(dst_path, "w", **src.profile) as dst:
            dst.write(src.read())
    return dst_path


def test_dates_given_per_image_order_a_timeline(tmp_path):
    images = sorted(TUMANGANG.glob("*.tif"))
    copies = [_undated_copy(p, tmp_path / f"scene_{k}.tif") for k, p in zip("cab", images)]
    args = ["timeline", *map(str, copies), "--aoi", "tumangang-rail-crossing", "--no-structures", "--json"]
    res = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "none")])
    assert res.exit_code == 2 and "give it with --date scene_c.tif=YYYY-MM-DD" in res.output
    given = [f"--date={c.name}={p.stem}" for c, p in zip(copies, images)]
    res = CliRunner().invoke(main, [*args, *given, "-o", str(tmp_path / "tl")])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["dates"]
    assert [(r["date"], r["image"]) for r in rows] == [(p.stem, c.name) for c, p in zip(copies, images)]
    res = CliRunner().invoke(main, [*args, *given, "--date", "other.tif=2023-01-01", "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "'other.tif' is none of the images given" in res.output
    res = CliRunner().invoke(main, [*args, "--date", f"{copies[0].name}=2023-02-30", "-o", str(tmp_path / "y")])
    assert res.exit_code == 2 and "YYYY-MM-DD" in res.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_railcars_on_pixels_too_coarse_are_unknown_and_the_timeline_goes_on(tmp_path):
    """Sentinel-2-like 10 m images: railcars refused by railcars, 'not counted' in timeline, structures still run."""
    assert (
        CliRunner()
        .invoke(main, ["synth", "tumangang-rail-crossing", "--out", str(tmp_path / "s2"), "--gsd", "10"])
        .exit_code
        == 0
    )
    images = sorted((tmp_path / "s2").glob("*.tif"))
    res = CliRunner().invoke(main, ["railcars", str(images[0]), "--aoi", "tumangang-rail-crossing"])
    assert res.exit_code == 2 and "10.0 m pixels" in res.output and "count is unknown" in res.output
    out = tmp_path / "tl"
    res = CliRunner().invoke(
        main, ["timeline", *map(str, images), "--aoi", "tumangang-rail-crossing", "-o", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)  # the warnings go to stderr
    assert doc["statement"].startswith("railcars not counted")
    for row in doc["dates"]:
        assert (
            row["railcars_total"] is None
            and row["method"] == "not counted"
            and "10.0 m pixels" in row["railcars_not_counted"]
        )
        assert all(row[k] is None for k in row if k.startswith("track:"))
    assert doc["dates"][-1]["changed_area_m2"] > 0  # the change method ran at 10 m and saw the planted change
    assert CliRunner().invoke(main, ["report", str(out)]).exit_code == 0
