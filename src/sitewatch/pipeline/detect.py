"""``detect``: the whole structure-change path on two GeoTIFFs of a site.

Outputs are written only when given an output folder, atomically, and never overwrite
without ``overwrite=True``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio import features
from rasterio.enums import Resampling

from ..aoi import SiteAOI
from ..coreg import ShiftResult, estimate_shift
from ..errors import AlignmentError, ImageryError
from ..io import (
    Grid,
    MaskSpec,
    RasterWindow,
    SourceRaster,
    aoi_grid,
    block_geotiff,
    check_outputs_free,
    checked_date,
    geotiff_to_cog,
    measures_in_metres,
    read_aoi_window,
    read_grid,
    read_source,
    read_unreferenced,
    staged_outputs,
    to_local_utm,
    unusable_on_grid,
    warp_onto_grid,
    write_geotiff,
    write_json,
    write_rgb_cog,
)
from ..radiometry import NORMALISATION_METHODS
from ..report.figures import COLOURS, ColourScale, Panel, Shape, display_rgb, render_overlay, score_rgb, stretch_limits
from ..structures import (
    CHANGE_KINDS,
    LOW_CONFIDENCE_SCORE,
    ChangeObject,
    DetectSettings,
    Evidence,
    StructureChanges,
    assign_relative_size,
    detect_structure_changes,
    gather_evidence,
    method_for_pixel_size,
    method_named,
)
from . import tiles
from ._common import (
    NO_MAP_POSITION,
    SCHEMA_VERSION,
    Progress,
    shift_in_map_axes,
    site_of,
    unknown_dates,
    versions,
)
from .vectors import CHANGE_VECTOR_FILES, write_change_vectors

log = logging.getLogger(__name__)

# before.tif and after.tif: the two images as the overlay shows them (after co-registered onto
# before's grid), 8-bit display previews the report draws under the polygons
DETECT_OUTPUTS = [*CHANGE_VECTOR_FILES, "change_score.tif", "before.tif", "after.tif", "overlay.png", "summary.json"]


@dataclass
class DetectResult:
    """Everything ``detect`` found, plus the arrays behind it for notebooks."""

    site: SiteAOI
    before_path: Path
    after_path: Path
    grid: Grid
    shift: ShiftResult
    changes: StructureChanges
    summary: dict[str, Any]
    before: np.ndarray = field(repr=False)
    after: np.ndarray = field(repr=False)
    valid: np.ndarray = field(repr=False)
    view_grid: Grid | None = None
    """The grid of ``before``, ``after``, ``valid`` and ``changes.score`` where it is not ``grid``:
    a block-wise run keeps every k-th pixel of a large scene for previews (:mod:`.tiles`)."""
    score_file: Path | None = field(default=None, repr=False)
    """A block-wise run's full-resolution score, as a GeoTIFF written block by block (until written out)."""

    @property
    def objects(self) -> list[ChangeObject]:
        return self.changes.objects

    @property
    def display_grid(self) -> Grid:
        """The grid the arrays (``before``, ``after``, ``valid``, ``changes.score``) lie on."""
        return self.view_grid or self.grid


# Half a railcar's width plus room for a track line a few pixels off: whatever changes on a
# track is rolling stock (counted by ``railcars``), not a structure.
RAIL_TRACK_EXCLUSION_M = 4.0


def _footprint_mask(site: SiteAOI, grid: Grid) -> np.ndarray:
    """Pixels inside the footprint, outside exclusions and off the rail tracks."""
    feats = site.features_in(grid.crs)
    inside = [f.geometry for f in feats if f.role == "footprint"]
    excluded = [f.geometry for f in feats if f.role == "exclusion"]
    excluded += [f.geometry.buffer(RAIL_TRACK_EXCLUSION_M) for f in feats if f.role == "rail_track"]
    mask = features.rasterize(
        ((g, 1) for g in inside), out_shape=grid.shape, transform=grid.transform, fill=0, dtype="uint8"
    ).astype(bool)
    if excluded:
        mask &= ~features.rasterize(
            ((g, 1) for g in excluded), out_shape=grid.shape, transform=grid.transform, fill=0, dtype="uint8"
        ).astype(bool)
    return mask


