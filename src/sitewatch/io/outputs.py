"""A run's outputs: staged all or nothing, as GeoTIFF/COG, GeoJSON/GPKG, JSON and CSV.

Every write goes to a staging folder inside the destination and is moved into place when
all of a run's files are complete, so a failed run never leaves a half-written output.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..errors import OutputExistsError, RunError
from .gis import VectorStyle, write_geoparquet, write_layer_styles, write_qml, write_rfc7946
from .raster import Grid


def check_out_dir(out_dir: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an output folder that cannot be written or whose name cannot be.

    The folder need not exist; then the nearest existing folder above it must be writable.
    """
    path = Path(out_dir)
    if any(ord(ch) < 32 for ch in str(path)):
        raise OutputExistsError(f"{str(path)!r}: an output path with a control character (newline, tab) is refused")
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: exists and is not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputExistsError(f"{path}: cannot be written ({existing} is not a writable folder)")


def check_outputs_free(paths: list[Path], overwrite: bool) -> None:
    """Refuse to start when an output folder cannot be written, or an output exists and ``overwrite`` is false."""
    for folder in {p.parent for p in paths}:
        check_out_dir(folder)
    if overwrite:
        return
    taken = [str(p) for p in paths if p.exists() or p.is_symlink()]
    if taken:
        raise OutputExistsError(f"output exists, not overwriting (use --overwrite): {', '.join(taken)}")


STAGING_PREFIX = ".sitewatch-"


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """Hold a lock on the folder itself (no lock file is left in it); another run writing into it stops this one."""
    import fcntl

    fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise OutputExistsError(
                f"{out_dir}: another sitewatch run is writing into this folder; wait for it, or choose another -o"
            ) from exc
        yield
    finally:
        os.close(fd)


def _remove_stale_staging(out_dir: Path) -> None:
    """Staging folders a killed run left behind (only called with the folder's lock held, so none is live)."""
    for item in out_dir.glob(STAGING_PREFIX + "*"):
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)


