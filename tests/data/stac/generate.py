"""A tiny static STAC catalog shaped like Earth Search's ``sentinel-2-l2a``, built from a site's synthetic images.

Tests call :func:`build_catalog` into a temporary folder (nothing binary is committed) and
serve the folder over HTTP. Each item has single-band uint16 COGs ``red``, ``green``,
``blue`` and ``nir`` (with ``eo:bands`` common names, ``gsd`` and nodata 0), and an 8-bit
``scl`` COG at twice the pixel size holding Sentinel-2 scene classes (4 vegetation, 5 bare
soil; 9 cloud where a cloud is planted). Layout::

    catalog.json -> sentinel-2-l2a/collection.json -> sentinel-2-l2a/<id>/<id>.json
    assets/<id>/{red,green,blue,nir,scl}.tif
    broken/broken.json              an item (not in the catalog) whose red asset is missing

Items (``ITEMS``): three clear dates for ``timeline``, one with a small cloud, one whose AOI
is mostly cloud by SCL while its metadata says 15 %, one with 85 % cloud cover, one before
the searched dates and one whose geometry covers only a strip of the AOI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from pyproj import Transformer
from rasterio.transform import from_origin

COLLECTION = "sentinel-2-l2a"
DN_OFFSET, DN_SCALE = 1000, 20  # uint16 DN = 1000 + 20 * the synthetic 8-bit value (L2A-like values)
SCL_CLEAR, SCL_BARE, SCL_CLOUD = 4, 5, 9


@dataclass(frozen=True)
class Spec:
    """One item: its id, date, which synthetic image it shows, cloud cover, a cloud planted in its SCL
    (west, north, east, south as shares of the synthetic image's width and height), and the share
    of the (widened) image's width its geometry claims."""

    id: str
    date: str
    source: int
    cloud_cover: float
    scl_cloud: tuple[float, float, float, float] | None = None
    geometry_width: float = 1.0


ITEMS = (
    Spec("S2A_TEST_20221201", "2022-12-01", 0, 2.0),
    Spec("S2A_TEST_20230310", "2023-03-10", 0, 3.0),
    Spec("S2B_TEST_20230714", "2023-07-14", 1, 12.0, scl_cloud=(0.1, 0.0, 0.3, 0.25)),
    Spec("S2A_TEST_20230820", "2023-08-20", 1, 15.0, scl_cloud=(0.0, 0.0, 1.0, 0.9)),
    Spec("S2B_TEST_20230901", "2023-09-01", 1, 85.0),
    Spec("S2A_TEST_20230915", "2023-09-15", 2, 1.0, geometry_width=0.4),
    Spec("S2A_TEST_20231018", "2023-10-18", 2, 4.0),
)
BROKEN_ID = "S2A_TEST_BROKEN"
COLOURS = ("red", "green", "blue", "nir")
PAD_PX = 256  # the synthetic image is widened by this on every side, so the AOI misses the outer COG tiles


def _write_cog(path: Path, data: np.ndarray, crs, transform, nodata) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.tif")
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name)
    with rasterio.open(tmp, "w", crs=crs, transform=transform, nodata=nodata, tiled=True, **profile) as dst:
        dst.write(data, 1)
    rasterio.shutil.copy(tmp, path, driver="COG", blocksize=128, compress="deflate", overviews="NONE")
    tmp.unlink()


