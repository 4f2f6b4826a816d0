"""From change evidence to new and removed structures as measured polygons.

Pure: arrays, an affine transform and plain numbers in; dataclasses out.
:func:`detect_structure_changes` runs one of two detectors:

* ``"building"`` (default, :mod:`.building`): regions that are roof-like on one date and
  were not on the other (:mod:`.roofs`), kept where compact, not a long strip
  (a road), and confirmed by a shadow that appeared beside them (new) or vanished (removed);
* ``"cva"``, ``"log_ratio"`` (:mod:`.colour`): thresholded colour change, told new from
  removed by which date makes a pixel stand out from its unchanged surroundings.

:mod:`.evidence` says what cannot be a roof (vegetation, shadow); :mod:`.objects` holds
the change objects and how label images become measured polygons.
"""

from __future__ import annotations

import numpy as np
from affine import Affine

from ..radiometry import MIN_CANDIDATE_SHARE
from .building import building_changes
from .colour import colour_changes
from .evidence import Evidence, gather_evidence
from .objects import ChangeObject, StructureChanges, assign_relative_size, polygonize, rectangle_measures
from .scores import CHANGE_METHODS

__all__ = [
    "STRUCTURE_METHODS",
    "ChangeObject",
    "Evidence",
    "StructureChanges",
    "assign_relative_size",
    "detect_structure_changes",
    "gather_evidence",
    "polygonize",
    "rectangle_measures",
]

# Every method ``detect_structure_changes`` takes; "building" is the default.
STRUCTURE_METHODS = ("building", *CHANGE_METHODS)


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
        shadows, :mod:`.roofs`) or a key of :data:`.scores.CHANGE_METHODS`.
    min_area_m2 : float
        Smaller objects are dropped.
    min_rectangularity : float
        Colour-change methods: objects filling less of their minimum rotated rectangle are
        dropped (not structures).  ``"building"`` tests solidity and elongation instead.
    min_score : float
        Colour-change methods (and the colour-change objects ``"building"`` borrows): the
        threshold (``"noise"``) or its floor (``"otsu"``), in multiples of the median score
        over possible roofs.  For three bands of Gaussian
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
        evidence = gather_evidence(
            before,
            after,
            valid=valid,
            vegetation_threshold=vegetation_threshold,
            shadow_fraction=shadow_fraction,
            pixel_size=pixel_size if wants_buildings else None,
        )
    vegetation, shadow = evidence.vegetation, evidence.shadow
    candidates = valid & ~vegetation & ~shadow
    # scale the score by its median over possible roofs, not over seasonal ground; but where
    # nearly everything is vegetated, the few possible roofs are mostly the change itself,
    # and their median would hide it: then scale over every valid pixel
    enough = candidates.sum() >= MIN_CANDIDATE_SHARE * valid.sum()  # the rule the radiometric fit follows
    common = dict(
        valid=valid,
        candidates=candidates,
        enough=enough,
        pixel_size=pixel_size,
        transform=transform,
        min_area_m2=min_area_m2,
        min_rectangularity=min_rectangularity,
        min_score=min_score,
        threshold_method=threshold_method,
    )
    if wants_buildings:
        return building_changes(before, after, evidence, **common)
    return colour_changes(before, after, evidence, method=method, **common)
