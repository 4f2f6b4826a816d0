"""Progress on a terminal, silence when piped or with -q, and -v logs of each stage."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import AOI_DIR, SAMPLES

from sitewatch import cli
from sitewatch.cli import main

TUMANGANG = sorted(str(p) for p in (SAMPLES / "tumangang-rail-crossing").glob("*.tif"))
RAILCARS = ["railcars", *TUMANGANG, "--aoi", str(AOI_DIR / "tumangang-rail-crossing.geojson")]


@pytest.fixture
def terminal(monkeypatch):
    monkeypatch.setattr(cli, "_stderr_is_tty", lambda: True)


def test_progress_on_a_terminal(terminal):
    res = CliRunner().invoke(main, RAILCARS)
    assert res.exit_code == 0, res.output
    for i, path in enumerate(TUMANGANG):
        name = path.rsplit("/", 1)[-1]
        assert f"counting railcars in {name} ({i + 1}/{len(TUMANGANG)})" in res.stderr
    assert "railcars" in res.stdout


def test_quiet_with_q_even_on_a_terminal(terminal):
    res = CliRunner().invoke(main, ["-q", *RAILCARS])
    assert res.exit_code == 0, res.output
    assert res.stderr == "" and res.stdout == ""


def test_quiet_when_piped():
    res = CliRunner().invoke(main, [*RAILCARS, "--json"])  # CliRunner's stderr is not a terminal
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    assert len(json.loads(res.stdout)["images"]) == len(TUMANGANG)  # stdout stays clean JSON


def test_verbose_logs_each_stage(tmp_path):
    site = SAMPLES / "hamhung-feb11-plant"
    res = CliRunner().invoke(
        main,
        [
            "-v",
            "detect",
            str(site / "2023-06-15.tif"),
            str(site / "2024-10-20.tif"),
            "--aoi",
            str(AOI_DIR / "hamhung-feb11-plant.geojson"),
            "-o",
            str(tmp_path / "out"),
        ],
    )
    assert res.exit_code == 0, res.output
    log = res.stderr
    for stage in (
        "read 2023-06-15.tif",
        "shift of 2024-10-20.tif",
        "normalised 2024-10-20.tif",
        "change objects",
        "wrote changes.geojson",
    ):
        assert stage in log, stage
    assert all(line.startswith("INFO ") for line in log.strip().splitlines())