def _assets(spec: Spec, image: np.ndarray, crs, transform, folder: Path) -> None:
    """Write an item's colour COGs (uint16) and its SCL COG at twice the pixel size."""
    rgb = image[:3].astype(np.float32)
    nir = np.clip(1.3 * rgb[1] - 0.3 * rgb[0] + 20, 0, 255)  # brighter where green (vegetation), as NIR is
    for name, band in zip(COLOURS, (*rgb, nir)):
        _write_cog(folder / f"{name}.tif", (DN_OFFSET + DN_SCALE * band).astype(np.uint16), crs, transform, 0)
    rows, cols = (image.shape[1] + 1) // 2, (image.shape[2] + 1) // 2
    scl = np.full((rows, cols), SCL_CLEAR, np.uint8)
    scl[:, cols // 2 :] = SCL_BARE
    if spec.scl_cloud is not None:
        west, north, east, south = spec.scl_cloud
        height, width = image.shape[1] - 2 * PAD_PX, image.shape[2] - 2 * PAD_PX
        r1 = (PAD_PX + int(south * height)) // 2
        c0, c1 = (PAD_PX + int(west * width)) // 2, (PAD_PX + int(east * width)) // 2
        scl[(PAD_PX + int(north * height)) // 2 : r1, c0:c1] = SCL_CLOUD
    scl_transform = transform * transform.scale(2, 2)
    _write_cog(folder / "scl.tif", scl, crs, scl_transform, 0)


def _band_asset(name: str, pixel: float) -> dict:
    return {
        "href": f"../../assets/{{id}}/{name}.tif",
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["data", "reflectance"],
        "gsd": pixel,
        "eo:bands": [{"name": name, "common_name": name}],
        "raster:bands": [{"nodata": 0, "data_type": "uint16", "spatial_resolution": pixel}],
    }


def _item(spec: Spec, bounds: tuple[float, float, float, float], crs, pixel: float, sun: tuple[float, float]) -> dict:
    west, south, east, north = bounds
    east = west + spec.geometry_width * (east - west)
    lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    w, s, e, n = lonlat.transform_bounds(west, south, east, north)
    assets = {c: _band_asset(c, pixel) for c in COLOURS}
    assets["scl"] = {
        "href": "../../assets/{id}/scl.tif",
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["data"],
        "gsd": 2 * pixel,
    }
    for asset in assets.values():
        asset["href"] = asset["href"].format(id=spec.id)
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
        ],
        "id": spec.id,
        "collection": COLLECTION,
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "bbox": [w, s, e, n],
        "properties": {
            "datetime": f"{spec.date}T02:30:00Z",
            "platform": "sentinel-2a",
            "eo:cloud_cover": spec.cloud_cover,
            "view:sun_azimuth": sun[0],
            "view:sun_elevation": sun[1],
        },
        "links": [
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
        ],
        "assets": assets,
    }


def _write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")


def _catalogs(root: Path, bounds_lonlat: list[float]) -> None:
    _write_json(
        root / "catalog.json",
        {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "sitewatch-test",
            "description": "sitewatch test catalog",
            "links": [
                {"rel": "root", "href": "./catalog.json", "type": "application/json"},
                {"rel": "child", "href": f"./{COLLECTION}/collection.json", "type": "application/json"},
            ],
        },
    )
    _write_json(
        root / COLLECTION / "collection.json",
        {
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": COLLECTION,
            "description": "Sentinel-2 L2A-like test items",
            "license": "proprietary",
            "extent": {
                "spatial": {"bbox": [bounds_lonlat]},
                "temporal": {"interval": [["2022-01-01T00:00:00Z", None]]},
            },
            "links": [
                {"rel": "root", "href": "../catalog.json", "type": "application/json"},
                {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
            ]
            + [{"rel": "item", "href": f"./{s.id}/{s.id}.json", "type": "application/json"} for s in ITEMS],
        },
    )


def build_catalog(root: Path, images: list[Path]) -> dict[str, Path]:
    """Write the catalog of :data:`ITEMS` under ``root`` from dated synthetic GeoTIFFs (earliest first).

    The images are widened (mirrored by :data:`PAD_PX`) and relabelled onto a grid whose origin
    is a multiple of their pixel size (as Sentinel-2 tiles are). Returns the paths of
    ``catalog.json``, the broken item and each item.
    """
    paths = {}
    for spec in (*ITEMS, Spec(BROKEN_ID, "2023-07-01", 0, 1.0)):
        with rasterio.open(images[spec.source]) as src:
            image, crs, t = src.read(), src.crs, src.transform
            tags = src.tags()
        pixel = abs(t.a)
        # a scene is larger than a site: the image mirrored out by PAD_PX on every side
        image = np.pad(image, ((0, 0), (PAD_PX, PAD_PX), (PAD_PX, PAD_PX)), mode="reflect")
        west, north = np.round(t.c / pixel) * pixel - PAD_PX * pixel, np.round(t.f / pixel) * pixel + PAD_PX * pixel
        transform = from_origin(west, north, pixel, pixel)
        bounds = rasterio.transform.array_bounds(image.shape[1], image.shape[2], transform)
        bounds = (bounds[0], bounds[1], bounds[2], bounds[3])
        doc = _item(spec, bounds, crs, pixel, (float(tags["SUN_AZIMUTH"]), float(tags["SUN_ELEVATION"])))
        if spec.id == BROKEN_ID:  # the 2023-03-10 assets, but a red band that is not there
            for name, asset in doc["assets"].items():
                asset["href"] = f"../assets/{ITEMS[1].id}/{name}.tif"
            doc["assets"]["red"]["href"] = "../assets/missing/red.tif"
            doc["links"] = []
            paths[spec.id] = root / "broken" / "broken.json"
        else:
            _assets(spec, image, crs, transform, root / "assets" / spec.id)
            paths[spec.id] = root / COLLECTION / spec.id / f"{spec.id}.json"
        _write_json(paths[spec.id], doc)
    _catalogs(root, doc["bbox"])
    paths["catalog"] = root / "catalog.json"
    return paths
