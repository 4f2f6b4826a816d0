"""Railcar counting: plant N cars on a track, render, recover N from the image alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_tif
from pyproj import CRS
from shapely.geometry import LineString, Point

from sitewatch.cli import main
from sitewatch.railcars import METHOD_INDIVIDUAL, METHOD_LENGTH, count_railcars, shadow_geometry
from sitewatch.synth import render
from sitewatch.synth.railcars import drawn_track_lines, place_cars, railyard_scene
from sitewatch.synth.scene import Acquisition, Scene

UTM52 = CRS.from_epsg(32652)
X0, Y0 = 700000.0, 4700000.0


def planted_scene(
    counts: list[int],
    *,
    pixel_size_m: float,
    curved: bool = False,
    seed: int = 3,
    sun: tuple[float, float] = (150.0, 45.0),
    spacing: float = 4.5,
) -> Scene:
    """One or more parallel tracks across a 300 x 100 m frame with ``counts[i]`` cars on track i."""
    acq = Acquisition("2024-05-01", "summer", sun[0], sun[1], (1.0, 1.0, 1.0), (0.01, 0.012, 0.02), (0.0, 0.0))
    scene = Scene("test", UTM52.to_wkt(), (X0, Y0, X0 + 300, Y0 + 100), pixel_size_m, [acq], seed=seed)
    if curved:
        t = np.linspace(-0.45, 0.45, 60)
        base = LineString(np.column_stack([X0 + 150 + 300 * np.sin(t), Y0 + 35 + 300 * (1 - np.cos(t))]))
    else:
        base = LineString([(X0 + 10, Y0 + 50), (X0 + 290, Y0 + 52)])
    for k in range(len(counts)):
        off = (k - (len(counts) - 1) / 2) * spacing
        line = base if off == 0 else LineString(base.offset_curve(off).coords)
        scene.tracks.append((f"t{k + 1}", line))
    place_cars(scene, np.random.default_rng(seed), scene.tracks, counts, 0)
    return scene


def pixel_lines(scene: Scene, shift_m: tuple[float, float] = (0.0, 0.0)) -> dict[str, np.ndarray]:
    west, _, _, north = scene.bounds
    return {
        tid: np.column_stack(
            [
                (np.asarray(ln.coords)[:, 0] + shift_m[0] - west) / scene.pixel_size_m,
                (north - np.asarray(ln.coords)[:, 1] - shift_m[1]) / scene.pixel_size_m,
            ]
        )
        for tid, ln in scene.tracks
    }


def counts(scene: Scene, **kw) -> dict[str, int]:
    result = count_railcars(render(scene, 0), pixel_lines(scene, **kw), pixel_size_m=scene.pixel_size_m)
    return {t.track_id: t.count for t in result.tracks}


@pytest.mark.parametrize("n", [1, 6])
def test_counts_planted_cars_on_a_straight_track(n):
    scene = planted_scene([n], pixel_size_m=0.5)
    assert counts(scene) == {"t1": n}


def test_long_train_with_a_loaded_flat_car():
    # among the 11 is a flat car whose container ends mid-deck: a colour step inside a car,
    # which used to cut it in two
    scene = planted_scene([11], pixel_size_m=0.5)
    assert counts(scene) == {"t1": 11}


def test_counts_cars_on_a_curved_track():
    scene = planted_scene([7], pixel_size_m=0.5, curved=True)
    assert counts(scene) == {"t1": 7}


def test_an_empty_track_has_no_cars():
    scene = planted_scene([0, 5], pixel_size_m=0.5)
    assert counts(scene)["t1"] == 0


# The counter still over-counts by a few per cent at 0.5 m (a long car cut in two); this scene
# shows it, so it is held to the measured tolerance of one car rather than the exact count.
def test_line_a_few_pixels_off_still_finds_the_cars():
    scene = planted_scene([8], pixel_size_m=0.5)
    # the drawn line is 1.0 m (2 px) north-east of the real track; unaligned, the centre band
    # would straddle a car's side
    assert abs(counts(scene, shift_m=(0.6, 0.8))["t1"] - 8) <= 1


@pytest.mark.parametrize("sun", [(150.0, 30.0), (330.0, 30.0)])
def test_a_neighbours_shadow_across_empty_track_is_not_a_car(sun):
    # a low sun throws the middle train's shadow right across one of the empty tracks beside
    # it; that track's rails still show through the shadow
    scene = planted_scene([0, 8, 0], pixel_size_m=0.5, sun=sun)
    assert counts(scene) == {"t1": 0, "t2": 8, "t3": 0}


@pytest.mark.xfail(
    strict=True,
    reason="known miss: a higher sun's shadow covering most of the empty bed, "
    "darker than the shadow colour learnt elsewhere, reads as cars",
)
def test_a_shorter_shadow_across_empty_track_is_not_a_car():
    scene = planted_scene([3, 8, 0], pixel_size_m=0.5, sun=(150.0, 45.0))
    assert counts(scene)["t3"] == 0


@pytest.mark.parametrize("shift_m", [(0.0, 2.0), (0.0, -1.9), (1.2, 1.2)])
def test_rails_put_lines_drawn_two_metres_off_back_on_their_tracks(shift_m):
    # three tracks 4.5 m apart: a line 2 m off sits nearly halfway to the next track, where
    # the yard also looks symmetric; the rails say where each track really is
    scene = planted_scene([8, 3, 0], pixel_size_m=0.5, sun=(150.0, 30.0))
    result = count_railcars(render(scene, 0), pixel_lines(scene, shift_m=shift_m), pixel_size_m=0.5)
    # the lines run east, so offsets are positive to the south: a line moved d metres north
    # finds its track d metres to its right (moves along the track do not count)
    for track in result.tracks:
        assert abs(track.offset_m - shift_m[1]) <= 0.15, track
    assert [abs(t.count - n) <= 1 for t, n in zip(result.tracks, (8, 3, 0))] == [True] * 3


def test_without_rails_a_neighbours_shadow_across_empty_track_is_not_a_car():
    # at 1 m the rails do not show: where the train's shadow falls, and how far it reaches,
    # tells shadow from a dark car (this counted 0 / 6 / 2 before)
    scene = planted_scene([0, 8, 0], pixel_size_m=1.0, sun=(150.0, 30.0))
    assert counts(scene) == {"t1": 0, "t2": 8, "t3": 0}


@pytest.mark.parametrize("shift_m", [(0.0, 2.5), (0.0, -2.5), (1.5, 2.0)])
def test_without_rails_the_bed_outline_keeps_lines_on_their_own_tracks(shift_m):
    # 2.5 m off at 1 m, with tracks 4.5 m apart: symmetry alone slid all three lines one
    # track over for (0, -2.5); the outline of the group's bed does not fit there
    scene = planted_scene([8, 3, 0], pixel_size_m=1.0, sun=(150.0, 30.0))
    result = count_railcars(render(scene, 0), pixel_lines(scene, shift_m=shift_m), pixel_size_m=1.0)
    for track in result.tracks:
        assert abs(track.offset_m - shift_m[1]) <= 0.5, track
    assert result.tracks[2].count == 0


def test_random_yards_at_one_metre_stay_above_the_measured_floor():
    """The no-rails path (bed outline, shadow geometry) over 12 random yards at 1 m."""
    true_total = abs_error = 0
    for seed in range(2000, 2012):
        scene = railyard_scene(seed, 1.0, crs_wkt=UTM52.to_wkt(), origin=(X0, Y0))
        result = count_railcars(render(scene, 0), drawn_track_lines(scene, seed), pixel_size_m=1.0)
        for t in result.tracks:
            true = sum(1 for r in scene.truth if r.get("track_id") == t.track_id)
            true_total += true
            abs_error += abs(t.count - true)
    assert true_total > 100
    # measured 6.6 % on these yards (14.8 % before the shadow geometry and the bed outline)
    assert abs_error / true_total <= 0.09


def three_metre_yards_error(*, with_sun: bool) -> tuple[int, float]:
    """Total absolute count error over 12 random yards at 3 m, and how many cars they hold."""
    true_total = abs_error = 0
    for seed in range(2000, 2012):
        scene = railyard_scene(seed, 3.0, crs_wkt=UTM52.to_wkt(), origin=(X0, Y0))
        sun = None
        if with_sun:
            acq = scene.acquisitions[0]
            west, _, _, north = scene.bounds
            sun = shadow_geometry(acq.sun_azimuth_deg, acq.sun_elevation_deg, (3.0, 0.0, west, 0.0, -3.0, north))
        result = count_railcars(render(scene, 0), drawn_track_lines(scene, seed), pixel_size_m=3.0, sun=sun)
        for t in result.tracks:
            true = sum(1 for r in scene.truth if r.get("track_id") == t.track_id)
            true_total += true
            abs_error += abs(t.count - true)
    return true_total, abs_error / true_total


def test_random_yards_at_three_metres_with_the_sun_known():
    """Unmixed profiles with the shadows' direction and length from the sun's angles."""
    true_total, error = three_metre_yards_error(with_sun=True)
    assert true_total > 100
    # measured 12.7 % on these yards with the Huber loss (12.2 % scored by squares; 10.2 %
    # before the placements across the tracks were compared, which over 50 yards, seeds
    # 2000-2049, took 15.9 % to 12.7 %; 25.9 % with the colour-only counter before)
    assert error <= 0.14


def test_a_coarse_yard_is_not_placed_one_track_over_when_the_sun_is_known():
    """Yard 2032 at 3 m: two parallel tracks, 12 cars on one and 3 on the other under a 26
    degree sun.  The bed footprint (with its shadow template) scores best 3.6 m over, where
    the full track's cars' shadows pass for the empty track's bed, and the counts swapped
    tracks (4 and 12); among the placements across the tracks the unmixing explains the
    right one best."""
    scene = railyard_scene(2032, 3.0, crs_wkt=UTM52.to_wkt(), origin=(X0, Y0))
    acq = scene.acquisitions[0]
    west, _, _, north = scene.bounds
    sun = shadow_geometry(acq.sun_azimuth_deg, acq.sun_elevation_deg, (3.0, 0.0, west, 0.0, -3.0, north))
    result = count_railcars(render(scene, 0), drawn_track_lines(scene, 2032), pixel_size_m=3.0, sun=sun)
    true = {t: sum(1 for r in scene.truth if r.get("track_id") == t) for t, _ in scene.tracks}
    assert sorted(true.values()) == [3, 12]
    found = {t.track_id: t.count for t in result.tracks}
    full = max(true, key=true.get)
    assert abs(found[full] - true[full]) <= 1
    assert sum(abs(found[t] - true[t]) for t in true) <= 4


def test_trees_beside_a_coarse_track_are_not_cars():
    """Four cars at 3 m and five trees 8 m beside the track, on the side the shadows fall:
    dark crowns where a tall car's shadow would lie.  Scored by squares, the few samples on
    the crowns outweighed the rest of the profile and the count came out 6; the Huber loss
    weighs them linearly."""
    scene = planted_scene([4], pixel_size_m=3.0, sun=(150.0, 45.0))
    for x in (60, 110, 160, 210, 260):
        scene.trees.append((X0 + x, Y0 + 59.0, 3.0))
    acq = scene.acquisitions[0]
    west, _, _, north = scene.bounds
    sun = shadow_geometry(acq.sun_azimuth_deg, acq.sun_elevation_deg, (3.0, 0.0, west, 0.0, -3.0, north))
    result = count_railcars(render(scene, 0), pixel_lines(scene), pixel_size_m=3.0, sun=sun)
    assert abs(result.tracks[0].count - 4) <= 1


def test_random_yards_at_three_metres_without_the_sun_stay_above_the_measured_floor():
    """Without sun angles the shadows' direction is read from the image where it can be."""
    true_total, error = three_metre_yards_error(with_sun=False)
    assert true_total > 100
    # measured 29.9 % on these yards (32.5 % scored by squares; the colour-only counter:
    # 25.9 %); over 50 yards, seeds 2000-2049, 26.8 % (27.6 % by squares, 27.3 % by colour)
    assert error <= 0.36


