"""``coregister``: the shift between two GeoTIFFs of one place, and a corrected copy.

The corrected copy keeps MOVING's pixels exactly as they are and carries a corrected
geotransform: the correction is applied once, by editing the georeference, and nothing is
resampled.  (``detect`` folds the same correction into its single warp.)
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling

from ..coreg import Chip, ShiftResult, chip_rects, coarse_shift, estimate_shift, estimate_shift_from_chips
from ..coreg.chips import central_rect
from ..errors import AlignmentError, ImageryError
from ..io import (
    Grid,
    SourceRaster,
    check_outputs_free,
    corrected_transform,
    image_grid,
    image_path,
    local_utm_grid,
    measures_in_metres,
    read_source,
    read_sources_around,
    read_unreferenced,
    read_windows,
    staged_outputs,
    warp_onto_grid,
)
from ._common import NO_MAP_POSITION, shift_in_map_axes

log = logging.getLogger(__name__)

# A REFERENCE of at least this many pixels (on a metric grid) is measured from chips read where
# the windows fall (:mod:`sitewatch.coreg.chips`), never held whole: the same shift, in memory
# and time that do not grow with the scene.
CHIPS_FROM_PX = 3000 * 3000
# MOVING is read round each chip with this many of its own pixels to spare (the resampling
# kernel; the shift itself lies inside the chip's margin).
CHIP_READ_MARGIN_PX = 4


@dataclass
class Coregistration:
    """The shift of MOVING relative to REFERENCE, on REFERENCE's grid."""

    reference: Path
    moving: Path
    grid: Grid
    shift: ShiftResult
    seconds: float
    position: str | None = None  # why the grid has no map position (pictures without georeference), else None

    def to_dict(self, *, windows: bool = False) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "moving": str(self.moving),
            **self.shift.to_dict(windows=windows),
            "shift_map": shift_in_map_axes(self.grid, self.shift.dx, self.shift.dy),
            "crs": self.grid.crs.to_string(),
            "seconds": round(self.seconds, 3),
            **({"position": self.position} if self.position else {}),
        }


def _reference_on_grid(ref: SourceRaster) -> tuple[Grid, np.ndarray, np.ndarray]:
    """REFERENCE's grid (its local UTM grid when not metres at true scale), its pixels and where they are valid."""
    grid = Grid(ref.crs, ref.transform, ref.data.shape[1:])
    if measures_in_metres(ref.crs, ref.transform, ref.data.shape[1:]):
        return grid, ref.data, np.all(np.isfinite(ref.data), axis=0)
    log.info(
        "%s: CRS %s is not metres at true scale here; measured on its local UTM grid",
        ref.path.name,
        ref.crs.to_string(),
    )
    on_utm = warp_onto_grid(ref, local_utm_grid(ref.crs, ref.transform, ref.data.shape[1:]))
    return on_utm.grid, on_utm.data, on_utm.valid


def coregister(
    reference: str | os.PathLike[str],
    moving: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    bands: tuple[int, ...] | None = None,
    pixel_size_m: float | None = None,
) -> Coregistration:
    """Measure how far MOVING's content is displaced from REFERENCE's; optionally write it corrected.

    Parameters
    ----------
    reference, moving : path-like
        GeoTIFFs of the same place, in any CRS.  MOVING is warped onto REFERENCE's grid (a
        geographic REFERENCE: onto its local UTM grid) to be measured.  One band (a
        panchromatic image) is enough.
    out : path-like, optional
        A GeoTIFF of MOVING with the correction folded into its geotransform (pixels unchanged).
    bands : tuple of int, optional
        1-based band numbers of red, green, blue[, NIR] (``--bands``); default: from the files.
    pixel_size_m : float, optional
        For two pictures without georeference (screenshots, ``--gsd``): metres per pixel.
        The shift is measured on a local grid (no map position; ``-o`` is refused).

    Raises
    ------
    AlignmentError
        When no reliable shift exists: the images do not show the same place, or show nothing.
    """
    t0 = time.perf_counter()
    if out is not None:
        check_outputs_free([Path(out)], overwrite)
    if pixel_size_m is not None:
        if out is not None or bands is not None:
            raise ImageryError(f"{moving}: -o and --bands are for GeoTIFFs; a picture has no geotransform to correct")
        ref, mov = read_unreferenced(reference, pixel_size_m), read_unreferenced(moving, pixel_size_m)
    else:
        whole = image_grid(reference, bands=bands, colour=False)
        rows, cols = whole.shape
        if rows * cols >= CHIPS_FROM_PX and measures_in_metres(whole.crs, whole.transform, whole.shape):
            shift = _shift_from_chips(image_path(reference), image_path(moving), whole, bands)
            if out is not None:
                _write_corrected(image_path(moving), Path(out), whole, shift, overwrite=overwrite)
            return Coregistration(image_path(reference), image_path(moving), whole, shift, time.perf_counter() - t0)
        ref = read_source(reference, bands=bands, colour=False)
    grid, ref_data, ref_valid = _reference_on_grid(ref)
    if pixel_size_m is None:  # MOVING only round REFERENCE: a scene larger than it is not held whole
        mov = read_source(moving, bands=bands, colour=False, around=grid)
    on_ref = warp_onto_grid(mov, grid, resampling=Resampling.bilinear)
    try:
        shift = estimate_shift(
            np.nan_to_num(ref_data),
            np.nan_to_num(on_ref.data),
            pixel_size_m=grid.pixel_size_m,
            reference_valid=ref_valid,
            moving_valid=on_ref.valid,
        )
    except AlignmentError as exc:
        raise AlignmentError(f"{mov.path}: {exc}") from exc
    log.info(
        "%s relative to %s: %+.3f, %+.3f px (%s, %d windows agree, %d rejected)",
        mov.path.name,
        ref.path.name,
        shift.dx,
        shift.dy,
        shift.model,
        shift.windows_valid,
        shift.windows_rejected,
    )
    if out is not None:
        _write_corrected(image_path(moving), Path(out), grid, shift, overwrite=overwrite)
    position = NO_MAP_POSITION if pixel_size_m is not None else None
    return Coregistration(ref.path, mov.path, grid, shift, time.perf_counter() - t0, position)


