import json

import numpy as np
import rasterio
from click.testing import CliRunner

from sitewatch.cli import main


def _read_all(folder):
    return {p.name: rasterio.open(p).read() for p in sorted(folder.glob("*.tif"))}


def test_synth_is_deterministic_and_georeferenced(tmp_path):
    runner = CliRunner()
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        res = runner.invoke(
            main, ["synth", "sinuiju-instrument-factory", "--out", str(out), "--gsd", "2", "--seed", "5"]
        )
        assert res.exit_code == 0, res.output
        outs.append(out)
    a, b = _read_all(outs[0]), _read_all(outs[1])
    assert list(a) == ["2022-09-05.tif", "2024-04-12.tif"]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (outs[0] / "truth.geojson").read_text() == (outs[1] / "truth.geojson").read_text()
    with rasterio.open(outs[0] / "2022-09-05.tif") as src:
        assert src.crs.to_epsg() == 32651  # UTM 51N for Sinuiju
        assert src.res == (2.0, 2.0) and src.count == 3 and src.block_shapes[0] == (256, 256) and src.overviews(1)
        assert src.tags()["TIFFTAG_DATETIME"].startswith("2022:09:05")
        lon, lat = rasterio.warp.transform(src.crs, "EPSG:4326", [src.bounds.left], [src.bounds.top])
        assert abs(lon[0] - 124.398) < 0.01 and abs(lat[0] - 40.10) < 0.01
    # another seed gives another scene
    res = runner.invoke(
        main, ["synth", "sinuiju-instrument-factory", "--out", str(tmp_path / "s6"), "--gsd", "2", "--seed", "6"]
    )
    assert res.exit_code == 0
    assert not np.array_equal(_read_all(tmp_path / "s6")["2024-04-12.tif"], a["2024-04-12.tif"])


def test_synth_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    args = ["synth", "sinuiju-instrument-factory", "--out", str(tmp_path), "--gsd", "3"]
    assert runner.invoke(main, args).exit_code == 0
    before = (tmp_path / "truth.geojson").stat().st_mtime_ns
    res = runner.invoke(main, args)
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert (tmp_path / "truth.geojson").stat().st_mtime_ns == before


def test_hamhung_truth_describes_the_reported_changes(tmp_path):
    res = CliRunner().invoke(main, ["synth", "hamhung-feb11-plant", "--out", str(tmp_path), "--gsd", "2"])
    assert res.exit_code == 0, res.output
    truth = json.loads((tmp_path / "truth.geojson").read_text())
    feats = {f["properties"]["id"]: f["properties"] for f in truth["features"]}
    asm = feats["new-assembly-building"]
    assert asm["change"] == "new" and asm["date"] == "2024-10-20" and 0.60 <= asm["relative_size"] <= 0.70
    assert sum(p["kind"] == "worker-housing" for p in feats.values()) >= 3
    assert any(p["kind"] == "tunnel-structure" for p in feats.values())
    acq = truth["properties"]["acquisitions"]
    dx, dy = acq[1]["shift_px"]
    assert 1.0 <= max(abs(dx), abs(dy)) <= 4.0 and (dx % 1 or dy % 1)  # a few pixels plus a sub-pixel part


def test_tumangang_railcars_rise_threefold(tmp_path):
    res = CliRunner().invoke(main, ["synth", "tumangang-rail-crossing", "--out", str(tmp_path), "--gsd", "2"])
    assert res.exit_code == 0, res.output
    truth = json.loads((tmp_path / "truth.geojson").read_text())
    cars = [f["properties"] for f in truth["features"] if f["properties"]["change"] == "railcar"]
    per_date = {}
    for c in cars:
        per_date[c["date"]] = per_date.get(c["date"], 0) + 1
        assert c["track_id"].startswith("tumangang-") and 12 <= c["length_m"] <= 25
    counts = [per_date[d] for d in sorted(per_date)]
    assert len(counts) == 3 and counts[0] == 20 and counts[-1] / counts[0] > 3
    assert len({c["car_type"] for c in cars}) >= 4


def test_bad_gsd_is_refused(tmp_path):
    res = CliRunner().invoke(main, ["synth", "hamhung-feb11-plant", "--out", str(tmp_path), "--gsd", "50"])
    assert res.exit_code != 0 and "gsd" in res.output.lower()


def test_a_random_yard_whose_cars_come_out_long_gets_fewer_cars_not_an_error():
    from shapely.geometry import Point

    from sitewatch.synth.railcars import railyard_scene

    # seed 3075 draws ten cars for a 215 m track, longer than it together (it raised)
    scene = railyard_scene(3075, 3.0, crs_wkt="EPSG:32652", origin=(700000.0, 4700000.0))
    tracks = dict(scene.tracks)
    per_track = {}
    for car in scene.truth:
        line = tracks[car["track_id"]]
        ends = [line.project(Point(p)) for p in car["geometry"].exterior.coords]
        assert 0.0 < min(ends) and max(ends) < line.length
        per_track[car["track_id"]] = per_track.get(car["track_id"], 0) + 1
    assert 0 < per_track["track-2b"] < 10