def test_rail_correlation_sees_rails_on_empty_track_in_sun_and_shade_but_not_on_cars():
    from sitewatch.railcars.rails import RAIL_VISIBLE, align_to_rails
    from sitewatch.railcars.strip import sample_strip

    scene = planted_scene([0, 8, 0], pixel_size_m=0.5, sun=(150.0, 30.0))
    image = render(scene, 0).astype(np.float32) / 255.0
    lines = pixel_lines(scene)
    strips = [sample_strip(image, lines[t], pixel_size_m=0.5, half_width_m=8.0) for t in lines]
    fit = align_to_rails(image, strips, pixel_size_m=0.5, max_shift_m=1.0)
    middle = dict(scene.tracks)["t2"]
    under_car = np.zeros(len(strips[1].along_m), bool)
    for car in scene.truth:
        ends = [middle.project(Point(xy)) for xy in car["geometry"].exterior.coords]
        under_car |= (strips[1].along_m >= min(ends) + 1.0) & (strips[1].along_m <= max(ends) - 1.0)
    assert under_car.sum() > 300
    # under a car rails never show; the empty tracks, much of their length in the train's
    # shadow, show them almost everywhere
    assert np.mean(fit.rails[1][under_car] >= RAIL_VISIBLE[0]) < 0.02
    for empty in (fit.rails[0], fit.rails[2]):
        assert np.mean(empty >= RAIL_VISIBLE[1]) > 0.7


