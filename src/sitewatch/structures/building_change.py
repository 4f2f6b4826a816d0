"""Roof changes and building presence together (``"building"``, the default method).

Two views of the same question, each with its own blind spot:

* the ``"roofs"`` method (:mod:`.roof_change`) finds roof-like regions that changed and are
  confirmed by a shadow that appeared or vanished. It misses buildings whose roofs look like
  the ground (a pale hall on bare soil, tanks), and it reports a building standing on both
  dates whose shadow and colour changed (another sun, another season);
* building presence (:mod:`.presence`, a small network judging each date on its own, and
  :mod:`.presence_change`) finds far more buildings, but reads tree crowns in a hazy or
  blurred image as roofs on one date only.

So, within the network's trained pixel sizes (:data:`~.presence.TRAINED_PIXEL_RANGE_M`;
outside them this is the ``"roofs"`` method):

1. A roof object where presence sees a building on *both* dates over
   :data:`STANDING_BOTH_SHARE` of it, with a roof that kept its hue and about its
   brightness (:func:`.presence_change.roof_recoloured`), did not appear or vanish: dropped.
2. A new presence object is added when, as the roof method asks, a shadow appeared along its
   outer ring (:data:`~.roof_change.MIN_NEW_SHADOW_SHARE`), and more of the ring gained a
   shadow than lost one: a new structure adds a shadow where nothing stood to cast one, while
   a tree casts its shadow on both dates, only moved by another sun (a tree crown under another
   season's light read as new on the Tumangang sample, its ring darker before than after).
   It must not be vegetation in the later image over :data:`MAX_GREEN_SHARE` of it
   (the colour methods' rule), and
   it must be at least :data:`PRESENCE_MIN_AREA_FACTOR` times the minimum area: the
   network's answer flickers on small blobs when one image is resampled or blurred, and so
   do its removals, which stay with the roof method (it asks more of a removal). Where a
   presence object overlaps a roof object by :data:`OVERLAP_SHARE`, they are one structure
   and the roof object stays.

Pure: arrays in, :class:`~sitewatch.structures.objects.StructureChanges` out.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from rasterio import features
from scipy import ndimage

from .evidence import Evidence
from .objects import ChangeObject, StructureChanges, direction_raster, label_means
from .presence import TRAINED_PIXEL_RANGE_M, building_presence
from .presence_change import (
    DISPLACEMENT_M,
    SMOOTH_M,
    STANDING_PROBABILITY,
    presence_objects,
    roof_recoloured,
)
from .roof_change import MIN_NEW_SHADOW_SHARE, MIN_VANISHED_SHADOW_SHARE, SHADOW_RING_M, roof_changes
from .roofs import outline_share
from .settings import ChangeArea, DetectSettings

# A roof object is a building standing on both dates when presence exceeds
# STANDING_PROBABILITY on both (within DISPLACEMENT_M) over at least this share of it
# (at half, new houses beside old ones were dropped too: LEVIR recall fell 4 %).
STANDING_BOTH_SHARE = 0.8
# Presence objects added must be this many times settings.min_area_m2: a one-pixel blur of
# either image (a reprojection) made and unmade 40 m² presence objects on the samples.
PRESENCE_MIN_AREA_FACTOR = 2.0
# A new presence object may be green (vegetation in the later image) over at most this share.
MAX_GREEN_SHARE = 0.5
# A presence object sharing this much of its own or a roof object's area with a roof object
# is that structure.
OVERLAP_SHARE = 0.3


def _labels(objects: list[ChangeObject], area: ChangeArea) -> np.ndarray:
    """Label image of the objects (1..n in list order) on the area's grid."""
    return features.rasterize(
        ((o.geometry, i + 1) for i, o in enumerate(objects)),
        out_shape=area.valid.shape,
        transform=area.transform,
        fill=0,
        dtype="int32",
    )


def standing_on_both_dates(
    presence_before: np.ndarray, presence_after: np.ndarray, *, pixel_size_m: float, valid: np.ndarray
) -> np.ndarray:
    """Pixels where a building stands on both dates (within :data:`DISPLACEMENT_M`)."""
    sigma = SMOOTH_M / pixel_size_m
    reach = 2 * max(1, int(round(DISPLACEMENT_M / pixel_size_m))) + 1
    standing = [
        ndimage.maximum_filter(ndimage.gaussian_filter(p, sigma), reach) > STANDING_PROBABILITY
        for p in (presence_before, presence_after)
    ]
    return standing[0] & standing[1] & valid


