"""Inputs analysts have (issue 21): remote paths, VRTs, dates, masks, screenshots, STAC items.

Each case has a known answer; refusals are checked for exit code 2, the ``error: FILE:
problem`` line and nothing left on disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.errors
import shapely
from click.testing import CliRunner
from conftest import textured, write_tif

from sitewatch.cli import main
from sitewatch.errors import ImageryError
from sitewatch.io import RemotePath, check_no_network_sources, image_date, image_path, read_source


def _run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def _refused(res, *words: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert any(line.startswith("error:") for line in res.output.splitlines()), res.output
    for w in words:
        assert w in res.output, res.output


def _rgb(seed: int = 0, shape=(64, 64)) -> np.ndarray:
    return np.stack([textured(shape, seed + k) for k in range(3)])


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Every path rasterio is asked to open; a URL is answered as unreachable (no network is used)."""
    calls: list[str] = []
    real_open = rasterio.open

    def spy(path, *args, **kwargs):
        calls.append(str(path))
        if "://" in str(path):
            raise rasterio.errors.RasterioIOError(f"{path}: HTTP error (no network in tests)")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", spy)
    return calls


# ------------------------------------------------------------------ remote paths


@pytest.mark.parametrize(
    "url",
    [
        "http://example.invalid/scenes/2023-06-15.tif",
        "https://example.invalid/a//b.tif?token=x",
        "s3://bucket/2023-06-15.tif",
        "/vsicurl/http://example.invalid/x.tif",
    ],
)
def test_urls_reach_gdal_unmangled(tmp_path, opened, url):
    local = write_tif(tmp_path / "a.tif", _rgb())
    res = _run("coreg", local, url)
    _refused(res, f"error: {url}: not a readable raster")
    assert url in opened  # exactly as typed: pathlib would have made http:/ of it
    assert image_path(url) == url and isinstance(image_path(url), RemotePath)
    assert isinstance(image_path(local), Path)


def test_a_remote_path_keeps_its_name_and_date_from_the_file_name():
    url = image_path("https://example.invalid/scenes/2023-06-15.tif?sig=abc")
    assert (url.name, url.stem, url.suffix) == ("2023-06-15.tif", "2023-06-15", ".tif")


def test_gdal_virtual_paths_are_read(tmp_path):
    from rasterio.io import MemoryFile

    rgb = _rgb()
    with MemoryFile(filename="2023-06-15.tif") as mem:
        with mem.open(
            driver="GTiff", width=64, height=64, count=3, dtype="uint8", crs="EPSG:32652",
            transform=rasterio.transform.from_origin(500000, 4400000, 1, 1),
        ) as dst:  # fmt: skip
            dst.write(rgb.astype(np.uint8))
        assert mem.name.startswith("/vsimem/")
        src = read_source(mem.name)
        np.testing.assert_array_equal(src.data, rgb.astype(np.uint8))
        assert src.date == "2023-06-15" and str(src.path) == mem.name


# ------------------------------------------------------------------ VRTs that would read the network


def _vrt(path: Path, source: str, relative: bool = False) -> Path:
    path.write_text(
        f"""<VRTDataset rasterXSize="64" rasterYSize="64">
  <SRS>EPSG:32652</SRS>
  <GeoTransform>500000, 1, 0, 4400000, 0, -1</GeoTransform>
  <Metadata><MDI key="SOURCE_PAGE">https://example.org/about</MDI></Metadata>
  <VRTRasterBand dataType="Byte" band="1">
    <SimpleSource>
      <SourceFilename relativeToVRT="{int(relative)}">{source}</SourceFilename>
      <SourceBand>1</SourceBand>
    </SimpleSource>
  </VRTRasterBand>
</VRTDataset>
"""
    )
    return path


def test_a_local_vrt_with_network_sources_is_refused_before_any_fetch(tmp_path, opened):
    local = write_tif(tmp_path / "a.tif", _rgb())
    vrt = _vrt(tmp_path / "innocent.tif", "/vsicurl/http://example.invalid/x.tif")
    _refused(_run("coreg", local, vrt), f"error: {vrt}: a VRT whose source", "is on the network")
    assert str(vrt) not in opened  # refused before GDAL was asked to open it
    # the same through a local VRT that names it, and as a plain URL source
    outer = _vrt(tmp_path / "outer.vrt", "innocent.tif", relative=True)
    _refused(_run("coreg", local, outer), f"{vrt}: a VRT whose source")
    url = _vrt(tmp_path / "url.vrt", "https://example.invalid/y.tif")
    _refused(_run("railcars", url, "--aoi", "tumangang-rail-crossing"), f"{url}: a VRT whose source")
    wms = tmp_path / "tiles.xml"
    wms.write_text(
        "<GDAL_WMS><Service name='TMS'><ServerUrl>https://example.invalid/${z}</ServerUrl></Service></GDAL_WMS>"
    )
    _refused(_run("coreg", local, wms), f"{wms}: a GDAL <GDAL_WMS> description that reads from the network")
    assert not any("example.invalid" in c for c in opened)
    with pytest.raises(ImageryError, match="on the network"):
        image_date(vrt)


