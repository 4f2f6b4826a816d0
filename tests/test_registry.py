"""One registry of change methods: a method added to ``sitewatch.structures.METHODS`` is offered by
``detect``, ``evaluate``, their ``--help`` and the report, with no other change."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import SAMPLES
from scipy import ndimage
from test_evaluate import _planted_set

from sitewatch.cli import main
from sitewatch.structures import METHODS, ChangeArea, ChangeMethod, DetectSettings, Evidence, StructureChanges
from sitewatch.structures.objects import measured_objects

TOY_GAIN = 40.0  # band-mean brightness gained, in the images' units, that the toy calls new


def toy_changes(
    before: np.ndarray, after: np.ndarray, evidence: Evidence, area: ChangeArea, settings: DetectSettings
) -> StructureChanges:
    """Whatever got much brighter is new."""
    score = (after.mean(axis=0) - before.mean(axis=0)).astype(np.float32)
    lab, n = ndimage.label(area.valid & (score > TOY_GAIN))
    objects, keep = measured_objects(
        lab, n, "new", score, area=area, min_area_m2=settings.min_area_m2, min_rectangularity=0.0, dropped={}
    )
    return StructureChanges(objects, score, keep[lab].astype(np.int8), TOY_GAIN, {"toy": True})


@pytest.fixture
def toy(monkeypatch):
    method = ChangeMethod(
        toy_changes,
        summary="brightness gained, thresholded",
        score_description="toy: band-mean brightness gained",
        pixel_size_range_m=(0.1, 10.0),
    )
    monkeypatch.setitem(METHODS, "toy", method)
    return method


@pytest.mark.parametrize("command", ["detect", "evaluate"])
def test_help_offers_a_registered_method(toy, command):
    res = CliRunner().invoke(main, [command, "--help"])
    assert res.exit_code == 0, res.output
    assert "building|roofs|presence|change|cva|log_ratio|toy" in res.output
    assert "brightness gained" in " ".join(res.output.split())  # its summary, however the help is wrapped


def test_detect_runs_a_registered_method_and_describes_its_score(toy, tmp_path):
    before, after = sorted((SAMPLES / "hamhung-feb11-plant").glob("*.tif"))[:2]
    out = tmp_path / "run"
    res = CliRunner().invoke(
        main, ["detect", str(before), str(after), "--aoi", "hamhung-feb11-plant", "-o", str(out), "--method", "toy"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"]["change"] == "toy" and summary["stats"] == {"toy": True}
    with rasterio.open(out / "change_score.tif") as src:
        assert src.tags()["description"] == toy.score_description
    res = CliRunner().invoke(main, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert toy.score_description in (out / "report.html").read_text()


def test_evaluate_runs_a_registered_method(toy, tmp_path):
    root = _planted_set(tmp_path / "set", n=1)
    res = CliRunner().invoke(main, ["evaluate", str(root), "--gsd", "0.5", "--json", "--method", "toy"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # the planted building is pale on darker ground: brightness gained finds it
    assert out["pairs"] == 1 and out["recall"] > 0.8


def test_an_unregistered_method_is_refused(tmp_path):
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path), "--gsd", "0.5", "--method", "toy"])
    assert res.exit_code == 2 and "toy" in res.output
