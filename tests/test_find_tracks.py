"""Tracks found in the image (``railcars --find-tracks``): plant tracks in synthetic yards, recover them.

The yards (:mod:`sitewatch.synth.yards`) hold one or two groups of parallel tracks, straight or
curved, about half of each line under cars; the finder gets the image and the pixel size
only.  A track counts as recovered when one found line lies within 0.5 m of its centreline
on average and runs along at least 80 % of it (as ``benchmarks/bench_find_tracks.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from pyproj import CRS

from sitewatch.cli import main
from sitewatch.railcars import FIND_MAX_PIXEL_M, find_tracks
from sitewatch.synth import yards
from sitewatch.synth.yards import YardStyle, styled_yard

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_find_tracks import MATCH_COVER, MATCH_MEAN_M, match  # noqa: E402

UTM52 = CRS.from_epsg(32652).to_wkt()
ORIGIN = (700000.0, 4700000.0)


def _write(yard, path: Path) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=yard.image.shape[2],
        height=yard.image.shape[1],
        count=yard.image.shape[0],
        dtype=yard.image.dtype,
        crs="EPSG:32652",
        transform=Affine(*yard.transform),
    ) as dst:
        dst.write(yard.image)
        dst.update_tags(sun_azimuth=str(yard.sun_azimuth_deg), sun_elevation=str(yard.sun_elevation_deg))
    return path


def _recovered(yard, found, pixel_size_m: float) -> dict[str, tuple[int, float, float]]:
    return _matched(yard, found, pixel_size_m)[0]


def _matched(yard, found, pixel_size_m: float):
    return match(yard.true_lines_px, [f.line_px for f in found], yard.image.shape[1:], pixel_size_m)


# A second look besides the classic yard: beds on soil, dark rails, a sharp sensor (the
# benchmark's own styles are measured in benchmarks/bench_find_tracks.py, not here).
SOIL = YardStyle(
    "soil-dark-rails", ground=("soil",), rail_contrast=(0.4, 0.55), blur_px=(0.5, 0.7), noise=(0.004, 0.008)
)
# (style, seed) at 0.5 m; classic seed 4's track-2a is under cars over 61 % of its length
YARDS = [("classic", 4), ("soil-dark-rails", 1)]
FULL_TRACK = ("classic", 4, "track-2a")
PIXEL_M = 0.5
_cache: dict = {}


def _yard_and_found(style: str, seed: int):
    if (style, seed) not in _cache:
        yards.STYLES.setdefault(SOIL.name, SOIL)
        yard = styled_yard(seed, PIXEL_M, style, crs_wkt=UTM52, origin=ORIGIN)
        _cache[style, seed] = yard, find_tracks(yard.image, pixel_size_m=PIXEL_M)
    return _cache[style, seed]


@pytest.fixture(autouse=True)
def _test_style():
    yield
    yards.STYLES.pop(SOIL.name, None)


@pytest.mark.parametrize("style, seed", YARDS)
def test_planted_tracks_are_found_within_half_a_metre(style, seed):
    yard, found = _yard_and_found(style, seed)
    per_true, false = _matched(yard, found, PIXEL_M)
    assert set(per_true) == set(yard.true_lines_px)
    for track_id, (k, mean_m, cover) in per_true.items():
        assert k >= 0, f"{track_id} not found"
        assert mean_m <= MATCH_MEAN_M, f"{track_id}: {mean_m:.2f} m off on average"
        assert cover >= MATCH_COVER, f"{track_id}: only {cover:.0%} of it covered"
    # and little else: at most one line found along no planted track (the benchmark's false lines)
    assert sum(false) <= 1, f"{sum(false)} lines along no track"


def test_a_track_mostly_under_cars_is_still_found():
    style, seed, track_id = FULL_TRACK
    yard, found = _yard_and_found(style, seed)
    cars_m = sum(r["length_m"] for r in yard.scene.truth if r.get("track_id") == track_id)
    assert cars_m > 0.6 * dict(yard.scene.tracks)[track_id].length
    k, mean_m, cover = _recovered(yard, found, PIXEL_M)[track_id]
    assert k >= 0 and mean_m <= MATCH_MEAN_M and cover >= MATCH_COVER


def test_an_empty_scene_finds_nothing():
    rng = np.random.default_rng(0)
    image = (100 + 5 * rng.standard_normal((3, 300, 400))).astype(np.float32)
    assert find_tracks(image, pixel_size_m=0.5) == []


def test_coarse_pixels_are_refused_by_the_core():
    with pytest.raises(ValueError, match="at most 1 m"):
        find_tracks(np.zeros((3, 50, 50), np.float32), pixel_size_m=1.5)


def test_cli_writes_tracks_that_tracks_accepts_and_counts_the_planted_cars(tmp_path):
    yard, _ = _yard_and_found(*YARDS[0])
    image = _write(yard, tmp_path / "yard.tif")
    out = tmp_path / "out"
    run = CliRunner().invoke(main, ["railcars", str(image), "--find-tracks", "-o", str(out), "--json"])
    assert run.exit_code == 0, run.output
    feats = json.loads((out / "tracks.geojson").read_text())["features"]
    assert feats and all(f["geometry"]["type"] == "LineString" for f in feats)
    assert [f["properties"]["track_id"] for f in feats] == [f"found-{k + 1}" for k in range(len(feats))]
    assert all(f["properties"]["score"] > 0 and f["properties"]["length_m"] >= 60 for f in feats)
    assert (out / "tracks.gpkg").exists() and (out / "railcars.csv").exists()
    first = {t["track_id"]: t["count"] for t in json.loads(run.output)["images"][0]["tracks"]}

    again = CliRunner().invoke(main, ["railcars", str(image), "--tracks", str(out / "tracks.geojson"), "--json"])
    assert again.exit_code == 0, again.output
    counted = {t["track_id"]: t["count"] for t in json.loads(again.output)["images"][0]["tracks"]}
    assert counted == first  # the file holds the lines the first run counted on
    # the counter's tolerance on classic yards at 0.5 m (about 2 % total error): a car or two
    assert abs(sum(counted.values()) - sum(yard.counts.values())) <= 2, (counted, yard.counts)


def test_cli_refuses_coarse_pixels_naming_the_file(tmp_path):
    yard = styled_yard(0, 1.5, "classic", crs_wkt=UTM52, origin=ORIGIN)
    image = _write(yard, tmp_path / "coarse.tif")
    run = CliRunner().invoke(main, ["railcars", str(image), "--find-tracks", "-o", str(tmp_path / "out")])
    assert run.exit_code == 2
    assert "coarse.tif" in run.output and "1.50 m pixels" in run.output and f"{FIND_MAX_PIXEL_M:g} m" in run.output
    assert not (tmp_path / "out" / "tracks.geojson").exists()


def test_cli_refuses_find_tracks_with_given_tracks(tmp_path):
    yard = styled_yard(0, 1.0, "classic", crs_wkt=UTM52, origin=ORIGIN)
    image = _write(yard, tmp_path / "yard.tif")
    run = CliRunner().invoke(main, ["railcars", str(image), "--find-tracks", "--aoi", "tumangang-rail-crossing"])
    assert run.exit_code == 2 and "give no --aoi or --tracks with it" in run.output
    run = CliRunner().invoke(main, ["railcars", str(image), str(image), "--find-tracks"])
    assert run.exit_code == 2 and "one image at a time (2 given)" in run.output
