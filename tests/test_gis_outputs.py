"""What an analyst opens: RFC 7946 GeoJSON, a styled GPKG, GeoParquet, the fields, the score band, the schemas."""

from __future__ import annotations

import importlib
import json
import re
import sqlite3
import xml.etree.ElementTree as ET

import geopandas as gpd
import jsonschema
import numpy as np
import pytest
import rasterio
import shapely
from conftest import SAMPLES
from shapely.geometry import Polygon, shape

from sitewatch.io import clean_outline, spaced_mgrs, stable_id
from sitewatch.io.gis import GEOJSON_DECIMALS, OUTLINE_AREA_TOLERANCE
from sitewatch.pipeline import detect
from sitewatch.pipeline.vectors import change_records
from sitewatch.report.html import output_schema

FIELDS = ("id", "change_id", "change", "confidence", "site_id", "date_before", "date_after", "lat", "lon", "mgrs")


@pytest.fixture(scope="module")
def sinuiju(tmp_path_factory):
    out = tmp_path_factory.mktemp("gis") / "sinuiju"
    site = SAMPLES / "sinuiju-instrument-factory"
    result = detect(site / "2022-09-05.tif", site / "2024-04-12.tif", "sinuiju-instrument-factory", out_dir=out)
    return result, out


def test_geojson_is_rfc7946_right_hand_rule_and_7_decimals(sinuiju):
    _, out = sinuiju
    text = (out / "changes.geojson").read_text()
    doc = json.loads(text)
    assert "crs" not in doc  # RFC 7946 has no crs member: lon/lat WGS 84
    assert len(doc["features"]) == 6  # three workshops removed, three buildings new
    for f in doc["features"]:
        geom = shape(f["geometry"])
        for poly in getattr(geom, "geoms", [geom]):
            assert shapely.is_ccw(poly.exterior), f["properties"]["id"]  # exterior counter-clockwise
            assert not any(shapely.is_ccw(ring) for ring in poly.interiors)  # holes clockwise
        lon, lat = f["geometry"]["coordinates"][0][0]
        assert 124 < lon < 125 and 40 < lat < 41
    decimals = [len(d) for d in re.findall(r"-?\d+\.(\d+)", json.dumps([f["geometry"] for f in doc["features"]]))]
    assert max(decimals) <= GEOJSON_DECIMALS


def test_each_feature_says_what_where_when_and_which(sinuiju):
    result, out = sinuiju
    feats = json.loads((out / "changes.geojson").read_text())["features"]
    for f in feats:
        p = f["properties"]
        assert all(k in p for k in FIELDS), sorted(p)
        assert p["site_id"] == "sinuiju-instrument-factory"
        assert (p["date_before"], p["date_after"]) == ("2022-09-05", "2024-04-12")
        centre = shape(f["geometry"]).centroid
        assert (p["lon"], p["lat"]) == pytest.approx((centre.x, centre.y), abs=2e-5)  # about 2 m
        assert p["mgrs"].startswith("51TXE") and len(p["mgrs"]) == 15  # zone 51T, 1 m digits
        assert p["change_id"] == stable_id(p["site_id"], ("2022-09-05", "2024-04-12"), p["change"], p["lat"], p["lon"])
    ids = [f["properties"]["change_id"] for f in feats]
    assert len(set(ids)) == len(ids)
    # stable: the same objects in another order keep their ids
    result.changes.objects.reverse()
    try:
        again = {r["change_id"] for r in change_records(result)}
    finally:
        result.changes.objects.reverse()
    assert again == set(ids)
    assert spaced_mgrs("51TXE1912539846") == "51T XE 19125 39846"


def test_low_confidence_objects_are_marked_everywhere_and_still_reported(sinuiju, tmp_path, monkeypatch):
    # The default method reports nothing below LOW_CONFIDENCE_SCORE on the samples any more, so
    # the bar is raised between the new buildings' scores and the removed workshops' for this run
    result, _ = sinuiju
    new = max(o.score for o in result.objects if o.change == "new")
    removed = min(o.score for o in result.objects if o.change == "removed")
    assert new < removed
    bar = (new + removed) / 2
    for module in ("sitewatch.structures.objects", "sitewatch.pipeline.detect"):
        monkeypatch.setattr(importlib.import_module(module), "LOW_CONFIDENCE_SCORE", bar)
    site = SAMPLES / "sinuiju-instrument-factory"
    out = tmp_path / "run"
    again = detect(site / "2022-09-05.tif", site / "2024-04-12.tif", "sinuiju-instrument-factory", out_dir=out)
    feats = json.loads((out / "changes.geojson").read_text())["features"]
    assert len(feats) == len(again.objects) == 6  # nothing dropped
    for f in feats:
        p = f["properties"]
        assert p["confidence"] == ("low" if p["score"] < bar else "high")
    # largest first: the three removed workshops (high), then the three new buildings (low)
    assert [f["properties"]["confidence"] for f in feats] == ["high"] * 3 + ["low"] * 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["confidence"] == {"low_below_score": bar, "low": {"new": 3, "removed": 0, "changed": 0}}
    gpkg = gpd.read_file(out / "changes.gpkg", layer="changes")
    assert list(gpkg["confidence"]) == ["high"] * 3 + ["low"] * 3


