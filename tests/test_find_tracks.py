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
from sitewatch.synth.yards import styled_yard

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
    per_true, _ = match(yard.true_lines_px, [f.line_px for f in found], yard.image.shape[1:], pixel_size_m)
    return per_true


# (style, seed): yards whose every track is found; SEEDS_FULL_TRACK holds a track that cars cover
# over most of its length
SEEDS = [("classic", 3), ("weedy", 5)]
SEEDS_FULL_TRACK = ("classic", 3, "track-1a")


@pytest.mark.parametrize("style, seed", SEEDS)
def test_planted_tracks_are_found_within_half_a_metre(style, seed):
    yard = styled_yard(seed, 0.5, style, crs_wkt=UTM52, origin=ORIGIN)
    found = find_tracks(yard.image, pixel_size_m=0.5)
    per_true = _recovered(yard, found, 0.5)
    assert set(per_true) == set(yard.true_lines_px)
    for track_id, (k, mean_m, cover) in per_true.items():
        assert k >= 0, f"{track_id} not found"
        assert mean_m <= MATCH_MEAN_M, f"{track_id}: {mean_m:.2f} m off on average"
        assert cover >= MATCH_COVER, f"{track_id}: only {cover:.0%} of it covered"


def test_a_track_full_of_cars_is_still_found():
    style, seed, track_id = SEEDS_FULL_TRACK
    yard = styled_yard(seed, 0.5, style, crs_wkt=UTM52, origin=ORIGIN)
    # the planted track is mostly under cars: their length over the track's
    cars_m = sum(r["length_m"] for r in yard.scene.truth if r.get("track_id") == track_id)
    line = dict(yard.scene.tracks)[track_id]
    assert cars_m > 0.6 * line.length
    k, mean_m, cover = _recovered(yard, find_tracks(yard.image, pixel_size_m=0.5), 0.5)[track_id]
    assert k >= 0 and mean_m <= MATCH_MEAN_M and cover >= MATCH_COVER


def test_an_empty_scene_finds_nothing():
    rng = np.random.default_rng(0)
    image = (100 + 5 * rng.standard_normal((3, 300, 400))).astype(np.float32)
    assert find_tracks(image, pixel_size_m=0.5) == []


def test_coarse_pixels_are_refused_by_the_core():
    with pytest.raises(ValueError, match="at most 1 m"):
        find_tracks(np.zeros((3, 50, 50), np.float32), pixel_size_m=1.5)


def test_cli_writes_tracks_that_tracks_accepts_and_counts_the_planted_cars(tmp_path):
    style, seed = SEEDS[0]
    yard = styled_yard(seed, 0.5, style, crs_wkt=UTM52, origin=ORIGIN)
    image = _write(yard, tmp_path / "yard.tif")
    out = tmp_path / "out"
    run = CliRunner().invoke(main, ["railcars", str(image), "--find-tracks", "-o", str(out), "--json"])
    assert run.exit_code == 0, run.output
    doc = json.loads((out / "tracks.geojson").read_text())
    feats = doc["features"]
    assert feats and all(f["geometry"]["type"] == "LineString" for f in feats)
    assert [f["properties"]["track_id"] for f in feats] == [f"found-{k + 1}" for k in range(len(feats))]
    assert all(0 < f["properties"]["score"] for f in feats)
    assert (out / "tracks.gpkg").exists() and (out / "railcars.csv").exists()

    again = CliRunner().invoke(main, ["railcars", str(image), "--tracks", str(out / "tracks.geojson"), "--json"])
    assert again.exit_code == 0, again.output
    counted = {t["track_id"]: t["count"] for t in json.loads(again.output)["images"][0]["tracks"]}
    # each true track's cars on the found line that runs along it; lines on no track hold none
    from sitewatch.io import read_tracks_file

    lines = read_tracks_file(out / "tracks.geojson")
    assert set(counted) == set(lines)
    total_true = sum(yard.counts.values())
    total = sum(counted.values())
    # the counter's tolerance on classic yards at 0.5 m: about 2 % total error, a car a track
    assert abs(total - total_true) <= max(2, round(0.1 * total_true)), (total, total_true, counted, yard.counts)


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
    assert run.exit_code == 2
    assert "--find-tracks" in run.output
