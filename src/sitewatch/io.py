"""Raster and vector I/O: read an AOI window, align grids, write GeoTIFF/COG/GeoJSON/GPKG.

This is the only layer (with :mod:`sitewatch.aoi`) that touches files.  Every write goes
to a temporary file in the destination folder and is renamed into place when complete,
so a failed run never leaves a half-written output behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_geom
from rasterio.windows import Window, from_bounds
from shapely.geometry import LineString, box, mapping, shape
from shapely.geometry.base import BaseGeometry

from .errors import ImageryError, OutputExistsError, RunError, TrackError

ISO_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform and shape (rows, cols)."""

    crs: CRS
    transform: Affine
    shape: tuple[int, int]

    @property
    def pixel_size(self) -> float:
        """Mean pixel size in CRS units (metres for projected CRSs)."""
        return float((abs(self.transform.a) + abs(self.transform.e)) / 2)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        rows, cols = self.shape
        west, north = self.transform * (0, 0)
        east, south = self.transform * (cols, rows)
        return (min(west, east), min(south, north), max(west, east), max(south, north))


@dataclass(frozen=True)
class RasterWindow:
    """Pixels of one image inside an AOI, on a known grid.

    ``data`` has shape (bands, rows, cols), float32; ``valid`` is True where every band
    holds data (not nodata, inside the source image).
    """

    path: Path
    data: np.ndarray
    valid: np.ndarray
    grid: Grid
    date: str | None


def _open(path: Path):
    if not path.exists():
        raise ImageryError(f"{path}: no such file")
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise ImageryError(f"{path}: not a readable raster ({exc})") from exc


