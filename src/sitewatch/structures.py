"""From change evidence to new and removed structures as measured polygons.

Pure: arrays, an affine transform and plain numbers in; dataclasses out.

The default method, ``"building"``, reads :mod:`sitewatch.buildings`: regions that are
roof-like on one date and were not on the other, kept as objects where they are compact,
not a long strip (a road), and confirmed by a shadow that appeared beside them (new) or
vanished (removed).  See :func:`_building_changes`.

The colour-change methods (``"cva"``, ``"log_ratio"``) work as follows:

1. Score change (a method from :data:`sitewatch.change.CHANGE_METHODS`).
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
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio import features
from scipy import ndimage
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry
from skimage import morphology

from skimage.measure import regionprops
from skimage.segmentation import expand_labels

from .buildings import BuildingEvidence, building_evidence, outline_share
from .change import CHANGE_METHODS, otsu_threshold, shadow_mask, vegetation_mask
from .radiometry import MIN_CANDIDATE_SHARE

# Every method ``detect_structure_changes`` takes; "building" is the default.
STRUCTURE_METHODS = ("building", *CHANGE_METHODS)

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


@dataclass
class ChangeObject:
    """One new or removed structure."""

    change: str
    geometry: BaseGeometry
    area_m2: float
    length_m: float
    width_m: float
    orientation_deg: float
    score: float
    rectangularity: float
    relative_size: float | None = None
    relative_to: str | None = None

    def properties(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "area_m2": round(self.area_m2, 1),
            "length_m": round(self.length_m, 1),
            "width_m": round(self.width_m, 1),
            "orientation_deg": round(self.orientation_deg, 1),
            "score": round(self.score, 2),
            "rectangularity": round(self.rectangularity, 3),
            "relative_size": None if self.relative_size is None else round(self.relative_size, 3),
            "relative_to": self.relative_to,
        }


@dataclass
class StructureChanges:
    """Result of :func:`detect_structure_changes`.

    ``score`` has shape (M, N); ``direction`` is +1 (new), -1 (removed) or 0 on kept objects.
    """

    objects: list[ChangeObject]
    score: np.ndarray
    direction: np.ndarray
    threshold: float
    stats: dict[str, Any] = field(default_factory=dict)


def rectangle_measures(geom: BaseGeometry) -> tuple[float, float, float, float]:
    """Length, width, orientation (degrees clockwise from north, 0-180) and rectangularity.

    Measured on the minimum rotated rectangle; rectangularity is area / rectangle area.
    """
    rect = geom.minimum_rotated_rectangle
    if rect.geom_type != "Polygon" or rect.area == 0:
        return (0.0, 0.0, 0.0, 0.0)
    x, y = np.asarray(rect.exterior.coords.xy)
    e1 = np.hypot(x[1] - x[0], y[1] - y[0])
    e2 = np.hypot(x[2] - x[1], y[2] - y[1])
    if e1 >= e2:
        vx, vy, length, width = x[1] - x[0], y[1] - y[0], e1, e2
    else:
        vx, vy, length, width = x[2] - x[1], y[2] - y[1], e2, e1
    orientation = float(np.degrees(np.arctan2(vx, vy)) % 180.0)
    return float(length), float(width), orientation, float(geom.area / rect.area)


def polygonize(labels: np.ndarray, transform: Affine, *, simplify: float = 0.0) -> dict[int, BaseGeometry]:
    """Polygons of each positive label of an (M, N) integer array, in the transform's CRS."""
    polys: dict[int, list[Polygon]] = {}
    for geom, value in features.shapes(labels.astype(np.int32), mask=labels > 0, transform=transform, connectivity=8):
        polys.setdefault(int(value), []).append(shape(geom))
    out = {}
    for value, parts in polys.items():
        g = shapely.union_all(parts)
        if simplify > 0:
            g = g.simplify(simplify, preserve_topology=True)
        out[value] = g
    return out