def test_coarse_pixels_count_by_occupied_length():
    scene = planted_scene([9], pixel_size_m=3.0)
    result = count_railcars(render(scene, 0), pixel_lines(scene), pixel_size_m=3.0)
    (track,) = result.tracks
    assert track.method == METHOD_LENGTH
    true_length = sum(r["length_m"] for r in scene.truth) + 8 * 1.0
    assert abs(track.occupied_m - true_length) <= 0.25 * true_length
    assert abs(track.count - 9) <= 2
    assert track.uncertainty > 0.5


def test_fine_pixels_say_individual_cars_and_give_polygons():
    scene = planted_scene([4], pixel_size_m=0.5)
    result = count_railcars(render(scene, 0), pixel_lines(scene), pixel_size_m=0.5)
    (track,) = result.tracks
    assert track.method == METHOD_INDIVIDUAL
    assert len(track.cars_px) == track.count == 4
    # each polygon is about a car long (12-25 m) and 3 m wide
    for quad in track.cars_px:
        length = np.hypot(*(quad[1] - quad[0])) * 0.5
        width = np.hypot(*(quad[2] - quad[1])) * 0.5
        assert 11.0 <= length <= 26.0 and 2.5 <= width <= 3.5


def test_random_yards_stay_above_the_measured_floor():
    """A regression guard over 12 random yards at 0.5 m (benchmarks/bench_railcars.py measures more)."""
    true_total = abs_error = 0
    for seed in range(2000, 2012):
        scene = railyard_scene(seed, 0.5, crs_wkt=UTM52.to_wkt(), origin=(X0, Y0))
        result = count_railcars(render(scene, 0), drawn_track_lines(scene, seed), pixel_size_m=0.5)
        for t in result.tracks:
            true = sum(1 for r in scene.truth if r.get("track_id") == t.track_id)
            true_total += true
            abs_error += abs(t.count - true)
    assert true_total > 100
    # measured 4.6 % on these yards (it was 11 % before rails were used)
    assert abs_error / true_total <= 0.07


