"""Structures from roof evidence (``"roofs"``, the default method until presence replaced it).

Regions that are roof-like on one date and were not on the other
(:mod:`.roofs`), kept as objects where they are compact, not a long strip (a
road), and confirmed by a shadow that appeared beside them (new) or vanished (removed).
Buildings replaced on their own footprint, and structures inside a larger changed area,
come from the colour-change method (:mod:`.colour`).  See :func:`roof_changes`.

Pure: arrays in, :class:`~sitewatch.structures.objects.StructureChanges` out.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np
from scipy import ndimage
from skimage import morphology
from skimage.measure import regionprops
from skimage.segmentation import expand_labels

from ..radiometry import MIN_SAMPLE_PIXELS
from .colour import colour_changes
from .evidence import Evidence
from .objects import ChangeObject, StructureChanges, direction_raster, label_means, mean_inside, measured_objects
from .roofs import BuildingEvidence, outline_share
from .scores import cva_magnitude
from .settings import ChangeArea, DetectSettings

# The building method's thresholds (chosen on real pairs, see the README's figures).
# A region's new-structure score above which it is new; a removal needs more, because bare
# graded ground before a lawn is sown looks as roof-like as concrete.
NEW_SCORE = 0.45
REMOVED_SCORE = 0.6
# Opening radius: what is narrower than twice this is a path, a fence or a car, not a building.
OPENING_M = 3.0
# Objects must fill this much of their convex hull and be at most this many times longer than wide.
MIN_SOLIDITY = 0.6
MAX_ELONGATION = 5.0
# Share of the ring up to SHADOW_RING_M outside an object covered by a shadow that appeared
# (new) or vanished (removed): a structure casts one, a field or a road does not.
SHADOW_RING_M = 3.0
MIN_NEW_SHADOW_SHARE = 0.05
MIN_VANISHED_SHADOW_SHARE = 0.2
# A roof replaced on its own footprint: shadow on both dates over this share of the ring, and
# the roof's chromaticity changed by this much (red to blue is about 0.9, haze about 0.05).
MIN_LASTING_SHADOW_SHARE = 0.1
REPLACEMENT_CHROMA = 0.2
# Regions scoring below this in both directions are the unchanged ground colour change is scaled on.
UNCHANGED_SCORE = 0.2
# Colour change an object needs, in multiples of that ground's median: a pitched roof lit
# from another side, or a warm cast on one date, makes a roof look new but changes little.
MIN_COLOUR_CHANGE = 2.0
# A colour-change object at most this share of a building object's area, and at least
# (1 - this share) inside it, is a structure within a larger changed area: reported as well.
NESTED_SHARE = 0.5


class _Direction(NamedTuple):
    """One direction of change: its name, the region score and threshold, and the shadows.

    ``shadow_then`` is the date without the structure, ``shadow_now`` the date with it; an
    object needs ``min_shadow_share`` of its outer ring covered by a shadow that is in
    ``shadow_now`` only.
    """

    name: str
    score: np.ndarray
    threshold: float
    shadow_then: np.ndarray
    shadow_now: np.ndarray
    min_shadow_share: float


def _confirmed(
    lab: np.ndarray,
    n: int,
    found: BuildingEvidence,
    colour_change: np.ndarray,
    direction: _Direction,
    *,
    ring_px: int,
    dropped: dict[str, int],
) -> np.ndarray:
    """Which labels 0..n are structures: compact, confirmed by a shadow, changed in colour.

    ``dropped`` counts the others by reason.
    """
    rose = outline_share(lab, direction.shadow_now & ~direction.shadow_then, ring_px=ring_px)
    lasting = outline_share(lab, direction.shadow_now & direction.shadow_then, ring_px=ring_px)
    recoloured = label_means(lab, n, found.chroma_change)
    mean_change = label_means(lab, n, colour_change)
    good = np.zeros(n + 1, bool)
    for region in regionprops(lab):
        k = region.label
        if region.solidity < MIN_SOLIDITY or region.axis_major_length > MAX_ELONGATION * max(
            region.axis_minor_length, 1.0
        ):
            dropped["not_compact"] += 1
        elif not (
            rose[k] >= direction.min_shadow_share
            or (lasting[k] >= MIN_LASTING_SHADOW_SHARE and recoloured[k] >= REPLACEMENT_CHROMA)
        ):
            dropped["no_shadow"] += 1
        elif mean_change[k] < MIN_COLOUR_CHANGE:
            dropped["little_change"] += 1
        else:
            good[k] = True
    return good


def _direction_objects(
    part: np.ndarray,
    found: BuildingEvidence,
    colour_change: np.ndarray,
    direction: _Direction,
    area: ChangeArea,
    *,
    min_area_m2: float,
    dropped: dict[str, int],
) -> tuple[list[ChangeObject], np.ndarray]:
    """Objects of one direction from the pixels ``part`` scoring above its threshold.

    Returns the objects and the pixels they cover.
    """
    radius = max(1, int(round(OPENING_M / area.pixel_size_m)))
    # the opening cuts paths and driveways off; growing each piece back inside the region
    # (without merging pieces) restores the corners it rounded, so footprints keep their area
    opened = ndimage.binary_fill_holes(ndimage.binary_opening(part, morphology.disk(radius)))
    lab, n = ndimage.label(opened, structure=np.ones((3, 3)))
    if n == 0:
        return [], np.zeros(part.shape, bool)
    lab = np.where(part | opened, expand_labels(lab, radius), 0)
    ring_px = max(1, int(round(SHADOW_RING_M / area.pixel_size_m)))
    good = _confirmed(lab, n, found, colour_change, direction, ring_px=ring_px, dropped=dropped)
    lab = np.where(good[lab], lab, 0)
    objects, keep = measured_objects(
        lab,
        n,
        direction.name,
        direction.score,
        area=area,
        min_area_m2=min_area_m2,
        min_rectangularity=0.0,
        dropped=dropped,
    )
    return objects, keep[lab]


def _from_colour_change(
    before: np.ndarray,
    after: np.ndarray,
    evidence: Evidence,
    area: ChangeArea,
    settings: DetectSettings,
    objects: list[ChangeObject],
) -> tuple[list[ChangeObject], dict[str, int]]:
    """Building objects with the colour-change objects that stand for replaced or nested structures.

    A colour-change object whose chromaticity changed by :data:`REPLACEMENT_CHROMA` replaces
    every building object of its direction it touches; one at most :data:`NESTED_SHARE` of
    a building object's area and mostly inside it is added as well.  Borrowed objects are
    scored by the building evidence of their direction over their footprint.  Returns the
    objects, largest first, and how many were replaced and nested.
    """
    found, transform = evidence.buildings, area.transform
    recolouring = colour_changes(before, after, evidence, area, settings, score_function=cva_magnitude)
    recoloured = [
        mean_inside(o.geometry, found.chroma_change, transform) >= REPLACEMENT_CHROMA for o in recolouring.objects
    ]
    replaced = [o for o, r in zip(recolouring.objects, recoloured) if r]
    objects = [
        o for o in objects if not any(r.change == o.change and r.geometry.intersects(o.geometry) for r in replaced)
    ]
    # a structure inside a larger changed area (a new building on a new apron) keeps its own outline too
    nested = [
        o
        for o, r in zip(recolouring.objects, recoloured)
        if not r
        and any(
            b.change == o.change
            and o.area_m2 <= NESTED_SHARE * b.area_m2
            and o.geometry.intersection(b.geometry).area >= (1 - NESTED_SHARE) * o.geometry.area
            for b in objects
        )
    ]
    # score every object on one scale: the building evidence of its direction over its footprint
    borrowed = [
        replace(o, score=mean_inside(o.geometry, found.new if o.change == "new" else found.removed, transform))
        for o in replaced + nested
    ]
    # a recoloured patch the building evidence calls unchanged ground (a field, a painted
    # yard) is not a structure: the rule the building method applies to presence objects
    borrowed = [o for o in borrowed if o.score >= UNCHANGED_SCORE]
    return sorted(objects + borrowed, key=lambda o: -o.area_m2), {"replaced": len(replaced), "nested": len(nested)}


def roof_changes(
    before: np.ndarray, after: np.ndarray, evidence: Evidence, area: ChangeArea, settings: DetectSettings
) -> StructureChanges:
    """The ``"roofs"`` method: objects from :class:`~.roofs.BuildingEvidence`.

    1. Colour change (CVA) in units of its median over surfaces the building evidence
       calls unchanged, not in shadow, not vegetated (the scene's own invariant ground,
       even where most of it was built up); an object must change by :data:`MIN_COLOUR_CHANGE`.
    2. Removals first, then new structures on what the removals left (the ground a
       building leaves is roof-like and changed, but nothing rose on it).  Per direction:
       regions scoring above :data:`REMOVED_SCORE` (:data:`NEW_SCORE`); opened by
       :data:`OPENING_M` to cut paths and driveways off; kept where compact
       (:data:`MIN_SOLIDITY`), not a long strip (:data:`MAX_ELONGATION`), and confirmed by
       a shadow that appeared (new, :data:`MIN_NEW_SHADOW_SHARE` of the outer ring) or
       vanished (removed, :data:`MIN_VANISHED_SHADOW_SHARE`), or by a shadow on both dates
       round a recoloured roof (:data:`MIN_LASTING_SHADOW_SHARE`, :data:`REPLACEMENT_CHROMA`).
    3. A building replaced on its own footprint casts the same shadow as the old one, so
       shadows cannot confirm it: objects of the colour-change method whose chromaticity
       changed by :data:`REPLACEMENT_CHROMA` stand for it, in place of any building object
       of the same direction they touch (:func:`_from_colour_change`, with ``settings``'
       colour-change thresholds).

    ``evidence`` must hold building evidence (:func:`.evidence.gather_evidence` with a pixel
    size); the objects must be at least ``settings.min_area_m2``.
    """
    found, valid = evidence.buildings, area.valid
    unchanged = (
        valid
        & (found.new < UNCHANGED_SCORE)
        & (found.removed < UNCHANGED_SCORE)
        & ~evidence.shadow
        & ~evidence.vegetation
    )
    colour_change = cva_magnitude(before, after, valid=unchanged if unchanged.sum() >= MIN_SAMPLE_PIXELS else valid)
    objects: list[ChangeObject] = []
    taken = np.zeros(valid.shape, bool)
    dropped = {"small": 0, "not_compact": 0, "no_shadow": 0, "little_change": 0}
    changed = np.zeros(valid.shape, bool)
    # (roofness already scores vegetation low, region by region; a pixel-wise vegetation mask
    # would punch holes in roofs that the opening then widens)
    directions = (
        _Direction(
            "removed", found.removed, REMOVED_SCORE, found.shadow_after, found.shadow_before, MIN_VANISHED_SHADOW_SHARE
        ),
        _Direction("new", found.new, NEW_SCORE, found.shadow_before, found.shadow_after, MIN_NEW_SHADOW_SHARE),
    )
    for direction in directions:
        part = valid & (direction.score > direction.threshold)
        changed |= part
        part &= ~taken
        found_objects, covered = _direction_objects(
            part, found, colour_change, direction, area, min_area_m2=settings.min_area_m2, dropped=dropped
        )
        objects += found_objects
        taken |= covered

    objects, from_colour = _from_colour_change(before, after, evidence, area, settings, objects)
    stats = {
        "changed_pixels": int(changed.sum()),
        "vegetation_pixels_suppressed": int((valid & evidence.vegetation).sum()),
        "shadow_pixels_suppressed": int((valid & evidence.shadow).sum()),
        "objects_dropped": dropped,
        "from_colour_change": from_colour,
    }
    score_map = np.where(valid, np.maximum(found.new, found.removed), 0).astype(np.float32)
    return StructureChanges(objects, score_map, direction_raster(objects, area), NEW_SCORE, stats)
