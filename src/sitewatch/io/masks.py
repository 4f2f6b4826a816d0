"""Masks of unusable pixels (clouds, haze, no data) given beside the images: ``--mask FILE``.

A mask is a raster in any CRS and on any grid; it is resampled (nearest) onto the grid
detect measures on. Which of its pixels are unusable:

- a Planet UDM2 file (its bands described ``clear``, ``snow``, ``shadow``, ...): every pixel
  its ``clear`` band does not call clear;
- ``FILE:V1,V2,...``: pixels of band 1 holding one of those values (Sentinel-2 SCL:
  ``FILE:3,8,9,10`` for cloud shadow, cloud of medium and high probability, and cirrus);
- otherwise: pixels of band 1 that are not zero.

Pixels beyond the mask's extent are not masked: a mask says where not to look.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
from rasterio.enums import Resampling
from rasterio.warp import reproject

from ..errors import ImageryError
from .raster import Grid, check_raster, open_raster
from .sources import RemotePath, image_path

# FILE:3,8,9,10 -- the values of band 1 that are unusable (the part after the last colon)
MASK_VALUES = re.compile(r"^(?P<path>.+):(?P<values>\d+(,\d+)*)$")

# A UDM2 band description naming the band whose 1 means "clear" (Planet's usable data mask 2).
UDM2_CLEAR = "clear"


@dataclass(frozen=True)
class MaskSpec:
    """A mask file and, optionally, the values of its first band that are unusable (None: any non-zero)."""

    path: os.PathLike[str] | str
    values: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, text: str | os.PathLike[str]) -> MaskSpec:
        """``FILE`` or ``FILE:V1,V2,...`` as ``--mask`` takes it."""
        m = MASK_VALUES.match(os.fspath(text))
        if m and not os.path.exists(os.fspath(text)):
            return cls(image_path(m["path"]), tuple(int(v) for v in m["values"].split(",")))
        return cls(image_path(text))


def _unusable(src, spec: MaskSpec) -> tuple[np.ndarray, str]:
    """The unusable pixels of an open mask raster on its own grid, and how they were read."""
    described = [(d or "").strip().lower() for d in src.descriptions]
    if spec.values is None and UDM2_CLEAR in described:
        band = described.index(UDM2_CLEAR) + 1
        return src.read(band) == 0, f"UDM2: not clear in band {band}"
    data = src.read(1)
    if spec.values is not None:
        return np.isin(data, spec.values), f"band 1 in {list(spec.values)}"
    return data != 0, "band 1 non-zero"


def unusable_on_grid(spec: MaskSpec, grid: Grid) -> np.ndarray:
    """Pixels of ``grid`` that the mask calls unusable, as a bool array of ``grid.shape``.

    Raises
    ------
    ImageryError
        If the mask is missing, unreadable, has no CRS, or does not overlap the grid.
    """
    path: os.PathLike[str] | RemotePath = spec.path
    with open_raster(path) as src:
        check_raster(src, path, 1)
        unusable, how = _unusable(src, spec)
        on_grid = np.zeros(grid.shape, np.uint8)
        covered = np.zeros(grid.shape, np.uint8)
        for source, destination in ((unusable.astype(np.uint8), on_grid), (np.ones_like(unusable, np.uint8), covered)):
            reproject(
                source,
                destination,
                src_transform=src.transform,
                src_crs=src.crs,
                dst_transform=grid.transform,
                dst_crs=grid.crs,
                resampling=Resampling.nearest,
            )
    if not covered.any():
        raise ImageryError(f"{path}: the mask does not overlap the image ({how})")
    return on_grid.astype(bool)