def _read_chips(
    reference: Path, moving: Path, grid: Grid, rects: list[tuple[int, int, int, int]], bands: tuple[int, ...] | None
) -> list[Chip]:
    """Both images over rectangles of REFERENCE's grid; MOVING warped onto each (NaN where it does not reach)."""
    grids = [Grid(grid.crs, grid.transform * Affine.translation(c, r), (rows, cols)) for r, c, rows, cols in rects]
    with ThreadPoolExecutor(2) as pool:  # one file each (GDAL releases the GIL while it decodes)
        refs_read = pool.submit(read_windows, reference, rects, bands=bands, colour=False)
        sources_read = pool.submit(
            read_sources_around, moving, grids, bands=bands, colour=False, margin_px=CHIP_READ_MARGIN_PX
        )
        refs, sources = refs_read.result(), sources_read.result()
    chips = []
    for (row, col, _, _), ref, source in zip(rects, refs, sources):
        on_ref = None
        if source is not None:
            try:
                on_ref = warp_onto_grid(source, ref.grid, resampling=Resampling.bilinear)
            except ImageryError:
                on_ref = None  # no pixel of MOVING over this chip
        if on_ref is None:
            data, valid = np.full_like(ref.data, np.nan), np.zeros(ref.valid.shape, bool)
        else:
            data, valid = on_ref.data, on_ref.valid
        chips.append(Chip(row, col, np.nan_to_num(ref.data), np.nan_to_num(data), ref.valid, valid))
    return chips


def _shift_from_chips(reference: Path, moving: Path, grid: Grid, bands: tuple[int, ...] | None) -> ShiftResult:
    """MOVING's shift on REFERENCE's grid, read as chips: the central crop for the whole-pixel shift,
    then the windows' chips for that shift."""
    try:
        (central,) = _read_chips(reference, moving, grid, [central_rect(grid.shape)], bands)
        base = coarse_shift(central.reference, central.moving, central.reference_valid, central.moving_valid)
        chips = _read_chips(reference, moving, grid, chip_rects(grid.shape, base), bands)
        shift = estimate_shift_from_chips(grid.shape, chips, base, pixel_size_m=grid.pixel_size_m)
    except AlignmentError as exc:
        raise AlignmentError(f"{moving}: {exc}") from exc
    log.info(
        "%s relative to %s: %+.3f, %+.3f px (%s, %d windows agree, %d rejected; read as %d chips)",
        moving.name,
        reference.name,
        shift.dx,
        shift.dy,
        shift.model,
        shift.windows_valid,
        shift.windows_rejected,
        len(chips),
    )
    return shift


def _write_corrected(moving: Path, out: Path, grid: Grid, shift: ShiftResult, *, overwrite: bool) -> None:
    # read again rather than reuse the float32 copy: the output keeps the file's own dtype,
    # nodata, tags and pixels exactly; copied block by block, so a whole scene is never held
    with rasterio.open(moving) as src:
        if src.crs != grid.crs:
            raise ImageryError(
                f"{moving}: its CRS ({src.crs}) differs from the grid it was measured on ({grid.crs}); a corrected "
                "copy by geotransform edit needs both in one projected CRS (reproject first)"
            )
        profile = src.profile.copy()
        profile.update(
            transform=corrected_transform(
                src.transform, grid.transform, (shift.dx, shift.dy), shift.gradient, shift.centre
            )
        )
        with staged_outputs(out.parent if str(out.parent) else ".", [out.name], overwrite=overwrite) as stage:
            with rasterio.open(stage / out.name, "w", **profile) as dst:
                for _, window in src.block_windows(1):
                    dst.write(src.read(window=window), window=window)
                note = f"dx={shift.dx:.4f} dy={shift.dy:.4f} model={shift.model} reference={grid.transform}"
                dst.update_tags(**src.tags(), SITEWATCH_COREG=note)