def test_other_local_mosaics_with_network_tiles_are_refused_before_any_fetch(tmp_path, opened):
    """An MRF whose data file is remote, a GDAL tile index (GTI) of remote tiles and a STAC ItemCollection
    (GDAL's STACIT mosaic) are refused unopened; XML that only quotes a namespace URL is not."""
    import geopandas as gpd
    from shapely.geometry import box

    local = write_tif(tmp_path / "a.tif", _rgb())
    mrf = tmp_path / "scene.mrf"
    mrf.write_text(
        "<MRF_META><Raster><Size x='64' y='64' c='3'/><DataFile>/vsicurl/https://example.invalid/scene.til"
        "</DataFile></Raster></MRF_META>"
    )
    _refused(_run("coreg", local, mrf), f"{mrf}: a GDAL <MRF_META> description that reads from the network")
    gti = tmp_path / "tiles.gti.gpkg"
    gpd.GeoDataFrame(
        {"location": ["/vsicurl/https://example.invalid/t1.tif"]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4326"
    ).to_file(gti)
    _refused(_run("coreg", local, gti), f"{gti}: a GDAL tile index (GTI) whose tiles are on the network")
    collection = tmp_path / "search.json"
    collection.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "assets": '
        '{"visual": {"href": "https://example.invalid/x.tif"}}}]}'
    )
    _refused(_run("coreg", local, collection), f"{collection}: a catalogue GDAL opens as a mosaic")
    assert str(mrf) not in opened and str(gti) not in opened and str(collection) not in opened
    label = tmp_path / "label.xml"
    label.write_text(
        '<Product xmlns="http://pds.example.invalid/pds4" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://pds.example.invalid/pds4 http://pds.example.invalid/pds4.xsd">'
        "<File><file_name>a.tif</file_name></File></Product>"
    )
    check_no_network_sources(label)  # namespaces are names, not places GDAL reads from


def test_a_local_vrt_of_local_files_is_read(tmp_path):
    rgb = _rgb()
    write_tif(tmp_path / "a.tif", rgb)
    vrt = tmp_path / "2023-06-15.vrt"
    _vrt(vrt, "a.tif", relative=True)
    src = read_source(vrt, colour=False)  # the VRT holds band 1 only
    np.testing.assert_array_equal(src.data[0], rgb[0].astype(np.uint8))
    assert src.date == "2023-06-15"


# ------------------------------------------------------------------ dates


@pytest.mark.parametrize(
    "name, expected",
    [
        ("20230615_0311_P001_MUL", "2023-06-15"),
        ("23JUN15021733-S2AS-012345678010_01_P001", "2023-06-15"),
        ("WV03_20230615031122_1040010081234500", "2023-06-15"),
        ("scene_23jun15", "2023-06-15"),
        ("S2_20231345_T52", None),  # not a day
        ("tile_0042", None),
    ],
)
def test_dates_are_read_from_maxar_style_file_names(tmp_path, name, expected):
    from sitewatch.io import date_from_name

    assert date_from_name(name) == expected
    path = write_tif(tmp_path / f"{name}.tif", _rgb(shape=(8, 8)))  # no date tag: the name is all there is
    assert image_date(path) == expected


def test_a_date_that_is_not_a_day_is_refused_before_any_work(tmp_path):
    sample = Path(__file__).resolve().parents[1] / "sample_imagery" / "sinuiju-instrument-factory"
    before, after = sorted(sample.glob("*.tif"))
    out = tmp_path / "out"
    args = ["detect", before, after, "--aoi", "sinuiju-instrument-factory", "-o", out, "--after-date", "2024-02-30"]
    _refused(_run(*args), "error: date '2024-02-30': give an acquisition date as YYYY-MM-DD")
    assert not out.exists()


# ------------------------------------------------------------------ masks (and dates) in detect


