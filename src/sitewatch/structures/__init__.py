"""The structure-change detector: from two images to new and removed structures as measured polygons.

Pure: arrays, an affine transform and plain numbers in; dataclasses out.

:data:`METHODS` is the one registry of detectors; ``sitewatch detect --method``,
``sitewatch evaluate --method``, ``change_score.tif``'s description and the HTML report
all read it.  :func:`detect_structure_changes` runs the method its settings name:

* ``"building"`` (default, :mod:`.building_change`): the ``"roofs"`` objects, less those
  where building presence (:mod:`.presence`) sees a building on both dates, plus the
  ``"presence"`` objects that a shadow which appeared or vanished confirms;
* ``"roofs"`` (:mod:`.roof_change`): regions that are roof-like on one date and were not on
  the other (:mod:`.roofs`), kept where compact, not a long strip (a road), and confirmed by
  a shadow that appeared beside them (new) or vanished (removed);
* ``"presence"`` (:mod:`.presence_change`): a small network judges on each date where
  buildings stand (:mod:`.presence`); a structure is new where one stands after and none
  stood before, removed the other way round, and changed in colour;
* ``"change"`` (:mod:`.any_change`): every change, not only structures, at any pixel size:
  superpixels of both dates whose smoothed change vector is above Otsu's threshold;
* ``"cva"``, ``"log_ratio"`` (:mod:`.colour`): a thresholded pixel change score
  (:mod:`.scores`), told new from removed by which date makes a pixel stand out from its
  unchanged surroundings.

:mod:`.evidence` says what cannot be a roof (vegetation, shadow); :mod:`.objects` holds
the change objects and how label images become measured polygons; :mod:`.settings` what
every detector is handed.

Adding a method: write a function with the signature of :data:`Detector` (in its own module
here when it is more than a few lines) and give it one entry in :data:`METHODS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from affine import Affine

from ..radiometry import MIN_CANDIDATE_SHARE
from .any_change import any_changes
from .building_change import building_changes
from .colour import cva_changes, log_ratio_changes
from .evidence import Evidence, gather_evidence
from .objects import (
    CHANGE_KINDS,
    LOW_CONFIDENCE_SCORE,
    ChangeObject,
    StructureChanges,
    assign_relative_size,
    polygonize,
    rectangle_measures,
)
from .presence import TRAINED_PIXEL_RANGE_M as PRESENCE_PIXEL_RANGE_M
from .presence_change import presence_changes
from .roof_change import roof_changes
from .scene import SceneStats
from .settings import ChangeArea, DetectSettings

__all__ = [
    "CHANGE_KINDS",
    "LOW_CONFIDENCE_SCORE",
    "HANDOVER_METHOD",
    "method_for_pixel_size",
    "METHODS",
    "ChangeArea",
    "ChangeMethod",
    "ChangeObject",
    "DetectSettings",
    "Detector",
    "Evidence",
    "SceneStats",
    "StructureChanges",
    "assign_relative_size",
    "detect_structure_changes",
    "gather_evidence",
    "method_named",
    "polygonize",
    "rectangle_measures",
]

# (before, after, evidence, area, settings) -> the objects found and the score behind them
Detector = Callable[[np.ndarray, np.ndarray, Evidence, ChangeArea, DetectSettings], StructureChanges]


@dataclass(frozen=True)
class ChangeMethod:
    """A structure-change detector and what the tool says about it.

    Attributes
    ----------
    detector : Detector
        The function that finds the objects.
    summary : str
        What it does, in a few words (for ``--help``).
    score_description : str
        What its score map holds: the description written into ``change_score.tif``.
    score_unit : str
        The score's unit, written on the band of ``change_score.tif``.
    pixel_size_range_m : (float, float)
        The pixel sizes, in metres, it has been measured to work at.
    coarsest_pixel_m : float
        Pixels coarser than this and the method cannot work (:func:`method_for_pixel_size`
        hands over to :data:`HANDOVER_METHOD`).
    building_evidence : bool
        Whether it reads :class:`~.roofs.BuildingEvidence` (two segmentations, the slow
        part of a run), which :func:`gather_evidence` then computes.
    coarse_reason : str
        Why it cannot work beyond ``coarsest_pixel_m``, for the note that says so.
    """

    detector: Detector
    summary: str
    score_description: str
    pixel_size_range_m: tuple[float, float]
    building_evidence: bool = False
    coarsest_pixel_m: float = float("inf")
    score_unit: str = "1"
    coarse_reason: str = "shadows and small roofs vanish"


# Pixel sizes measured: 0.5 m on LEVIR-CD and xBD (real), 1 m on the bundled synthetic samples;
# at 1.5 m (AirChange) the roofs method finds few buildings (F1 0.10).
MEASURED_PIXEL_SIZES_M = (0.5, 1.0)
COLOUR_CHANGE_SCORE = "change score in multiples of the unchanged median"
# Units written on the score band: "1" (dimensionless, 0 to 1) by default, or this.
MEDIAN_MULTIPLES = "multiples of the unchanged median"
# The building methods need a one-storey building's shadow (about 3 m at a 45° sun) to be a
# pixel or two wide and a 40 m² house to be ten pixels: no coarser than this.
COARSEST_BUILDING_PIXEL_M = 2.0
# The building-presence network was trained on pixels of 0.3-1.2 m; beyond them "building"
# would be the roofs method alone, whose 40 m² roofs and shadows are a few pixels there
# (measured at 1.5 m on AirChange: F1 0.10, half the colour-change baseline's).
COARSEST_PRESENCE_PIXEL_M = PRESENCE_PIXEL_RANGE_M[1]
PRESENCE_COARSE_REASON = (
    f"its building network was trained on {PRESENCE_PIXEL_RANGE_M[0]:g}-{PRESENCE_PIXEL_RANGE_M[1]:g} m pixels"
)
# What detect uses where the asked method cannot work: it needs no shadow and no roof shape.
HANDOVER_METHOD = "change"

# Every method ``detect``, ``evaluate`` and the CLI offer, by name; "building" is the default.
METHODS: dict[str, ChangeMethod] = {
    "building": ChangeMethod(
        building_changes,
        summary="roofs and buildings a network sees appear or vanish, each confirmed by shadows",
        score_description=(
            "the larger of the roof evidence and the probability that a building appeared or vanished, 0 to 1"
            " (sitewatch.structures.building_change)"
        ),
        pixel_size_range_m=MEASURED_PIXEL_SIZES_M,
        building_evidence=True,
        coarsest_pixel_m=COARSEST_PRESENCE_PIXEL_M,
        coarse_reason=PRESENCE_COARSE_REASON,
    ),
    "roofs": ChangeMethod(
        roof_changes,
        summary="roof-like regions confirmed by shadows",
        score_description="new- or removed-structure evidence of each region, 0 to 1 (sitewatch.structures.roofs)",
        pixel_size_range_m=MEASURED_PIXEL_SIZES_M,
        building_evidence=True,
        coarsest_pixel_m=COARSEST_BUILDING_PIXEL_M,
    ),
    "presence": ChangeMethod(
        presence_changes,
        summary="buildings seen on one date and not the other (a network judges each date)",
        score_description="probability that a building appeared or vanished, 0 to 1 (sitewatch.structures.presence)",
        pixel_size_range_m=PRESENCE_PIXEL_RANGE_M,
        coarsest_pixel_m=COARSEST_PRESENCE_PIXEL_M,
        coarse_reason=PRESENCE_COARSE_REASON,
    ),
    "change": ChangeMethod(
        any_changes,
        summary="every change, not only structures (fields, groundwork, trees, water), any pixel size",
        score_description="segment change-vector magnitude in multiples of the unchanged median",
        score_unit=MEDIAN_MULTIPLES,
        # measured on AirChange (1.5 m) and LEVIR-CD (0.5 m); it assumes nothing about pixel size
        pixel_size_range_m=(0.5, 1.5),
    ),
    "cva": ChangeMethod(
        cva_changes,
        summary="change-vector magnitude per pixel, thresholded",
        score_description=COLOUR_CHANGE_SCORE,
        score_unit=MEDIAN_MULTIPLES,
        pixel_size_range_m=MEASURED_PIXEL_SIZES_M,
    ),
    "log_ratio": ChangeMethod(
        log_ratio_changes,
        summary="band-mean log ratio per pixel, thresholded",
        score_description=COLOUR_CHANGE_SCORE,
        score_unit=MEDIAN_MULTIPLES,
        pixel_size_range_m=MEASURED_PIXEL_SIZES_M,
    ),
}


def method_named(name: str) -> ChangeMethod:
    """The registered method called ``name``.

    Raises
    ------
    ValueError
        If no method of that name is registered.
    """
    if name not in METHODS:
        raise ValueError(f"unknown change method {name!r}; choose from {sorted(METHODS)}")
    return METHODS[name]


def method_for_pixel_size(name: str, pixel_size_m: float) -> tuple[str, str | None]:
    """The method to run at ``pixel_size_m`` when ``name`` is asked for, and what to tell the user.

    Returns ``(name, None)`` inside the method's measured pixel sizes; ``(name, note)``
    outside them (it runs, unmeasured); ``(HANDOVER_METHOD, note)`` beyond its
    ``coarsest_pixel_m``, where it cannot work and would find nothing.
    """
    method = method_named(name)
    low, high = method.pixel_size_range_m
    if pixel_size_m > method.coarsest_pixel_m and name != HANDOVER_METHOD:
        return HANDOVER_METHOD, (
            f"{pixel_size_m:.3g} m pixels are too coarse for the {name!r} method (it needs "
            f"{method.coarsest_pixel_m:g} m or finer: {method.coarse_reason}); using "
            f"{HANDOVER_METHOD!r} instead, which reports every change, not only structures"
        )
    if not low <= pixel_size_m <= high:
        return name, f"{pixel_size_m:.3g} m pixels: the {name!r} method was measured at {low:g}-{high:g} m only"
    return name, None


def detect_structure_changes(
    before: np.ndarray,
    after: np.ndarray,
    *,
    pixel_size_m: float,
    transform: Affine = Affine.identity(),
    valid: np.ndarray | None = None,
    settings: DetectSettings = DetectSettings(),
    evidence: Evidence | None = None,
    scene: SceneStats | None = None,
) -> StructureChanges:
    """Find new and removed structures between two co-registered images.

    Parameters
    ----------
    before, after : ndarray of shape (B, M, N)
        Same grid.  The colour-change methods want the same radiometry too (see
        :mod:`sitewatch.radiometry`); ``"building"`` reads ``evidence`` built from the
        images as they came from the sensor.  Bands 0-2 are taken as red, green, blue.
    pixel_size_m : float
        Metres per pixel.
    transform : Affine
        Pixel-to-CRS transform, so polygons come out in map coordinates.
    valid : ndarray of bool, shape (M, N), optional
        Pixels to consider (inside both images and the AOI footprint).
    settings : DetectSettings
        The method (a key of :data:`METHODS`) and its thresholds.
    evidence : Evidence, optional
        From :func:`gather_evidence` on the un-normalised images; computed from ``before``
        and ``after`` (with the settings' vegetation and shadow thresholds) when omitted,
        or when the method reads building evidence and it holds none.
    scene : SceneStats, optional
        A whole scene's statistics when the arrays are one block of it: the block is judged
        as the scene is (:mod:`.scene`).

    Returns
    -------
    StructureChanges
    """
    if before.shape != after.shape:
        raise ValueError(f"before and after differ in shape: {before.shape} vs {after.shape}")
    method = method_named(settings.method)
    valid = np.ones(before.shape[1:], bool) if valid is None else valid.copy()
    if evidence is None or (method.building_evidence and evidence.buildings is None):
        evidence = gather_evidence(
            before,
            after,
            valid=valid,
            vegetation_threshold=settings.vegetation_threshold,
            shadow_fraction=settings.shadow_fraction,
            pixel_size_m=pixel_size_m if method.building_evidence else None,
            scene=scene,
        )
    candidates = valid & ~evidence.vegetation & ~evidence.shadow
    # scale the score by its median over possible roofs, not over seasonal ground; but where
    # nearly everything is vegetated, the few possible roofs are mostly the change itself,
    # and their median would hide it: then scale over every valid pixel
    enough = candidates.sum() >= MIN_CANDIDATE_SHARE * valid.sum()  # the rule the radiometric fit follows
    area = ChangeArea(pixel_size_m, transform, valid, candidates, candidates if enough else valid, scene)
    return method.detector(before, after, evidence, area, settings)