@dataclass
class GridDetection:
    """What :func:`detect_on_grid` found: the shift, the warped AFTER, and the change objects."""

    shift: ShiftResult
    moved: RasterWindow
    valid: np.ndarray
    after_norm: np.ndarray
    changes: StructureChanges
    settings: DetectSettings = DetectSettings()
    choice: MethodChoice | None = None


@dataclass(frozen=True)
class MethodChoice:
    """The method the user asked for, and why another ran or what to know (None: nothing)."""

    asked: str
    note: str | None


def _register(
    ref: RasterWindow, source: SourceRaster, *, assume_registered: bool, step: Progress
) -> tuple[ShiftResult, RasterWindow]:
    """AFTER's shift relative to BEFORE, and AFTER warped onto BEFORE's grid with it folded in."""
    coarse = warp_onto_grid(source, ref.grid, resampling=Resampling.bilinear)
    if coarse.data.shape[0] != ref.data.shape[0]:
        raise ImageryError(
            f"{coarse.path}: has {coarse.data.shape[0]} bands but {ref.path} has {ref.data.shape[0]}; "
            "before and after must have the same bands"
        )
    log.info(
        "read %s: %d x %d px window, %.2f m pixels, %d bands; %s warped onto it",
        ref.path.name,
        ref.grid.shape[1],
        ref.grid.shape[0],
        ref.grid.pixel_size_m,
        ref.data.shape[0],
        coarse.path.name,
    )

    step("co-registering")
    try:
        shift = estimate_shift(
            ref.data,
            np.nan_to_num(coarse.data),
            pixel_size_m=ref.grid.pixel_size_m,
            reference_valid=ref.valid,
            moving_valid=coarse.valid,
        )
    except AlignmentError as exc:
        if not assume_registered:
            raise AlignmentError(f"{source.path}: {exc}") from exc
        log.warning("%s: %s; going on unshifted, as asked", coarse.path.name, exc)
        shift = ShiftResult(0.0, 0.0, ref.grid.pixel_size_m, 0.0, 0.0, model="none")
    log.info(
        "shift of %s relative to %s: dx=%.2f px, dy=%.2f px (gradient correlation %.2f -> %.2f)",
        coarse.path.name,
        ref.path.name,
        shift.dx,
        shift.dy,
        shift.correlation_unaligned,
        shift.correlation,
    )
    del coarse
    moved = warp_onto_grid(
        source, ref.grid, shift_px=(shift.dx, shift.dy), gradient=shift.gradient, centre=shift.centre
    )
    return shift, moved


def _evidence_and_normalised(
    ref: RasterWindow, moved: RasterWindow, valid: np.ndarray, *, settings: DetectSettings, normalisation: str
) -> tuple[Evidence, np.ndarray]:
    """What cannot be a roof (and, for methods that read it, building evidence), and AFTER normalised to BEFORE.

    The evidence is read from the sensor's values: a fit across seasons can bend colours
    enough to mislabel roofs.  The normalisation fits on pixels that are neither vegetated
    nor in shadow.
    """
    after_data = np.where(moved.valid, moved.data, 0).astype(np.float32)
    evidence = gather_evidence(
        ref.data,
        after_data,
        valid=valid,
        vegetation_threshold=settings.vegetation_threshold,
        shadow_fraction=settings.shadow_fraction,
        pixel_size_m=ref.grid.pixel_size_m if method_named(settings.method).building_evidence else None,
    )
    after_norm = NORMALISATION_METHODS[normalisation](
        ref.data, after_data, valid=valid, candidates=~evidence.vegetation & ~evidence.shadow
    )
    log.info(
        "normalised %s to %s (%s) over %d valid pixels; %d vegetation and %d shadow pixels set aside",
        moved.path.name,
        ref.path.name,
        normalisation,
        int(valid.sum()),
        int(evidence.vegetation.sum()),
        int(evidence.shadow.sum()),
    )
    return evidence, after_norm