def test_outlines_lose_their_staircase_but_not_their_area(sinuiju):
    result, out = sinuiju
    gpkg = gpd.read_file(out / "changes.gpkg", layer="changes")
    traced = {i + 1: o.geometry for i, o in enumerate(result.objects)}
    for _, row in gpkg.iterrows():
        before = len(traced[row["id"]].exterior.coords)
        after = len(row.geometry.exterior.coords)
        assert after <= before
        assert abs(row.geometry.area / row["area_m2"] - 1) <= 0.02
    # the three removed workshops are rectangles: fewer than half of their traced vertices remain
    removed = gpkg[gpkg["change"] == "removed"]
    assert all(
        len(g.exterior.coords) < 0.7 * len(traced[i].exterior.coords) for i, g in zip(removed["id"], removed.geometry)
    )
    rects = gpd.read_file(out / "changes.gpkg", layer="changes_rectangles")
    assert len(rects) == len(gpkg) and all(len(g.exterior.coords) == 5 for g in rects.geometry)


def test_clean_outline_straightens_a_jagged_rectangle():
    # a 40 x 15 px rectangle with one-pixel bumps along its long sides
    ring = [(0, 0), (40, 0), (40, 15)]
    for x in range(38, 0, -4):
        ring += [(x, 15), (x, 16), (x - 1, 16), (x - 1, 15)]
    ring += [(0, 15)]
    jagged = Polygon(ring)
    clean = clean_outline(jagged, 1.0)
    assert len(clean.exterior.coords) <= 6
    assert abs(clean.area / jagged.area - 1) <= OUTLINE_AREA_TOLERANCE


def test_gpkg_and_geojson_open_styled_in_qgis(sinuiju):
    _, out = sinuiju
    with sqlite3.connect(out / "changes.gpkg") as db:
        styles = dict(db.execute("SELECT f_table_name, styleQML FROM layer_styles WHERE useAsDefault = 1").fetchall())
        kinds = dict(db.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
    assert set(styles) == {"changes", "changes_rectangles"}
    assert kinds["layer_styles"] == "attributes"
    for qml in (styles["changes"], (out / "changes.qml").read_text()):
        root = ET.fromstring(qml.split("\n", 1)[1])
        assert root.tag == "qgis" and root.get("labelsEnabled") == "1"
        assert root.find("labeling/settings/text-style").get("fieldName") == "id"
        rules = root.findall("renderer-v2/rules/rule")
        symbols = {s.get("name"): s for s in root.findall("renderer-v2/symbols/symbol")}
        colour = {}
        for rule in rules:
            sym = symbols[rule.get("symbol")]
            outline = sym.find("layer/Option/Option[@name='outline_color']").get("value")
            colour[rule.get("label")] = outline
        assert colour["new"] == "232,65,44,255" and colour["removed"] == "44,123,232,255"  # red, blue
        assert colour["new (low confidence)"] == colour["new"]


def test_geoparquet_round_trips(sinuiju):
    _, out = sinuiju
    gpkg = gpd.read_file(out / "changes.gpkg", layer="changes")
    parquet = gpd.read_parquet(out / "changes.parquet")
    assert parquet.crs == gpkg.crs and parquet.crs.to_epsg() == 32651
    assert list(parquet.columns) == list(gpkg.columns)
    assert all(a.equals_exact(b, 1e-6) for a, b in zip(parquet.geometry, gpkg.geometry))
    assert parquet.drop(columns="geometry").equals(gpkg.drop(columns="geometry"))


def test_score_band_carries_description_and_units(sinuiju):
    _, out = sinuiju
    with rasterio.open(out / "change_score.tif") as src:
        assert src.descriptions[0].startswith("change score: ")
        assert src.units == ("1",)
        assert src.tags()["threshold"] == "0.4500"


def test_summary_validates_against_its_schema_with_a_version(sinuiju):
    _, out = sinuiju
    doc = json.loads((out / "summary.json").read_text())
    schema = output_schema("summary.json")
    jsonschema.validate(doc, schema)
    assert doc["schema_version"] == schema["properties"]["schema_version"]["const"]
    for broken in ({k: v for k, v in doc.items() if k != "schema_version"}, {**doc, "schema_version": "0.9"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_unknown_dates_are_said_to_be_unknown(sinuiju):
    result, _ = sinuiju
    from sitewatch.pipeline._common import unknown_dates

    reasons = unknown_dates({"before": None, "after": "2024-04-12"})
    assert list(reasons) == ["before"] and reasons["before"].startswith("unknown: ")
    assert "unknown" not in result.summary["dates"]  # both dates known here
    schema = output_schema("summary.json")
    jsonschema.validate({**result.summary, "dates": {"before": None, "after": "x", "unknown": reasons}}, schema)
    assert np.isfinite(result.summary["pixel_size_m"])


def test_report_refuses_an_unversioned_summary_saying_why(sinuiju, tmp_path):
    from click.testing import CliRunner

    from sitewatch.cli import main

    _, out = sinuiju
    doc = json.loads((out / "summary.json").read_text())
    del doc["schema_version"]
    (tmp_path / "summary.json").write_text(json.dumps(doc))
    res = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "summary.json: has no schema_version" in res.output
    assert not (tmp_path / "report.html").exists()