def test_count_rejects_an_image_without_bands():
    with pytest.raises(ValueError, match="bands, rows, cols"):
        count_railcars(np.zeros((10, 10)), {"a": np.array([[0, 0], [5, 5]])}, pixel_size_m=1.0)


# ---------------------------------------------------------------- CLI and files


@pytest.fixture()
def yard_tif(tmp_path):
    scene = planted_scene([5, 3], pixel_size_m=0.5)
    west, _, _, north = scene.bounds
    path = write_tif(tmp_path / "2024-05-01.tif", render(scene, 0), crs="EPSG:32652", origin=(west, north), pixel=0.5)
    tracks = {"type": "FeatureCollection", "features": []}
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(UTM52, "EPSG:4326", always_xy=True).transform
    for tid, ln in scene.tracks:
        coords = [list(to_lonlat(x, y)) for x, y in ln.coords]
        tracks["features"].append(
            {
                "type": "Feature",
                "properties": {"track_id": tid},
                "geometry": {"type": "LineString", "coordinates": coords},
            }
        )
    tracks_path = tmp_path / "tracks.geojson"
    tracks_path.write_text(json.dumps(tracks))
    return path, tracks_path, tracks


def test_cli_railcars_json_and_outputs(yard_tif, tmp_path):
    image, tracks_path, _ = yard_tif
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["railcars", str(image), "--tracks", str(tracks_path), "--json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    (img,) = doc["images"]
    assert img["date"] == "2024-05-01"
    found = {t["track_id"]: t["count"] for t in img["tracks"]}
    assert found["t1"] == 5 and abs(found["t2"] - 3) <= 1
    assert img["total"] == sum(found.values())
    assert set(img["tracks"][0]) == {"track_id", "count", "occupied_m", "method", "uncertainty"}
    cars = json.loads((out / "railcars.geojson").read_text())
    assert len(cars["features"]) == img["total"]
    assert (out / "railcars.csv").read_text().count("\n") == 3


@pytest.mark.parametrize(
    "problem, message",
    [
        ("outside", "track 't2' lies outside"),
        ("empty", "track 't2' has an empty geometry"),
        ("no_id", "feature 1 has no track_id"),
        ("point", "track 't2' is a Point"),
    ],
)
def test_cli_bad_tracks_name_the_track(yard_tif, tmp_path, problem, message):
    image, _, tracks = yard_tif
    feat = tracks["features"][1]
    if problem == "outside":
        feat["geometry"]["coordinates"] = [[c[0] + 0.5, c[1]] for c in feat["geometry"]["coordinates"]]
    elif problem == "empty":
        feat["geometry"]["coordinates"] = []
    elif problem == "no_id":
        feat["properties"] = {}
    else:
        feat["geometry"] = {"type": "Point", "coordinates": feat["geometry"]["coordinates"][0]}
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(tracks))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["railcars", str(image), "--tracks", str(bad), "-o", str(out)])
    assert res.exit_code == 2
    assert message in res.output
    assert not out.exists()


