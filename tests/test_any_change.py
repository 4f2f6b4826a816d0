"""Known-answer tests of the "change" method (every change, any pixel size) and of the hand-over
from the building methods at pixels too coarse for them."""

import json

import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner
from conftest import textured
from rasterio import features
from shapely.geometry import shape

from sitewatch.cli import main
from sitewatch.structures import DetectSettings, detect_structure_changes, method_for_pixel_size

PIXEL = 1.5
TRANSFORM = Affine(PIXEL, 0, 1000, 0, -PIXEL, 2000)
CHANGE = DetectSettings(method="change")
FIELD = np.array([0.36, 0.42, 0.20])
SOIL = np.array([0.45, 0.37, 0.28])


def scene(changed_rows, seed=0):
    """(3, 240, 240) fields at 1.5 m; rows ``changed_rows`` ploughed to bare soil on the second date."""
    tex = textured((240, 240), seed=seed) / 255.0
    before = FIELD[:, None, None] * (0.85 + 0.3 * tex) * 255
    after = before.copy()
    r0, r1 = changed_rows
    after[:, r0:r1] = SOIL[:, None, None] * (0.85 + 0.3 * tex[r0:r1]) * 255
    rng = np.random.default_rng(seed)
    return [(im + rng.normal(0, 2.0, im.shape)).astype(np.float32) for im in (before, after)]


@pytest.mark.parametrize("changed_rows", [(60, 120), (20, 200)], ids=["a quarter changed", "three quarters changed"])
def test_changed_ground_is_found_however_much_of_the_scene_changed(changed_rows):
    before, after = scene(changed_rows)
    res = detect_structure_changes(before, after, pixel_size_m=PIXEL, transform=TRANSFORM, settings=CHANGE)
    assert res.objects and {o.change for o in res.objects} == {"changed"}
    truth = np.zeros((240, 240), bool)
    truth[changed_rows[0] : changed_rows[1]] = True
    found = features.rasterize([(o.geometry, 1) for o in res.objects], out_shape=truth.shape, transform=TRANSFORM) > 0
    assert (found & truth).sum() / (found | truth).sum() > 0.85


def test_the_building_methods_hand_over_at_coarse_pixels():
    assert method_for_pixel_size("building", 1.0) == ("building", None)
    name, note = method_for_pixel_size("building", 1.1)
    assert name == "building" and "measured at 0.5-1 m" in note
    # beyond the network's trained pixels, building would be the roofs method alone
    name, note = method_for_pixel_size("building", 1.5)
    assert name == "change" and "trained on 0.3-1.2 m" in note
    assert method_for_pixel_size("roofs", 1.5)[0] == "roofs"  # it still runs there (unmeasured)
    for method in ("building", "roofs", "presence"):
        name, note = method_for_pixel_size(method, 10.0)
        assert name == "change" and "too coarse" in note and method in note
    assert method_for_pixel_size("change", 10.0)[0] == "change"


def test_detect_at_3_m_says_so_and_still_finds_the_new_hall(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["synth", "hamhung-feb11-plant", "--out", str(tmp_path / "img"), "--gsd", "3"])
    assert res.exit_code == 0, res.output
    before, after = sorted((tmp_path / "img").glob("*.tif"))[:2]
    res = runner.invoke(
        main, ["detect", str(before), str(after), "--aoi", "hamhung-feb11-plant", "-o", str(tmp_path / "run")]
    )
    assert res.exit_code == 0, res.output
    assert "too coarse for the 'building' method" in res.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["method"]["change"] == "change" and summary["method"]["asked"] == "building"
    truth = json.loads((tmp_path / "img" / "truth.geojson").read_text())
    hall = next(f for f in truth["features"] if f["properties"].get("id") == "new-assembly-building")
    changes = json.loads((tmp_path / "run" / "changes.geojson").read_text())
    hall_shape = shape(hall["geometry"])
    assert any(shape(c["geometry"]).intersection(hall_shape).area > 0.5 * hall_shape.area for c in changes["features"])
