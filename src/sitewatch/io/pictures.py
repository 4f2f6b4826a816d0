"""Pictures without georeference (PNG, JPEG): read onto a local metric grid; masks written as PNG."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from affine import Affine
from pyproj import CRS

from ..errors import ImageryError
from .metadata import image_date
from .raster import Grid, RasterWindow, SourceRaster, open_raster

# Pictures without georeference (LEVIR-CD's PNGs) are placed on a local metric grid so the
# GeoTIFF path can run on them unchanged: a projected CRS, origin on its central meridian.
LOCAL_CRS = CRS.from_epsg(32631)


def read_picture(path: str | os.PathLike[str], pixel_size_m: float, *, mode: str = "RGB") -> RasterWindow:
    """An image file without georeference (PNG, JPEG) as a window on a local grid.

    Parameters
    ----------
    path : path-like
    pixel_size_m : float
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
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                pixels = np.asarray(im.convert(mode), dtype=np.float32)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageryError(
            f"{path}: declares more pixels than a picture should ({exc}); refused as a possible decompression bomb"
        ) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageryError(f"{path}: not a readable picture ({exc})") from exc
    data = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)
    grid = Grid(LOCAL_CRS, Affine(pixel_size_m, 0.0, 500000.0, 0.0, -pixel_size_m, 0.0), data.shape[1:])
    return RasterWindow(path, data, np.ones(data.shape[1:], bool), grid, None)


def picture_channels(data: np.ndarray, bands: tuple[int, ...] | None, path: Path) -> np.ndarray:
    """A picture's red, green and blue, taken from its channels as ``bands`` says (``--bands``).

    A picture file carries no band names, so its channels are red, green, blue unless told:
    ``(3, 2, 1)`` reads a blue-green-red picture (as OpenCV writes them).

    Raises
    ------
    ImageryError
        If ``bands`` is not three channel numbers from 1 to 3.
    """
    if bands is None:
        return data
    if len(bands) != 3 or not all(1 <= b <= 3 for b in bands):
        raise ImageryError(
            f"{path}: --bands {','.join(map(str, bands))} does not fit a picture; give its red, green and blue "
            "channels as three numbers from 1 to 3 (3,2,1 for a blue-green-red picture)"
        )
    return data[[b - 1 for b in bands]]


def read_unreferenced(
    path: str | os.PathLike[str], pixel_size_m: float, bands: tuple[int, ...] | None = None
) -> SourceRaster:
    """A screenshot or other picture without georeference (PNG, JPEG, ...) as an image on a local metric grid.

    Red, green and blue as the picture holds them (or as ``bands`` picks them,
    :func:`picture_channels`), ``pixel_size_m`` metres a pixel (``--gsd``),
    the date from its name; the grid (:data:`LOCAL_CRS`, origin 500000, 0) has no map position.

    Raises
    ------
    ImageryError
        If the file is georeferenced (then its own grid is used: leave ``--gsd`` out), or is
        not a readable picture.
    """
    path = Path(path)
    with open_raster(path) as src:
        if src.crs is not None:
            raise ImageryError(
                f"{path}: is georeferenced ({src.crs}); --gsd is for pictures without georeference (leave it out)"
            )
    window = read_picture(path, pixel_size_m)
    data = picture_channels(window.data, bands, path)
    return SourceRaster(path, data, window.grid.transform, window.grid.crs, image_date(path))


def write_mask_png(path: Path, mask: np.ndarray) -> None:
    """A binary mask as an 8-bit PNG, 255 where True (the LEVIR-CD convention)."""
    from PIL import Image

    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path, format="PNG")