def test_timeline_on_sample_imagery_shows_the_rise(tmp_path):
    from conftest import SAMPLES

    images = sorted((SAMPLES / "tumangang-rail-crossing").glob("*.tif"))
    out = tmp_path / "tl"
    res = CliRunner().invoke(
        main,
        [
            "timeline",
            *map(str, images),
            "--aoi",
            "tumangang-rail-crossing",
            "-o",
            str(out),
            "--no-structures",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    totals = [d["railcars_total"] for d in doc["dates"]]
    assert [d["date"] for d in doc["dates"]] == ["2023-03-10", "2023-07-14", "2023-10-18"]
    assert totals[0] < totals[1] < totals[2]
    assert doc["statement"].startswith("railcars ×")
    for name in ("timeline.csv", "railcars.csv", "railcars.geojson", "timeline.png", "overlay.png", "timeline.json"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize("azimuth, expected", [(180.0, (0.0, -1.0)), (90.0, (-1.0, 0.0)), (315.0, (0.7071, 0.7071))])
def test_shadow_geometry_points_away_from_the_sun_in_pixel_coordinates(azimuth, expected):
    # a north-up image: rows grow southwards, so a shadow falling north moves up the rows
    geom = shadow_geometry(azimuth, 45.0, (3.0, 0.0, X0, 0.0, -3.0, Y0))
    assert np.allclose(geom.direction_px, expected, atol=1e-4)
    assert geom.per_height == pytest.approx(1.0)
    assert shadow_geometry(180.0, 30.0, (3.0, 0.0, X0, 0.0, -3.0, Y0)).per_height == pytest.approx(np.sqrt(3.0))
    with pytest.raises(ValueError, match="elevation"):
        shadow_geometry(180.0, 0.0, (3.0, 0.0, X0, 0.0, -3.0, Y0))


def test_image_sun_reads_stac_then_geotiff_tags(tmp_path):
    import rasterio

    from sitewatch.io import image_sun

    path = write_tif(tmp_path / "scene.tif", np.zeros((3, 4, 4)))
    assert image_sun(path) is None
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(sun_azimuth="151.5", sun_elevation="38.2")
    assert image_sun(path) == (151.5, 38.2)
    path.with_suffix(".json").write_text(
        json.dumps({"properties": {"view:sun_azimuth": -20.0, "view:sun_elevation": 61.0}})
    )
    assert image_sun(path) == (340.0, 61.0)  # the STAC item wins; azimuth folded into 0-360
    path.with_suffix(".json").write_text(
        json.dumps({"properties": {"view:sun_azimuth": 120.0, "view:sun_elevation": 95.0}})
    )
    assert image_sun(path) == (151.5, 38.2)  # an impossible elevation is not used


def test_low_sun_shadows_do_not_pull_coarse_lines_onto_themselves():
    """Yard 0 at 3 m (27 degree sun): the bed footprint alone slid the lines 7.6 m onto the shadows."""
    from shapely.geometry import LineString as Line

    scene = railyard_scene(0, 3.0, crs_wkt=UTM52.to_wkt(), origin=(X0, Y0))
    acq = scene.acquisitions[0]
    west, _, _, north = scene.bounds
    sun = shadow_geometry(acq.sun_azimuth_deg, acq.sun_elevation_deg, (3.0, 0.0, west, 0.0, -3.0, north))
    result = count_railcars(render(scene, 0), drawn_track_lines(scene, 0), pixel_size_m=3.0, sun=sun)
    for t in result.tracks:
        true = dict(scene.tracks)[t.track_id]
        xy = np.asarray(true.coords)
        true_px = Line(np.column_stack([(xy[:, 0] - west) / 3.0, (north - xy[:, 1]) / 3.0]))
        # every train found lies on its real track, ends and middle: its outline is one
        # side of the train forward, the other back
        for ring in t.runs_px:
            half = len(ring) // 2
            middle = Line((ring[:half] + ring[half:][::-1]) / 2)
            along = np.linspace(0.0, middle.length, max(2, int(middle.length * 3.0 / 2.0)))
            assert max(true_px.distance(middle.interpolate(d)) for d in along) * 3.0 < 1.5
    true_total = sum(1 for r in scene.truth if r.get("kind") == "railcar")
    assert sum(t.count for t in result.tracks) == pytest.approx(true_total, rel=0.2)