def _image_metadata(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """An image's STAC item properties (``<name>.json`` beside it) and GeoTIFF tags (upper-cased keys).

    Either is empty where it is missing or unreadable.
    """
    props: dict[str, Any] = {}
    stac = path.with_suffix(".json")
    if stac.exists():
        try:
            found = json.loads(stac.read_text("utf-8")).get("properties", {})
            props = found if isinstance(found, dict) else {}
        except (json.JSONDecodeError, AttributeError):
            pass
    try:
        with rasterio.open(path) as src:
            tags = {k.upper(): v for k, v in src.tags().items()}
    except rasterio.errors.RasterioIOError:
        tags = {}
    return props, tags


def image_date(path: str | os.PathLike[str]) -> str | None:
    """An image's acquisition date as ISO ``YYYY-MM-DD``.

    Looked up, in order: a STAC item beside the image (``<name>.json`` with
    ``properties.datetime``), the TIFF tag ``TIFFTAG_DATETIME``, then an ISO date in the
    file name.  ``None`` when none of them has one.
    """
    path = Path(path)
    props, tags = _image_metadata(path)
    if props.get("datetime"):
        return str(props["datetime"])[:10]
    tag = tags.get("TIFFTAG_DATETIME")
    if tag:
        m = re.match(r"(\d{4})[:-](\d{2})[:-](\d{2})", tag)
        if m:
            return "-".join(m.groups())
    m = ISO_DATE.search(path.stem)
    if m:
        y, mo, d = (int(g) for g in m.groups())
        try:
            return date(y, mo, d).isoformat()
        except ValueError:
            return None
    return None


SUN_TAGS = ("SUN_AZIMUTH", "SUN_ELEVATION")


def _sun_pair(azimuth: Any, elevation: Any) -> tuple[float, float] | None:
    try:
        az, el = float(azimuth), float(elevation)
    except (TypeError, ValueError):
        return None
    if not (np.isfinite(az) and 0.0 < el < 90.0):
        return None
    return az % 360.0, el


def image_sun(path: str | os.PathLike[str]) -> tuple[float, float] | None:
    """The sun's azimuth and elevation (degrees) when the image was taken, from its metadata.

    Looked up, in order: a STAC item beside the image (``<name>.json`` with the view
    extension's ``properties["view:sun_azimuth"]`` and ``["view:sun_elevation"]``), then
    the GeoTIFF tags ``SUN_AZIMUTH`` and ``SUN_ELEVATION`` (any case).  Azimuth is clockwise
    from north.  ``None`` when neither has a usable pair (an elevation outside 0-90 degrees
    is not).
    """
    props, tags = _image_metadata(Path(path))
    return _sun_pair(props.get("view:sun_azimuth"), props.get("view:sun_elevation")) or _sun_pair(
        *(tags.get(t) for t in SUN_TAGS)
    )


def _check_raster(src, path: Path, min_bands: int) -> None:
    if src.crs is None:
        raise ImageryError(f"{path}: has no CRS; sitewatch needs georeferenced imagery (GeoTIFF with a CRS)")
    if src.count < min_bands:
        raise ImageryError(f"{path}: has {src.count} band(s), at least {min_bands} needed")


def _valid_mask(src, data: np.ndarray, window_mask: np.ndarray | None = None) -> np.ndarray:
    valid = np.ones(data.shape[1:], dtype=bool)
    for b, nd in enumerate(src.nodatavals):
        if nd is not None:
            valid &= ~((data[b] == nd) | (np.isnan(nd) & np.isnan(data[b])))
    if window_mask is not None:
        valid &= window_mask
    return valid & np.all(np.isfinite(data), axis=0)


def _read_bounds(src, path: Path, bounds: tuple[float, float, float, float]) -> RasterWindow:
    """Every band of ``src`` inside ``bounds`` (in its CRS), on its own grid, as a RasterWindow."""
    win = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
    win = win.intersection(Window(0, 0, src.width, src.height))
    try:
        data = src.read(window=win, out_dtype="float32")
    except rasterio.errors.RasterioIOError as exc:
        raise ImageryError(f"{path}: pixels cannot be read ({exc}); the file may be truncated or corrupt") from exc
    grid = Grid(CRS.from_user_input(src.crs), src.window_transform(win), (int(win.height), int(win.width)))
    return RasterWindow(path, data, _valid_mask(src, data), grid, image_date(path))


def read_aoi_window(
    path: str | os.PathLike[str], footprint_lonlat: BaseGeometry, *, min_bands: int = 1
) -> RasterWindow:
    """Read the part of an image that covers an AOI footprint, on the image's own grid.

    Raises
    ------
    ImageryError
        If the file is missing or unreadable, has no CRS, too few bands, or does not
        overlap the footprint.
    """
    path = Path(path)
    with _open(path) as src:
        _check_raster(src, path, min_bands)
        fp = shape(transform_geom("EPSG:4326", src.crs, mapping(footprint_lonlat)))
        image_box = box(*src.bounds)
        overlap = fp.intersection(image_box)
        if overlap.is_empty or overlap.area <= 0:
            raise ImageryError(
                f"{path}: does not overlap the AOI footprint "
                f"(image bounds {tuple(round(v) for v in src.bounds)} in {src.crs})"
            )
        return _read_bounds(src, path, overlap.bounds)


@dataclass(frozen=True)
class SourceRaster:
    """A whole image in memory, nodata as NaN, with its georeference: input to :func:`warp_onto_grid`."""

    path: Path
    data: np.ndarray
    transform: Affine
    crs: CRS
    date: str | None


def read_source(path: str | os.PathLike[str], *, min_bands: int = 1) -> SourceRaster:
    """Read every band of an image as float32, nodata replaced by NaN.

    Raises
    ------
    ImageryError
        If the file is missing, unreadable, has no CRS or too few bands.
    """
    path = Path(path)
    with _open(path) as src:
        _check_raster(src, path, min_bands)
        try:
            data = src.read(out_dtype="float32")
        except rasterio.errors.RasterioIOError as exc:
            raise ImageryError(f"{path}: pixels cannot be read ({exc}); the file may be truncated or corrupt") from exc
        for b, nd in enumerate(src.nodatavals):
            if nd is not None:
                data[b][data[b] == nd] = np.nan
        return SourceRaster(path, data, src.transform, CRS.from_user_input(src.crs), image_date(path))


def corrected_transform(
    source_transform: Affine,
    grid_transform: Affine,
    shift_px: tuple[float, float] = (0.0, 0.0),
    gradient: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
    centre: tuple[float, float] = (0.0, 0.0),
) -> Affine:
    """A source image's geotransform with a co-registration correction folded in.

    The correction is measured on the reference grid: content that belongs at reference
    pixel ``p`` appears at ``p + d(p)``, with ``d(p) = shift + gradient · (p - centre)``
    (see :class:`sitewatch.coreg.ShiftResult`).  Composing ``p -> p - d(p)`` (affine) into
    the source's transform moves every source pixel to where it belongs, so the pixels are
    resampled once, or not at all when the corrected image is written as it is.
    """
    dx, dy = shift_px
    a, b, c, d = gradient
    cx, cy = centre
    undo = Affine(1 - a, -b, -dx + a * cx + b * cy, -c, 1 - d, -dy + c * cx + d * cy)
    return grid_transform @ undo @ ~grid_transform @ source_transform


# GDAL warps in parallel chunks; a warp is the one step of detect that GDAL, not NumPy, does
WARP_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _whole_pixel_offset(src_transform: Affine, src_crs: CRS, grid: Grid) -> tuple[int, int] | None:
    """(row, col) of ``grid``'s first pixel in the source, when both share one pixel lattice."""
    g = grid.transform
    if src_crs != grid.crs or not np.allclose(
        [src_transform.a, src_transform.b, src_transform.d, src_transform.e],
        [g.a, g.b, g.d, g.e],
        rtol=0,
        atol=1e-9 * abs(g.a),
    ):
        return None
    col, row = ~src_transform * (g.c, g.f)
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return int(round(row)), int(round(col))


def warp_onto_grid(
    source: SourceRaster,
    grid: Grid,
    *,
    shift_px: tuple[float, float] = (0.0, 0.0),
    gradient: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
    centre: tuple[float, float] = (0.0, 0.0),
    resampling: Resampling = Resampling.cubic,
) -> RasterWindow:
    """Warp an in-memory image onto ``grid`` in a single resampling.

    ``shift_px = (dx, dy)`` is the displacement of this image's content relative to the
    reference, in the reference grid's columns and rows (with an optional affine
    ``gradient`` about ``centre``).  It is corrected by editing the source geotransform
    before the warp (:func:`corrected_transform`), so the pixels are resampled once.
    """
    src_transform = corrected_transform(source.transform, grid.transform, shift_px, gradient, centre)
    rows, cols = grid.shape
    out = np.full((source.data.shape[0], rows, cols), np.nan, dtype=np.float32)
    offset = _whole_pixel_offset(src_transform, source.crs, grid)
    if offset is not None:  # same lattice: a slice, no resampling (and much faster)
        r0, c0 = offset
        sr, sc = source.data.shape[1:]
        dr0, dc0, dr1, dc1 = max(0, -r0), max(0, -c0), min(rows, sr - r0), min(cols, sc - c0)
        if dr1 > dr0 and dc1 > dc0:
            out[:, dr0:dr1, dc0:dc1] = source.data[:, r0 + dr0 : r0 + dr1, c0 + dc0 : c0 + dc1]
        valid = np.all(np.isfinite(out), axis=0)
        if not valid.any():
            raise ImageryError(f"{source.path}: does not overlap the reference image's AOI window")
        return RasterWindow(source.path, out, valid, grid, source.date)
    reproject(
        source.data,
        out,
        src_transform=src_transform,
        src_crs=source.crs,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        resampling=resampling,
        src_nodata=np.nan,
        dst_nodata=np.nan,
        num_threads=WARP_THREADS,
    )
    valid = np.all(np.isfinite(out), axis=0)
    if not valid.any():
        raise ImageryError(f"{source.path}: does not overlap the reference image's AOI window")
    return RasterWindow(source.path, out, valid, grid, source.date)


# ---------------------------------------------------------------- tracks


def read_tracks_file(path: str | os.PathLike[str]) -> dict[str, BaseGeometry]:
    """Track centrelines from a GeoJSON of LineStrings, each with a ``track_id`` property.

    Coordinates are lon/lat (RFC 7946).  Returns ``{track_id: geometry}`` in file order.

    Raises
    ------
    TrackError
        If the file is missing or not GeoJSON, or a feature is not a non-empty LineString
        with a unique ``track_id``; the message names the feature.
    """
    path = Path(path)
    if not path.exists():
        raise TrackError(f"{path}: no such file")
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrackError(f"{path}: not valid JSON ({exc})") from exc
    feats = doc.get("features") if isinstance(doc, dict) and doc.get("type") == "FeatureCollection" else None
    if not isinstance(feats, list):
        raise TrackError(f"{path}: expected a GeoJSON FeatureCollection of LineStrings")
    tracks: dict[str, BaseGeometry] = {}
    for i, feat in enumerate(feats):
        props = (feat or {}).get("properties") or {}
        track_id = props.get("track_id")
        label = f"track {track_id!r}" if track_id else f"feature {i}"
        if not track_id:
            raise TrackError(f"{path}: {label} has no track_id property")
        if track_id in tracks:
            raise TrackError(f"{path}: track {track_id!r} appears twice")
        try:
            geom = shape(feat["geometry"]) if feat.get("geometry") else None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TrackError(f"{path}: {label} has an unreadable geometry ({exc})") from exc
        if geom is None or geom.is_empty:
            raise TrackError(f"{path}: {label} has an empty geometry")
        if geom.geom_type != "LineString":
            raise TrackError(f"{path}: {label} is a {geom.geom_type}; a track must be a LineString")
        tracks[track_id] = geom
    if not tracks:
        raise TrackError(f"{path}: contains no tracks")
    return tracks


def read_track_window(
    path: str | os.PathLike[str],
    tracks_lonlat: dict[str, BaseGeometry],
    *,
    margin_m: float = 20.0,
    skip_outside: bool = False,
) -> tuple[RasterWindow, dict[str, LineString]]:
    """Read the part of an image around a set of track lines, and the lines in its CRS.

    A line partly outside the image is clipped to it.  A line wholly outside, or with less
    than 20 m inside, is an error naming the track, unless ``skip_outside`` is true (an AOI
    may hold tracks beyond one image's extent): then it is left out, and only when no
    track at all is inside is it an error.

    Returns
    -------
    window : RasterWindow
    tracks : dict of str to LineString
        Each track in the image's CRS (metres), clipped to the image.
    """
    path = Path(path)
    with _open(path) as src:
        _check_raster(src, path, 1)
        crs = CRS.from_user_input(src.crs)
        if not crs.is_projected:
            raise ImageryError(
                f"{path}: CRS {crs.to_string()} is geographic; railcar lengths need a projected CRS "
                "(reproject first, e.g. with gdalwarp -t_srs to the local UTM zone)"
            )
        image_box = box(*src.bounds)
        inner = image_box.buffer(-2 * abs(src.transform.a))
        projected: dict[str, LineString] = {}
        for track_id, geom in tracks_lonlat.items():
            if geom is None or geom.is_empty:
                raise TrackError(f"track {track_id!r}: empty geometry")
            line = shape(transform_geom("EPSG:4326", src.crs, mapping(geom)))
            clipped = line.intersection(inner)
            if clipped.is_empty or clipped.length < 20.0:
                if skip_outside:
                    continue
                raise TrackError(
                    f"track {track_id!r} lies outside {path} (image bounds "
                    f"{tuple(round(v) for v in src.bounds)} in {crs.to_string()})"
                )
            if clipped.geom_type != "LineString":
                # leaves and re-enters the image: keep the longest piece
                clipped = max(getattr(clipped, "geoms", [clipped]), key=lambda g: g.length)
            projected[track_id] = clipped
        if not projected:
            raise TrackError(
                f"none of the tracks ({', '.join(tracks_lonlat)}) lies inside {path} (image bounds "
                f"{tuple(round(v) for v in src.bounds)} in {crs.to_string()})"
            )
        extent = shapely.union_all(list(projected.values())).buffer(margin_m).intersection(image_box)
        return _read_bounds(src, path, extent.bounds), projected


# ---------------------------------------------------------------- writing


def check_outputs_free(paths: list[Path], overwrite: bool) -> None:
    """Refuse to start when an output exists and ``overwrite`` is false."""
    if overwrite:
        return
    taken = [str(p) for p in paths if p.exists()]
    if taken:
        raise OutputExistsError(f"output exists, not overwriting (use --overwrite): {', '.join(taken)}")


@contextmanager
def staged_outputs(out_dir: str | os.PathLike[str], names: list[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Write a run's files into a staging folder, then move them all into ``out_dir``.

    Yields the staging folder.  If the block raises, nothing in ``out_dir`` changes.
    """
    out_dir = Path(out_dir)
    check_outputs_free([out_dir / n for n in names], overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sitewatch-", dir=out_dir))
    try:
        yield staging
        for item in staging.iterdir():
            os.replace(item, out_dir / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_geotiff(
    path: Path,
    data: np.ndarray,
    grid: Grid,
    *,
    nodata: float | None = None,
    tags: dict[str, Any] | None = None,
    cog: bool = False,
    overviews: tuple[int, ...] = (2, 4, 8),
    descriptions: tuple[str, ...] | None = None,
) -> None:
    """Write ``data`` of shape (bands, rows, cols) as a tiled, DEFLATE-compressed GeoTIFF (or COG)."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    bands, rows, cols = data.shape
    predictor = 3 if data.dtype.kind == "f" else 2
    profile = dict(
        driver="GTiff",
        width=cols,
        height=rows,
        count=bands,
        dtype=data.dtype.name,
        crs=grid.crs,
        transform=grid.transform,
        nodata=nodata,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        predictor=predictor,
    )
    if cog:
        # the COG driver writes by copy: stage a plain GeoTIFF, then translate
        tmp = path.with_name(path.name + ".src.tif")
        write_geotiff(tmp, data, grid, nodata=nodata, tags=tags, cog=False, overviews=())
        with rasterio.open(tmp) as src:
            with rasterio.open(
                path,
                "w",
                driver="COG",
                width=cols,
                height=rows,
                count=bands,
                dtype=data.dtype.name,
                crs=grid.crs,
                transform=grid.transform,
                nodata=nodata,
                compress="deflate",
                predictor=predictor,
                blocksize=256,
            ) as dst:
                dst.write(src.read())
                dst.update_tags(**(tags or {}))
        tmp.unlink()
        return
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            dst.descriptions = descriptions
        if tags:
            dst.update_tags(**{k: str(v) for k, v in tags.items()})
        levels = [f for f in overviews if min(rows, cols) // f >= 64]
        if levels:
            dst.build_overviews(levels, Resampling.average)
            dst.update_tags(ns="rio_overview", resampling="average")


def write_vectors(
    records: list[dict[str, Any]],
    crs: Any,
    geojson_path: Path | None = None,
    gpkg_path: Path | None = None,
    *,
    layer: str = "changes",
) -> None:
    """Write features (dicts with a ``geometry`` key in ``crs``) as GeoJSON (lon/lat) and/or GPKG (native CRS)."""
    import geopandas as gpd

    props = [{k: v for k, v in r.items() if k != "geometry"} for r in records]
    geoms = [r["geometry"] for r in records]
    gdf = gpd.GeoDataFrame(props, geometry=geoms, crs=crs)
    if gpkg_path is not None:
        gdf.to_file(gpkg_path, driver="GPKG", layer=layer, engine="pyogrio")
    if geojson_path is not None:
        lonlat = gdf.to_crs(4326)
        geojson_path.write_text(lonlat.to_json(drop_id=True, to_wgs84=False, indent=1) + "\n", encoding="utf-8")


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")


def read_vectors(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], CRS]:
    """Features of a vector file as dicts (properties plus ``geometry``) and the file's CRS.

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
        gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise RunError(f"{path}: cannot be read as vectors ({exc})") from exc
    records = [
        {**{k: v for k, v in row.items() if k != "geometry"}, "geometry": row["geometry"]}
        for row in gdf.to_dict("records")
    ]
    return records, CRS.from_user_input(gdf.crs)


# ---------------------------------------------------------------- unreferenced pictures

# Pictures without georeference (LEVIR-CD's PNGs) are placed on a local metric grid so the
# GeoTIFF path can run on them unchanged: a projected CRS, origin on its central meridian.
LOCAL_CRS = CRS.from_epsg(32631)


def read_picture(path: str | os.PathLike[str], pixel_size: float, *, mode: str = "RGB") -> RasterWindow:
    """An image file without georeference (PNG, JPEG) as a window on a local grid.

    Parameters
    ----------
    path : path-like
    pixel_size : float
        Metres per pixel, which the file does not say.
    mode : str
        Pillow mode to convert to: ``"RGB"`` for images, ``"L"`` for label masks.

    Raises
    ------
    ImageryError
        If the file is missing or not a readable picture.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise ImageryError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert(mode), dtype=np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageryError(f"{path}: not a readable picture ({exc})") from exc
    data = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)
    grid = Grid(LOCAL_CRS, Affine(pixel_size, 0.0, 500000.0, 0.0, -pixel_size, 0.0), data.shape[1:])
    return RasterWindow(path, data, np.ones(data.shape[1:], bool), grid, None)


def write_mask_png(path: Path, mask: np.ndarray) -> None:
    """A binary mask as an 8-bit PNG, 255 where True (the LEVIR-CD convention)."""
    from PIL import Image

    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path, format="PNG")