@contextmanager
def staged_outputs(out_dir: str | os.PathLike[str], names: list[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Write a run's files into a staging folder, then move them all into ``out_dir``.

    Yields the staging folder.  If the block raises, nothing in ``out_dir`` changes.  The
    folder is locked while its files are written and moved, so two runs into one folder
    cannot interleave (the second stops, or - without ``overwrite`` - finds the first's
    outputs and refuses); staging folders left by a killed run are removed.
    """
    out_dir = Path(out_dir)
    check_outputs_free([out_dir / n for n in names], overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _locked(out_dir):
        check_outputs_free([out_dir / n for n in names], overwrite)
        _remove_stale_staging(out_dir)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
        try:
            yield staging
            for item in staging.iterdir():
                os.replace(item, out_dir / item.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


# overview levels of a plain GeoTIFF (those leaving at least 64 pixels a side)
OVERVIEW_FACTORS = (2, 4, 8)


def _tiled_profile(grid: Grid, shape: tuple[int, int, int], dtype: np.dtype, nodata: float | None) -> dict[str, Any]:
    """Creation options of a 256-px tiled, DEFLATE GeoTIFF of ``shape`` (bands, rows, cols) in ``grid``'s CRS."""
    bands, rows, cols = shape
    return dict(
        driver="GTiff",
        width=cols,
        height=rows,
        count=bands,
        dtype=dtype.name,
        crs=grid.crs,
        transform=grid.transform,
        nodata=nodata,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        # floating-point predictor for floats, horizontal differencing for integers
        predictor=3 if dtype.kind == "f" else 2,
    )


def write_geotiff(
    path: Path,
    data: np.ndarray,
    grid: Grid,
    *,
    nodata: float | None = None,
    tags: dict[str, Any] | None = None,
    cog: bool = False,
    descriptions: tuple[str, ...] | None = None,
    units: tuple[str, ...] | None = None,
) -> None:
    """Write ``data`` of shape (bands, rows, cols) as a tiled, DEFLATE-compressed GeoTIFF (or COG).

    ``descriptions`` and ``units`` (one per band) are set on the bands themselves, where GIS
    software shows them (QGIS's layer properties, ``gdalinfo``).  A plain GeoTIFF gets the
    :data:`OVERVIEW_FACTORS` levels that leave at least 64 px.
    """
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    _, rows, cols = data.shape
    profile = _tiled_profile(grid, data.shape, data.dtype, nodata)
    if cog:
        # the COG driver writes by copy when the dataset closes (with its own overviews)
        cog_profile = {k: v for k, v in profile.items() if k not in ("tiled", "blockxsize", "blockysize")}
        with rasterio.open(path, "w", **{**cog_profile, "driver": "COG", "blocksize": 256}) as dst:
            dst.write(data)
            dst.update_tags(**(tags or {}))
            _describe_bands(dst, descriptions, units)
        return
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        _describe_bands(dst, descriptions, units)
        if tags:
            dst.update_tags(**{k: str(v) for k, v in tags.items()})
        levels = [f for f in OVERVIEW_FACTORS if min(rows, cols) // f >= 64]
        if levels:
            dst.build_overviews(levels, Resampling.average)
            dst.update_tags(ns="rio_overview", resampling="average")


@contextmanager
def block_geotiff(
    path: Path, grid: Grid, *, nodata: float | None = None
) -> Iterator[Callable[[np.ndarray, int, int], None]]:
    """A one-band float32 tiled GeoTIFF on ``grid``, written block by block: yields ``write(data, row, col)``.

    The file is never held in memory whole; :func:`geotiff_to_cog` turns it into a COG.
    """
    profile = {**_tiled_profile(grid, (1, *grid.shape), np.dtype("float32"), nodata), "BIGTIFF": "IF_SAFER"}
    with rasterio.open(path, "w", **profile) as dst:

        def write(data: np.ndarray, row: int, col: int) -> None:
            dst.write(data.astype(np.float32), 1, window=Window(col, row, data.shape[1], data.shape[0]))

        yield write


def geotiff_to_cog(
    source: Path,
    path: Path,
    *,
    tags: dict[str, Any] | None = None,
    descriptions: tuple[str, ...] | None = None,
    units: tuple[str, ...] | None = None,
) -> None:
    """Copy a GeoTIFF (:func:`block_geotiff`) to a COG at ``path``, with tags and band descriptions, block by block."""
    with rasterio.open(source, "r+") as src:
        src.update_tags(**{k: str(v) for k, v in (tags or {}).items()})
        _describe_bands(src, descriptions, units)
    rasterio.shutil.copy(source, path, driver="COG", blocksize=256, compress="deflate", predictor=3, BIGTIFF="IF_SAFER")


def _describe_bands(dst: Any, descriptions: tuple[str, ...] | None, units: tuple[str, ...] | None) -> None:
    for k, text in enumerate(descriptions or (), start=1):
        dst.set_band_description(k, text)
    for k, unit in enumerate(units or (), start=1):
        dst.set_band_unit(k, unit)


def write_vectors(
    records: list[dict[str, Any]],
    crs: Any,
    geojson_path: Path | None = None,
    gpkg_path: Path | None = None,
    *,
    layer: str = "changes",
    parquet_path: Path | None = None,
    style: VectorStyle | None = None,
) -> None:
    """Write features (dicts with a ``geometry`` key in ``crs``) as GeoJSON, GPKG and/or GeoParquet.

    GeoJSON is RFC 7946 (lon/lat, counter-clockwise exterior rings, 7 decimals, through GDAL's
    driver); the GPKG (layer ``layer``) and GeoParquet keep the native CRS. With ``style``, the
    GPKG gets it as its default QGIS style (``layer_styles``) and the GeoJSON a ``.qml`` beside it.
    """
    import geopandas as gpd

    props = [{k: v for k, v in r.items() if k != "geometry"} for r in records]
    geoms = [r["geometry"] for r in records]
    gdf = gpd.GeoDataFrame(props, geometry=geoms, crs=crs)
    if gpkg_path is not None:
        gdf.to_file(gpkg_path, driver="GPKG", layer=layer, engine="pyogrio")
        if style is not None:
            write_layer_styles(gpkg_path, {layer: style})
    if geojson_path is not None:
        write_rfc7946(gdf, geojson_path)
        if style is not None:
            write_qml(style, geojson_path.with_suffix(".qml"))
    if parquet_path is not None:
        write_geoparquet(gdf, parquet_path)


def add_gpkg_layer(gpkg_path: Path, records: list[dict[str, Any]], crs: Any, layer: str, style: VectorStyle) -> None:
    """Add a styled layer to an existing GeoPackage (e.g. the regularised outlines beside the traced ones)."""
    import geopandas as gpd

    props = [{k: v for k, v in r.items() if k != "geometry"} for r in records]
    gdf = gpd.GeoDataFrame(props, geometry=[r["geometry"] for r in records], crs=crs)
    gdf.to_file(gpkg_path, driver="GPKG", layer=layer, engine="pyogrio")
    write_layer_styles(gpkg_path, {layer: style})


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")


def read_vectors(path: str | os.PathLike[str], layer: str | None = None) -> tuple[list[dict[str, Any]], CRS]:
    """Features of a vector file (its ``layer``, or its only or first layer) as dicts and the file's CRS.

    Each dict holds a feature's properties and its ``geometry``.

    Raises
    ------
    RunError
        If the file is missing or cannot be read as vectors.
    """
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no such file")
    try:
        gdf = gpd.read_file(path, engine="pyogrio", layer=layer)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise RunError(f"{path}: cannot be read as vectors ({exc})") from exc
    records = [
        {**{k: v for k, v in row.items() if k != "geometry"}, "geometry": row["geometry"]}
        for row in gdf.to_dict("records")
    ]
    return records, CRS.from_user_input(gdf.crs)


# A cell starting with one of these is read as a formula by spreadsheets (CSV injection): such
# text cells are written with a leading apostrophe, which the spreadsheet shows as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A CSV cell that a spreadsheet cannot run: text starting like a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    """Rows (dicts) as CSV with a header of ``fields``; keys not in ``fields`` are left out.

    Text cells (and header names) that a spreadsheet would run as a formula are neutralised
    (:func:`csv_safe`).
    """
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([csv_safe(f) for f in fields])
        writer.writerows([csv_safe(row.get(f, "")) for f in fields] for row in rows)