def test_masked_pixels_are_neither_changed_nor_counted(tmp_path):
    import geopandas as gpd

    sample = Path(__file__).resolve().parents[1] / "sample_imagery" / "sinuiju-instrument-factory"
    before, after = sorted(sample.glob("*.tif"))
    truth = gpd.read_file(sample / "truth.geojson").to_crs("EPSG:32651").set_index("id")
    cloud = truth.geometry["new-building-3"].envelope.buffer(4, join_style="mitre")
    # a Sentinel-2-like scene classification on its own 2 m grid: 9 = cloud, 4 = vegetation (usable)
    with rasterio.open(before) as src:
        west, south, east, north = src.bounds
    scl = np.full((int((north - south) / 2), int((east - west) / 2)), 4, np.uint8)
    transform = rasterio.transform.from_origin(west, north, 2.0, 2.0)
    rows, cols = np.mgrid[0 : scl.shape[0], 0 : scl.shape[1]]
    xs, ys = rasterio.transform.xy(transform, rows.ravel(), cols.ravel())
    inside = shapely.contains_xy(cloud, np.asarray(xs), np.asarray(ys)).reshape(scl.shape)
    scl[inside] = 9
    mask = write_tif(tmp_path / "scl.tif", scl, crs="EPSG:32651", origin=(west, north), pixel=2.0)

    out = tmp_path / "run"
    res = _run(
        "detect", before, after, "--aoi", "sinuiju-instrument-factory", "-o", out,
        "--mask", f"{mask}:3,8,9,10", "--before-date", "2022-09-01", "--after-date", "2024-04-30", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dates"] == {"before": "2022-09-01", "after": "2024-04-30"}  # over the files' own
    assert summary["inputs"]["masks"] == [f"{mask}:3,8,9,10"]  # as given
    assert summary["masked_px"] == pytest.approx(inside.sum() * 4, rel=0.05)  # 2 m mask pixels on a 1 m grid
    found = gpd.read_file(out / "changes.gpkg", layer="changes")
    for name in ("new-building-1", "new-building-2", "old-workshop-1", "old-workshop-2"):
        t = truth.geometry[name]
        assert max(t.intersection(g).area / t.union(g).area for g in found.geometry) >= 0.5, name
    assert all(g.intersection(cloud.buffer(-2)).area < 1.0 for g in found.geometry)  # nothing under the cloud
    t = truth.geometry["new-building-3"]
    assert all(t.intersection(g).area / t.union(g).area < 0.2 for g in found.geometry)


def test_a_mask_that_misses_the_image_is_refused(tmp_path):
    sample = Path(__file__).resolve().parents[1] / "sample_imagery" / "sinuiju-instrument-factory"
    before, after = sorted(sample.glob("*.tif"))
    far = write_tif(tmp_path / "far.tif", np.ones((10, 10)), crs="EPSG:32651", origin=(100000.0, 100000.0))
    out = tmp_path / "run"
    _refused(
        _run("detect", before, after, "--aoi", "sinuiju-instrument-factory", "-o", out, "--mask", far),
        f"error: {far}: the mask does not overlap the image",
    )
    assert not out.exists()


# ------------------------------------------------------------------ pictures without georeference (screenshots)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    """The Sinuiju sample pair saved as PNGs (no georeference), and its truth in the pictures' pixels."""
    import geopandas as gpd
    from PIL import Image

    sample = Path(__file__).resolve().parents[1] / "sample_imagery" / "sinuiju-instrument-factory"
    folder = tmp_path_factory.mktemp("screenshots")
    pngs = []
    for tif in sorted(sample.glob("*.tif")):
        with rasterio.open(tif) as src:
            Image.fromarray(np.moveaxis(src.read(), 0, -1)).save(folder / f"{tif.stem}.png")
            inverse = ~src.transform
        pngs.append(folder / f"{tif.stem}.png")
    truth = gpd.read_file(sample / "truth.geojson").to_crs("EPSG:32651")

    # each truth outline in picture pixels, then on the local grid (500000 + col, -row) at 1 m pixels
    def to_local(xy: np.ndarray) -> np.ndarray:
        cols, rows = inverse * xy.T
        return np.column_stack([500000.0 + cols, -rows])

    truth["geometry"] = [shapely.transform(g, to_local) for g in truth.geometry]
    shift = json.loads((sample / "truth.geojson").read_text())["properties"]["acquisitions"][1]["shift_px"]
    return pngs, truth, shift


def test_a_screenshot_pair_is_measured_with_gsd_and_says_it_has_no_map_position(tmp_path, screenshots):
    import geopandas as gpd

    (before, after), truth, _ = screenshots
    _refused(_run("detect", before, after, "--aoi", "sinuiju-instrument-factory", "-o", tmp_path / "x"), "--gsd")
    out = tmp_path / "run"
    res = _run("detect", before, after, "--aoi", "sinuiju-instrument-factory", "-o", out, "--gsd", "1")
    assert res.exit_code == 0, res.output
    assert "note: no map position" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["position"].startswith("no map position") and summary["dates"]["before"] == "2022-09-05"
    found = gpd.read_file(out / "changes.gpkg", layer="changes")
    for _, t in truth.iterrows():  # every planted change, where the picture shows it
        same = found[found["change"] == t["change"]].geometry
        assert max(t.geometry.intersection(g).area / t.geometry.union(g).area for g in same) >= 0.5, t["id"]


def test_coreg_measures_a_screenshot_pair_in_metres(screenshots):
    (before, after), _, shift = screenshots
    res = _run("coreg", before, after, "--gsd", "0.5", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert (got["dx"], got["dy"]) == pytest.approx(shift, abs=0.25)
    assert got["shift_m"] == pytest.approx([shift[0] * 0.5, shift[1] * 0.5], abs=0.15)
    assert got["position"].startswith("no map position")
    georeferenced = Path(__file__).resolve().parents[1] / "sample_imagery" / "sinuiju-instrument-factory"
    tif = sorted(georeferenced.glob("*.tif"))[0]
    _refused(_run("coreg", tif, after, "--gsd", "1"), f"{tif}: is georeferenced", "leave it out")


# ------------------------------------------------------------------ STAC Items


def _stac_item(folder: Path, assets: dict, properties: dict | None = None) -> Path:
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
        ],
        "id": "scene-1",
        "bbox": [129.0, 39.7, 129.1, 39.8],
        "geometry": {"type": "Polygon", "coordinates": [[[129.0, 39.7], [129.1, 39.7], [129.1, 39.8], [129.0, 39.7]]]},
        "properties": {"datetime": "2023-06-15T02:11:00Z", **(properties or {})},
        "links": [],
        "assets": assets,
    }
    path = folder / "item.json"
    path.write_text(json.dumps(item))
    return path


