"""Building-focused change evidence: a roof stands on one date where none stood on the other.

A colour-change score misses most new houses on real imagery: a grey roof replacing bare
ground is less colour change than the lawns, fields and roads that change around it with
the season.  This module asks the question an analyst asks instead, region by region:

1. Segment the later image into regions of one surface (Felzenszwalb's graph method), so a
   roof is judged as a whole and its outline follows the image's own edges.
2. Score each region's *roofness* on both dates (:func:`roofness`): roof materials are
   neutral (shingle, concrete, metal, asphalt) or vividly painted in colours that soil and
   leaves never take (blue, teal, red); soil, dry grass and leaves are moderately saturated
   earth and green hues.
3. A region is new structure where it is roof-like in the later image, not in shadow, and
   either was not roof-like in the earlier image or changed colour far more than the
   scene's typical region does (after histogram matching).
4. Removal asks the same with the dates swapped, on a segmentation of the earlier image.

Objects made from these scores are confirmed by shadows: a structure that rises casts a
new shadow beside it, one that goes takes its shadow with it
(:func:`outline_share` of the shadows in :class:`BuildingEvidence`).  Pure: arrays in, arrays out.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.color import rgb2hsv
from skimage.exposure import match_histograms
from skimage.segmentation import expand_labels, felzenszwalb

from .scene import SceneStats
from .scores import brightness, excess_green, shadow_mask, vegetation_mask

# Saturation (max - min) / max at which an earth-hued surface stops looking like a roof
# material: grey shingle and concrete sit near 0.1, soil and dry grass at 0.3 and above.
NEUTRAL_SATURATION = 0.3
# Hues (degrees) of soil, dry grass and leaves; outside them, strong colour is paint.
EARTH_HUES = ((10.0, 25.0), (150.0, 165.0))  # ramps up over the first pair, down over the second
# Saturation over which a non-earth colour counts as paint, ramping from the first to the second.
PAINT_SATURATION = (0.35, 0.5)
# Excess green (2g - r - b) at which a surface is fully vegetation.
GREEN_LIMIT = 0.08
# A region's colour change, in multiples of the scene's lower-quartile region change, at
# which it counts as fully changed even where both dates look roof-like.
FULL_CHANGE = 4.0
# Felzenszwalb's scale and smallest region as areas, so the regions mean the same on the ground
# at any pixel size (at 0.5 m: scale 100 and 40 pixels).
SEGMENT_SCALE_M2 = 25.0
SEGMENT_MIN_M2 = 10.0
# Segmentation runs on tiles of this many pixels a side; a roof cut by a tile edge becomes two
# regions that are scored apart and join again as one object.
SEGMENT_TILE_PX = 1024
# ... at least this many pixels a region, whatever the pixel size; the image smoothed by this
# Gaussian first (Felzenszwalb's own default), after stretching it to 0-1 by this percentile
# of its valid pixels (a few specular highlights above it do not set the scale).
SEGMENT_MIN_PX = 4
SEGMENT_SIGMA_PX = 0.8
STRETCH_PERCENTILE = 99.5
# A shadow is darker than this fraction of its surroundings' mean over this window (metres).
SHADOW_SURROUND_FRACTION = 0.6
SHADOW_SURROUND_M = 15.0


def roofness(image: np.ndarray) -> np.ndarray:
    """How much each pixel looks like a roof material, 0 to 1, from bands 0-2 (R, G, B).

    Neutral colours score high (1 at grey, 0 at saturation :data:`NEUTRAL_SATURATION`);
    earth hues (soil, dry grass) and vegetation score low whatever their brightness;
    vivid colours outside the earth hues (blue, teal, red paint) score high.  Images with
    fewer than three bands have no colour to judge: every pixel scores 1.

    Parameters
    ----------
    image : ndarray of shape (B, M, N)

    Returns
    -------
    ndarray of shape (M, N), float32
    """
    if image.shape[0] < 3:
        return np.ones(image.shape[1:], np.float32)
    rgb = np.clip(image[:3].astype(np.float32), 0, None)
    top, low = rgb.max(axis=0), rgb.min(axis=0)
    saturation = (top - low) / (top + np.float32(1e-6))
    peak = float(top.max()) or 1.0
    hue = rgb2hsv(np.moveaxis(rgb / peak, 0, -1))[..., 0] * 360.0
    (a0, a1), (b0, b1) = EARTH_HUES
    earth = np.clip((hue - a0) / (a1 - a0), 0, 1) * np.clip((b1 - hue) / (b1 - b0), 0, 1)
    neutral = np.clip(1 - saturation / NEUTRAL_SATURATION, 0, 1)
    p0, p1 = PAINT_SATURATION
    paint = np.clip((saturation - p0) / (p1 - p0), 0, 1) * (1 - earth)
    not_green = np.clip(1 - excess_green(image) / GREEN_LIMIT, 0, 1)
    score = np.maximum(neutral, paint) * not_green
    if image.shape[0] >= 4:  # a near-infrared band sees leaves whatever their colour
        score = np.where(vegetation_mask(image), 0, score)
    return score.astype(np.float32)


def segment_surfaces(
    image: np.ndarray,
    *,
    pixel_size_m: float,
    valid: np.ndarray | None = None,
    top: float | None = None,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Regions of one surface (Felzenszwalb-Huttenlocher graph segmentation on bands 0-2).

    The image is stretched to 0-1 by its 99.5th percentile over ``valid`` pixels first (or
    by ``top``, a whole scene's, when given), so the segmentation does not depend on the
    data type (8-bit, 16-bit, reflectance).  ``origin`` is the (row, col) of the image's
    first pixel in a larger scene: tiles are cut where they cut the scene, so a block of it
    gets the scene's regions wherever the block holds whole tiles.

    Returns
    -------
    ndarray of shape (M, N), int32
        Region labels from 0.
    """
    bands = image[:3].astype(np.float32)
    if top is None:
        sample = bands[:, valid] if valid is not None and valid.any() else bands.reshape(bands.shape[0], -1)
        top = float(np.percentile(sample, STRETCH_PERCENTILE))
    top = top or 1.0
    picture = np.clip(np.moveaxis(bands, 0, -1) / top, 0, 1)
    area = pixel_size_m * pixel_size_m
    scale, min_size = SEGMENT_SCALE_M2 / area, max(SEGMENT_MIN_PX, int(round(SEGMENT_MIN_M2 / area)))
    # tile by tile: the graph method's time and memory grow faster than the pixel count
    # (about 3 s for 1024 x 1024 px; a 4096 x 4096 scene whole took minutes and gigabytes)
    row_cuts, col_cuts = (_tile_cuts(n, start) for n, start in zip(picture.shape[:2], origin))
    tiles_at = [(rows, cols) for rows in row_cuts for cols in col_cuts]

    def segment(at: tuple[slice, slice]) -> np.ndarray:
        return felzenszwalb(
            picture[at],
            scale=scale,
            sigma=SEGMENT_SIGMA_PX,
            min_size=min_size,
            channel_axis=-1,
        )

    # the graph method releases the GIL for most of its work: tiles run side by side on threads,
    # unless this already runs on a worker thread (blocks of a scene side by side): nested
    # pools would only hold more tiles' graphs in memory at once (about 0.2 GB each)
    nested = threading.current_thread() is not threading.main_thread()
    workers = 1 if nested else min(len(tiles_at), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        tiles = list(pool.map(segment, tiles_at))
    labels = np.empty(picture.shape[:2], np.int32)
    offset = 0
    for at, tile in zip(tiles_at, tiles):
        labels[at] = tile + offset
        offset += int(tile.max()) + 1
    return labels


def _tile_cuts(n: int, start: int) -> list[slice]:
    """Slices of ``0..n`` cut at the multiples of :data:`SEGMENT_TILE_PX` of ``start + i``."""
    first = (-start) % SEGMENT_TILE_PX
    edges = sorted({0, *range(first, n, SEGMENT_TILE_PX), n})
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _region_means(labels: np.ndarray, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return np.bincount(labels.ravel(), weights=values.ravel(), minlength=counts.size) / np.maximum(counts, 1)


def _weighted_lower_quartile(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    if cumulative[-1] <= 0:
        return 0.0
    return float(values[order][np.searchsorted(cumulative, 0.25 * cumulative[-1])])


def new_structure_score(
    earlier: np.ndarray,
    later: np.ndarray,
    regions: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    roof_earlier: np.ndarray | None = None,
    roof_later: np.ndarray | None = None,
    dark_later: np.ndarray | None = None,
    match: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Per pixel, how strongly its region of ``later`` is a roof that ``earlier`` did not show.

    A region's score is ``roofness(later) * max(1 - roofness(earlier), change) * (1 - shadow)``,
    each a mean over the region: ``change`` is its colour difference between the dates (after
    matching ``earlier``'s histograms to ``later``'s) in units of :data:`FULL_CHANGE` times
    the scene's lower-quartile region change, capped at 1; ``shadow`` is the share of it in
    shadow in ``later``.  Swap the dates (and segment the earlier image) to score removals.

    Parameters
    ----------
    earlier, later : ndarray of shape (B, M, N)
        The two dates on one grid, as they came from the sensor.
    regions : ndarray of shape (M, N), int
        Labels from :func:`segment_surfaces` of ``later``.
    valid : ndarray of bool, shape (M, N), optional
        Pixels to consider; the others score 0 and take no part in the statistics.
    roof_earlier, roof_later : ndarray of shape (M, N), optional
        :func:`roofness` of the two images, where the caller has it already.
    dark_later : ndarray of bool, shape (M, N), optional
        :func:`.scores.shadow_mask` of ``later`` over ``valid``, likewise.
    match : (ndarray, ndarray), optional
        Per-band quantiles of ``earlier`` and ``later``, each (B, Q) at the same levels (a
        whole scene's, :class:`.scene.SceneStats`): ``earlier`` is matched to ``later``
        through them instead of through the histograms of the pixels at hand.

    Returns
    -------
    ndarray of shape (M, N), float32, from 0 to 1
    """
    valid = np.ones(regions.shape, bool) if valid is None else valid
    labels = np.where(valid, regions + 1, 0)  # label 0 gathers the invalid pixels
    counts = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1).astype(np.float64)
    counts[0] = 0
    roof_later = _region_means(labels, roofness(later) if roof_later is None else roof_later, counts)
    roof_earlier = _region_means(labels, roofness(earlier) if roof_earlier is None else roof_earlier, counts)
    matched = np.zeros(later.shape, np.float32)
    if match is None:
        matched[:, valid] = match_histograms(earlier[:, valid].T, later[:, valid].T, channel_axis=-1).T
    else:
        for band, (source, target) in enumerate(zip(*match)):
            matched[band, valid] = np.interp(earlier[band, valid], source, target)
    change_sq = np.zeros(counts.size)
    for band in range(later.shape[0]):
        change_sq += (_region_means(labels, matched[band], counts) - _region_means(labels, later[band], counts)) ** 2
    change = np.sqrt(change_sq)
    typical = _weighted_lower_quartile(change[1:], counts[1:])
    change = np.clip(change / (FULL_CHANGE * typical), 0, 1) if typical > 0 else (change > 0).astype(float)
    dark = shadow_mask(later, valid=valid) if dark_later is None else dark_later
    shade = _region_means(labels, dark & valid, counts)
    score = roof_later * np.maximum(1 - roof_earlier, change) * (1 - shade)
    score[0] = 0.0
    return score.astype(np.float32)[labels]


def outline_share(labels: np.ndarray, mask: np.ndarray, *, ring_px: int) -> np.ndarray:
    """For each label, the share of the ring up to ``ring_px`` pixels outside it that ``mask`` covers.

    Returns
    -------
    ndarray of shape (labels.max() + 1,), float
        Index 0 (the background) is 0.
    """
    ring = expand_labels(labels, ring_px)
    ring[labels > 0] = 0
    size = int(labels.max()) + 1
    total = np.bincount(ring.ravel(), minlength=size)
    covered = np.bincount(ring.ravel(), weights=mask.ravel().astype(np.float64), minlength=size)
    share = covered / np.maximum(total, 1)
    share[0] = 0.0
    return share


def cast_shadow(
    image: np.ndarray, *, pixel_size_m: float, valid: np.ndarray | None = None, dark: np.ndarray | None = None
) -> np.ndarray:
    """Shadow: darker than half the scene's median brightness, or than its surroundings.

    The second test (:data:`SHADOW_SURROUND_FRACTION` of the mean over
    :data:`SHADOW_SURROUND_M` metres) finds a shadow cast on bright concrete, which can
    still be brighter than half the median of a scene of fields.  ``dark`` is the first test
    (:func:`.scores.shadow_mask` over ``valid``), where the caller has it already.
    """
    lum = brightness(image)
    size = max(3, int(round(SHADOW_SURROUND_M / pixel_size_m)) | 1)
    local = lum < SHADOW_SURROUND_FRACTION * ndimage.uniform_filter(lum, size=size)
    return (shadow_mask(image, valid=valid) if dark is None else dark) | local


def chromaticity_change(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """Per pixel, the L1 distance between the dates' chromaticities r, g, b / (r + g + b), 0 to 2.

    Brightness falls out, so a pitched roof lit from another side, or a date in haze, shows
    little; a red roof replaced by a blue one shows about 0.9.  Zero with fewer than 3 bands.
    """
    if later.shape[0] < 3:
        return np.zeros(later.shape[1:], np.float32)

    def chroma(image: np.ndarray) -> np.ndarray:
        rgb = np.clip(image[:3].astype(np.float32), 0, None)
        return rgb / (rgb.sum(axis=0) + np.float32(1e-6))

    return np.abs(chroma(later) - chroma(earlier)).sum(axis=0).astype(np.float32)


@dataclass(frozen=True)
class BuildingEvidence:
    """Per-pixel evidence that a structure rose or went, each of shape (M, N)."""

    new: np.ndarray
    """float32 0-1: :func:`new_structure_score` on a segmentation of the later image."""
    removed: np.ndarray
    """float32 0-1: the same with the dates swapped, on a segmentation of the earlier image."""
    shadow_before: np.ndarray
    """bool: shadow (or a very dark surface) before."""
    shadow_after: np.ndarray
    """bool: the same after."""
    chroma_change: np.ndarray
    """float32: :func:`chromaticity_change` from before to after."""


def building_evidence(
    before: np.ndarray,
    after: np.ndarray,
    *,
    pixel_size_m: float,
    valid: np.ndarray | None = None,
    scene: SceneStats | None = None,
) -> BuildingEvidence:
    """Evidence of new and removed structures between two dates on one grid.

    Pass the images as they came from the sensor: :func:`roofness` reads colour ratios,
    which a per-band radiometric fit across seasons can bend.  ``scene`` holds a whole
    scene's statistics when the images are one block of it (:class:`.scene.SceneStats`).
    """
    if before.shape != after.shape:
        raise ValueError(f"before and after differ in shape: {before.shape} vs {after.shape}")
    scene = scene or SceneStats()
    medians = scene.brightness_median or (None, None)
    tops = scene.stretch_top or (None, None)
    quantiles = scene.quantiles
    # each date's roofness and darkness once, for both directions and the shadows
    roof_before, roof_after = roofness(before), roofness(after)
    dark_before = shadow_mask(before, valid=valid, median=medians[0])
    dark_after = shadow_mask(after, valid=valid, median=medians[1])
    new = new_structure_score(
        before,
        after,
        segment_surfaces(after, pixel_size_m=pixel_size_m, valid=valid, top=tops[1], origin=scene.origin),
        valid=valid,
        roof_earlier=roof_before,
        roof_later=roof_after,
        dark_later=dark_after,
        match=quantiles,
    )
    removed = new_structure_score(
        after,
        before,
        segment_surfaces(before, pixel_size_m=pixel_size_m, valid=valid, top=tops[0], origin=scene.origin),
        valid=valid,
        roof_earlier=roof_after,
        roof_later=roof_before,
        dark_later=dark_before,
        match=quantiles[::-1] if quantiles is not None else None,
    )
    return BuildingEvidence(
        new,
        removed,
        cast_shadow(before, pixel_size_m=pixel_size_m, valid=valid, dark=dark_before),
        cast_shadow(after, pixel_size_m=pixel_size_m, valid=valid, dark=dark_after),
        chromaticity_change(before, after),
    )