def detect_on_grid(
    ref: RasterWindow,
    source: SourceRaster,
    footprint: np.ndarray,
    *,
    settings: DetectSettings = DetectSettings(),
    normalisation: str = "regression",
    step: Progress | None = None,
    timings: dict[str, float] | None = None,
    assume_registered: bool = False,
) -> GridDetection:
    """The structure-change path once BEFORE is read: co-register, normalise, score, make objects.

    ``detect`` (GeoTIFFs and an AOI) and ``evaluate`` (labelled PNG pairs) both run this, so
    the two share every default.

    Parameters
    ----------
    ref : RasterWindow
        BEFORE on the grid everything is measured on.
    source : SourceRaster
        AFTER as read; it is warped onto ``ref.grid`` twice, the second time with the shift
        found folded into its geotransform (one resampling of the pixels used).
    footprint : ndarray of bool
        Pixels of ``ref.grid`` to examine.
    settings : DetectSettings
        The change method (a key of :data:`sitewatch.structures.METHODS`) and its thresholds.
    normalisation : str
        A key of :data:`sitewatch.radiometry.NORMALISATION_METHODS`.
    assume_registered : bool
        Where co-registration refuses, go on without a shift instead of raising (for
        labelled sets whose pairs are known to show the same place).
    """
    step = step or (lambda msg: None)
    timings = timings if timings is not None else {}
    chosen, note = method_for_pixel_size(settings.method, ref.grid.pixel_size_m)
    if note:
        log.warning("%s: %s", ref.path, note)
    asked, settings = settings.method, dataclasses.replace(settings, method=chosen)
    t = time.perf_counter()
    shift, moved = _register(ref, source, assume_registered=assume_registered, step=step)
    timings["coreg_s"] = time.perf_counter() - t

    step("normalising")
    t = time.perf_counter()
    valid = ref.valid & moved.valid & footprint
    if not valid.any():
        raise ImageryError(f"{ref.path} and {moved.path}: no pixel is valid in both images inside the AOI footprint")
    evidence, after_norm = _evidence_and_normalised(ref, moved, valid, settings=settings, normalisation=normalisation)
    timings["normalise_s"] = time.perf_counter() - t

    step("scoring change")
    t = time.perf_counter()
    changes = detect_structure_changes(
        ref.data,
        after_norm,
        pixel_size_m=ref.grid.pixel_size_m,
        transform=ref.grid.transform,
        valid=valid,
        settings=settings,
        evidence=evidence,
    )
    timings["detect_s"] = time.perf_counter() - t
    return GridDetection(shift, moved, valid, after_norm, changes, settings, MethodChoice(asked, note))


@dataclass(frozen=True)
class Tiling:
    """How a large window is run block by block (:mod:`.tiles`).

    Attributes
    ----------
    block_px : int or None
        Block side in pixels; ``None`` runs the whole window at once (memory grows with it).
    workers : int or None
        Blocks run side by side on this many threads (``None``: one per core).
    on_block : callable, optional
        Called with (blocks done, blocks in all) as each block finishes.
    """

    block_px: int | None = tiles.BLOCK_PX
    workers: int | None = None
    on_block: Callable[[int, int], None] | None = None


def _tiled_grid(
    before: str | os.PathLike[str], site: SiteAOI, bands: tuple[int, ...] | None, tiling: Tiling
) -> Grid | None:
    """BEFORE's AOI grid where the window is run block by block; None where it is run whole.

    Whole: no ``block_px``, a window within one block, or a grid not in metres at true
    scale (it is warped onto UTM whole first).
    """
    if tiling.block_px is None:
        return None
    grid = aoi_grid(before, site.footprint, bands=bands)
    if max(grid.shape) <= tiling.block_px or not measures_in_metres(grid.crs, grid.transform, grid.shape):
        return None
    return grid


def _tiled_register(
    inputs: tiles.TiledInputs, *, assume_registered: bool, step: Progress
) -> tuple[ShiftResult, RasterWindow, SourceRaster]:
    """The shift, measured on a central crop of the window (read alone), expressed on the whole window."""
    row, col, rows, cols = tiles.central_crop(inputs.grid.shape)
    crop = tiles.sub_grid(inputs.grid, row, col, rows, cols)
    # as a whole-window run: every pixel with data co-registers, masked ones aside (not only the footprint)
    ref, _ = _masked(read_grid(inputs.before, crop, bands=inputs.bands), list(inputs.masks))
    source = read_source(inputs.after, bands=inputs.bands, around=crop)
    n = min(ref.data.shape[0], source.data.shape[0])
    ref, source = replace(ref, data=ref.data[:n]), replace(source, data=source.data[:n])
    shift, _ = _register(ref, source, assume_registered=assume_registered, step=step)
    return tiles.shifted_from_crop(shift, row, col), ref, source


