"""search and fetch against a static STAC catalog served over HTTP on 127.0.0.1 (no other network).

The catalog (tests/data/stac/generate.py) is built from Tumangang's synthetic images; the
test AOI is Tumangang's with its footprint moved inside those images. The server honours
HTTP Range requests, as COG reads need, and logs every request.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import AOI_DIR, FIXTURES
from pyproj import Transformer
from rasterio.windows import from_bounds

from sitewatch.cli import main

_spec = importlib.util.spec_from_file_location("stac_catalog", FIXTURES / "stac" / "generate.py")
stac_catalog = importlib.util.module_from_spec(_spec)
sys.modules["stac_catalog"] = stac_catalog  # dataclasses look their module up
_spec.loader.exec_module(stac_catalog)

SITE = "tumangang-rail-crossing"
SOURCE_GSD_M = 1.0
# the test footprint: the synthetic images' extent less this share of it on every side (the items'
# COGs are wider still, generate.PAD_PX)
FOOTPRINT_INSET = 0.1


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=a-b`` answered by 206 Partial Content; every request logged."""

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    def _open(self):
        self.server.log.append((self.command, self.path, self.headers.get("Range")))
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return None, 0
        size = os.path.getsize(path)
        start, end = 0, size - 1
        spec = self.headers.get("Range")
        if spec and spec.startswith("bytes="):
            first, _, last = spec[6:].split(",")[0].partition("-")
            start, end = (int(first), min(int(last or size - 1), size - 1)) if first else (size - int(last), size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", self.guess_type(path))
        self.end_headers()
        fh = open(path, "rb")  # noqa: SIM115 (closed by the caller)
        fh.seek(start)
        return fh, end - start + 1

    def do_POST(self):
        """A STAC API's ``/search``: every item of the asked collection, asset hrefs made absolute."""
        self.server.log.append((self.command, self.path, None))
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        root = Path(self.directory)
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        features = []
        for path in sorted(root.glob(f"{stac_catalog.COLLECTION}/*/*.json")):
            item = json.loads(path.read_text())
            if item["collection"] not in body.get("collections", [item["collection"]]):
                continue
            for asset in item["assets"].values():
                asset["href"] = base + "/" + str((path.parent / asset["href"]).resolve().relative_to(root.resolve()))
            item["links"] = []
            features.append(item)
        payload = json.dumps({"type": "FeatureCollection", "features": features, "links": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/geo+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_HEAD(self):
        fh, _ = self._open()
        if fh:
            fh.close()

    def do_GET(self):
        fh, length = self._open()
        if fh:
            with fh:
                self.wfile.write(fh.read(length))


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    """The static catalog and its COGs, built once for the module; and the test AOI folder."""
    from sitewatch.pipeline import synthesize

    root = tmp_path_factory.mktemp("stac")
    images = synthesize(SITE, root / "synth", pixel_size_m=SOURCE_GSD_M)[:-1]
    paths = stac_catalog.build_catalog(root / "catalog", images)
    with rasterio.open(images[0]) as src:
        west, south, east, north = src.bounds
        crs = src.crs
    dx, dy = FOOTPRINT_INSET * (east - west), FOOTPRINT_INSET * (north - south)
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    w, s, e, n = to_lonlat.transform_bounds(west + dx, south + dy, east - dx, north - dy)
    aoi = json.loads((AOI_DIR / f"{SITE}.geojson").read_text())
    for f in aoi["features"]:
        if f["properties"]["role"] == "footprint":
            f["geometry"] = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    (root / "aoi").mkdir()
    (root / "aoi" / f"{SITE}.geojson").write_text(json.dumps(aoi))
    return root, paths


@pytest.fixture
def served(catalog_dir, monkeypatch, tmp_path):
    """The catalog on http://127.0.0.1:PORT/, the request log, a fresh cache, and GDAL told not to cache."""
    root, paths = catalog_dir
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(root / "catalog")))
    server.log = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("SITEWATCH_AOI_DIR", str(root / "aoi"))
    monkeypatch.setenv("SITEWATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    monkeypatch.setenv("VSI_CACHE", "FALSE")
    monkeypatch.setenv("CPL_VSIL_CURL_NON_CACHED", f"/vsicurl/{base}")
    yield base, server.log, paths
    server.shutdown()
    server.server_close()


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _search_args(base, *extra):
    return ["--catalog", f"{base}/catalog.json", "--from", "2023-01-01", "--to", "2023-12-31", *extra]


def test_search_filters_by_date_cloud_and_aoi_coverage(served):
    base, _, _ = served
    res = _run("search", SITE, *_search_args(base, "--max-cloud", "20", "--json"))
    assert res.exit_code == 0, res.output
    found = {f["id"]: f for f in json.loads(res.output)}
    # 2022-12-01 is before --from, 2023-09-01 has 85 % cloud, 2023-09-15 covers under half the AOI
    assert sorted(found) == ["S2A_TEST_20230310", "S2A_TEST_20230820", "S2A_TEST_20231018", "S2B_TEST_20230714"]
    first = found["S2A_TEST_20230310"]
    assert first["date"] == "2023-03-10" and first["cloud_cover"] == 3.0
    assert first["aoi_coverage"] == pytest.approx(1.0)
    assert first["pixel_size_m"] == SOURCE_GSD_M
    assert first["sun_azimuth"] is not None and 0 < first["sun_elevation"] < 90
    # without the cloud limit the overcast item is listed; a low coverage floor lets the strip in
    res = _run("search", SITE, *_search_args(base, "--min-coverage", "0.1", "--json"))
    strip = {f["id"]: f for f in json.loads(res.output)}
    assert {"S2B_TEST_20230901", "S2A_TEST_20230915"} <= set(strip)
    assert 0.15 < strip["S2A_TEST_20230915"]["aoi_coverage"] < 0.45
    text = _run("search", SITE, *_search_args(base, "--max-cloud", "20"))
    assert "4 item(s) of sentinel-2-l2a" in text.output and "S2A_TEST_20231018" in text.output


def test_search_through_a_stac_api(served, catalog_dir):
    """A root declaring item-search is searched with pystac-client (POST /search); the same filters apply."""
    base, log, _ = served
    root, _ = catalog_dir
    api = {
        "type": "Catalog",
        "stac_version": "1.0.0",
        "id": "api",
        "description": "a STAC API",
        "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
        "links": [
            {"rel": "self", "href": f"{base}/api.json", "type": "application/json"},
            {"rel": "root", "href": f"{base}/api.json", "type": "application/json"},
            {"rel": "search", "href": f"{base}/search", "type": "application/geo+json", "method": "POST"},
        ],
    }
    (root / "catalog" / "api.json").write_text(json.dumps(api))
    res = _run(
        "search",
        SITE,
        "--catalog",
        f"{base}/api.json",
        "--from",
        "2023-01-01",
        "--to",
        "2023-12-31",
        "--max-cloud",
        "20",
        "--json",
    )
    assert res.exit_code == 0, res.output
    assert [f["id"] for f in json.loads(res.output)] == [
        "S2A_TEST_20230310",
        "S2B_TEST_20230714",
        "S2A_TEST_20230820",
        "S2A_TEST_20231018",
    ]
    assert ("POST", "/search", None) in log


def _fetch(base, out, *extra):
    return _run("fetch", SITE, "--search", *_search_args(base, "--max-cloud", "20"), "-o", out, "--json", *extra)


def test_fetch_writes_the_aoi_window_bands_and_mask_and_skips_a_cloudy_date(served, tmp_path, catalog_dir):
    base, log, _ = served
    res = _fetch(base, tmp_path / "s2")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    by_date = {d["date"]: d for d in out["dates"]}
    assert [d for d, v in by_date.items() if v["status"] == "fetched"] == ["2023-03-10", "2023-07-14", "2023-10-18"]
    skipped = by_date["2023-08-20"]
    assert skipped["status"] == "skipped" and "SCL" in skipped["reason"] and skipped["aoi_cloud"] > 0.5
    # the cloudy date's colour bands were never asked for: its SCL said enough
    assert not [p for _, p, _ in log if "S2A_TEST_20230820" in p and not p.endswith("scl.tif") and "assets" in p]
    # only ranges of the COGs were read, and less than the whole of each (the AOI misses some of its tiles)
    root, _ = catalog_dir
    tif_gets = [(p, r) for m, p, r in log if m == "GET" and p.endswith(".tif")]
    assert tif_gets and all(r is not None for _, r in tif_gets)
    read: dict[str, int] = {}
    for path, spec in tif_gets:
        first, last = (int(v) for v in spec[6:].split("-"))
        read[path] = read.get(path, 0) + min(last + 1, (root / "catalog" / path.lstrip("/")).stat().st_size) - first
    sizes = {p: (root / "catalog" / p.lstrip("/")).stat().st_size for p in read}
    bands = [p for p in read if not p.endswith("scl.tif")]  # an SCL COG is smaller than GDAL's first read
    assert bands and all(read[p] < 0.9 * sizes[p] for p in bands), (read, sizes)

    tif = tmp_path / "s2" / "2023-07-14.tif"
    asset = root / "catalog" / "assets" / "S2B_TEST_20230714"
    with rasterio.open(tif) as dst:
        assert dst.count == 5 and dst.descriptions == ("red", "green", "blue", "nir", "alpha")
        assert dst.colorinterp[4].name == "alpha"
        assert dst.driver == "GTiff" and dst.profile.get("tiled")
        data, bounds = dst.read(), dst.bounds
    for k, colour in enumerate(("red", "green", "blue", "nir")):
        with rasterio.open(asset / f"{colour}.tif") as src:
            expected = src.read(1, window=from_bounds(*bounds, transform=src.transform))
        assert np.array_equal(data[k], expected), colour
    with rasterio.open(asset / "scl.tif") as src:  # 2 m SCL: the class under each 1 m pixel's centre
        rows, cols = np.mgrid[: data.shape[1], : data.shape[2]]
        x, y = bounds.left + (cols + 0.5) * SOURCE_GSD_M, bounds.top - (rows + 0.5) * SOURCE_GSD_M
        r, c = rasterio.transform.rowcol(src.transform, x.ravel(), y.ravel())
        scl = src.read(1)[np.asarray(r), np.asarray(c)].reshape(data.shape[1:])
    cloud = scl == stac_catalog.SCL_CLOUD
    assert cloud.any() and np.array_equal(data[4] == 0, cloud)

    side = json.loads((tmp_path / "s2" / "2023-07-14.json").read_text())
    assert side["properties"]["datetime"].startswith("2023-07-14")
    assert side["assets"]["image"]["href"] == "./2023-07-14.tif"
    assert any(link["rel"] == "derived_from" and link["href"].startswith(base) for link in side["links"])
    from sitewatch.io import image_date, image_sun

    assert image_date(tif) == "2023-07-14"
    assert image_sun(tif) == (side["properties"]["view:sun_azimuth"], side["properties"]["view:sun_elevation"])


def test_a_second_fetch_reads_nothing_from_the_network(served, tmp_path):
    base, log, paths = served
    items = [f"{base}/sentinel-2-l2a/{i}/{i}.json" for i in ("S2A_TEST_20230310", "S2A_TEST_20231018")]
    first = _run("fetch", SITE, *items, "-o", tmp_path / "a", "--json")
    assert first.exit_code == 0, first.output
    assert any(p.endswith(".tif") for _, p, _ in log)
    log.clear()
    again = _run("fetch", SITE, *items, "-o", tmp_path / "b", "--json")
    assert again.exit_code == 0, again.output
    assert log == []
    assert all(d["from_cache"] for d in json.loads(again.output)["dates"])
    for name in ("2023-03-10.tif", "2023-10-18.tif"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # a search is asked of the catalog again (new scenes may have come), but no image is read
    _fetch(base, tmp_path / "c")
    log.clear()
    res = _fetch(base, tmp_path / "d")
    assert res.exit_code == 0, res.output
    assert log and not [p for _, p, _ in log if p.endswith(".tif")]


def test_a_broken_asset_names_the_item_and_writes_nothing(served, tmp_path):
    base, _, _ = served
    good = f"{base}/sentinel-2-l2a/S2A_TEST_20230310/S2A_TEST_20230310.json"
    res = _run("fetch", SITE, good, f"{base}/broken/broken.json", "-o", tmp_path / "out")
    assert res.exit_code == 2
    assert "S2A_TEST_BROKEN" in res.output and "red" in res.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_timeline_runs_on_the_fetched_folder(served, tmp_path):
    base, _, _ = served
    assert _fetch(base, tmp_path / "s2").exit_code == 0
    images = sorted((tmp_path / "s2").glob("*.tif"))
    res = _run("timeline", *images, "--aoi", SITE, "-o", tmp_path / "tl", "--json")
    assert res.exit_code == 0, res.output
    tl = json.loads(res.output)
    assert [r["date"] for r in tl["dates"]] == ["2023-03-10", "2023-07-14", "2023-10-18"]
    assert tl["dates"][-1]["railcars_total"] > tl["dates"][0]["railcars_total"]
    assert (tmp_path / "tl" / "timeline.csv").is_file()


def test_a_stac_item_given_by_url_is_an_image_with_its_date(served, catalog_dir):
    """An Item URL stands where a GeoTIFF does: its asset is read over HTTP, its datetime is the date."""
    import rasterio.shutil

    base, log, _ = served
    root, _ = catalog_dir
    synth = sorted((root / "synth").glob("*.tif"))
    urls = []
    for k, (image, day) in enumerate(zip(synth[:2], ("2021-05-04", "2022-06-07"))):
        folder = root / "catalog" / f"url-item-{k}"
        folder.mkdir(exist_ok=True)
        rasterio.shutil.copy(image, folder / "scene.tif", driver="COG")  # as a catalogue serves its assets
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": f"url-item-{k}",
            "geometry": None,
            "properties": {"datetime": f"{day}T02:00:00Z"},
            "links": [],
            "assets": {"visual": {"href": "./scene.tif", "type": "image/tiff; application=geotiff"}},
        }
        (folder / "item.json").write_text(json.dumps(item))
        urls.append(f"{base}/url-item-{k}/item.json")
    res = _run("coreg", urls[0], urls[1], "--json")
    assert res.exit_code == 0, res.output
    assert any(path.endswith("/url-item-1/scene.tif") for _, path, _ in log)  # the asset, read over HTTP
    from sitewatch.io import image_date

    assert [image_date(u) for u in urls] == ["2021-05-04", "2022-06-07"]
    res = _run("coreg", f"{base}/url-item-9/item.json", urls[1])
    assert res.exit_code == 2 and "url-item-9/item.json: not a readable STAC Item" in res.output