def test_a_stac_item_is_read_through_its_asset_date_sun_and_eo_bands(tmp_path):
    from rasterio.enums import ColorInterp

    from sitewatch.io import image_sun

    rgb = _rgb()
    nir = textured((64, 64), 9)[None]
    scene = tmp_path / "scene.tif"  # blue, green, red, NIR with no colour names: only the item says which is which
    with rasterio.open(
        scene, "w", driver="GTiff", width=64, height=64, count=4, dtype="uint8", crs="EPSG:32652",
        transform=rasterio.transform.from_origin(500000, 4400000, 1, 1), photometric="MINISBLACK",
    ) as dst:  # fmt: skip
        dst.colorinterp = [ColorInterp.gray, ColorInterp.undefined, ColorInterp.undefined, ColorInterp.undefined]
        dst.write(np.concatenate([rgb[::-1], nir]).astype(np.uint8))
    eo = [{"name": n, "common_name": n} for n in ("blue", "green", "red", "nir")]
    item = _stac_item(
        tmp_path,
        {
            "thumbnail": {"href": "thumb.png", "type": "image/png", "roles": ["thumbnail"]},
            "analytic": {"href": "scene.tif", "type": "image/tiff; application=geotiff", "eo:bands": eo},
        },
        {"view:sun_azimuth": 151.5, "view:sun_elevation": 48.0},
    )
    src = read_source(item)
    np.testing.assert_array_equal(src.data, np.concatenate([rgb, nir]).astype(np.uint8))  # red first, NIR fourth
    assert src.date == "2023-06-15" and image_date(item) == "2023-06-15"
    assert image_sun(item) == (151.5, 48.0)
    res = _run("coreg", item, scene, "--json")  # the item stands wherever a GeoTIFF does
    assert res.exit_code == 0, res.output
    assert abs(json.loads(res.output)["dx"]) < 0.05


def test_a_stac_item_without_a_picture_to_read_is_refused(tmp_path):
    write_tif(tmp_path / "a.tif", _rgb())
    item = _stac_item(
        tmp_path,
        {
            "b1": {"href": "a.tif", "type": "image/tiff"},
            "b2": {"href": "a.tif", "type": "image/tiff"},
        },
    )
    _refused(_run("coreg", item, item), f"error: {item}: a STAC Item with no visual asset", "assets: b1, b2")