def _not_standing(
    objects: list[ChangeObject], standing: np.ndarray, before: np.ndarray, after: np.ndarray, area: ChangeArea
) -> list[ChangeObject]:
    """Step 1: the objects that are not a building standing on both dates with an unchanged roof."""
    if not objects:
        return []
    labels, n = _labels(objects, area), len(objects)
    standing_share = label_means(labels, n, standing.astype(np.float32))
    recoloured = roof_recoloured(labels, n, before, after)
    return [o for i, o in enumerate(objects, 1) if standing_share[i] < STANDING_BOTH_SHARE or recoloured[i]]


def _shadow_confirmed(objects: list[ChangeObject], evidence: Evidence, area: ChangeArea) -> list[ChangeObject]:
    """The objects whose outer ring gained a shadow (new) or lost one (removed), on balance."""
    if not objects:
        return []
    found, labels = evidence.buildings, _labels(objects, area)
    ring_px = max(1, int(round(SHADOW_RING_M / area.pixel_size_m)))
    appeared = outline_share(labels, found.shadow_after & ~found.shadow_before, ring_px=ring_px)
    vanished = outline_share(labels, found.shadow_before & ~found.shadow_after, ring_px=ring_px)
    return [
        o
        for i, o in enumerate(objects, 1)
        if (o.change == "new" and appeared[i] >= MIN_NEW_SHADOW_SHARE and appeared[i] > vanished[i])
        or (o.change == "removed" and vanished[i] >= MIN_VANISHED_SHADOW_SHARE and vanished[i] > appeared[i])
    ]


def _not_green(objects: list[ChangeObject], evidence: Evidence, area: ChangeArea) -> list[ChangeObject]:
    """The new objects not mostly vegetation in the later image."""
    if not objects:
        return []
    labels, n = _labels(objects, area), len(objects)
    green = label_means(labels, n, evidence.green_after.astype(np.float32))
    return [o for i, o in enumerate(objects, 1) if green[i] <= MAX_GREEN_SHARE]


def _overlaps(obj: ChangeObject, others: list[ChangeObject]) -> bool:
    return any(
        obj.geometry.intersection(o.geometry).area >= OVERLAP_SHARE * min(obj.geometry.area, o.geometry.area)
        for o in others
    )


def building_changes(
    before: np.ndarray, after: np.ndarray, evidence: Evidence, area: ChangeArea, settings: DetectSettings
) -> StructureChanges:
    """The ``"building"`` method: steps 1-2 of the module docstring.

    Arguments as for :func:`~.roof_change.roof_changes` (``evidence`` must hold building
    evidence). ``stats["objects_dropped"]["standing_both_dates"]`` and
    ``stats["from_presence"]`` count what each step did.
    """
    roofs = roof_changes(before, after, evidence, area, settings)
    low, high = TRAINED_PIXEL_RANGE_M
    if not low / 2 <= area.pixel_size_m <= high:
        return roofs
    presence_before = building_presence(
        before, pixel_size_m=area.pixel_size_m, valid=area.valid, levels=area.presence_levels(0)
    )
    presence_after = building_presence(
        after, pixel_size_m=area.pixel_size_m, valid=area.valid, levels=area.presence_levels(1)
    )
    standing = standing_on_both_dates(presence_before, presence_after, pixel_size_m=area.pixel_size_m, valid=area.valid)
    kept = _not_standing(roofs.objects, standing, before, after, area)
    presence = presence_objects(before, after, presence_before, presence_after, area, settings)
    candidates = [
        o
        for o in presence.objects
        if o.change == "new" and o.area_m2 >= PRESENCE_MIN_AREA_FACTOR * settings.min_area_m2
    ]
    added = [
        o for o in _shadow_confirmed(_not_green(candidates, evidence, area), evidence, area) if not _overlaps(o, kept)
    ]
    objects = sorted(kept + added, key=lambda o: -o.area_m2)
    dropped = {**roofs.stats.get("objects_dropped", {}), "standing_both_dates": len(roofs.objects) - len(kept)}
    return dataclasses.replace(
        roofs,
        objects=objects,
        score=np.maximum(roofs.score, presence.score),
        direction=direction_raster(objects, area),
        stats={**roofs.stats, "objects_dropped": dropped, "from_presence": len(added)},
    )
