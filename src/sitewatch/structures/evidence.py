"""What cannot be a roof (vegetation, shadow) and, for the building method, what rose or went.

Pure: arrays in, a dataclass of boolean masks (and region scores) out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .roofs import BuildingEvidence, building_evidence
from .scene import SceneStats
from .scores import shadow_mask, vegetation_mask


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


def gather_evidence(
    before: np.ndarray,
    after: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    vegetation_threshold: float = 0.05,
    shadow_fraction: float = 0.5,
    pixel_size_m: float | None = None,
    scene: SceneStats | None = None,
) -> Evidence:
    """Vegetation per date and shadow on either date; with ``pixel_size_m``, building evidence too.

    Pass ``after`` as it came from the sensor, not radiometrically normalised: a fit made
    across seasons can shift colours and brightness enough to mislabel roofs.  Vegetation
    is NDVI with a near-infrared fourth band, else excess green on bands 0-2 (red, green,
    blue); with fewer than three bands nothing counts as vegetation
    (:func:`sitewatch.structures.scores.vegetation_mask`).  ``scene`` holds a whole scene's
    statistics when the images are one block of it (:class:`.scene.SceneStats`).
    """
    green_before = vegetation_mask(before, greenness_threshold=vegetation_threshold)
    green_after = vegetation_mask(after, greenness_threshold=vegetation_threshold)
    medians = (scene.brightness_median if scene is not None else None) or (None, None)
    shadow = shadow_mask(before, valid=valid, fraction=shadow_fraction, median=medians[0]) | shadow_mask(
        after, valid=valid, fraction=shadow_fraction, median=medians[1]
    )
    buildings = (
        None
        if pixel_size_m is None
        else building_evidence(before, after, pixel_size_m=pixel_size_m, valid=valid, scene=scene)
    )
    return Evidence(green_before, green_after, shadow, buildings)