def _drop_small(mask: np.ndarray, max_pixels: int) -> np.ndarray:
    """``mask`` without 8-connected components of ``max_pixels`` pixels or fewer."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes > max_pixels
    keep[0] = False
    return keep[labels]


def _ring_contrast(image_b: np.ndarray, image_a: np.ndarray, labels: np.ndarray, background: np.ndarray,
                   ring_px: int) -> np.ndarray:
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
        if ring.sum() >= 10:
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


@dataclass(frozen=True)
class Evidence:
    """Per-pixel evidence of what cannot be a roof, (M, N) bool each."""

    green_before: np.ndarray
    green_after: np.ndarray
    shadow: np.ndarray
    """Shadow (or any very dark surface) on either date."""
    buildings: BuildingEvidence | None = None
    """Region evidence of structures rising and going, for the ``"building"`` method."""

    @property
    def vegetation(self) -> np.ndarray:
        """Vegetation on both dates: seasonal colour change, never a structure."""
        return self.green_before & self.green_after


def gather_evidence(before: np.ndarray, after: np.ndarray, *, valid: np.ndarray | None = None,
                    vegetation_threshold: float = 0.05, shadow_fraction: float = 0.5,
                    pixel_size: float | None = None) -> Evidence:
    """Vegetation per date and shadow on either date; with ``pixel_size``, building evidence too.

    Pass ``after`` as it came from the sensor, not radiometrically normalised: a fit made
    across seasons can shift colours and brightness enough to mislabel roofs.  Vegetation
    is NDVI with a near-infrared fourth band, else excess green on bands 0-2 (red, green,
    blue); with fewer than three bands nothing counts as vegetation
    (:func:`sitewatch.change.vegetation_mask`).
    """
    green_before = vegetation_mask(before, greenness_threshold=vegetation_threshold)
    green_after = vegetation_mask(after, greenness_threshold=vegetation_threshold)
    shadow = shadow_mask(before, valid=valid, fraction=shadow_fraction) | shadow_mask(after, valid=valid, fraction=shadow_fraction)
    buildings = None if pixel_size is None else building_evidence(before, after, pixel_size=pixel_size, valid=valid)
    return Evidence(green_before, green_after, shadow, buildings)


def detect_structure_changes(
    before: np.ndarray,
    after: np.ndarray,
    *,
    pixel_size: float,
    transform: Affine = Affine.identity(),
    valid: np.ndarray | None = None,
    method: str = "building",
    min_area_m2: float = 40.0,
    min_rectangularity: float = 0.55,
    min_score: float = 4.0,
    threshold_method: str = "noise",
    vegetation_threshold: float = 0.05,
    shadow_fraction: float = 0.5,
    evidence: Evidence | None = None,
) -> StructureChanges:
    """Find new and removed structures between two co-registered images.

    Parameters
    ----------
    before, after : ndarray of shape (B, M, N)
        Same grid.  The colour-change methods want the same radiometry too (see
        :mod:`sitewatch.radiometry`); ``"building"`` reads ``evidence`` built from the
        images as they came from the sensor.  Bands 0-2 are taken as red, green, blue.
    pixel_size : float
        Metres per pixel.
    transform : Affine
        Pixel-to-CRS transform, so polygons come out in map coordinates.
    valid : ndarray of bool, shape (M, N), optional
        Pixels to consider (inside both images and the AOI footprint).
    method : str
        One of :data:`STRUCTURE_METHODS`: ``"building"`` (roof-like regions confirmed by
        shadows, :mod:`sitewatch.buildings`) or a key of :data:`sitewatch.change.CHANGE_METHODS`.
    min_area_m2 : float
        Smaller objects are dropped.
    min_rectangularity : float
        Colour-change methods: objects filling less of their minimum rotated rectangle are
        dropped (not structures).  ``"building"`` tests solidity and elongation instead.
    min_score : float
        Colour-change methods: the threshold (``"noise"``) or its floor (``"otsu"``), in
        multiples of the median score over possible roofs.  For three bands of Gaussian
        noise, 4 medians is about the 0.1 % tail.
    threshold_method : {"noise", "otsu"}
        Colour-change methods: ``"noise"`` thresholds at ``min_score``; ``"otsu"`` splits
        the score histogram, which lands too high when seasonal ground dominates the changed pixels.
    vegetation_threshold : float
        Excess-green above which a pixel counts as vegetation.
    shadow_fraction : float
        Pixels darker than this fraction of the median brightness count as shadow.
    evidence : Evidence, optional
        From :func:`gather_evidence` on the un-normalised images; computed from ``before``
        and ``after`` (with the two thresholds above) when omitted, or when ``"building"``
        is asked for and it holds no building evidence.

    Returns
    -------
    StructureChanges
    """
    if before.shape != after.shape:
        raise ValueError(f"before and after differ in shape: {before.shape} vs {after.shape}")
    if method not in STRUCTURE_METHODS:
        raise ValueError(f"unknown change method {method!r}; choose from {sorted(STRUCTURE_METHODS)}")
    valid = np.ones(before.shape[1:], bool) if valid is None else valid.copy()
    wants_buildings = method == "building"
    if evidence is None or (wants_buildings and evidence.buildings is None):
        evidence = gather_evidence(before, after, valid=valid, vegetation_threshold=vegetation_threshold,
                                   shadow_fraction=shadow_fraction, pixel_size=pixel_size if wants_buildings else None)
    vegetation, shadow = evidence.vegetation, evidence.shadow
    candidates = valid & ~vegetation & ~shadow
    # scale the score by its median over possible roofs, not over seasonal ground; but where
    # nearly everything is vegetated, the few possible roofs are mostly the change itself,
    # and their median would hide it: then scale over every valid pixel
    enough = candidates.sum() >= MIN_CANDIDATE_SHARE * valid.sum()  # the rule the radiometric fit follows
    if wants_buildings:
        return _building_changes(before, after, evidence, valid=valid, pixel_size=pixel_size, transform=transform,
                                 min_area_m2=min_area_m2, min_rectangularity=min_rectangularity)
    score = CHANGE_METHODS[method](before, after, valid=candidates if enough else valid)
    if threshold_method == "noise":
        threshold = float(min_score)
    elif threshold_method == "otsu":
        threshold = otsu_threshold(score, candidates, floor=min_score)
    else:
        raise ValueError(f"unknown threshold method {threshold_method!r}; choose 'noise' or 'otsu'")
    changed = candidates & (score > threshold)

    radius = max(1, int(round(1.0 / pixel_size)))
    changed = ndimage.binary_opening(changed, morphology.disk(radius))
    min_px = max(4, int(np.ceil(min_area_m2 / pixel_size**2)))
    changed = _drop_small(changed, min_px // 2)
    labels, _ = ndimage.label(changed, structure=np.ones((3, 3)))

    background = valid & ~(score > threshold) & ~shadow
    ring_px = max(2, int(round(4.0 / pixel_size)))
    contrast = _ring_contrast(before.astype(np.float32), after.astype(np.float32), labels, background, ring_px)
    # majority vote over a 1.5 m neighbourhood smooths the per-pixel direction
    size = max(3, int(round(1.5 / pixel_size)) * 2 + 1)
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
        found, keep = _measured_objects(lab, n, name, score, pixel_size=pixel_size, transform=transform,
                                        min_area_m2=min_area_m2, min_rectangularity=min_rectangularity, dropped=dropped)
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


def _measured_objects(lab: np.ndarray, n: int, name: str, score: np.ndarray, *, pixel_size: float, transform: Affine,
                      min_area_m2: float, min_rectangularity: float, dropped: dict[str, int],
                      ) -> tuple[list[ChangeObject], np.ndarray]:
    """Polygons and measures of labels 1..n of ``lab`` that are large and rectangular enough.

    Returns the objects and a lookup (n + 1,) of the labels kept; ``dropped`` counts the
    others (labels absent from ``lab`` count nowhere).
    """
    keep = np.zeros(n + 1, bool)
    if n == 0:
        return [], keep
    areas = np.bincount(lab.ravel(), minlength=n + 1)[1:] * pixel_size**2
    mean_scores = _label_means(lab, n, score)[1:]
    # drop small objects on the label image before tracing their outlines
    large = np.r_[False, areas >= min_area_m2]
    dropped["small"] = dropped.get("small", 0) + int(((areas > 0) & (areas < min_area_m2)).sum())
    lab = np.where(large[lab], lab, 0)
    objects = []
    for value, geom in polygonize(lab, transform, simplify=0.5 * pixel_size).items():
        length, width, orientation, rect = rectangle_measures(geom)
        if rect < min_rectangularity:
            dropped["not_rectangular"] = dropped.get("not_rectangular", 0) + 1
            continue
        objects.append(ChangeObject(name, geom, float(areas[value - 1]), length, width, orientation,
                                    float(mean_scores[value - 1]), rect))
        keep[value] = True
    return objects, keep


def _building_changes(before: np.ndarray, after: np.ndarray, evidence: Evidence, *, valid: np.ndarray,
                      pixel_size: float, transform: Affine, min_area_m2: float,
                      min_rectangularity: float) -> StructureChanges:
    """The ``"building"`` method: objects from :class:`~sitewatch.buildings.BuildingEvidence`.

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
       of the same direction they touch.
    """
    found = evidence.buildings
    unchanged = valid & (found.new < UNCHANGED_SCORE) & (found.removed < UNCHANGED_SCORE) & ~evidence.shadow & ~evidence.vegetation
    colour_change = CHANGE_METHODS["cva"](before, after, valid=unchanged if unchanged.sum() >= 1000 else valid)
    radius = max(1, int(round(OPENING_M / pixel_size)))
    ring_px = max(1, int(round(SHADOW_RING_M / pixel_size)))
    objects: list[ChangeObject] = []
    taken = np.zeros(valid.shape, bool)
    dropped = {"small": 0, "not_compact": 0, "no_shadow": 0, "little_change": 0}
    changed = np.zeros(valid.shape, bool)
    shadow_before, shadow_after = found.shadow_before, found.shadow_after
    # (roofness already scores vegetation low, region by region; a pixel-wise vegetation mask
    # would punch holes in roofs that the opening then widens)
    directions = (("removed", found.removed, REMOVED_SCORE, shadow_after, shadow_before, MIN_VANISHED_SHADOW_SHARE),
                  ("new", found.new, NEW_SCORE, shadow_before, shadow_after, MIN_NEW_SHADOW_SHARE))
    for name, score, threshold, shadow_then, shadow_now, min_share in directions:
        # "then" is the date without the structure, "now" the date with it
        part = valid & (score > threshold)
        changed |= part
        part &= ~taken
        # the opening cuts paths and driveways off; growing each piece back inside the region
        # (without merging pieces) restores the corners it rounded, so footprints keep their area
        opened = ndimage.binary_fill_holes(ndimage.binary_opening(part, morphology.disk(radius)))
        lab, n = ndimage.label(opened, structure=np.ones((3, 3)))
        if n == 0:
            continue
        lab = np.where(part | opened, expand_labels(lab, radius), 0)
        rose = outline_share(lab, shadow_now & ~shadow_then, ring_px=ring_px)
        lasting = outline_share(lab, shadow_now & shadow_then, ring_px=ring_px)
        recoloured = _label_means(lab, n, found.chroma_change)
        mean_change = _label_means(lab, n, colour_change)
        good = np.zeros(n + 1, bool)
        for region in regionprops(lab):
            k = region.label
            if region.solidity < MIN_SOLIDITY or region.axis_major_length > MAX_ELONGATION * max(region.axis_minor_length, 1.0):
                dropped["not_compact"] += 1
            elif not (rose[k] >= min_share or (lasting[k] >= MIN_LASTING_SHADOW_SHARE and recoloured[k] >= REPLACEMENT_CHROMA)):
                dropped["no_shadow"] += 1
            elif mean_change[k] < MIN_COLOUR_CHANGE:
                dropped["little_change"] += 1
            else:
                good[k] = True
        lab = np.where(good[lab], lab, 0)
        found_objects, keep = _measured_objects(lab, n, name, score, pixel_size=pixel_size, transform=transform,
                                                min_area_m2=min_area_m2, min_rectangularity=0.0, dropped=dropped)
        objects += found_objects
        taken |= keep[lab]

    recolouring = detect_structure_changes(before, after, pixel_size=pixel_size, transform=transform, valid=valid,
                                           method="cva", min_area_m2=min_area_m2, min_rectangularity=min_rectangularity,
                                           evidence=evidence)
    recoloured = [_mean_inside(o.geometry, found.chroma_change, transform) >= REPLACEMENT_CHROMA
                  for o in recolouring.objects]
    replaced = [o for o, r in zip(recolouring.objects, recoloured) if r]
    objects = [o for o in objects if not any(r.change == o.change and r.geometry.intersects(o.geometry) for r in replaced)]
    # a structure inside a larger changed area (a new building on a new apron) keeps its own outline too
    nested = [o for o, r in zip(recolouring.objects, recoloured) if not r
              and any(b.change == o.change and o.area_m2 <= NESTED_SHARE * b.area_m2
                      and o.geometry.intersection(b.geometry).area >= (1 - NESTED_SHARE) * o.geometry.area for b in objects)]
    # score every object on one scale: the building evidence of its direction over its footprint
    borrowed = [replace(o, score=_mean_inside(o.geometry, found.new if o.change == "new" else found.removed, transform))
                for o in replaced + nested]
    objects = sorted(objects + borrowed, key=lambda o: -o.area_m2)
    direction = np.zeros(valid.shape, np.int8)
    if objects:
        direction = features.rasterize(((o.geometry, 1 if o.change == "new" else -1) for o in objects), out_shape=valid.shape,
                                       transform=transform, fill=0, dtype="int16").astype(np.int8)
    stats = {"changed_pixels": int(changed.sum()),
             "vegetation_pixels_suppressed": int((valid & evidence.vegetation).sum()),
             "shadow_pixels_suppressed": int((valid & evidence.shadow).sum()),
             "objects_dropped": dropped,
             "from_colour_change": {"replaced": len(replaced), "nested": len(nested)}}
    score_map = np.where(valid, np.maximum(found.new, found.removed), 0).astype(np.float32)
    return StructureChanges(objects, score_map, direction, NEW_SCORE, stats)


def _label_means(lab: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each label 0..n of ``lab`` (0 where a label is absent)."""
    pixels = np.bincount(lab.ravel(), minlength=n + 1)
    return np.bincount(lab.ravel(), weights=values.ravel(), minlength=n + 1) / np.maximum(pixels, 1)


def _mean_inside(geometry: BaseGeometry, values: np.ndarray, transform: Affine) -> float:
    """Mean of an (M, N) array over the pixels a polygon covers (0 where it covers none)."""
    inside = features.rasterize([(geometry, 1)], out_shape=values.shape, transform=transform, fill=0,
                                dtype="uint8").astype(bool)
    return float(values[inside].mean()) if inside.any() else 0.0


def assign_relative_size(objects: list[ChangeObject], references: list[tuple[str, BaseGeometry]]) -> None:
    """Set each object's ``relative_size`` to its area over the nearest reference structure's.

    ``references`` are (name, polygon) in the same CRS as the objects.  Objects are
    changed in place; nothing happens when there are no references.
    """
    if not references:
        return
    for obj in objects:
        name, ref = min(references, key=lambda r: obj.geometry.distance(r[1]))
        obj.relative_size = obj.area_m2 / ref.area if ref.area > 0 else None
        obj.relative_to = name
