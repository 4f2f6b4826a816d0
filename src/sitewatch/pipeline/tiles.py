"""Block-wise ``detect``: a scene of any size in bounded memory, blocks side by side on threads.

The AOI window of BEFORE is cut into square blocks (:data:`BLOCK_PX`), each read with a halo
(:func:`halo_px`) from both rasters, never the whole scene:

1. Co-registration on a central crop of at most :data:`COREG_CROP_PX` a side (the whole
   window when smaller): one shift for the scene, folded into AFTER's warp of every block.
2. A first, cheap pass on every :func:`preview_factor`-th pixel of both images gives the
   scene's statistics (:class:`~sitewatch.structures.SceneStats`: shadow and stretch levels,
   histograms, the presence network's input levels) and the radiometric normalisation
   (:class:`BandMapping`), so every block is judged as the scene is, not by its own.
3. Each block runs the registered method on its pixels plus halo; it keeps the objects
   whose centroid lies in its core, so an object crossing a block edge is traced whole by
   the one block that owns it (objects reaching further than the halo past the core are
   cut; they are counted and logged).  The core's score goes to disk as it comes, and every
   :func:`preview_factor`-th pixel to the previews.

Memory is the blocks in flight (one per worker) plus the previews, whatever the scene.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from shapely.geometry import box

from ..coreg import ShiftResult
from ..errors import ImageryError
from ..io import Grid, MaskSpec, RasterWindow, read_grid, read_source, unusable_on_grid, warp_onto_grid
from ..radiometry import NORMALISATION_METHODS
from ..structures import (
    ChangeObject,
    DetectSettings,
    SceneStats,
    StructureChanges,
    detect_structure_changes,
    gather_evidence,
    method_named,
)
from ..structures.presence import luminance_levels
from ..structures.roofs import STRETCH_PERCENTILE
from ..structures.scores import brightness

log = logging.getLogger(__name__)

# Blocks are this many pixels a side: a multiple of the segmentation's tiles (1024) and the
# presence network's (512), so both cut a block where they cut the scene.  A block of 1024
# plus its halo holds about 0.4 GB of intermediates on the building method.
BLOCK_PX = 1024
# The halo round each block: room for an object whose centroid lies in the block to be traced
# whole, plus the context the steps read round a pixel (the presence network's 64 px, the
# shadow surround's 15 m).  At least this many metres, and this many pixels.
HALO_M = 100.0
MIN_HALO_PX = 128
# Co-registration reads a central crop of the window at most this many pixels a side: a 2048 px
# crop took 0.8 GB and 12 s for the shift a 1024 px one finds within hundredths of a pixel.
COREG_CROP_PX = 1024
# Statistics and previews are taken on every k-th pixel, k a power of two that leaves at
# most this many pixels a side (at 2048 the first pass held 0.3 GB more, for no better statistic).
PREVIEW_MAX_PX = 1024
# GDAL's block cache while blocks are read (its default, 5 % of RAM, fills with a large scene's
# decoded tiles during the first pass: 1.3 GB on a 16384 x 16384 pair); a block's reads need
# a few tens of MB.
GDAL_CACHE_BYTES = 128 * 2**20
# Histograms are carried as this many quantiles per band.
QUANTILE_LEVELS = 1025
# Percentiles, quantiles and the normalisation's curve are taken on at most this many of the
# sample's valid pixels (a regular subsample): at 2048 x 2048 all of them took 0.7 GB.
MAX_STATISTIC_PX = 1_000_000


@dataclass(frozen=True)
class Block:
    """One block: its core (what it reports) and what is read round it, as (row, col, rows, cols)."""

    core: tuple[int, int, int, int]
    read: tuple[int, int, int, int]


def halo_px(pixel_size_m: float) -> int:
    """The halo round each block, in pixels: :data:`HALO_M`, and at least :data:`MIN_HALO_PX`."""
    return max(MIN_HALO_PX, int(math.ceil(HALO_M / pixel_size_m)))


def plan_blocks(shape: tuple[int, int], block_px: int, halo: int) -> list[Block]:
    """The blocks covering a (rows, cols) window, row by row, cores aligned at multiples of ``block_px``."""
    rows, cols = shape
    blocks = []
    for r in range(0, rows, block_px):
        for c in range(0, cols, block_px):
            h, w = min(block_px, rows - r), min(block_px, cols - c)
            r0, c0 = max(r - halo, 0), max(c - halo, 0)
            r1, c1 = min(r + h + halo, rows), min(c + w + halo, cols)
            blocks.append(Block((r, c, h, w), (r0, c0, r1 - r0, c1 - c0)))
    return blocks


def sub_grid(grid: Grid, row: int, col: int, rows: int, cols: int) -> Grid:
    """The part of ``grid`` from (row, col), rows x cols."""
    return Grid(grid.crs, grid.transform @ Affine.translation(col, row), (rows, cols))


def preview_factor(shape: tuple[int, int]) -> int:
    """Every how many pixels statistics and previews are taken: a power of two leaving :data:`PREVIEW_MAX_PX` a side."""
    return 1 << max(0, math.ceil(math.log2(max(shape) / PREVIEW_MAX_PX)))


@dataclass(frozen=True)
class BandMapping:
    """AFTER's radiometric normalisation to BEFORE, fitted once on the scene, applied to any block.

    Per band, either ``a * x + c`` (the regressions: ``linear`` holds (a, c) per band) or a
    monotone table through the quantiles of AFTER before and after normalisation (histogram
    matching: ``tables`` holds (source, target) per band).
    """

    linear: tuple[tuple[float, float], ...] | None = None
    tables: tuple[tuple[np.ndarray, np.ndarray], ...] | None = None

    def __call__(self, after: np.ndarray) -> np.ndarray:
        """``after`` of shape (B, M, N) normalised, float32."""
        out = np.empty(after.shape, np.float32)
        for band in range(after.shape[0]):
            if self.linear is not None:
                a, c = self.linear[band]
                out[band] = a * after[band] + c
            else:
                source, target = self.tables[band]
                out[band] = np.interp(after[band], source, target)
        return out


# A linear fit explains a normalisation when its residual is below this share of the band's spread.
LINEAR_FIT_TOLERANCE = 1e-4


def _valid_sample(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``image``'s bands (B, M, N) at a regular subsample of at most :data:`MAX_STATISTIC_PX` valid pixels: (B, K)."""
    index = np.flatnonzero(valid)
    index = index[:: max(1, -(-index.size // MAX_STATISTIC_PX))]
    return image.reshape(image.shape[0], -1)[:, index]


def fit_band_mapping(after: np.ndarray, normalised: np.ndarray, valid: np.ndarray) -> BandMapping:
    """The :class:`BandMapping` that takes ``after`` to ``normalised`` over ``valid`` pixels (B, M, N each)."""
    levels = np.linspace(0.0, 1.0, QUANTILE_LEVELS)
    linear, tables = [], []
    pairs = zip(_valid_sample(after, valid).astype(np.float64), _valid_sample(normalised, valid).astype(np.float64))
    for x, y in pairs:
        a, c = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (1.0, float(np.mean(y - x)))
        spread = max(float(np.ptp(y)), 1e-9)
        linear.append((float(a), float(c)) if np.abs(a * x + c - y).max() <= LINEAR_FIT_TOLERANCE * spread else None)
        tables.append((np.quantile(x, levels), np.quantile(y, levels)))
    if all(f is not None for f in linear):
        return BandMapping(linear=tuple(linear))
    return BandMapping(tables=tuple(tables))


def scene_statistics(
    before: np.ndarray, after: np.ndarray, valid: np.ndarray, *, normalisation: str
) -> tuple[SceneStats, BandMapping]:
    """The scene's statistics and AFTER's normalisation, from a sample of both images on one grid.

    ``before`` and ``after`` (B, M, N) as read (AFTER warped, invalid pixels 0), ``valid``
    the pixels valid in both and inside the footprint.  The normalisation is fitted on
    pixels that are neither vegetated nor in shadow, as :func:`~.detect.detect_on_grid` does.
    """
    if not valid.any():
        raise ImageryError("no pixel is valid in both images inside the AOI footprint")
    medians = tuple(float(np.median(brightness(image)[valid])) for image in (before, after))
    evidence = gather_evidence(before, after, valid=valid, scene=SceneStats(brightness_median=medians))
    normalised = NORMALISATION_METHODS[normalisation](
        before, after, valid=valid, candidates=~evidence.vegetation & ~evidence.shadow
    )
    levels = np.linspace(0.0, 1.0, QUANTILE_LEVELS)
    samples = [_valid_sample(image, valid) for image in (before, after)]
    stats = SceneStats(
        brightness_median=medians,
        stretch_top=tuple(float(np.percentile(sample[:3], STRETCH_PERCENTILE)) for sample in samples),
        quantiles=tuple(np.quantile(sample, levels, axis=1).T for sample in samples),
        presence_levels=tuple(luminance_levels(image[:3].mean(axis=0), valid) for image in (before, normalised)),
    )
    return stats, fit_band_mapping(after, normalised, valid)


@dataclass(frozen=True)
class TiledInputs:
    """What every block reads: the two images, the grid, the shift, and what masks pixels."""

    before: Path
    after: Path
    grid: Grid
    shift: ShiftResult
    bands: tuple[int, ...] | None
    masks: tuple[MaskSpec, ...]
    footprint: Callable[[Grid], np.ndarray]


def read_pair_on(inputs: TiledInputs, grid: Grid, factor: int = 1) -> tuple[RasterWindow, RasterWindow]:
    """BEFORE on ``grid`` (a window of the scene's), masked, and AFTER warped onto it with the shift folded in.

    With ``factor`` > 1, every ``factor``-th pixel of both, on the coarser grid.
    """
    ref = read_grid(inputs.before, grid, bands=inputs.bands, factor=factor)
    unusable = np.zeros(ref.grid.shape, bool)
    for spec in inputs.masks:
        unusable |= unusable_on_grid(spec, ref.grid)
    ref = dataclasses.replace(ref, valid=ref.valid & ~unusable & inputs.footprint(ref.grid))
    source = read_source(inputs.after, bands=inputs.bands, around=ref.grid, factor=factor)
    if source.data.shape[0] != ref.data.shape[0]:
        n = min(source.data.shape[0], ref.data.shape[0])
        ref, source = dataclasses.replace(ref, data=ref.data[:n]), dataclasses.replace(source, data=source.data[:n])
    # the shift is measured on the scene's grid: its centre moves with the block's origin, its
    # pixels shrink with the sampling
    col, row = ~inputs.grid.transform * (grid.transform.c, grid.transform.f)
    s = inputs.shift
    moved = warp_onto_grid(
        source,
        ref.grid,
        shift_px=(s.dx / factor, s.dy / factor),
        gradient=s.gradient,
        centre=((s.centre[0] - col) / factor, (s.centre[1] - row) / factor),
        resampling=Resampling.cubic if factor == 1 else Resampling.nearest,
    )
    return ref, moved


def shifted_from_crop(shift: ShiftResult, row: int, col: int) -> ShiftResult:
    """A shift measured on a crop from (row, col), expressed on the whole window (its centre and windows moved)."""
    windows = tuple(dataclasses.replace(w, col=w.col + col, row=w.row + row) for w in shift.windows)
    centre = (shift.centre[0] + col, shift.centre[1] + row)
    return dataclasses.replace(shift, centre=centre, windows=windows)


def central_crop(shape: tuple[int, int], size: int = COREG_CROP_PX) -> tuple[int, int, int, int]:
    """(row, col, rows, cols) of the central crop at most ``size`` a side."""
    rows, cols = min(shape[0], size), min(shape[1], size)
    return (shape[0] - rows) // 2, (shape[1] - cols) // 2, rows, cols


@dataclass
class BlockResult:
    """What one block found: the objects it owns, its core's score, and its share of the previews."""

    block: Block
    objects: list[ChangeObject]
    score: np.ndarray
    stats: dict[str, Any]
    threshold: float
    preview: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None
    cut: int = 0
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    """Time each step took on the block's thread (read, evidence, objects)."""


@dataclass(frozen=True)
class BlockJob:
    """Everything a block needs besides its position: inputs, settings, the scene's statistics."""

    inputs: TiledInputs
    settings: DetectSettings
    stats: SceneStats
    mapping: BandMapping
    factor: int


def _owned(objects: list[ChangeObject], block: Block, grid: Grid, read: Grid) -> tuple[list[ChangeObject], int]:
    """The objects whose centroid lies in the block's core, and how many of them touch the read window's inner edges."""
    r, c, h, w = block.core
    to_pixels = ~grid.transform
    owned = []
    for o in objects:  # half-open in pixels, so a centroid on an edge or a corner has one owner
        col, row = to_pixels * (o.geometry.centroid.x, o.geometry.centroid.y)
        if r <= row < r + h and c <= col < c + w:
            owned.append(o)
    rows, cols = grid.shape
    r0, c0, rh, rw = block.read
    # edges of the read window that are not the scene's: an object touching one may go on beyond it
    inner = [e for e, open_ in zip(_edges(read), (r0 > 0, r0 + rh < rows, c0 > 0, c0 + rw < cols)) if open_]
    cut = sum(any(o.geometry.intersects(e) for e in inner) for o in owned)
    return owned, cut


def _edges(grid: Grid) -> list[Any]:
    """The top, bottom, left and right edges of a grid's extent, as thin boxes half a pixel deep."""
    west, south, east, north = grid.bounds
    half = grid.pixel_size_m / 2
    return [
        box(west, north - half, east, north),
        box(west, south, east, south + half),
        box(west, south, west + half, north),
        box(east - half, south, east, north),
    ]


def _preview_part(
    arrays: Sequence[np.ndarray], block: Block, read: tuple[int, int], factor: int
) -> tuple[np.ndarray, ...]:
    """Every ``factor``-th pixel of each array's core (arrays on the read window), on the scene's lattice."""
    r, c, h, w = block.core
    rr, cc = r - read[0] + (-r) % factor, c - read[1] + (-c) % factor
    rr1, cc1 = r - read[0] + h, c - read[1] + w
    return tuple(a[..., rr:rr1:factor, cc:cc1:factor] for a in arrays)


def detect_block(block: Block, job: BlockJob) -> BlockResult:
    """The registered method on one block with its halo; the objects it owns and its core's score."""
    inputs = job.inputs
    read = sub_grid(inputs.grid, *block.read)
    t = time.perf_counter()
    ref, moved = read_pair_on(inputs, read)
    seconds = {"read": time.perf_counter() - t}
    valid = ref.valid & moved.valid
    r, c, h, w = block.core
    core = (slice(r - block.read[0], r - block.read[0] + h), slice(c - block.read[1], c - block.read[1] + w))
    if not valid.any():  # outside the footprint, or no data on one date: nothing to find
        score = np.full(valid.shape, np.nan, np.float32)
        preview = _preview_part((ref.data, np.zeros_like(ref.data), valid, score), block, block.read[:2], job.factor)
        return BlockResult(block, [], score[core], {}, float("nan"), preview)
    after_data = np.where(moved.valid, moved.data, 0).astype(np.float32)
    scene = dataclasses.replace(job.stats, origin=block.read[:2])
    settings = job.settings
    t = time.perf_counter()
    evidence = gather_evidence(
        ref.data,
        after_data,
        valid=valid,
        vegetation_threshold=settings.vegetation_threshold,
        shadow_fraction=settings.shadow_fraction,
        pixel_size_m=read.pixel_size_m if method_named(settings.method).building_evidence else None,
        scene=scene,
    )
    after_norm = job.mapping(after_data)
    seconds["evidence"] = time.perf_counter() - t
    t = time.perf_counter()
    changes = detect_structure_changes(
        ref.data,
        after_norm,
        pixel_size_m=read.pixel_size_m,
        transform=read.transform,
        valid=valid,
        settings=settings,
        evidence=evidence,
        scene=scene,
    )
    seconds["objects"] = time.perf_counter() - t
    objects, cut = _owned(changes.objects, block, inputs.grid, read)
    score = np.where(valid, changes.score, np.nan).astype(np.float32)
    preview = _preview_part((ref.data, after_norm, valid, score), block, block.read[:2], job.factor)
    return BlockResult(block, objects, score[core], changes.stats, changes.threshold, preview, cut, seconds)


def run_blocks(
    blocks: list[Block],
    job: BlockJob,
    *,
    workers: int | None = None,
    on_block: Callable[[int, int], None] | None = None,
) -> Iterator[BlockResult]:
    """Each block's result, in the blocks' order, computed ``workers`` at a time on threads.

    NumPy, SciPy, scikit-image and GDAL release the GIL in their heavy calls, so threads
    share the cores without copying the inputs; at most ``workers + 1`` blocks are submitted
    and not yet consumed, which bounds memory.
    """
    workers = max(1, workers or os.cpu_count() or 1)
    # rasterio silences this warning of its in-memory datasets (made before their transform is
    # set) with warnings.catch_warnings, which is not thread-safe: one thread's exit restores
    # the filters while another is inside, and the spurious warning escapes
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=workers) as pool:
        warnings.filterwarnings("ignore", message="Dataset has no geotransform", category=NotGeoreferencedWarning)
        pending: list = []
        done = 0
        for block in blocks:
            pending.append(pool.submit(detect_block, block, job))
            if len(pending) > workers:
                yield pending.pop(0).result()
                done += 1
                if on_block:
                    on_block(done, len(blocks))
        for future in pending:
            yield future.result()
            done += 1
            if on_block:
                on_block(done, len(blocks))


def merge_stats(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Two blocks' detector statistics added up, key by key (counts add; anything else keeps the first)."""
    out = dict(total)
    for key, value in part.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = merge_stats(out[key], value)
        elif isinstance(value, (int, float)) and isinstance(out[key], (int, float)):
            out[key] = out[key] + value
    return out


def assemble(results: Iterator[BlockResult], shape: tuple[int, int], factor: int, score_sink: Callable | None):
    """The objects, statistics and previews of every block, each core's score passed to ``score_sink``.

    Returns (objects, stats, threshold, previews, cut) with previews (before, after, valid,
    score) on the grid of every ``factor``-th pixel.
    """
    prows, pcols = -(-shape[0] // factor), -(-shape[1] // factor)
    previews: list[np.ndarray | None] = [
        None,
        None,
        np.zeros((prows, pcols), bool),
        np.full((prows, pcols), np.nan, np.float32),
    ]
    objects: list[ChangeObject] = []
    stats: dict[str, Any] = {}
    threshold, cut = float("nan"), 0
    for result in results:
        r, c = result.block.core[:2]
        if score_sink is not None:
            score_sink(result.score, r, c)
        pr, pc = -(-r // factor), -(-c // factor)
        for k, part in enumerate(result.preview):
            if previews[k] is None:
                previews[k] = np.zeros((part.shape[0], prows, pcols), np.float32)
            previews[k][..., pr : pr + part.shape[-2], pc : pc + part.shape[-1]] = part
        objects += result.objects
        stats = merge_stats(stats, {**result.stats, "thread_seconds": result.seconds})
        threshold = result.threshold if math.isnan(threshold) else threshold
        cut += result.cut
    objects.sort(key=lambda o: -o.area_m2)
    return objects, stats, threshold, previews, cut


def tiled_changes(objects: list[ChangeObject], score: np.ndarray, threshold: float, stats: dict) -> StructureChanges:
    """The blocks' findings as one :class:`StructureChanges` (score and direction on the preview grid)."""
    return StructureChanges(objects, score, np.zeros(score.shape, np.int8), threshold, stats)
