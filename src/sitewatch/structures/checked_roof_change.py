"""Roof changes checked by building presence (``"building"``, the default method).

The ``"roofs"`` method (:mod:`.roof_change`) finds roof-like regions that changed and are
confirmed by a shadow that appeared or vanished. Its one blind spot on the sample sites is
a building that stands on both dates but whose shadow and colour changed (another sun,
another season): it is reported removed or new. Building presence (:mod:`.presence`, a
small network judging each date on its own) says whether a building stood there on each
date; an object where presence sees a building on *both* dates, over
:data:`STANDING_BOTH_SHARE` of its area, and whose mean colour kept its hue and about its
brightness (:func:`.presence_change.roof_recoloured`), did not appear or vanish: it is
dropped. A roof that did change colour there is a building replaced on its own ground (or
built on a slab the network takes for a roof), and stays.

Presence is used only to drop objects, never to add them, so this method flags no more
than ``"roofs"`` does. Outside the network's trained pixel sizes
(:data:`~.presence.TRAINED_PIXEL_RANGE_M`) nothing is dropped.

Pure: arrays in, :class:`~sitewatch.structures.objects.StructureChanges` out.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from rasterio import features
from scipy import ndimage

from .evidence import Evidence
from .objects import StructureChanges, label_means
from .presence import TRAINED_PIXEL_RANGE_M, building_presence
from .presence_change import DISPLACEMENT_M, SMOOTH_M, STANDING_PROBABILITY, direction_raster, roof_recoloured
from .roof_change import roof_changes
from .settings import ChangeArea, DetectSettings

# An object is a building standing on both dates when presence exceeds
# STANDING_PROBABILITY on both (within DISPLACEMENT_M) over at least this share of it.
STANDING_BOTH_SHARE = 0.8


def standing_on_both_dates(
    before: np.ndarray, after: np.ndarray, *, pixel_size_m: float, valid: np.ndarray
) -> np.ndarray:
    """Pixels where a building stands on both dates (within :data:`DISPLACEMENT_M`)."""
    sigma = SMOOTH_M / pixel_size_m
    reach = 2 * max(1, int(round(DISPLACEMENT_M / pixel_size_m))) + 1
    standing = []
    for image in (before, after):
        presence = ndimage.gaussian_filter(building_presence(image, pixel_size_m=pixel_size_m, valid=valid), sigma)
        standing.append(ndimage.maximum_filter(presence, reach) > STANDING_PROBABILITY)
    return standing[0] & standing[1] & valid


def checked_roof_changes(
    before: np.ndarray, after: np.ndarray, evidence: Evidence, area: ChangeArea, settings: DetectSettings
) -> StructureChanges:
    """The ``"building"`` method: ``"roofs"`` objects, less those standing on both dates.

    Arguments as for :func:`~.roof_change.roof_changes`. ``stats["objects_dropped"]
    ["standing_both_dates"]`` counts the objects dropped.
    """
    found = roof_changes(before, after, evidence, area, settings)
    low, high = TRAINED_PIXEL_RANGE_M
    if not found.objects or not low / 2 <= area.pixel_size_m <= high:
        return found
    standing = standing_on_both_dates(before, after, pixel_size_m=area.pixel_size_m, valid=area.valid)
    labels = features.rasterize(
        ((o.geometry, i + 1) for i, o in enumerate(found.objects)),
        out_shape=standing.shape,
        transform=area.transform,
        fill=0,
        dtype="int32",
    )
    n = len(found.objects)
    standing_share = label_means(labels, n, standing.astype(np.float32))
    recoloured = roof_recoloured(labels, n, before, after)
    kept = [o for i, o in enumerate(found.objects, 1) if standing_share[i] < STANDING_BOTH_SHARE or recoloured[i]]
    if len(kept) == len(found.objects):
        return found
    dropped = {**found.stats.get("objects_dropped", {}), "standing_both_dates": len(found.objects) - len(kept)}
    return dataclasses.replace(
        found,
        objects=kept,
        direction=direction_raster(kept, area),
        stats={**found.stats, "objects_dropped": dropped},
    )