def _detect_tiled(
    inputs: tiles.TiledInputs,
    *,
    settings: DetectSettings,
    normalisation: str,
    assume_registered: bool,
    tiling: Tiling,
    step: Progress,
    timings: dict[str, float],
    score_path: Path | None,
) -> tuple[GridDetection, RasterWindow, Grid]:
    """:func:`detect_on_grid`, block by block (:mod:`.tiles`): the detection, BEFORE's preview window, its grid."""
    t = time.perf_counter()
    shift, ref, source = _tiled_register(inputs, assume_registered=assume_registered, step=step)
    inputs = replace(inputs, shift=shift)
    timings["coreg_s"] = time.perf_counter() - t
    step("scene statistics")
    t = time.perf_counter()
    factor = tiles.preview_factor(inputs.grid.shape)
    sample, moved = tiles.read_pair_on(inputs, inputs.grid, factor)
    valid = sample.valid & moved.valid
    if not valid.any():
        raise ImageryError(
            f"{inputs.before} and {inputs.after}: no pixel is valid in both images inside the AOI footprint"
        )
    stats, mapping = tiles.scene_statistics(
        sample.data, np.where(moved.valid, moved.data, 0).astype(np.float32), valid, normalisation=normalisation
    )
    del sample, moved
    timings["normalise_s"] = time.perf_counter() - t
    step("scoring change block by block")
    t = time.perf_counter()
    blocks = tiles.plan_blocks(inputs.grid.shape, tiling.block_px, tiles.halo_px(inputs.grid.pixel_size_m))
    job = tiles.BlockJob(inputs, settings, stats, mapping, factor)
    results = tiles.run_blocks(blocks, job, workers=tiling.workers, on_block=tiling.on_block)
    with ExitStack() as stack:
        sink = stack.enter_context(block_geotiff(score_path, inputs.grid, nodata=float("nan"))) if score_path else None
        objects, block_stats, threshold, previews, cut = tiles.assemble(results, inputs.grid.shape, factor, sink)
    timings["detect_s"] = time.perf_counter() - t
    if cut:
        log.warning("%d objects reach more than the halo past their block; they may be cut there", cut)
    # the blocks' own steps, summed over blocks: time on their threads, which run side by side
    for step_name, seconds in block_stats.pop("thread_seconds", {}).items():
        timings[f"blocks_{step_name}_s"] = seconds
    block_stats = {**block_stats, "blocks": len(blocks), "objects_cut_at_halo": cut}
    view = Grid(inputs.grid.crs, inputs.grid.transform @ Affine.scale(factor), previews[2].shape)
    before_view = RasterWindow(inputs.before, previews[0], previews[2].astype(bool), inputs.grid, ref.date)
    after_view = RasterWindow(inputs.after, previews[1], previews[2].astype(bool), inputs.grid, source.date)
    changes = tiles.tiled_changes(objects, previews[3], threshold, block_stats)
    return GridDetection(shift, after_view, before_view.valid, previews[1], changes, settings), before_view, view


def _read_pair(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    site: SiteAOI,
    bands: tuple[int, ...] | None = None,
    pixel_size_m: float | None = None,
) -> tuple[RasterWindow, SourceRaster]:
    """BEFORE's window over the AOI (the grid everything is measured on) and AFTER round it.

    Both are read as red, green, blue[, near-infrared] (``bands`` as ``--bands``; an alpha
    band masks).  A BEFORE whose grid is not metres at true scale (geographic, Web Mercator,
    a distant UTM zone: :func:`~sitewatch.io.raster.measures_in_metres`) is warped once onto
    its local UTM grid, so areas are in m²; AFTER, in any CRS, is read round that grid only
    and warped onto it later, once, with the shift folded in.
    Where only one image has a near-infrared band, it is left out.  With ``pixel_size_m``
    both are pictures without georeference (:func:`_read_pictures`).
    """
    if pixel_size_m is not None:
        return _read_pictures(before, after, pixel_size_m, bands)
    ref = read_aoi_window(before, site.footprint, bands=bands)
    if not measures_in_metres(ref.grid.crs, ref.grid.transform, ref.grid.shape):
        log.info(
            "%s: CRS %s is not metres at true scale here; warped onto its local UTM grid",
            ref.path.name,
            ref.grid.crs.to_string(),
        )
        ref = to_local_utm(ref)
    source = read_source(after, bands=bands, around=ref.grid)
    n_ref, n_src = ref.data.shape[0], source.data.shape[0]
    if n_ref != n_src:
        log.info("%s has %d bands and %s %d: near-infrared left out", ref.path.name, n_ref, source.path.name, n_src)
        ref = replace(ref, data=ref.data[:3])
        source = replace(source, data=source.data[:3])
    return ref, source


