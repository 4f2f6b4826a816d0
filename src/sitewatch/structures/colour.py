"""Structures from colour change (``"cva"``, ``"log_ratio"``): the methods before ``"building"``.

1. Score change (a pixel score from :mod:`.scores`).
2. Drop pixels that cannot be a structure's roof: vegetation on both dates (seasonal
   colour change) and shadow on either date (shadows move with the sun; a footprint is
   the roof, not its shadow).  After step 4, a "new" pixel must not be vegetation in the
   later image, nor a "removed" one in the earlier (fields ploughed or harvested).
3. Threshold the rest at a multiple of the median score (a noise test; Otsu is optional).
4. Give each changed pixel a direction by asking which date makes it stand out from the
   object's unchanged surroundings: a pixel that differs from its surroundings only in
   the later image is part of something new; only in the earlier, something removed.
5. Clean up, keep compact, roughly rectangular objects above a minimum area in m², and
   polygonise.

Pure: arrays in, :class:`~sitewatch.structures.objects.StructureChanges` out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from skimage import morphology

from .evidence import Evidence
from .objects import ChangeObject, StructureChanges, measured_objects
from .scores import cva_magnitude, log_ratio, otsu_threshold
from .settings import ChangeArea, DetectSettings

# (before, after, *, valid) -> (M, N) change score in multiples of the unchanged median
ScoreFunction = Callable[..., np.ndarray]

# Opening radius: changed pixels narrower than twice this are noise or a misregistered edge.
OPENING_M = 1.0
# Smallest object kept in pixels, whatever min_area_m2 says at coarse pixels.
MIN_OBJECT_PX = 4
# The ring round an object that its contrast is measured against: this wide, and at least
# MIN_RING_PX pixels; fewer than MIN_RING_SAMPLES background pixels in it and the scene's
# median stands in for the surroundings.
RING_M = 4.0
MIN_RING_PX = 2
MIN_RING_SAMPLES = 10
# Radius of the majority vote that smooths the per-pixel direction (new or removed).
VOTE_RADIUS_M = 1.5


def _drop_small(mask: np.ndarray, max_pixels: int) -> np.ndarray:
    """``mask`` without 8-connected components of ``max_pixels`` pixels or fewer."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes > max_pixels
    keep[0] = False
    return keep[labels]


def _ring_contrast(
    image_b: np.ndarray, image_a: np.ndarray, labels: np.ndarray, background: np.ndarray, ring_px: int
) -> np.ndarray:
    """Per pixel of each object: contrast to the surroundings in the later minus the earlier image."""
    out = np.zeros(labels.shape, np.float32)
    fallback_b = np.median(image_b[:, background], axis=1) if background.any() else np.median(image_b, axis=(1, 2))
    fallback_a = np.median(image_a[:, background], axis=1) if background.any() else np.median(image_a, axis=(1, 2))
    rows, cols = labels.shape
    for index, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        r0, r1 = max(sl[0].start - ring_px - 1, 0), min(sl[0].stop + ring_px + 1, rows)
        c0, c1 = max(sl[1].start - ring_px - 1, 0), min(sl[1].stop + ring_px + 1, cols)
        obj = labels[r0:r1, c0:c1] == index
        ring = ndimage.binary_dilation(obj, iterations=ring_px) & ~ndimage.binary_dilation(obj, iterations=1)
        ring &= background[r0:r1, c0:c1]
        if ring.sum() >= MIN_RING_SAMPLES:
            m_b = np.median(image_b[:, r0:r1, c0:c1][:, ring], axis=1)
            m_a = np.median(image_a[:, r0:r1, c0:c1][:, ring], axis=1)
        else:
            m_b, m_a = fallback_b, fallback_a
        pix_b = image_b[:, r0:r1, c0:c1][:, obj]
        pix_a = image_a[:, r0:r1, c0:c1][:, obj]
        c_b = np.sqrt(((pix_b - m_b[:, None]) ** 2).sum(axis=0))
        c_a = np.sqrt(((pix_a - m_a[:, None]) ** 2).sum(axis=0))
        out[r0:r1, c0:c1][obj] = c_a - c_b
    return out


