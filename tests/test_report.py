"""``sitewatch report``: one self-contained HTML page with the panels, the polygons and the tables."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from conftest import AOI_DIR, SAMPLES
from PIL import Image
from shapely.geometry import shape

from sitewatch.cli import main
from sitewatch.io import spaced_mgrs
from sitewatch.report.html import output_schema


class _Page(HTMLParser):
    """Collects embedded images, SVG polygons, table rows and any external reference."""

    def __init__(self):
        super().__init__()
        self.images: list[tuple[str, bytes]] = []  # (alt, decoded bytes)
        self.polygons: list[dict[str, str]] = []
        self.rows: dict[str, list[str]] = {}
        self.external: list[str] = []
        self.tags: list[str] = []
        self._row: str | None = None
        self._cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for key in ("src", "href"):
            v = a.get(key) or ""
            if key == "src" or tag in ("link", "image", "script"):
                if v.startswith("data:image/"):
                    self.images.append((a.get("alt", tag), base64.b64decode(v.split(",", 1)[1])))
                elif v:
                    self.external.append(f"{tag} {key}={v[:60]}")
        if tag == "polygon":
            self.polygons.append(a)
        if tag == "tr" and a.get("id"):
            self._row, self._cells = a["id"], []
        if tag == "td" and self._row:
            self._in_cell = True
            self._cells.append("")

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_cell = False
        if tag == "tr" and self._row:
            self.rows[self._row] = self._cells
            self._row = None

    def handle_data(self, data):
        if self._in_cell:
            self._cells[-1] += data


def _parse(path: Path) -> tuple[_Page, str]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return page, text


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "hamhung"
    site = SAMPLES / "hamhung-feb11-plant"
    res = CliRunner().invoke(
        main,
        [
            "detect",
            str(site / "2023-06-15.tif"),
            str(site / "2024-10-20.tif"),
            "--aoi",
            str(AOI_DIR / "hamhung-feb11-plant.geojson"),
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def timeline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tumangang"
    images = sorted(str(p) for p in (SAMPLES / "tumangang-rail-crossing").glob("*.tif"))
    res = CliRunner().invoke(
        main, ["timeline", *images, "--aoi", str(AOI_DIR / "tumangang-rail-crossing.geojson"), "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    return out


def test_detect_report_has_panels_polygons_and_table(detect_run, tmp_path):
    target = tmp_path / "hamhung.html"
    res = CliRunner().invoke(main, ["report", str(detect_run), "-o", str(target)])
    assert res.exit_code == 0, res.output
    page, text = _parse(target)
    changes = json.loads((detect_run / "changes.geojson").read_text())["features"]
    assert len(changes) >= 7  # the sample plants seven new buildings

    # self-contained: nothing to fetch, no script at all
    assert page.external == [] and "script" not in page.tags and "link" not in page.tags
    # the overlay panel (before | after | change), and under the polygons the before and after imagery and
    # the change score (each also in the side-by-side view), all decodable
    sizes = [Image.open(io.BytesIO(data)).size for _, data in page.images]
    assert len(sizes) == 6 and all(w >= 500 and h >= 300 for w, h in sizes)
    layers = re.findall(r'<image class="layer (\w+)"', text)
    assert layers == ["before", "after", "score"]
    assert text.count('<use href="#change-shapes"') == 2  # the side-by-side view reuses the polygons
    # one SVG polygon per change, coloured by direction, linked to its table row
    assert sorted(int(p["data-id"]) for p in page.polygons) == list(range(1, len(changes) + 1))
    for p in page.polygons:
        props = changes[int(p["data-id"]) - 1]["properties"]
        assert p["class"] == f"change {props['change']}" + (" low" if props["confidence"] == "low" else "")
    # the table: one row per change, the area as in changes.geojson
    assert sorted(page.rows) == sorted(f"change-{i}" for i in range(1, len(changes) + 1))
    for f in changes:
        cells = page.rows[f"change-{f['properties']['id']}"]
        p = f["properties"]
        assert cells[1] == p["change"]
        assert int(cells[2].replace(",", "")) == round(p["area_m2"])
        # confidence, where (lat, lon, MGRS as written by hand) and the stable id
        assert cells[6:] == [
            p["confidence"],
            f"{p['lat']:.6f}",
            f"{p['lon']:.6f}",
            spaced_mgrs(p["mgrs"]),
            p["change_id"],
        ]
    # scale bar, north arrow and the score's colour scale
    assert 'class="scalebar"' in text and 'class="north"' in text and 'class="colour-scale"' in text
    # site, sources, dates and the shift found
    summary = json.loads((detect_run / "summary.json").read_text())
    assert summary["site_name"] in text and "https://www.armscontrolwonk.com/" in text
    assert "2023-06-15" in text and "2024-10-20" in text
    assert f"{summary['shift']['shift_px'][0]:+.2f} px" in text


def test_timeline_report_has_chart_railcars_and_statement(timeline_run):
    res = CliRunner().invoke(main, ["report", str(timeline_run)])
    assert res.exit_code == 0, res.output
    page, text = _parse(timeline_run / "report.html")
    tl = json.loads((timeline_run / "timeline.json").read_text())
    assert page.external == [] and "script" not in page.tags
    assert len(page.images) == 2  # the timeline chart and the first/last overlay
    assert tl["statement"].replace("→", "&#x2192;") in text or tl["statement"] in text
    # timeline.json follows its shipped schema, with its version
    jsonschema.validate(tl, output_schema("timeline.json"))
    assert tl["schema_version"] == "1.0"
    # railcars.geojson is RFC 7946 (exterior rings counter-clockwise, 7 decimals), with its QGIS style beside it
    cars = json.loads((timeline_run / "railcars.geojson").read_text())["features"]
    assert cars and all(shapely.is_ccw(shape(f["geometry"]).exterior) for f in cars)
    assert max(len(d) for d in re.findall(r"\.(\d+)", json.dumps([f["geometry"] for f in cars]))) <= 7
    assert "<qgis " in (timeline_run / "railcars.qml").read_text()
    # the method says how railcars were counted, not only the software versions
    method = text[text.index('<section id="method">') :]
    assert "Railcars were counted along each AOI rail track" in method and "semi-Markov" in method
    tracks = [t["track_id"] for t in tl["images"][0]["tracks"]]
    for row in tl["dates"]:
        assert f"<td>{row['date']}</td>" in text
    # one row per date and track in the railcar table, counts as in timeline.json
    railcar_rows = [line for line in text.split("<tr>") if "individual-cars" in line or "occupied-length" in line]
    assert len(railcar_rows) == len(tl["dates"]) * len(tracks)


def test_report_refuses_bad_folders_and_keeps_existing_report(detect_run, tmp_path):
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(main, ["report", str(empty)])
    assert res.exit_code == 2 and str(empty) in res.output and "no sitewatch outputs" in res.output
    assert not (empty / "report.html").exists()

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    res = runner.invoke(main, ["report", str(broken)])
    assert res.exit_code == 2 and "summary.json" in res.output and "not valid JSON" in res.output

    target = tmp_path / "r.html"
    target.write_text("keep me")
    res = runner.invoke(main, ["report", str(detect_run), "-o", str(target)])
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert target.read_text() == "keep me"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _screenshot(page: Path, shot: Path, tmp_path: Path, size: str) -> None:
    # the flags keep Chromium off the network entirely (this machine has none anyway)
    subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            f"--window-size={size}",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed (apt-get install chromium); .ci/run installs it")
def test_report_renders_in_headless_browser(detect_run, tmp_path):
    target = tmp_path / "report.html"
    assert CliRunner().invoke(main, ["report", str(detect_run), "-o", str(target)]).exit_code == 0
    shot = tmp_path / "shot.png"
    _screenshot(target, shot, tmp_path, "1200,2600")
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert rgb.shape[:2] == (2600, 1200)
    # the panels rendered: plenty of imagery colours, not a blank page
    assert len(np.unique(rgb[::4, ::4].reshape(-1, 3), axis=0)) > 2000
    # the change polygons rendered in their colour (#e8412c for "new")
    red = np.abs(rgb - [232, 65, 44]).sum(axis=2) < 40
    assert red.sum() > 500

    # the interactive panel alone, on a magenta page: by default the after image is under the polygons
    # (few dark pixels); the change score it replaced is mostly dark (magma below the threshold)
    alone = "html,body{background:#f0f!important}body>header,section:not(#viewer),footer,.viewer>label,"
    alone += ".viewer>input,#viewer h2,.colour-scale,.note{display:none}"
    score_only = ".viewer .layer.after{display:none!important}.viewer .layer.score{display:inline!important}"
    dark = {}
    for name, css in (("imagery", alone), ("score", alone + score_only)):
        page_file = tmp_path / f"{name}.html"
        page_file.write_text(target.read_text().replace("</style>", css + "</style>"))
        _screenshot(page_file, shot, tmp_path, "900,900")
        rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
        panel = rgb[np.abs(rgb - [255, 0, 255]).sum(axis=2) >= 30]
        assert len(panel) > 0.8 * 900 * 900
        dark[name] = (panel.max(axis=1) < 50).mean()
    assert dark["imagery"] < 0.2 and dark["score"] > 0.6, dark
    red = np.abs(rgb - [232, 65, 44]).sum(axis=2) < 40
    assert red.sum() > 100  # the polygons drawn over it


def test_a_run_file_with_infinity_or_nan_is_refused_not_a_traceback(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    doc = {
        "schema_version": "1.0",
        "images": [
            {
                "path": "a.tif",
                "date": "2024-01-01",
                "total": 1,
                "uncertainty": 0.0,
                "method": "individual",
                "pixel_size_m": 0.5,
                "line_shift_px": [0, 0],
                "tracks": [],
            }
        ],
    }
    for bad in ("Infinity", "NaN"):
        (run / "railcars.json").write_text(json.dumps(doc).replace('"uncertainty": 0.0', f'"uncertainty": {bad}'))
        res = CliRunner().invoke(main, ["report", str(run)])
        assert res.exit_code == 2 and f"{bad} is not a JSON number" in res.output, res.output
        assert not (run / "report.html").exists()