def _read_pictures(
    before: str | os.PathLike[str], after: str | os.PathLike[str], pixel_size_m: float, bands: tuple[int, ...] | None
) -> tuple[RasterWindow, SourceRaster]:
    """Two pictures without georeference (``--gsd``) as BEFORE's window (the whole picture) and AFTER."""
    ref = read_unreferenced(before, pixel_size_m, bands)
    grid = Grid(ref.crs, ref.transform, ref.data.shape[1:])
    window = RasterWindow(ref.path, ref.data, np.all(np.isfinite(ref.data), axis=0), grid, ref.date)
    return window, read_unreferenced(after, pixel_size_m, bands)


def _with_dates(
    ref: RasterWindow, source: SourceRaster, dates: tuple[str | None, str | None]
) -> tuple[RasterWindow, SourceRaster]:
    """BEFORE and AFTER with the dates the user gave (checked) in place of what their files say."""
    before, after = dates
    if before is not None:
        log.info("%s: date %s as given (the file says %s)", ref.path.name, before, ref.date)
        ref = replace(ref, date=before)
    if after is not None:
        log.info("%s: date %s as given (the file says %s)", source.path.name, after, source.date)
        source = replace(source, date=after)
    return ref, source


def _masked(ref: RasterWindow, masks: list[MaskSpec]) -> tuple[RasterWindow, int]:
    """BEFORE's window with every pixel a mask calls unusable made invalid, and how many pixels that took."""
    unusable = np.zeros(ref.grid.shape, bool)
    for spec in masks:
        unusable |= unusable_on_grid(spec, ref.grid)
    if masks:
        log.info("masks: %d of %d pixels unusable", int(unusable.sum()), unusable.size)
    return replace(ref, valid=ref.valid & ~unusable), int((ref.valid & unusable).sum())


def _summary(
    site: SiteAOI, ref: RasterWindow, found: GridDetection, *, settings: DetectSettings, normalisation: str
) -> dict[str, Any]:
    """What ``summary.json`` says about a run (timings are added when it ends)."""
    objects, grid = found.changes.objects, ref.grid
    log.info(
        "%d change objects (%d new, %d removed); threshold %.2f",
        len(objects),
        sum(o.change == "new" for o in objects),
        sum(o.change == "removed" for o in objects),
        found.changes.threshold,
    )
    dates = {"before": ref.date, "after": found.moved.date}
    unknown = unknown_dates(dates, "; give it with --before-date/--after-date")
    return {
        "schema_version": SCHEMA_VERSION,
        "site_id": site.site_id,
        "site_name": site.name,
        "sources": list(site.sources),
        "inputs": {
            "before": str(ref.path),
            "after": str(found.moved.path),
            "aoi": str(site.path) if site.path else None,
        },
        "dates": {**dates, **({"unknown": unknown} if unknown else {})},
        "crs": grid.crs.to_string(),
        "pixel_size_m": grid.pixel_size_m,
        "window": {"rows": grid.shape[0], "cols": grid.shape[1], "bounds": list(grid.bounds)},
        "shift": {**found.shift.to_dict(), "shift_map": shift_in_map_axes(grid, found.shift.dx, found.shift.dy)},
        "method": {
            "change": found.settings.method,
            "asked": found.choice.asked if found.choice else found.settings.method,
            "note": found.choice.note if found.choice else None,
            "normalisation": normalisation,
            "threshold": round(found.changes.threshold, 3),
            "min_area_m2": settings.min_area_m2,
        },
        "counts": {kind: sum(o.change == kind for o in objects) for kind in CHANGE_KINDS},
        "area_m2": {kind: round(sum(o.area_m2 for o in objects if o.change == kind), 1) for kind in CHANGE_KINDS},
        "confidence": {
            "low_below_score": LOW_CONFIDENCE_SCORE,
            "low": {kind: sum(o.change == kind and o.confidence == "low" for o in objects) for kind in CHANGE_KINDS},
        },
        "stats": found.changes.stats,
        "versions": versions(),
    }