def colour_changes(
    before: np.ndarray,
    after: np.ndarray,
    evidence: Evidence,
    area: ChangeArea,
    settings: DetectSettings,
    *,
    score_function: ScoreFunction,
) -> StructureChanges:
    """Structures from a pixel change score: steps 1-5 of the module docstring.

    ``score_function`` is one of :mod:`.scores` (:func:`.scores.cva_magnitude`,
    :func:`.scores.log_ratio`), scaled on ``area.scale_on``.  The settings used are the
    area, rectangularity and score thresholds of ``settings``.
    """
    valid, candidates, pixel_size_m = area.valid, area.candidates, area.pixel_size_m
    vegetation, shadow = evidence.vegetation, evidence.shadow
    score = score_function(before, after, valid=area.scale_on)
    if settings.threshold_method == "noise":
        threshold = float(settings.min_score)
    elif settings.threshold_method == "otsu":
        threshold = otsu_threshold(score, candidates, floor=settings.min_score)
    else:
        raise ValueError(f"unknown threshold method {settings.threshold_method!r}; choose 'noise' or 'otsu'")
    changed = candidates & (score > threshold)

    radius = max(1, int(round(OPENING_M / pixel_size_m)))
    changed = ndimage.binary_opening(changed, morphology.disk(radius))
    min_px = max(MIN_OBJECT_PX, int(np.ceil(settings.min_area_m2 / pixel_size_m**2)))
    changed = _drop_small(changed, min_px // 2)
    labels, _ = ndimage.label(changed, structure=np.ones((3, 3)))

    background = valid & ~(score > threshold) & ~shadow
    ring_px = max(MIN_RING_PX, int(round(RING_M / pixel_size_m)))
    contrast = _ring_contrast(before.astype(np.float32), after.astype(np.float32), labels, background, ring_px)
    size = max(3, int(round(VOTE_RADIUS_M / pixel_size_m)) * 2 + 1)
    vote = ndimage.uniform_filter(np.sign(contrast) * changed, size=size)
    direction = np.where(changed, np.where(vote >= 0, 1, -1), 0).astype(np.int8)
    # a roof is not vegetation: something new cannot be green after, something removed not green before
    direction[(direction > 0) & evidence.green_after] = 0
    direction[(direction < 0) & evidence.green_before] = 0

    objects: list[ChangeObject] = []
    kept = np.zeros(direction.shape, np.int8)
    dropped = {"small": 0, "not_rectangular": 0}
    for sign, name in ((1, "new"), (-1, "removed")):
        part = direction == sign
        part = ndimage.binary_opening(part, morphology.disk(radius))
        part = ndimage.binary_fill_holes(part)
        lab, n = ndimage.label(part, structure=np.ones((3, 3)))
        found, keep = measured_objects(
            lab,
            n,
            name,
            score,
            area=area,
            min_area_m2=settings.min_area_m2,
            min_rectangularity=settings.min_rectangularity,
            dropped=dropped,
        )
        objects += found
        kept[keep[lab]] = sign
    stats = {
        "changed_pixels": int(changed.sum()),
        "vegetation_pixels_suppressed": int((valid & vegetation).sum()),
        "shadow_pixels_suppressed": int((valid & shadow).sum()),
        "objects_dropped": dropped,
    }
    objects.sort(key=lambda o: -o.area_m2)
    return StructureChanges(objects, score, kept, threshold, stats)


def cva_changes(
    before: np.ndarray, after: np.ndarray, evidence: Evidence, area: ChangeArea, settings: DetectSettings
) -> StructureChanges:
    """The ``"cva"`` method: :func:`colour_changes` on the change-vector magnitude."""
    return colour_changes(before, after, evidence, area, settings, score_function=cva_magnitude)


def log_ratio_changes(
    before: np.ndarray, after: np.ndarray, evidence: Evidence, area: ChangeArea, settings: DetectSettings
) -> StructureChanges:
    """The ``"log_ratio"`` method: :func:`colour_changes` on the band-mean absolute log ratio."""
    return colour_changes(before, after, evidence, area, settings, score_function=log_ratio)
