"""What every structure-change detector is handed: its settings and the area it looks at.

Pure: plain numbers, an affine transform and boolean masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine

from .scene import SceneStats


@dataclass(frozen=True)
class DetectSettings:
    """How structure change is detected: the method and its thresholds.

    The defaults are those of ``sitewatch detect`` and ``sitewatch evaluate``.

    Attributes
    ----------
    method : str
        A key of :data:`sitewatch.structures.METHODS`.
    min_area_m2 : float
        Smaller objects are dropped.
    min_rectangularity : float
        Colour-change methods: objects filling less of their minimum rotated rectangle are
        dropped (not structures).  ``"building"`` tests solidity and elongation instead.
    min_score : float
        Colour-change methods (and the colour-change objects ``"building"`` borrows): the
        threshold (``"noise"``) or its floor (``"otsu"``), in multiples of the median score
        over possible roofs.  For three bands of Gaussian noise, 4 medians is about the
        0.1 % tail.
    threshold_method : {"noise", "otsu"}
        Colour-change methods: ``"noise"`` thresholds at ``min_score``; ``"otsu"`` splits
        the score histogram, which lands too high when seasonal ground dominates the
        changed pixels.
    vegetation_threshold : float
        Excess green above which a pixel counts as vegetation (without a near-infrared band).
    shadow_fraction : float
        Pixels darker than this fraction of the median brightness count as shadow.
    """

    method: str = "building"
    min_area_m2: float = 40.0
    min_rectangularity: float = 0.55
    min_score: float = 4.0
    threshold_method: str = "noise"
    vegetation_threshold: float = 0.05
    shadow_fraction: float = 0.5


@dataclass(frozen=True)
class ChangeArea:
    """Where a detector looks, and on what grid.

    Attributes
    ----------
    pixel_size_m : float
        Metres per pixel.
    transform : Affine
        Pixel-to-CRS transform, so polygons come out in map coordinates.
    valid : ndarray of bool, shape (M, N)
        Pixels to consider (inside both images and the AOI footprint).
    candidates : ndarray of bool, shape (M, N)
        Valid pixels that may be roofs: not vegetated on both dates, not in shadow.
    scale_on : ndarray of bool, shape (M, N)
        Pixels a change score is scaled on: ``candidates`` where they are a fair share of the
        valid pixels, else every valid pixel (where nearly everything is vegetated, the few
        possible roofs are mostly the change itself, and their median would hide it).
    scene : SceneStats, optional
        A whole scene's statistics when the arrays are one block of it (see
        :class:`~.scene.SceneStats`); ``None``: take them from the arrays.
    """

    pixel_size_m: float
    transform: Affine
    valid: np.ndarray
    candidates: np.ndarray
    scale_on: np.ndarray
    scene: SceneStats | None = None

    def presence_levels(self, date: int) -> tuple[float, float, float] | None:
        """The scene's presence-network input levels of BEFORE (``date`` 0) or AFTER (1), if known."""
        levels = self.scene.presence_levels if self.scene is not None else None
        return None if levels is None else levels[date]
