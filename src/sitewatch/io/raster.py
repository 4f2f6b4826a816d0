"""Raster windows and warping: read an image (or the part of it an AOI covers) on its grid,
and warp another image onto that grid in a single resampling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_geom
from rasterio.windows import Window, from_bounds
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import ImageryError
from .metadata import image_date


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform and shape (rows, cols)."""

    crs: CRS
    transform: Affine
    shape: tuple[int, int]

    @property
    def pixel_size_m(self) -> float:
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


def open_raster(path: Path):
    if not path.exists():
        raise ImageryError(f"{path}: no such file")
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise ImageryError(f"{path}: not a readable raster ({exc})") from exc


def check_raster(src, path: Path, min_bands: int) -> None:
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


def read_bounds(src, path: Path, bounds: tuple[float, float, float, float]) -> RasterWindow:
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
    with open_raster(path) as src:
        check_raster(src, path, min_bands)
        fp = shape(transform_geom("EPSG:4326", src.crs, mapping(footprint_lonlat)))
        image_box = box(*src.bounds)
        overlap = fp.intersection(image_box)
        if overlap.is_empty or overlap.area <= 0:
            raise ImageryError(
                f"{path}: does not overlap the AOI footprint "
                f"(image bounds {tuple(round(v) for v in src.bounds)} in {src.crs})"
            )
        return read_bounds(src, path, overlap.bounds)


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
    with open_raster(path) as src:
        check_raster(src, path, min_bands)
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
