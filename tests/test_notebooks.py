"""Both notebooks run top to bottom, and their maps hold the overlays and polygons, offline."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core warns about its old paths otherwise
nbformat = pytest.importorskip("nbformat", reason="the notebooks extra is not installed: pip install '.[notebooks]'")
nbclient = pytest.importorskip("nbclient", reason="the notebooks extra is not installed: pip install '.[notebooks]'")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name: str):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    return nb


def _map_html(nb) -> str:
    """The page inside the last map output (folium shows it in an iframe's srcdoc)."""
    pages = [
        out["data"]["text/html"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "text/html" in out.get("data", {}) and "srcdoc" in out["data"]["text/html"]
    ]
    assert pages, "no map output"
    srcdoc = re.search(r'srcdoc="(.*?)"', pages[-1], re.S).group(1)
    return html.unescape(srcdoc)


def _assert_offline(page: str) -> None:
    # no script, stylesheet or image fetched from anywhere: Leaflet is inlined from sitewatch's vendored copy
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=", page)
    assert not re.search(r'src="https?://', page)
    assert not re.search(r"url\((?!data:|#)", page)  # the stylesheet's images are inlined too
    assert "L.map(" in page and "L.control.layers(" in page
    assert "Leaflet 1.9.4" in page  # the vendored copy, not a CDN link


def _assert_controls(page: str, legend: list[str]) -> None:
    """A legend naming ``legend``, a before/after swipe over two image overlays, and a cursor readout."""
    assert "sitewatch-legend" in page
    for item in legend:
        assert item in page, item
    assert "sitewatch-swipe-range" in page and "clipPath" in page
    assert "sitewatch-cursor" in page and "e.latlng.lat.toFixed(6)" in page


@pytest.mark.parametrize("name", ["01_hamhung_new_structures.ipynb", "02_tumangang_railcars.ipynb"])
def test_committed_notebooks_carry_no_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip outputs before committing"


def test_hamhung_notebook_runs_and_maps_changes():
    nb = _run("01_hamhung_new_structures.ipynb")
    page = _map_html(nb)
    _assert_offline(page)
    # three toggleable rasters: before, after, change score
    assert page.count("L.imageOverlay(") == 3
    for layer in ("before 2023-06-15", "after 2024-10-20", "change score"):
        assert f'"{layer}"' in page, layer
    # the change polygons, with the popup fields an analyst needs
    found = re.search(r'"changes \((\d+)\)"', page)
    assert found and int(found.group(1)) >= 7  # the sample plants 7 new buildings (truth.geojson)
    assert page.count('"change": "new"') == int(found.group(1))
    for field in ("area_m2", "relative_size", "change"):
        assert f'"{field}"' in page
    _assert_controls(page, ["new structure", "removed structure", "reference building", "change score"])
    # popups in words: "Area: 5 700 m²", "63 % of Building B", the direction
    popups = re.findall(r"let fields = \[([^\]]*)\]", page)
    assert any('"Area"' in f and '"Relative size"' in f and "area_m2" not in f for f in popups), popups
    assert re.search(r'"Area": "\d{1,3}( \d{3})* m(²|\\u00b2)"', page)
    assert re.search(r'"Relative size": "\d+ % of Building [AB]"', page)
    assert '"Change": "new structure (#1)"' in page
    assert "L.GeoJSON" in page or "L.geoJson(" in page


def test_tumangang_notebook_runs_and_maps_railcars():
    nb = _run("02_tumangang_railcars.ipynb")
    page = _map_html(nb)
    _assert_offline(page)
    assert page.count("L.imageOverlay(") == 3  # one image per date
    for layer in ("rail tracks", "image 2023-03-10", "image 2023-10-18"):
        assert f'"{layer}"' in page, layer
    counts = [int(n) for n in re.findall(r'"railcars \d{4}-\d\d-\d\d \((\d+)\)"', page)]
    assert len(counts) == 3 and counts[-1] > 2 * counts[0]  # the sample's rise, 20 -> 73 planted
    assert page.count('"kind": "railcar"') == sum(counts)
    _assert_controls(page, ["railcar", "rail track", "new structure"])
    # the timeline chart is shown inline
    assert any(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
