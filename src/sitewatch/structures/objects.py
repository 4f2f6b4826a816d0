"""Change objects: measured polygons of new and removed structures, and how they are traced.

Pure: label arrays, an affine transform and plain numbers in; dataclasses out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio import features
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry

from .settings import ChangeArea

# What a change object can be: a structure that rose or went, or (the "change" method)
# ground that changed without a direction.
CHANGE_KINDS = ("new", "removed", "changed")

# An object whose mean score is below this is reported with ``confidence: "low"`` (and drawn
# dashed): on the 0-1 scores of the building methods it is the level the building method calls
# unchanged ground; the colour methods' scores (multiples of the unchanged median, kept above 4)
# never fall below it. Objects are never dropped for it, so accuracy figures do not move.
LOW_CONFIDENCE_SCORE = 0.2


@dataclass
class ChangeObject:
    """One new or removed structure, or (``change="changed"``) a change without a direction."""

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

    @property
    def confidence(self) -> str:
        """``"high"``, or ``"low"`` where the score is below :data:`LOW_CONFIDENCE_SCORE`."""
        return "low" if self.score < LOW_CONFIDENCE_SCORE else "high"

    def properties(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "confidence": self.confidence,
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


def measured_objects(
    lab: np.ndarray,
    n: int,
    name: str,
    score: np.ndarray,
    *,
    area: ChangeArea,
    min_area_m2: float,
    min_rectangularity: float,
    dropped: dict[str, int],
) -> tuple[list[ChangeObject], np.ndarray]:
    """Polygons and measures of labels 1..n of ``lab`` that are large and rectangular enough.

    Polygons are traced in ``area.transform``'s CRS and simplified by half a pixel.  Returns
    the objects and a lookup (n + 1,) of the labels kept; ``dropped`` counts the others
    (labels absent from ``lab`` count nowhere).
    """
    pixel_size_m, transform = area.pixel_size_m, area.transform
    keep = np.zeros(n + 1, bool)
    if n == 0:
        return [], keep
    areas = np.bincount(lab.ravel(), minlength=n + 1)[1:] * pixel_size_m**2
    mean_scores = label_means(lab, n, score)[1:]
    # drop small objects on the label image before tracing their outlines
    large = np.r_[False, areas >= min_area_m2]
    dropped["small"] = dropped.get("small", 0) + int(((areas > 0) & (areas < min_area_m2)).sum())
    lab = np.where(large[lab], lab, 0)
    objects = []
    for value, geom in polygonize(lab, transform, simplify=0.5 * pixel_size_m).items():
        length, width, orientation, rect = rectangle_measures(geom)
        if rect < min_rectangularity:
            dropped["not_rectangular"] = dropped.get("not_rectangular", 0) + 1
            continue
        objects.append(
            ChangeObject(
                name, geom, float(areas[value - 1]), length, width, orientation, float(mean_scores[value - 1]), rect
            )
        )
        keep[value] = True
    return objects, keep


def label_means(lab: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each label 0..n of ``lab`` (0 where a label is absent)."""
    pixels = np.bincount(lab.ravel(), minlength=n + 1)
    return np.bincount(lab.ravel(), weights=values.ravel(), minlength=n + 1) / np.maximum(pixels, 1)


def mean_inside(geometry: BaseGeometry, values: np.ndarray, transform: Affine) -> float:
    """Mean of an (M, N) array over the pixels a polygon covers (0 where it covers none)."""
    inside = features.rasterize(
        [(geometry, 1)], out_shape=values.shape, transform=transform, fill=0, dtype="uint8"
    ).astype(bool)
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


def direction_raster(objects: list[ChangeObject], area: ChangeArea) -> np.ndarray:
    """+1 inside new objects, -1 inside removed ones, 0 elsewhere."""
    if not objects:
        return np.zeros(area.valid.shape, np.int8)
    return features.rasterize(
        ((o.geometry, 1 if o.change == "new" else -1) for o in objects),
        out_shape=area.valid.shape,
        transform=area.transform,
        fill=0,
        dtype="int16",
    ).astype(np.int8)
