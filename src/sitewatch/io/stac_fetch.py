"""Read the AOI window of STAC Items' assets onto one grid, judge it, and cache what was read.

Every asset is read through GDAL (``/vsicurl/`` for ``http(s)://`` hrefs) with a
:class:`rasterio.vrt.WarpedVRT` onto the fetch's grid, nearest neighbour: a Cloud-Optimised
GeoTIFF answers with the blocks under the AOI only (HTTP range requests), and where the
asset's grid is the fetch grid (Sentinel-2 tiles in the site's UTM zone) the pixels are
copied, not resampled. Items of one date (neighbouring tiles of one pass) are read into one
scene, clear pixels first.

The cache (:func:`cache_root`) keeps each item's JSON by href and each scene read by a key of
its items, assets, grid and mask rule, so a second fetch of the same scenes reads nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
import rasterio.shutil
from pyproj import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.features import geometry_mask
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from ..errors import ImageryError
from .outputs import write_geotiff
from .raster import Grid, check_read_size
from .stac_assets import ItemAssets

# GDAL settings for reading remote COGs: no directory listing beside each file (one request
# fewer per asset), only raster endings fetched, a few retries on a transient HTTP error.
GDAL_REMOTE_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.TIFF,.jp2,.JP2",
    "GDAL_HTTP_MAX_RETRY": "2",
    "GDAL_HTTP_RETRY_DELAY": "1",
}
# A date whose AOI footprint is more than this share cloud (or cloud shadow) and no data together is skipped.
MAX_UNUSABLE_AOI_FRACTION = 0.5
# Bumped when what a cached scene holds changes, so old entries are not read as new ones.
CACHE_VERSION = 1
CACHE_ENV = "SITEWATCH_CACHE_DIR"
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where fetched STAC data is cached: ``cache_dir``, else ``$SITEWATCH_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/sitewatch`` (``~/.cache/sitewatch``); STAC data lives in its ``stac/`` folder."""
    if cache_dir is None:
        env = os.environ.get(CACHE_ENV)
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache_dir = env or str(Path(xdg) / "sitewatch")
    return Path(cache_dir) / "stac"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:32]


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def cached_item(href: str, cache: Path) -> dict[str, Any] | None:
    """An item's JSON kept from an earlier fetch of ``href``, or None."""
    path = cache / "items" / f"{_digest(href)}.json"
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def keep_item(href: str, item: dict[str, Any], cache: Path) -> None:
    """Keep an item's JSON read from ``href`` for the next fetch."""
    _atomic_write_text(cache / "items" / f"{_digest(href)}.json", json.dumps(item))


def target_grid(footprint_lonlat: BaseGeometry, crs: CRS, pixel_size_m: float) -> Grid:
    """A north-up grid in ``crs`` over the footprint, edges on multiples of the pixel size (as Sentinel-2 tiles)."""
    from pyproj import Transformer

    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    west, south, east, north = to_crs.transform_bounds(*footprint_lonlat.bounds)
    p = float(pixel_size_m)
    west, south = np.floor(west / p) * p, np.floor(south / p) * p
    east, north = np.ceil(east / p) * p, np.ceil(north / p) * p
    shape = (int(round((north - south) / p)), int(round((east - west) / p)))
    return Grid(crs, from_origin(west, north, p, p), shape)


def aoi_mask(footprint_lonlat: BaseGeometry, grid: Grid) -> np.ndarray:
    """True on the grid's pixels inside the AOI footprint."""
    from pyproj import Transformer
    from shapely import transform

    to_crs = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True).transform
    footprint = transform(footprint_lonlat, to_crs, interleaved=False)
    return geometry_mask([mapping(footprint)], out_shape=grid.shape, transform=grid.transform, invert=True)


