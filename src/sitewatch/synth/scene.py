"""Scene model for synthetic imagery: what stands where, and what each acquisition looks like.

Geometries are shapely objects in the scene's projected CRS (metres).  Nothing here draws
pixels; :mod:`sitewatch.synth.render` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from shapely import affinity
from shapely.geometry import LineString, Polygon, box
from shapely.geometry.base import BaseGeometry

# Surface colours as RGB reflectance (0..1).  Seasonal entries are keyed by season.
GRASS = {"summer": (0.20, 0.31, 0.13), "autumn": (0.38, 0.34, 0.19), "spring": (0.30, 0.31, 0.18)}
CROP = {"summer": (0.15, 0.33, 0.10), "autumn": (0.50, 0.42, 0.21), "spring": (0.36, 0.30, 0.21)}
FOREST = {"summer": (0.08, 0.17, 0.06), "autumn": (0.30, 0.24, 0.08), "spring": (0.12, 0.20, 0.08)}
SOIL = (0.38, 0.31, 0.23)
ASPHALT = (0.22, 0.22, 0.23)
DIRT_ROAD = (0.44, 0.38, 0.30)
CONCRETE = (0.52, 0.51, 0.49)
BALLAST = (0.40, 0.38, 0.36)
ROOFS = {
    "grey": (0.60, 0.59, 0.57),
    "blue": (0.22, 0.36, 0.56),
    "rust": (0.47, 0.22, 0.16),
    "white": (0.80, 0.80, 0.78),
    "teal": (0.20, 0.45, 0.48),
}
# Diffuse skylight in shadow: dark and bluish.
SHADOW_TINT = (0.26, 0.29, 0.37)


@dataclass(frozen=True)
class Acquisition:
    """One image date: season, sun, atmosphere and the sensor's misregistration.

    ``shift_px`` is the displacement of this image's content relative to the true
    georeference, in (columns, rows): a ground feature at true pixel (c, r) appears at
    (c + dx, r + dy).
    """

    date: str
    season: str
    sun_azimuth_deg: float
    sun_elevation_deg: float
    band_gain: tuple[float, float, float]
    band_offset: tuple[float, float, float]
    shift_px: tuple[float, float]
    noise_sigma: float = 0.006

    def shadow_vector(self, height_m: float) -> tuple[float, float]:
        """Ground offset (east, north) in metres of the shadow cast by a point ``height_m`` high."""
        length = height_m / np.tan(np.radians(self.sun_elevation_deg))
        az = np.radians(self.sun_azimuth_deg)
        # the shadow points away from the sun
        return (-length * np.sin(az), -length * np.cos(az))


@dataclass
class Structure:
    """A building, tank, shed or railcar: a roof polygon with a height and a colour.

    ``appears``/``disappears`` are acquisition indices: the structure is visible in image
    ``i`` when ``appears <= i < disappears``.
    """

    id: str
    kind: str
    footprint: BaseGeometry
    height_m: float
    roof: tuple[float, float, float]
    appears: int = 0
    disappears: int = 10**6
    pitched: bool = False
    ridge_angle_deg: float = 0.0
    properties: dict[str, Any] = field(default_factory=dict)

    def visible(self, index: int) -> bool:
        return self.appears <= index < self.disappears


@dataclass
class Scene:
    """Everything needed to render every date of a synthetic site."""

    site_id: str
    crs_wkt: str
    bounds: tuple[float, float, float, float]  # west, south, east, north in metres
    pixel_size_m: float
    acquisitions: list[Acquisition]
    structures: list[Structure] = field(default_factory=list)
    fields: list[tuple[BaseGeometry, float]] = field(default_factory=list)  # polygon, row angle
    forests: list[BaseGeometry] = field(default_factory=list)
    trees: list[tuple[float, float, float]] = field(default_factory=list)  # x, y, radius
    roads: list[tuple[BaseGeometry, tuple[float, float, float]]] = field(default_factory=list)
    aprons: list[BaseGeometry] = field(default_factory=list)
    tracks: list[tuple[str, LineString]] = field(default_factory=list)
    hills: list[tuple[float, float, float, float]] = field(default_factory=list)  # x, y, sigma_m, height_m
    dark_openings: list[BaseGeometry] = field(default_factory=list)  # tunnel mouths
    truth: list[dict[str, Any]] = field(default_factory=list)
    seed: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        west, south, east, north = self.bounds
        return (int(round((north - south) / self.pixel_size_m)), int(round((east - west) / self.pixel_size_m)))


def rectangle(cx: float, cy: float, length: float, width: float, angle_deg: float = 0.0) -> Polygon:
    """Rectangle centred on (cx, cy), ``length`` along an axis rotated ``angle_deg`` from east."""
    r = box(cx - length / 2, cy - width / 2, cx + length / 2, cy + width / 2)
    return affinity.rotate(r, angle_deg, origin=(cx, cy))


def add_countryside(
    scene: Scene,
    rng: np.random.Generator,
    *,
    keep_out: BaseGeometry,
    n_fields: int = 14,
    n_tree_clumps: int = 25,
) -> None:
    """Scatter crop fields and clumps of trees over the scene, avoiding ``keep_out``.

    These are the things whose colour changes with the season and which a naive pixel
    difference flags as change.
    """
    west, south, east, north = scene.bounds
    for _ in range(n_fields * 4):
        if len(scene.fields) >= n_fields:
            break
        cx, cy = rng.uniform(west, east), rng.uniform(south, north)
        angle = rng.uniform(-25, 25)
        poly = rectangle(cx, cy, rng.uniform(60, 160), rng.uniform(40, 110), angle)
        if poly.intersects(keep_out) or any(poly.intersects(f) for f, _ in scene.fields):
            continue
        scene.fields.append((poly, angle + rng.choice([0.0, 90.0])))
    clumps = 0
    for _ in range(n_tree_clumps * 4):
        if clumps >= n_tree_clumps:
            break
        cx, cy = rng.uniform(west, east), rng.uniform(south, north)
        n = int(rng.integers(3, 14))
        xs = cx + rng.normal(0, 9, n)
        ys = cy + rng.normal(0, 9, n)
        radii = rng.uniform(2.0, 4.5, n)
        crowns = [(x, y, r) for x, y, r in zip(xs, ys, radii)]
        if any(keep_out.distance(LineString([(x - r, y), (x + r, y)])) < r + 3 for x, y, r in crowns):
            continue
        scene.trees.extend(crowns)
        clumps += 1