# The library's entry point: one keyword per option of ``sitewatch detect`` (15 parameters), each
# documented in the docstring (tests/test_function_size.py allows it).
def detect(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    aoi: SiteAOI | str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    method: str = "building",
    normalisation: str = "regression",
    min_area_m2: float = 40.0,
    assume_registered: bool = False,
    bands: tuple[int, ...] | None = None,
    dates: tuple[str | None, str | None] = (None, None),
    masks: Sequence[MaskSpec | str | os.PathLike[str]] = (),
    pixel_size_m: float | None = None,
    progress: Progress | None = None,
    tiling: Tiling = Tiling(),
) -> DetectResult:
    """Find new and removed structures between two images of a site.

    Parameters
    ----------
    before, after : path-like
        GeoTIFFs with a CRS.  ``after`` is warped onto ``before``'s grid (one resampling,
        with the shift found by co-registration folded into it).
    aoi : SiteAOI, path or site id
        The site; only its footprint (minus exclusions) is examined.
    out_dir : path-like, optional
        Where to write ``changes.geojson``, ``changes.gpkg``, ``change_score.tif``,
        ``overlay.png`` and ``summary.json``.  Nothing is written when omitted.
    overwrite : bool
        Replace existing outputs in ``out_dir``.
    method, normalisation : str
        A key of :data:`sitewatch.structures.METHODS` and a key of
        :data:`sitewatch.radiometry.NORMALISATION_METHODS`.
    min_area_m2 : float
        Smallest structure reported.
    assume_registered : bool
        Where co-registration finds no reliable shift, go on unshifted (logged, and
        ``model: "none"`` in the summary) instead of stopping with an error.
    bands : tuple of int, optional
        1-based band numbers of red, green, blue[, near-infrared] in both images (as
        ``--bands``); by default read from the files' colour interpretation and band names.
    dates : (str or None, str or None)
        Acquisition dates (``YYYY-MM-DD``) of BEFORE and AFTER that override what their
        metadata and names say (``--before-date``, ``--after-date``).
    masks : sequence of MaskSpec or path-like
        Rasters of unusable pixels (clouds, haze; ``--mask``, see :mod:`sitewatch.io.masks`):
        a pixel any of them masks is neither co-registered on nor searched for change.
    pixel_size_m : float, optional
        For pictures without georeference (screenshots, ``--gsd``): metres per pixel. The
        whole picture is searched, on a local grid with no map position (said in the summary).
    progress : callable, optional
        Called with a short message as each stage starts.
    tiling : Tiling
        A window larger than ``tiling.block_px`` is run block by block, in bounded memory,
        ``tiling.workers`` blocks at a time (:mod:`.tiles`; ``--block-size``, ``--workers``).

    Returns
    -------
    DetectResult
    """
    step = progress or (lambda msg: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    site = site_of(aoi)
    if normalisation not in NORMALISATION_METHODS:
        raise ValueError(f"unknown normalisation {normalisation!r}; choose from {sorted(NORMALISATION_METHODS)}")
    dates = (*(checked_date(d) if d is not None else None for d in dates),)
    if out_dir is not None:
        check_outputs_free([Path(out_dir) / n for n in DETECT_OUTPUTS], overwrite)

    step("reading")
    mask_specs = [m if isinstance(m, MaskSpec) else MaskSpec.parse(m) for m in masks]
    settings = DetectSettings(method=method, min_area_m2=min_area_m2)
    options = (normalisation, assume_registered, tiling)
    grid = None if pixel_size_m is not None else _tiled_grid(before, site, bands, tiling)
    scratch = Path(tempfile.mkdtemp(prefix="sitewatch-score-")) if grid is not None and out_dir is not None else None
    try:
        if grid is not None:
            found, ref, view_grid = _run_tiled(
                _tiled_inputs(before, after, site, grid, bands, mask_specs),
                dates,
                settings=settings,
                options=options,
                step=step,
                timings=timings,
                score_path=scratch / "change_score.tif" if scratch else None,
            )
            masked = None
        else:
            view_grid = None
            read = (bands, pixel_size_m, dates, mask_specs)
            found, ref, masked = _detect_whole(
                before, after, site, read=read, settings=settings, options=options, step=step, timings=timings
            )
        return _finished(
            site,
            found,
            ref,
            (view_grid, scratch),
            settings=settings,
            run=(normalisation, masks, masked, pixel_size_m),
            timings=timings,
            out=(out_dir, overwrite, step, t0),
        )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _detect_whole(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    site: SiteAOI,
    *,
    read: tuple[tuple[int, ...] | None, float | None, tuple[str | None, str | None], list[MaskSpec]],
    settings: DetectSettings,
    options: tuple[str, bool, Tiling],
    step: Progress,
    timings: dict[str, float],
) -> tuple[GridDetection, RasterWindow, int]:
    """The whole window at once: read both images, mask, :func:`detect_on_grid`; and how many pixels masks took."""
    bands, pixel_size_m, dates, mask_specs = read
    normalisation, assume_registered, _ = options
    t0 = time.perf_counter()
    ref, source = _with_dates(*_read_pair(before, after, site, bands, pixel_size_m), dates)
    ref, masked = _masked(ref, mask_specs)
    timings["read_s"] = time.perf_counter() - t0
    found = detect_on_grid(
        ref,
        source,
        _footprint_mask(site, ref.grid) if pixel_size_m is None else np.ones(ref.grid.shape, bool),
        settings=settings,
        normalisation=normalisation,
        step=step,
        timings=timings,
        assume_registered=assume_registered,
    )
    return found, ref, masked


def _finished(
    site: SiteAOI,
    found: GridDetection,
    ref: RasterWindow,
    views: tuple[Grid | None, Path | None],
    *,
    settings: DetectSettings,
    run: tuple[str, Sequence[Any], int | None, float | None],
    timings: dict[str, float],
    out: tuple[str | os.PathLike[str] | None, bool, Progress, float],
) -> DetectResult:
    """The result with its summary (relative sizes, masks, timings), written to ``out`` when it names a folder.

    ``out`` is (folder or None, overwrite, progress, the run's start on ``time.perf_counter``).
    """
    normalisation, masks, masked, pixel_size_m = run
    view_grid, scratch = views
    out_dir, overwrite, step, t0 = out
    changes = found.changes
    references = [(f.name, f.geometry) for f in site.features_in(ref.grid.crs) if f.role == "reference_structure"]
    references = references if pixel_size_m is None else []
    assign_relative_size(changes.objects, references)
    summary = _summary(site, ref, found, settings=settings, normalisation=normalisation)
    if masks:
        summary["inputs"]["masks"] = [str(m.path if isinstance(m, MaskSpec) else m) for m in masks]
        if masked is not None:  # (block by block, masked pixels are not counted)
            summary["masked_px"] = masked
    if pixel_size_m is not None:
        summary["position"] = NO_MAP_POSITION
    result = DetectResult(
        site,
        ref.path,
        found.moved.path,
        ref.grid,
        found.shift,
        changes,
        summary,
        ref.data,
        found.after_norm,
        found.valid,
        view_grid,
        scratch / "change_score.tif" if scratch else None,
    )
    timings["total_s"] = time.perf_counter() - t0
    summary["timings"] = {k: round(v, 3) for k, v in timings.items()}
    if out_dir is not None:
        step("writing")
        write_detection(result, out_dir, overwrite=overwrite)
        log.info("wrote %s to %s", ", ".join(DETECT_OUTPUTS), out_dir)
    result.score_file = None  # a scratch file, removed once written
    return result


def _tiled_inputs(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    site: SiteAOI,
    grid: Grid,
    bands: tuple[int, ...] | None,
    masks: list[MaskSpec],
) -> tiles.TiledInputs:
    """What every block reads (the shift is filled in once measured)."""
    unshifted = ShiftResult(0.0, 0.0, grid.pixel_size_m, 0.0, 0.0)
    return tiles.TiledInputs(
        Path(before), Path(after), grid, unshifted, bands, tuple(masks), lambda g: _footprint_mask(site, g)
    )


def _run_tiled(
    inputs: tiles.TiledInputs,
    dates: tuple[str | None, str | None],
    *,
    settings: DetectSettings,
    options: tuple[str, bool, Tiling],
    step: Progress,
    timings: dict[str, float],
    score_path: Path | None,
) -> tuple[GridDetection, RasterWindow, Grid]:
    """The block-wise run with the method chosen for the pixel size and the dates as given."""
    normalisation, assume_registered, tiling = options
    chosen, note = method_for_pixel_size(settings.method, inputs.grid.pixel_size_m)
    if note:
        log.warning("%s: %s", inputs.before, note)
    asked = settings.method
    log.info(
        "%s: %d x %d px window, run in blocks of %d px", inputs.before.name, *inputs.grid.shape[::-1], tiling.block_px
    )
    with rasterio.Env(GDAL_CACHEMAX=tiles.GDAL_CACHE_BYTES):
        found, ref, view = _detect_tiled(
            inputs,
            settings=dataclasses.replace(settings, method=chosen),
            normalisation=normalisation,
            assume_registered=assume_registered,
            tiling=tiling,
            step=step,
            timings=timings,
            score_path=score_path,
        )
    ref, moved = _with_dates(ref, found.moved, dates)
    found = replace(found, moved=moved, choice=MethodChoice(asked, note))
    return found, ref, view


def write_detection(result: DetectResult, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> list[Path]:
    """Write a detection's outputs (:data:`DETECT_OUTPUTS`) into ``out_dir`` (all or nothing)."""
    out_dir = Path(out_dir)
    with staged_outputs(out_dir, DETECT_OUTPUTS, overwrite=overwrite) as stage:
        write_change_vectors(result, stage)
        method = method_named(result.summary["method"]["change"])
        described = dict(
            tags={"description": method.score_description, "threshold": f"{result.changes.threshold:.4f}"},
            descriptions=(f"change score: {method.score_description}",),
            units=(method.score_unit,),
        )
        if result.score_file is not None:  # written block by block at full resolution
            geotiff_to_cog(result.score_file, stage / "change_score.tif", **described)
        else:
            score = np.where(result.valid, result.changes.score, np.nan).astype(np.float32)
            write_geotiff(stage / "change_score.tif", score, result.grid, nodata=float("nan"), cog=True, **described)
        panels = overlay_panels(result)
        for name, panel in zip(("before.tif", "after.tif"), panels):
            write_rgb_cog(stage / name, panel.rgb, result.grid.crs, result.display_grid.transform)
        render_overlay(panels, stage / "overlay.png", caption=overlay_caption(result), legend=True)
        write_json(stage / "summary.json", {**result.summary, "outputs": DETECT_OUTPUTS})
    return [out_dir / n for n in DETECT_OUTPUTS]


def overlay_caption(result: DetectResult) -> str:
    """The overlay's caption: what the colours mean and the threshold used, as used (not rounded)."""
    threshold = result.changes.threshold
    return (
        "red: new, blue: removed (dashed: low confidence, score below "
        f"{LOW_CONFIDENCE_SCORE:g}); numbers are the ids in changes.geojson. "
        f"Change score from 0 to {3 * threshold:.3g} (threshold {threshold:.3g})."
    )


def overlay_panels(result: DetectResult) -> list[Panel]:
    """Before, after (normalised, on the same stretch) and change score, each with the objects drawn and numbered.

    Low-confidence objects are dashed; the score panel carries its colour scale.
    """
    limits = stretch_limits(result.before, result.valid)
    shapes = [
        Shape(o.geometry, COLOURS[o.change], label=str(i + 1), dashed=o.confidence == "low")
        for i, o in enumerate(result.objects)
    ]
    dates = result.summary["dates"]
    transform = result.display_grid.transform
    threshold = result.changes.threshold
    unit = method_named(result.summary["method"]["change"]).score_unit
    return [
        Panel(
            f"before {dates['before'] or result.before_path.name}",
            display_rgb(result.before, result.valid, limits=limits),
            transform,
            shapes,
        ),
        Panel(
            f"after {dates['after'] or result.after_path.name}",
            display_rgb(result.after, result.valid, limits=limits),
            transform,
            shapes,
        ),
        Panel(
            "change score and objects",
            score_rgb(result.changes.score, threshold, result.valid),
            transform,
            shapes,
            colour_scale=ColourScale(
                0.0,
                3 * threshold,
                f"change score ({unit}); threshold {threshold:.3g}"
                if unit != "1"
                else f"change score; threshold {threshold:.3g}",
            ),
        ),
    ]