def read_on_grid(href: str, bands: list[int], grid: Grid, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Bands of an asset on ``grid`` (nearest neighbour) and where the asset has data.

    Raises
    ------
    ImageryError
        Naming ``what`` (the item and asset) and the href, when GDAL cannot open or read it.
    """
    rows, cols = grid.shape
    check_read_size(Path(what), rows, cols)
    try:
        with rasterio.Env(**GDAL_REMOTE_OPTIONS), rasterio.open(href) as src:
            alpha = src.nodata is None
            with WarpedVRT(
                src,
                crs=grid.crs,
                transform=grid.transform,
                width=cols,
                height=rows,
                resampling=Resampling.nearest,
                add_alpha=alpha,
            ) as vrt:
                data = vrt.read(bands)
                if alpha:
                    valid = vrt.read(vrt.count) > 0
                else:
                    valid = ~np.any(data == src.nodata, axis=0) if not np.isnan(src.nodata) else ~np.isnan(data[0])
    except (rasterio.errors.RasterioIOError, rasterio.errors.RasterioError) as exc:
        raise ImageryError(f"{what}: {href} cannot be read ({exc})") from exc
    return data, valid


@dataclass
class SceneRead:
    """One date read onto the fetch grid: ``data`` (bands, rows, cols) in the assets' type, ``usable``
    (data and no cloud), and the shares of the AOI that are no data and cloud."""

    data: np.ndarray | None
    usable: np.ndarray
    nodata_fraction: float
    cloud_fraction: float

    @property
    def unusable_fraction(self) -> float:
        return self.nodata_fraction + self.cloud_fraction


def _coverage(item_id: str, assets: ItemAssets, grid: Grid) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """(has data, clear, (colour bands, where they have data) or None) of one item: from its mask where it
    has one (no colour band read), else from its colour bands."""
    if assets.mask is not None:
        values, has = read_on_grid(assets.mask.href, [1], grid, f"item {item_id} asset {assets.mask.key}")
        nodata, cloud = assets.mask.rule.classify(values[0])
        has &= ~nodata
        return has, has & ~cloud, None
    data, has = _read_bands(item_id, assets, grid)
    return has, has, (data, has)


def _read_bands(item_id: str, assets: ItemAssets, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """An item's colour bands, red first, in one array of their common type, and where all have data."""
    out, valid = [], np.ones(grid.shape, bool)
    for band in assets.bands:
        data, has = read_on_grid(band.href, [band.band], grid, f"item {item_id} asset {band.key}")
        out.append(data[0])
        valid &= has
    return np.stack(out).astype(np.result_type(*out)), valid


def read_scene(items: list[tuple[str, ItemAssets]], grid: Grid, inside: np.ndarray) -> SceneRead:
    """Read one date's items onto ``grid``: each pixel from the first item clear there, else the first with data.

    The colour bands are read only when the AOI (``inside``) is at most
    :data:`MAX_UNUSABLE_AOI_FRACTION` cloud and no data (``data`` is None otherwise).
    """
    chosen = np.full(grid.shape, -1)
    first_with_data = np.full(grid.shape, -1)
    clear_any = np.zeros(grid.shape, bool)
    has_any = np.zeros(grid.shape, bool)
    already: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k, (item_id, assets) in enumerate(items):
        has, clear, data = _coverage(item_id, assets, grid)
        if data is not None:
            already[k] = data
        chosen[(chosen < 0) & clear] = k
        first_with_data[(first_with_data < 0) & has] = k
        clear_any |= clear
        has_any |= has
    n_inside = max(int(inside.sum()), 1)
    nodata_fraction = float((inside & ~has_any).sum() / n_inside)
    cloud_fraction = float((inside & has_any & ~clear_any).sum() / n_inside)
    scene = SceneRead(None, clear_any, nodata_fraction, cloud_fraction)
    if scene.unusable_fraction > MAX_UNUSABLE_AOI_FRACTION:
        return scene
    chosen = np.where(chosen >= 0, chosen, np.maximum(first_with_data, 0))  # cloudy: the first item with data
    layers = []
    for k, (item_id, assets) in enumerate(items):
        if (chosen == k).any() or k == 0:
            layers.append((k, already.get(k) or _read_bands(item_id, assets, grid)))
    dtype = np.result_type(*[d for _, (d, _) in layers])
    out = np.zeros((layers[0][1][0].shape[0], *grid.shape), dtype)
    for k, (data, valid) in layers:
        pick = chosen == k
        out[:, pick] = data[:, pick]
        scene.usable &= ~pick | valid  # a band's own no data is not usable, whatever the mask says
    scene.data = out
    return scene


def write_scene_cog(path: Path, scene: SceneRead, grid: Grid, colours: tuple[str, ...]) -> None:
    """The scene as a COG: its colour bands (described ``red``, ``green``, ``blue``[, ``nir``]) and an
    alpha band, full where the pixel is usable (data, no cloud) and 0 elsewhere."""
    data = scene.data
    top = np.iinfo(data.dtype).max if data.dtype.kind in "ui" else 1
    alpha = np.where(scene.usable, top, 0).astype(data.dtype)
    stacked = np.concatenate([data, alpha[None]])
    tmp = path.with_name(path.name + ".src.tif")
    write_geotiff(tmp, stacked, grid, descriptions=(*colours, "alpha"))
    interp = {"red": ColorInterp.red, "green": ColorInterp.green, "blue": ColorInterp.blue}
    with rasterio.open(tmp, "r+") as dst:
        dst.colorinterp = [interp.get(c, ColorInterp.undefined) for c in colours] + [ColorInterp.alpha]
    rasterio.shutil.copy(tmp, path, driver="COG", compress="deflate", predictor=2, blocksize=256)
    tmp.unlink()
    aux = tmp.with_name(tmp.name + ".aux.xml")
    if aux.exists():
        aux.unlink()


class SceneCache:
    """Scenes already read, by key: ``scenes/<key>/scene.json`` (what was read or why it was skipped) and
    ``scene.tif``. Entries are written whole (in a temporary folder, then renamed)."""

    def __init__(self, root: Path) -> None:
        self.root = root / "scenes"

    @staticmethod
    def key(items: list[tuple[str, ItemAssets]], grid: Grid) -> str:
        """A scene's key: its items and assets (hrefs, bands, mask rule), the grid, and the skip threshold."""
        return _digest(
            {
                "version": CACHE_VERSION,
                "items": [(i, a.bands, a.mask) for i, a in items],
                "grid": (grid.crs.to_wkt(), tuple(grid.transform)[:6], grid.shape),
                "max_unusable": MAX_UNUSABLE_AOI_FRACTION,
            }
        )

    def get(self, key: str) -> tuple[dict[str, Any], Path | None] | None:
        """The cached record and image (None for a skipped scene), or None when not cached."""
        folder = self.root / key
        try:
            record = json.loads((folder / "scene.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        tif = folder / "scene.tif"
        if record.get("status") == "fetched" and not tif.is_file():
            return None
        return record, (tif if record.get("status") == "fetched" else None)

    def put(self, key: str, record: dict[str, Any], write_tif: Any = None) -> tuple[dict[str, Any], Path | None]:
        """Store a record (and the image ``write_tif(path)`` writes), replacing any older entry."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            if write_tif is not None:
                write_tif(tmp / "scene.tif")
            (tmp / "scene.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
            final = self.root / key
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.get(key) or (record, None)
