"""Raster windows and warping: read an image (or the part of it an AOI covers) on its grid,
and warp another image onto that grid in a single resampling.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
from affine import Affine
from pyproj import CRS, Proj, Transformer
from rasterio.enums import MaskFlags, Resampling
from rasterio.warp import calculate_default_transform, reproject, transform_bounds, transform_geom
from rasterio.windows import Window, from_bounds
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import ImageryError
from .metadata import image_date
from .sources import RemotePath, check_no_network_sources, image_path
from .stac import is_stac_item, read_stac_item


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

    def map_offset(self, dx: float, dy: float) -> tuple[float, float]:
        """A displacement of (dx columns, dy rows) in map axes: (east, north) in CRS units.

        Rows grow southwards on a north-up grid, so a positive ``dy`` is a negative north.
        """
        t = self.transform
        return (t.a * dx + t.b * dy, t.d * dx + t.e * dy)


@dataclass(frozen=True)
class RasterWindow:
    """Pixels of one image inside an AOI, on a known grid.

    ``data`` has shape (bands, rows, cols), float32; ``valid`` is True where every band
    holds data (not nodata, inside the source image).
    """

    path: Path | RemotePath
    data: np.ndarray
    valid: np.ndarray
    grid: Grid
    date: str | None


def open_raster(path: Path | RemotePath):
    """Open an image with rasterio; a local file that would read from the network is refused first."""
    if not path.exists():
        raise ImageryError(f"{path}: no such file")
    check_no_network_sources(path)
    try:
        with warnings.catch_warnings():  # a missing georeference is refused by check_raster, in words
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise ImageryError(f"{path}: not a readable raster ({exc})") from exc


def check_raster(src, path: Path, min_bands: int) -> None:
    if src.crs is None:
        raise ImageryError(
            f"{path}: has no CRS; sitewatch needs georeferenced imagery (GeoTIFF with a CRS), or, for a picture "
            "without georeference (a screenshot), its pixel size in metres with --gsd (detect, coreg)"
        )
    if src.count < min_bands:
        raise ImageryError(f"{path}: has {src.count} band(s), at least {min_bands} needed")


# The most pixels one read may ask for (a window of BEFORE, the whole of AFTER): 2^28 px is
# 4 GiB as four float32 bands.  A file declaring more is refused before any memory is taken.
MAX_READ_PX = 2**28


def check_read_size(path: Path, rows: int, cols: int) -> None:
    """Refuse a read of more than :data:`MAX_READ_PX` pixels before allocating it."""
    if rows * cols > MAX_READ_PX:
        raise ImageryError(
            f"{path}: the part to read is {cols} x {rows} px ({rows * cols / 1e6:.0f} Mpx), more than "
            f"sitewatch reads at once ({MAX_READ_PX / 1e6:.0f} Mpx); crop it to the site first "
            "(gdal_translate -projwin)"
        )


# Band descriptions (lower case) that name a colour, as GDAL, STAC eo:bands common names and
# vendors write them.
BAND_NAMES = {
    "red": {"red", "r"},
    "green": {"green", "g"},
    "blue": {"blue", "b"},
    "nir": {"nir", "nir1", "near-infrared", "near infrared", "nearinfrared", "infrared"},
}
COLOUR_ORDER = ("red", "green", "blue", "nir")


@dataclass(frozen=True)
class BandLayout:
    """Which bands of a file to read, in the order sitewatch uses them.

    ``colour`` holds 1-based band numbers in the order red, green, blue[, near-infrared] (or
    one band of a panchromatic image); ``alpha`` the 1-based alpha band, read as a mask
    (0 = no data), never as a colour; ``basis`` says how the order was decided.
    """

    colour: tuple[int, ...]
    alpha: int | None
    basis: str


def _band_roles(src, path: Path) -> tuple[dict[str, int], int | None]:
    """Colour roles the file names (colour interpretation, band descriptions) and its alpha band.

    Where the two disagree (photometric RGB tags on bands described blue, green, red) the
    file is not trusted either way.
    """
    alpha = None
    by_interp: dict[str, int] = {}
    by_name: dict[str, int] = {}
    descriptions = [(d or "").strip().lower() for d in src.descriptions]
    for i, (interp, text) in enumerate(zip(src.colorinterp, descriptions), start=1):
        if interp.name == "alpha" or text in ("alpha", "mask"):
            alpha = alpha or i
            continue
        if interp.name in COLOUR_ORDER:
            by_interp.setdefault(interp.name, i)
        by_name.update({role: i for role, words in BAND_NAMES.items() if text in words and role not in by_name})
    clash = [r for r in by_interp if r in by_name and by_interp[r] != by_name[r]]
    if clash:
        found = "; ".join(
            f"band {i}: {c.name}, described {d or 'nothing'!r}"
            for i, (c, d) in enumerate(zip(src.colorinterp, descriptions), start=1)
        )
        raise ImageryError(
            f"{path}: colour interpretation and band descriptions disagree on which band is {clash[0]} "
            f"({found}); pass --bands R,G,B[,NIR]"
        )
    return {**by_name, **by_interp}, alpha


def _band_roles_or_none(src, path: Path) -> int | None:
    """The alpha band, where ``--bands`` overrides whatever else the file says about its bands."""
    try:
        return _band_roles(src, path)[1]
    except ImageryError:
        return next((i for i, c in enumerate(src.colorinterp, start=1) if c.name == "alpha"), None)


def _checked_bands(src, path: Path, bands: tuple[int, ...], alpha: int | None) -> BandLayout:
    if len(bands) not in (1, 3, 4) or len(set(bands)) != len(bands):
        raise ImageryError(f"{path}: --bands needs R,G,B or R,G,B,NIR: three or four different band numbers")
    wrong = [b for b in bands if not 1 <= b <= src.count]
    if wrong:
        raise ImageryError(f"{path}: --bands {','.join(map(str, bands))}: the file has bands 1-{src.count} only")
    return BandLayout(tuple(bands), None if alpha in bands else alpha, "--bands")


# An unnamed band is taken for an alpha band when a sample this many pixels a side of it holds
# nothing but 0 and the dtype's maximum: no sensor's near-infrared is two-valued.
ALPHA_SAMPLE_PX = 256


def _looks_like_alpha(src, band: int) -> bool:
    """An untagged 8- or 16-bit band that holds only 0 and its maximum (an alpha band whose tag was lost)."""
    if src.dtypes[band - 1] not in ("uint8", "uint16"):
        return False
    top = 255 if src.dtypes[band - 1] == "uint8" else 65535
    shape = (min(src.height, ALPHA_SAMPLE_PX), min(src.width, ALPHA_SAMPLE_PX))
    try:
        sample = src.read(band, out_shape=shape, resampling=Resampling.nearest)
    except rasterio.errors.RasterioIOError:
        return False
    return bool(np.isin(sample, (0, top)).all() and (sample == top).any())


def resolve_image(path: Path | RemotePath) -> tuple[Path | RemotePath, tuple[int, ...] | None]:
    """The file to open for an image and the band order its catalogue gives, if any.

    A STAC Item (a local ``.json``, :mod:`sitewatch.io.stac`) is read through its picture
    asset, with its ``eo:bands`` order; anything else is opened as given, with no order.
    """
    if not is_stac_item(path):
        return path, None
    item = read_stac_item(path)
    return item.asset, item.bands


def band_layout(
    src, path: Path, bands: tuple[int, ...] | None = None, *, catalogue: tuple[int, ...] | None = None
) -> BandLayout:
    """Map a file's bands onto red, green, blue[, near-infrared], with an alpha band as a mask.

    ``bands`` (1-based, as ``--bands R,G,B[,NIR]``) wins; otherwise the colour interpretation
    GDAL reads (TIFF photometric tags, ``colorinterp``) and band descriptions name the bands;
    a file that names none of red, green and blue is read in the ``catalogue`` order (a STAC
    Item's ``eo:bands``) where one is given, else by position (1, 2, 3[, 4]).

    Raises
    ------
    ImageryError
        When the file names some colours but not red, green and blue, or its colour
        interpretation and band descriptions disagree, saying what it found.
    """
    if bands:
        return _checked_bands(src, path, tuple(bands), _band_roles_or_none(src, path))
    roles, alpha = _band_roles(src, path)
    named = {r: roles[r] for r in ("red", "green", "blue") if r in roles}
    if len(named) == 3:
        colour = tuple(named[r] for r in ("red", "green", "blue"))
        if "nir" in roles:
            colour += (roles["nir"],)
        elif colour == (1, 2, 3) and src.count >= 4 and alpha is None:
            if _looks_like_alpha(src, 4):
                alpha = 4
            else:
                colour += (4,)  # RGB tags and an unnamed fourth band: the usual R,G,B,NIR stack
        return BandLayout(colour, alpha, "colour interpretation")
    if named:
        found = ", ".join(f"band {i}: {c.name}" for i, c in enumerate(src.colorinterp, start=1))
        raise ImageryError(
            f"{path}: cannot tell which bands are red, green and blue ({found}); pass --bands R,G,B[,NIR]"
        )
    if catalogue and max(catalogue) <= src.count and alpha not in catalogue:
        return BandLayout(tuple(catalogue), alpha, "STAC eo:bands")
    plain = tuple(i for i in range(1, src.count + 1) if i != alpha)
    return BandLayout(plain[:4] if len(plain) >= 3 else plain[:1], alpha, "position")


def need_colour(layout: BandLayout, path: Path, purpose: str) -> None:
    """Refuse a one- or two-band image where ``purpose`` reads colour."""
    if len(layout.colour) < 3:
        raise ImageryError(
            f"{path}: has one colour band (panchromatic or grey); {purpose} needs red, green and blue "
            "(roofs, vegetation and railcars are told apart by colour); pass --bands R,G,B if the file has them"
        )


def _read_layout(
    src, path: Path, layout: BandLayout, win: Window | None, factor: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The layout's colour bands as float32 and the valid mask (nodata, alpha, GDAL mask, finite).

    With ``factor`` > 1, every ``factor``-th pixel each way (nearest neighbour: a sample of
    the pixels as they are, for statistics and previews, not an average that narrows them).
    """
    rows, cols = (int(win.height), int(win.width)) if win is not None else (src.height, src.width)
    rows, cols = -(-rows // factor), -(-cols // factor)
    check_read_size(path, rows, cols)
    sized = {} if factor == 1 else {"out_shape": (rows, cols), "resampling": Resampling.nearest}
    try:
        shape = (len(layout.colour), rows, cols)
        data = src.read(
            list(layout.colour), window=win, out_dtype="float32", out_shape=shape, resampling=Resampling.nearest
        )
        valid = np.all(np.isfinite(data), axis=0)
        for k, b in enumerate(layout.colour):
            nd = src.nodatavals[b - 1]
            if nd is not None:
                valid &= ~((data[k] == nd) | (np.isnan(nd) & np.isnan(data[k])))
        if layout.alpha is not None:
            valid &= src.read(layout.alpha, window=win, **sized) > 0
        elif MaskFlags.per_dataset in src.mask_flag_enums[layout.colour[0] - 1]:
            valid &= src.read_masks(layout.colour[0], window=win, **sized) > 0
    except rasterio.errors.RasterioIOError as exc:
        raise ImageryError(f"{path}: pixels cannot be read ({exc}); the file may be truncated or corrupt") from exc
    return data, valid


def read_bounds(
    src, path: Path, bounds: tuple[float, float, float, float], layout: BandLayout | None = None
) -> RasterWindow:
    """The layout's bands of ``src`` inside ``bounds`` (in its CRS), on its own grid, as a RasterWindow."""
    layout = layout or band_layout(src, path)
    win = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
    return _read_window(src, path, layout, win.intersection(Window(0, 0, src.width, src.height)))


def _read_window(src, path: Path, layout: BandLayout, win: Window) -> RasterWindow:
    """The layout's bands of ``src`` in ``win``, on its own grid, as a RasterWindow."""
    data, valid = _read_layout(src, path, layout, win)
    grid = Grid(CRS.from_user_input(src.crs), src.window_transform(win), (int(win.height), int(win.width)))
    return RasterWindow(path, data, valid, grid, image_date(path))


def read_grid(
    path: str | os.PathLike[str], grid: Grid, *, bands: tuple[int, ...] | None = None, factor: int = 1
) -> RasterWindow:
    """An image's pixels on ``grid``, a window of its own pixel lattice (a block of :func:`aoi_grid`).

    With ``factor`` > 1, every ``factor``-th pixel each way, on the correspondingly coarser
    grid (a sample for scene statistics and previews, in memory bounded by the sample).
    Bands as :func:`read_aoi_window`.
    """
    path = image_path(path)
    with opened_image(path, bands, True) as (src, layout):
        col, row = ~src.transform * (grid.transform.c, grid.transform.f)
        win = Window(int(round(col)), int(round(row)), grid.shape[1], grid.shape[0])
        data, valid = _read_layout(src, path, layout, win, factor)
        transform = grid.transform @ Affine.scale(grid.shape[1] / data.shape[2], grid.shape[0] / data.shape[1])
        return RasterWindow(path, data, valid, Grid(grid.crs, transform, data.shape[1:]), image_date(path))


def aoi_grid(
    path: str | os.PathLike[str], footprint_lonlat: BaseGeometry, *, bands: tuple[int, ...] | None = None
) -> Grid:
    """The grid :func:`read_aoi_window` reads over a footprint, found without reading a pixel."""
    path = image_path(path)
    with opened_image(path, bands, True) as (src, _):
        win = _bounds_window(src, _aoi_bounds(src, path, footprint_lonlat))
        return Grid(CRS.from_user_input(src.crs), src.window_transform(win), (int(win.height), int(win.width)))


def _bounds_window(src, bounds: tuple[float, float, float, float]) -> Window:
    win = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
    return win.intersection(Window(0, 0, src.width, src.height))


def _aoi_bounds(src, path: Path | RemotePath, footprint_lonlat: BaseGeometry) -> tuple[float, float, float, float]:
    """Bounds (in the image's CRS) of the part of the image that covers the footprint."""
    fp = shape(transform_geom("EPSG:4326", src.crs, mapping(footprint_lonlat)))
    overlap = fp.intersection(box(*src.bounds))
    if overlap.is_empty or overlap.area <= 0:
        raise ImageryError(
            f"{path}: does not overlap the AOI footprint "
            f"(image bounds {tuple(round(v, 6) for v in src.bounds)} in {src.crs})"
        )
    return overlap.bounds


@contextmanager
def opened_image(
    path: Path | RemotePath, bands: tuple[int, ...] | None, colour: bool, purpose: str = "this command"
) -> Iterator[tuple[rasterio.io.DatasetReader, BandLayout]]:
    """An image opened and checked, with its band layout (refused without colour, for ``purpose``, when
    ``colour``)."""
    asset, catalogue = resolve_image(path)
    with open_raster(asset) as src:
        check_raster(src, path, 1)
        layout = band_layout(src, path, bands, catalogue=catalogue)
        if colour:
            need_colour(layout, path, purpose)
        yield src, layout


def read_aoi_window(
    path: str | os.PathLike[str],
    footprint_lonlat: BaseGeometry,
    *,
    bands: tuple[int, ...] | None = None,
    colour: bool = True,
) -> RasterWindow:
    """Read the part of an image that covers an AOI footprint, on the image's own grid.

    Bands come in the order red, green, blue[, near-infrared] (:func:`band_layout`;
    ``bands`` as ``--bands``); an alpha band masks.  With ``colour``, a one-band image is
    refused.

    Raises
    ------
    ImageryError
        If the file is missing or unreadable, has no CRS, bands that cannot be mapped, or
        does not overlap the footprint.
    """
    path = image_path(path)
    with opened_image(path, bands, colour) as (src, layout):
        return read_bounds(src, path, _aoi_bounds(src, path, footprint_lonlat), layout)


@dataclass(frozen=True)
class SourceRaster:
    """A whole image in memory, nodata as NaN, with its georeference: input to :func:`warp_onto_grid`."""

    path: Path | RemotePath
    data: np.ndarray
    transform: Affine
    crs: CRS
    date: str | None


# An image read to be warped onto another's grid is read only round that grid, with this many
# of its own pixels to spare on each side: co-registration's shifts (tested to 20 px) and the
# resampling kernel stay inside, and a scene many times the AOI is not held in memory.
SOURCE_MARGIN_PX = 256


def _window_around(src, path: Path | RemotePath, grid: Grid, margin_px: int | None = None) -> Window | None:
    """The window of ``src`` covering ``grid`` with ``margin_px`` (default :data:`SOURCE_MARGIN_PX`) to spare
    (None: read it all)."""
    if src.transform.b != 0 or src.transform.d != 0:
        return None  # a rotated grid: windows by bounds do not apply; read it whole
    bounds = transform_bounds(grid.crs, src.crs, *grid.bounds, densify_pts=21)
    win = from_bounds(*bounds, transform=src.transform)
    pad = SOURCE_MARGIN_PX if margin_px is None else margin_px
    win = Window(win.col_off - pad, win.row_off - pad, win.width + 2 * pad, win.height + 2 * pad)
    try:
        return win.round_offsets().round_lengths().intersection(Window(0, 0, src.width, src.height))
    except rasterio.errors.WindowError:
        raise ImageryError(
            f"{path}: does not overlap the area it is compared over (bounds {tuple(round(v, 3) for v in grid.bounds)} "
            f"in {grid.crs.to_string()})"
        ) from None


def read_source(
    path: str | os.PathLike[str],
    *,
    bands: tuple[int, ...] | None = None,
    colour: bool = True,
    around: Grid | None = None,
    factor: int = 1,
) -> SourceRaster:
    """Read an image's bands (red, green, blue[, NIR]; see :func:`read_aoi_window`) as float32, nodata as NaN.

    With ``around``, only the part covering that grid (with :data:`SOURCE_MARGIN_PX` of the
    image's pixels to spare) is read: what :func:`warp_onto_grid` onto it needs.  With
    ``factor`` > 1, every ``factor``-th pixel each way, with the georeference to match.

    Raises
    ------
    ImageryError
        If the file is missing, unreadable, has no CRS, bands that cannot be mapped,
        declares more pixels than :data:`MAX_READ_PX`, or does not overlap ``around``.
    """
    path = image_path(path)
    with opened_image(path, bands, colour) as (src, layout):
        win = None if around is None else _window_around(src, path, around)
        return _read_as_source(src, path, layout, win, factor)


def _read_as_source(src, path: Path, layout: BandLayout, win: Window | None, factor: int = 1) -> SourceRaster:
    """The layout's bands of ``src`` in ``win`` (None: all of it), every ``factor``-th pixel, as a SourceRaster."""
    data, valid = _read_layout(src, path, layout, win, factor)
    data[:, ~valid] = np.nan
    transform = src.transform if win is None else src.window_transform(win)
    rows, cols = (src.height, src.width) if win is None else (int(win.height), int(win.width))
    transform = transform @ Affine.scale(cols / data.shape[2], rows / data.shape[1])
    return SourceRaster(path, data, transform, CRS.from_user_input(src.crs), image_date(path))


def image_grid(path: str | os.PathLike[str], *, bands: tuple[int, ...] | None = None, colour: bool = True) -> Grid:
    """An image's own grid (CRS, transform, shape), found without reading a pixel; the file checked as
    :func:`read_source` checks it."""
    path = image_path(path)
    with opened_image(path, bands, colour) as (src, _):
        return Grid(CRS.from_user_input(src.crs), src.transform, (src.height, src.width))


def read_windows(
    path: str | os.PathLike[str],
    rects: list[tuple[int, int, int, int]],
    *,
    bands: tuple[int, ...] | None = None,
    colour: bool = True,
) -> list[RasterWindow]:
    """Rectangles (row, col, rows, cols) of an image's own pixel grid, each as a RasterWindow, from one opening.

    Bands as :func:`read_aoi_window`.  For a large scene read only where it is looked at.
    """
    path = image_path(path)
    with opened_image(path, bands, colour) as (src, layout):
        return [_read_window(src, path, layout, Window(col, row, cols, rows)) for row, col, rows, cols in rects]


def read_sources_around(
    path: str | os.PathLike[str],
    grids: list[Grid],
    *,
    bands: tuple[int, ...] | None = None,
    colour: bool = True,
    margin_px: int | None = None,
) -> list[SourceRaster | None]:
    """:func:`read_source` round each of several grids, from one opening, ``margin_px`` of the
    image's pixels to spare; None for a grid the image does not reach."""
    path = image_path(path)
    out: list[SourceRaster | None] = []
    with opened_image(path, bands, colour) as (src, layout):
        for grid in grids:
            try:
                win = _window_around(src, path, grid, margin_px)
            except ImageryError:
                out.append(None)  # this part of the scene lies off the image
                continue
            out.append(_read_as_source(src, path, layout, win))
    return out


def utm_crs_at(lon: float, lat: float) -> CRS:
    """The WGS 84 UTM zone CRS holding a point."""
    zone = int(np.clip(np.floor((lon + 180.0) / 6.0) + 1, 1, 60))
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


# Significant figures kept of the pixel size of a grid sitewatch chooses (a geographic image's
# local UTM grid): 0.31 m, 1.0 m, 10 m, so that grids of one product line up (see below).
GRID_PIXEL_SIGNIFICANT_FIGURES = 2


def _round_pixel_size(size_m: float) -> float:
    """``size_m`` to :data:`GRID_PIXEL_SIGNIFICANT_FIGURES` significant figures."""
    digits = GRID_PIXEL_SIGNIFICANT_FIGURES - 1 - int(np.floor(np.log10(size_m)))
    return float(round(size_m, digits))


# The largest departure from true scale (either axis) of a grid sitewatch measures on as it is:
# UTM reaches 0.1 % at its zone edges, so an image in its own UTM zone or a national grid is
# used as delivered, while one in Web Mercator (35 % at 42 N: areas 1.8x), in a UTM zone
# 7 degrees away (0.5 %), in feet or in degrees is warped once onto its local UTM grid.
MAX_SCALE_ERROR = 0.0015


def _centre_lonlat(crs: CRS, transform: Affine, shape_rc: tuple[int, int]) -> tuple[float, float]:
    rows, cols = shape_rc
    x, y = transform * (cols / 2, rows / 2)
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)


def measures_in_metres(crs: CRS, transform: Affine, shape_rc: tuple[int, int]) -> bool:
    """True where a grid's pixels are metres on the ground, to :data:`MAX_SCALE_ERROR`, at its centre.

    False for a geographic CRS, a projected one in other units than metres, or one whose
    scale at the image departs from true (Web Mercator, a distant UTM zone): such an image is
    warped onto :func:`local_utm_grid` before anything is measured on it.
    """
    if not crs.is_projected or abs(crs.axis_info[0].unit_conversion_factor - 1.0) > 1e-9:
        return False
    lon, lat = _centre_lonlat(crs, transform, shape_rc)
    factors = Proj(crs).get_factors(lon, lat)
    return max(abs(factors.meridional_scale - 1.0), abs(factors.parallel_scale - 1.0)) <= MAX_SCALE_ERROR


def local_utm_grid(crs: CRS, transform: Affine, shape_rc: tuple[int, int]) -> Grid:
    """A north-up grid in the local UTM zone covering a raster (in degrees, or off true scale), at its resolution.

    Square pixels of a rounded size (:func:`_round_pixel_size`) whose edges fall on whole
    multiples of it (GDAL's target-aligned pixels, ``gdalwarp -tap``): an image delivered in
    degrees after being made on a UTM grid (most orthophotos are) returns to that grid's
    lattice, and two images of a site warped apart share one.
    """
    rows, cols = shape_rc
    west, north = transform * (0, 0)
    east, south = transform * (cols, rows)
    west, east, south, north = min(west, east), max(west, east), min(south, north), max(south, north)
    utm = utm_crs_at(*_centre_lonlat(crs, transform, shape_rc))
    default, width, height = calculate_default_transform(crs, utm, cols, rows, west, south, east, north)
    size = _round_pixel_size((abs(default.a) + abs(default.e)) / 2)
    left, top = default.c, default.f
    right, bottom = left + width * abs(default.a), top - height * abs(default.e)
    left, top = np.floor(left / size) * size, np.ceil(top / size) * size
    right, bottom = np.ceil(right / size) * size, np.floor(bottom / size) * size
    aligned = Affine(size, 0.0, float(left), 0.0, -size, float(top))
    return Grid(utm, aligned, (int(round((top - bottom) / size)), int(round((right - left) / size))))


def to_local_utm(window: RasterWindow) -> RasterWindow:
    """A window (geographic, or off true scale) warped once onto its local UTM grid (metres), nodata as invalid."""
    data = np.where(window.valid, window.data, np.nan).astype(np.float32)
    source = SourceRaster(window.path, data, window.grid.transform, window.grid.crs, window.date)
    return warp_onto_grid(source, local_utm_grid(window.grid.crs, window.grid.transform, window.grid.shape))


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
    ``gradient`` about ``centre``): what belongs at grid pixel ``p`` lies at ``p + d(p)``.
    It is corrected by sampling the source at ``grid.transform · (p + d(p))`` - the grid's
    lattice moved, in the grid's own CRS - so the pixels are resampled once, whatever the
    source's CRS.
    """
    dx, dy = shift_px
    a, b, c, d = gradient
    cx, cy = centre
    move = Affine(1 + a, b, dx - a * cx - b * cy, c, 1 + d, dy - c * cx - d * cy)
    sample_transform = grid.transform @ move
    rows, cols = grid.shape
    out = np.full((source.data.shape[0], rows, cols), np.nan, dtype=np.float32)
    offset = _whole_pixel_offset(source.transform, source.crs, Grid(grid.crs, sample_transform, grid.shape))
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
        src_transform=source.transform,
        src_crs=source.crs,
        dst_transform=sample_transform,
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
