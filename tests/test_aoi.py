import json

import pytest
from click.testing import CliRunner
from conftest import AOI_DIR

from sitewatch.aoi import aoi_problems, list_site_files, load_aoi, resolve_site
from sitewatch.cli import main
from sitewatch.errors import AOIError, SitewatchError

SITES = {"hamhung-feb11-plant", "tumangang-rail-crossing", "sinuiju-instrument-factory", "hamhung-feb8-vinalon"}


def test_bundled_sites_are_valid_and_complete():
    files = list_site_files(AOI_DIR)
    assert {p.stem for p in files} == SITES
    for p in files:
        assert aoi_problems(p) == [], p
        site = load_aoi(p)
        assert site.site_id == p.stem
        assert site.by_role("footprint")
        assert all(f.basis in ("source", "estimate") for f in site.features)


def test_hamhung_source_points_and_footprint_size():
    site = resolve_site("hamhung-feb11-plant")
    pts = {f.name: f.geometry for f in site.by_role("source_point")}
    b = pts["Building B (source point)"]
    assert (round(b.y, 6), round(b.x, 6)) == (39.920212, 127.657091)
    assert 15.0 < site.footprint_area_m2() / 1e6 < 17.0  # about 4 km square
    refs = {f.name: f for f in site.by_role("reference_structure")}
    assert set(refs) == {"Building A", "Building B"} and all(f.basis == "estimate" for f in refs.values())


def test_tumangang_tracks_have_ids_and_lie_in_footprint():
    site = resolve_site("tumangang-rail-crossing")
    tracks = site.by_role("rail_track")
    assert len(tracks) >= 5
    assert len({t.track_id for t in tracks}) == len(tracks)
    assert all(site.footprint.contains(t.geometry) for t in tracks)


def _broken(tmp_path, mutate):
    doc = json.loads((AOI_DIR / "hamhung-feb11-plant.geojson").read_text())
    mutate(doc)
    path = tmp_path / "broken.geojson"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["features"][3]["properties"].pop("role"), "feature 3 ('Building B')"),
        (lambda d: d["features"][3]["properties"].update(role="tower"), "'tower' is not one of"),
        (
            lambda d: d["features"][3].update(
                geometry={"type": "LineString", "coordinates": [[127.6, 39.9], [127.7, 39.9]]}
            ),
            "feature 3",
        ),
        (
            lambda d: d["features"][1].update(geometry={"type": "Point", "coordinates": [39.92, 127.65]}),
            "outside lon/lat range",
        ),
        (
            lambda d: d["features"][1]["properties"].update(source_ids=["nowhere"]),
            "'nowhere', which is not in the site's sources",
        ),
        (
            lambda d: d.update(features=[f for f in d["features"] if f["properties"]["role"] != "footprint"]),
            "no feature has role 'footprint'",
        ),
        (lambda d: d["properties"].pop("sources"), "'sources' is a required property"),
    ],
)
def test_broken_files_name_the_problem(tmp_path, mutate, expected):
    path = _broken(tmp_path, mutate)
    problems = aoi_problems(path)
    assert any(expected in p for p in problems), problems
    with pytest.raises(AOIError, match="broken.geojson"):
        load_aoi(path)


def test_rail_track_requires_track_id(tmp_path):
    doc = json.loads((AOI_DIR / "tumangang-rail-crossing.geojson").read_text())
    idx = next(i for i, f in enumerate(doc["features"]) if f["properties"]["role"] == "rail_track")
    del doc["features"][idx]["properties"]["track_id"]
    path = tmp_path / "t.geojson"
    path.write_text(json.dumps(doc))
    assert any(f"feature {idx}" in p and "track_id" in p for p in aoi_problems(path))


def test_not_json_and_missing_file(tmp_path):
    bad = tmp_path / "x.geojson"
    bad.write_text("{not json")
    assert "not valid JSON" in aoi_problems(bad)[0]
    assert "cannot read" in aoi_problems(tmp_path / "missing.geojson")[0]


def test_errors_are_also_builtins():
    assert issubclass(AOIError, ValueError) and issubclass(AOIError, SitewatchError)


def test_cli_list_show_validate(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["aoi", "list", "--json"])
    assert res.exit_code == 0, res.output
    assert {s["site_id"] for s in json.loads(res.output)} == SITES

    res = runner.invoke(main, ["aoi", "show", "tumangang-rail-crossing"])
    assert res.exit_code == 0 and "rail_track" in res.output and "wikipedia-tumangang" in res.output

    res = runner.invoke(main, ["aoi", "validate", *map(str, list_site_files(AOI_DIR))])
    assert res.exit_code == 0, res.output

    bad = _broken(tmp_path, lambda d: d["features"][3]["properties"].update(role="tower"))
    res = runner.invoke(main, ["aoi", "validate", str(AOI_DIR / "hamhung-feb8-vinalon.geojson"), str(bad)])
    assert res.exit_code == 2  # bad input, as for every command
    assert f"error: {bad}" in res.output and "Building B" in res.output

    res = runner.invoke(main, ["aoi", "show", "no-such-site"])
    assert res.exit_code == 2 and "unknown site 'no-such-site'" in res.output
