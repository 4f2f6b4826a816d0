"""Site scenarios from the public reporting, laid out around each AOI's real features.

Each builder takes the site (already projected to its UTM zone), a seeded generator and the
ground sample distance, and returns a :class:`Scene` whose ``truth`` lists every planted
change.  Reference structures in the AOI are drawn exactly where the AOI puts them, so a
planted building's true size relative to them is known.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import shapely
from shapely.geometry import LineString, Point, box

from .railcars import place_cars
from .scene import (
    ASPHALT,
    DIRT_ROAD,
    ROOFS,
    Acquisition,
    Scene,
    Structure,
    add_countryside,
    rectangle,
)

if TYPE_CHECKING:  # the site is handed in; synth reads its id, UTM zone and features, never a file
    from ..aoi import SiteAOI


def _acq(
    rng: np.random.Generator, date: str, season: str, az: float, elev: float, shift: tuple[float, float]
) -> Acquisition:
    gain = tuple(float(g) for g in rng.uniform(0.88, 1.12, 3))
    haze = float(rng.uniform(0.0, 0.03))
    offset = (haze * 0.6, haze * 0.8, haze * 1.2)
    return Acquisition(date, season, az, elev, gain, offset, shift)


def _misregistration(rng: np.random.Generator) -> tuple[float, float]:
    """A few pixels plus a sub-pixel part, random sign."""
    dx = rng.uniform(1.5, 3.5) * rng.choice([-1, 1])
    dy = rng.uniform(1.0, 3.0) * rng.choice([-1, 1])
    return (round(float(dx), 2), round(float(dy), 2))


def _scene(
    site: SiteAOI,
    centre: tuple[float, float],
    size: tuple[float, float],
    pixel_size_m: float,
    acquisitions: list[Acquisition],
    seed: int,
) -> Scene:
    cx, cy = centre
    w, h = size
    # snap the origin to the pixel grid so outputs are stable for a given pixel_size_m
    west = np.floor((cx - w / 2) / pixel_size_m) * pixel_size_m
    north = np.ceil((cy + h / 2) / pixel_size_m) * pixel_size_m
    bounds = (
        float(west),
        float(north - round(h / pixel_size_m) * pixel_size_m),
        float(west + round(w / pixel_size_m) * pixel_size_m),
        float(north),
    )
    return Scene(site.site_id, site.utm_crs().to_wkt(), bounds, pixel_size_m, acquisitions, seed=seed)


# the keywords of _building that set a Structure's own fields (ridge angle as ``angle``)
_STRUCTURE_FIELDS = ("appears", "disappears", "pitched", "angle")


def _building(sid: str, kind: str, fp, height: float, roof: str, **fields) -> Structure:
    """A structure with a named roof colour (:data:`ROOFS`).

    ``appears``, ``disappears``, ``pitched`` and ``angle`` (the ridge's) set its fields; any
    other keyword becomes one of its properties (in the truth file).
    """
    own = {k: fields.pop(k) for k in _STRUCTURE_FIELDS if k in fields}
    return Structure(
        sid,
        kind,
        fp,
        height,
        ROOFS[roof],
        appears=own.get("appears", 0),
        disappears=own.get("disappears", 10**6),
        pitched=own.get("pitched", False),
        ridge_angle_deg=own.get("angle", 0.0),
        properties=dict(fields),
    )


def _truth(scene: Scene, s: Structure, change: str, **extra) -> None:
    date_index = s.disappears if change == "removed" else s.appears
    scene.truth.append(
        {
            "id": s.id,
            "kind": s.kind,
            "change": change,
            "date": scene.acquisitions[date_index].date,
            "height_m": s.height_m,
            "geometry": s.footprint,
            **s.properties,
            **extra,
        }
    )


def _existing_buildings(scene: Scene, rng: np.random.Generator, region, avoid, n: int, prefix: str) -> list[Structure]:
    """Unchanged warehouses and sheds: their shadows move with the sun between dates."""
    out: list[Structure] = []
    minx, miny, maxx, maxy = region.bounds
    for _ in range(n * 20):
        if len(out) >= n:
            break
        fp = rectangle(
            rng.uniform(minx, maxx),
            rng.uniform(miny, maxy),
            rng.uniform(20, 60),
            rng.uniform(10, 25),
            float(rng.choice([0.0, 90.0])) + rng.uniform(-4, 4),
        )
        if (
            not region.contains(fp)
            or fp.buffer(12).intersects(avoid)
            or any(fp.buffer(10).intersects(o.footprint) for o in out)
        ):
            continue
        out.append(
            _building(
                f"{prefix}-{len(out) + 1}",
                "existing-building",
                fp,
                float(rng.uniform(5, 12)),
                str(rng.choice(["grey", "blue", "rust", "white"])),
                pitched=bool(rng.random() < 0.5),
            )
        )
    return out


def _worker_housing(scene: Scene, hx: float, hy: float) -> None:
    """Worker housing: two rows of three apartment blocks from (hx, hy), new on the second date."""
    for i in range(2):
        for j in range(3):
            blk = _building(
                f"worker-housing-{i * 3 + j + 1}",
                "worker-housing",
                rectangle(hx + j * 58, hy - i * 42, 42, 13, 0.0),
                11.0,
                "white",
                appears=1,
            )
            scene.structures.append(blk)
            _truth(scene, blk, "new")


def _tunnel(scene: Scene, tx: float, ty: float) -> None:
    """A forested hillside with a tunnel at (tx, ty); a shed at its mouth is replaced by a portal building."""
    scene.hills.append((tx, ty + 120, 110.0, 60.0))
    scene.forests.append(Point(tx, ty + 120).buffer(150).difference(box(tx - 40, ty - 60, tx + 40, ty + 45)))
    scene.dark_openings.append(rectangle(tx, ty + 30, 8, 6))
    scene.aprons.append(box(tx - 35, ty - 50, tx + 35, ty + 26))
    old_shed = _building(
        "tunnel-shed", "tunnel-structure", rectangle(tx + 20, ty - 5, 12, 9), 4.0, "rust", disappears=1
    )
    portal = _building(
        "tunnel-portal-building", "tunnel-structure", rectangle(tx - 12, ty + 8, 26, 14), 7.0, "grey", appears=1
    )
    scene.structures += [old_shed, portal]
    _truth(scene, old_shed, "removed")
    _truth(scene, portal, "new")


def hamhung_feb11(site: SiteAOI, rng: np.random.Generator, pixel_size_m: float, seed: int) -> Scene:
    crs = site.utm_crs()
    feats = site.features_in(crs)
    refs = {f.name: f for f in feats if f.role == "reference_structure"}
    b = refs["Building B"]
    a = refs["Building A"]
    bx, by = b.geometry.centroid.x, b.geometry.centroid.y
    centre = ((bx + a.geometry.centroid.x) / 2 + 60, (by + a.geometry.centroid.y) / 2 - 40)
    acqs = [
        _acq(rng, "2023-06-15", "summer", 128.0, 66.0, (0.0, 0.0)),
        _acq(rng, "2024-10-20", "autumn", 158.0, 38.0, _misregistration(rng)),
    ]
    scene = _scene(site, centre, (1000.0, 1000.0), pixel_size_m, acqs, seed)
    for name, f, roof in (("Building B", b, "blue"), ("Building A", a, "grey")):
        scene.structures.append(
            _building(
                name.lower().replace(" ", "-"),
                "reference-structure",
                f.geometry,
                float(f.properties.get("height_m", 12)),
                roof,
                pitched=True,
                angle=0.0,
            )
        )
    # New assembly building east of B: 65 % of B's footprint area, same long axis.
    ratio = float(rng.uniform(0.62, 0.68))
    area = b.geometry.area * ratio
    width = 50.0
    new_asm = _building(
        "new-assembly-building",
        "assembly-building",
        rectangle(bx + 75 + 45 + area / width / 2, by - 15, area / width, width),
        16.0,
        "blue",
        appears=1,
        pitched=True,
    )
    scene.structures.append(new_asm)
    _truth(scene, new_asm, "new", relative_size=round(area / b.geometry.area, 4), relative_to="Building B")

    hx, hy = bx - 230, by - 230
    _worker_housing(scene, hx, hy)
    tx, ty = bx + 260, by + 230
    _tunnel(scene, tx, ty)

    # Roads and the plant's yard.
    scene.roads.append((LineString([(bx - 600, by - 100), (bx + 600, by - 100)]).buffer(5), ASPHALT))
    scene.roads.append((LineString([(bx + 20, by - 100), (bx + 20, by - 48)]).buffer(4), ASPHALT))
    scene.roads.append((LineString([(tx, ty - 50), (tx, by - 100)]).buffer(3.5), DIRT_ROAD))
    scene.roads.append((LineString([(hx - 30, hy + 35), (hx + 150, hy + 35)]).buffer(4), DIRT_ROAD))
    changes = shapely.union_all([s.footprint for s in scene.structures]).buffer(30)
    yard = box(bx - 260, by - 92, bx + 330, by + 170)
    scene.aprons.append(box(bx - 100, by - 92, bx + 60, by + 110))
    avoid = changes.union(Point(tx, ty + 120).buffer(165)).union(scene.aprons[0].buffer(5))
    scene.structures += _existing_buildings(scene, rng, yard, avoid, 7, "plant-shed")
    keep_out = shapely.union_all([changes, yard, Point(tx, ty + 120).buffer(170)] + [g for g, _ in scene.roads])
    add_countryside(scene, rng, keep_out=keep_out.buffer(10))
    return scene


def sinuiju_factory(site: SiteAOI, rng: np.random.Generator, pixel_size_m: float, seed: int) -> Scene:
    crs = site.utm_crs()
    pt = next(f for f in site.features_in(crs) if f.role == "source_point").geometry
    cx, cy = pt.x, pt.y
    acqs = [
        _acq(rng, "2022-09-05", "summer", 150.0, 52.0, (0.0, 0.0)),
        _acq(rng, "2024-04-12", "spring", 140.0, 55.0, _misregistration(rng)),
    ]
    scene = _scene(site, (cx, cy), (600.0, 600.0), pixel_size_m, acqs, seed)
    lot = box(cx - 150, cy - 110, cx + 150, cy + 110)
    scene.aprons.append(lot)
    # Three old workshops dismantled; three new buildings on the same ground, shifted north
    # so each overlaps about a third of an old one.
    for k in range(3):
        x = cx - 80 + k * 42
        old = _building(
            f"old-workshop-{k + 1}",
            "workshop",
            rectangle(x, cy - 10, 20, 54, 0.0),
            8.0,
            "rust",
            disappears=1,
            pitched=True,
            angle=90.0,
        )
        new = _building(
            f"new-building-{k + 1}", "workshop", rectangle(x + 3, cy + 30, 24, 44, 0.0), 10.0, "teal", appears=1
        )
        scene.structures += [old, new]
        _truth(scene, old, "removed")
        _truth(scene, new, "new")
    changed = shapely.union_all([s.footprint for s in scene.structures]).buffer(20)
    scene.structures += _existing_buildings(scene, rng, lot.buffer(-8), changed, 6, "factory-building")
    scene.roads.append((LineString([(cx - 300, cy - 125), (cx + 300, cy - 125)]).buffer(6), ASPHALT))
    add_countryside(scene, rng, keep_out=lot.buffer(20).union(box(cx - 300, cy - 135, cx + 300, cy - 115)), n_fields=8)
    return scene


def tumangang_crossing(site: SiteAOI, rng: np.random.Generator, pixel_size_m: float, seed: int) -> Scene:
    crs = site.utm_crs()
    feats = site.features_in(crs)
    station = next(f for f in feats if f.role == "source_point" and "Tumangang" in f.name).geometry
    acqs = [
        _acq(rng, "2023-03-10", "spring", 155.0, 42.0, (0.0, 0.0)),
        _acq(rng, "2023-07-14", "summer", 135.0, 66.0, _misregistration(rng)),
        _acq(rng, "2023-10-18", "autumn", 160.0, 37.0, _misregistration(rng)),
    ]
    scene = _scene(site, (station.x, station.y), (760.0, 320.0), pixel_size_m, acqs, seed)
    frame = box(*scene.bounds)
    for f in feats:
        if f.role == "rail_track" and f.geometry.intersects(frame):
            clipped = f.geometry.intersection(frame.buffer(-5))
            if clipped.geom_type == "LineString" and clipped.length > 100:
                scene.tracks.append((f.track_id, clipped))
    yard = [(tid, ln) for tid, ln in scene.tracks if tid.startswith("tumangang-")]
    if not yard:
        raise ValueError("the Tumangang AOI has no yard tracks inside the synthetic frame")
    for index, total in enumerate((20, 41, 73)):
        place_cars(scene, rng, yard, rng.multinomial(total, np.full(len(yard), 1.0 / len(yard))), index)
    corridor = shapely.union_all([ln for _, ln in scene.tracks]).buffer(25)
    sx, sy = station.x, station.y
    station_bldg = _building(
        "station-building", "station", rectangle(sx, sy + 40, 60, 16, -14), 9.0, "grey", pitched=True, angle=-14
    )
    scene.structures.append(station_bldg)
    scene.roads.append((LineString([(sx - 380, sy + 62), (sx + 380, sy - 130)]).buffer(4), DIRT_ROAD))
    add_countryside(
        scene,
        rng,
        keep_out=corridor.union(station_bldg.footprint.buffer(30)).union(scene.roads[0][0].buffer(8)),
        n_fields=6,
    )
    return scene


def vinalon_complex(site: SiteAOI, rng: np.random.Generator, pixel_size_m: float, seed: int) -> Scene:
    crs = site.utm_crs()
    pt = next(f for f in site.features_in(crs) if f.role == "source_point").geometry
    cx, cy = pt.x, pt.y
    acqs = [
        _acq(rng, "2023-05-20", "summer", 135.0, 64.0, (0.0, 0.0)),
        _acq(rng, "2024-10-02", "autumn", 160.0, 42.0, _misregistration(rng)),
    ]
    scene = _scene(site, (cx, cy), (700.0, 700.0), pixel_size_m, acqs, seed)
    plant = box(cx - 220, cy - 180, cx + 220, cy + 180)
    scene.aprons.append(plant)
    hall = _building(
        "fuel-process-hall",
        "process-building",
        rectangle(cx + 120, cy - 90, 70, 30),
        14.0,
        "grey",
        appears=1,
        pitched=True,
    )
    scene.structures.append(hall)
    _truth(scene, hall, "new")
    for k in range(3):
        tank = _building(
            f"storage-tank-{k + 1}",
            "storage-tank",
            Point(cx + 80 + k * 32, cy - 30).buffer(11, quad_segs=16),
            12.0,
            "white",
            appears=1,
        )
        scene.structures.append(tank)
        _truth(scene, tank, "new")
    changed = shapely.union_all([s.footprint for s in scene.structures]).buffer(20)
    scene.structures += _existing_buildings(scene, rng, plant.buffer(-10), changed, 12, "complex-building")
    add_countryside(scene, rng, keep_out=plant.buffer(20), n_fields=8)
    return scene


def generic_site(site: SiteAOI, rng: np.random.Generator, pixel_size_m: float, seed: int) -> Scene:
    """Any other AOI: a compound at the footprint's centre with two new buildings and one removed."""
    crs = site.utm_crs()
    c = next(f for f in site.features_in(crs) if f.role == "footprint").geometry.centroid
    acqs = [
        _acq(rng, "2023-06-01", "summer", 140.0, 62.0, (0.0, 0.0)),
        _acq(rng, "2024-10-01", "autumn", 160.0, 40.0, _misregistration(rng)),
    ]
    scene = _scene(site, (c.x, c.y), (600.0, 600.0), pixel_size_m, acqs, seed)
    lot = box(c.x - 150, c.y - 120, c.x + 150, c.y + 120)
    scene.aprons.append(lot)
    planted = [
        _building("new-building-1", "building", rectangle(c.x - 60, c.y, 50, 22), 9.0, "blue", appears=1),
        _building("new-building-2", "building", rectangle(c.x + 40, c.y + 50, 36, 18), 7.0, "white", appears=1),
        _building("removed-building-1", "building", rectangle(c.x + 60, c.y - 60, 40, 20), 8.0, "rust", disappears=1),
    ]
    scene.structures += planted
    for s in planted:
        _truth(scene, s, "new" if s.appears else "removed")
    changed = shapely.union_all([s.footprint for s in planted]).buffer(20)
    scene.structures += _existing_buildings(scene, rng, lot.buffer(-8), changed, 6, "building")
    add_countryside(scene, rng, keep_out=lot.buffer(20))
    return scene


SCENARIOS: dict[str, Callable[[SiteAOI, np.random.Generator, float, int], Scene]] = {
    "hamhung-feb11-plant": hamhung_feb11,
    "sinuiju-instrument-factory": sinuiju_factory,
    "tumangang-rail-crossing": tumangang_crossing,
    "hamhung-feb8-vinalon": vinalon_complex,
}


def build_scene(site: SiteAOI, *, pixel_size_m: float = 1.0, seed: int = 0) -> Scene:
    """The synthetic scene for ``site``: its own scenario if it has one, else a generic compound.

    Parameters
    ----------
    site : SiteAOI
        The validated AOI.
    pixel_size_m : float
        Ground sample distance in metres.
    seed : int
        Everything random (layout, colours, illumination, noise) follows from it.
    """
    if not 0.1 <= pixel_size_m <= 10.0:
        raise ValueError(f"pixel size must be between 0.1 and 10 m, got {pixel_size_m}")
    # each site gets its own stream, so two sites with the same seed do not share a layout
    rng = np.random.default_rng([seed, zlib.crc32(site.site_id.encode())])
    builder = SCENARIOS.get(site.site_id, generic_site)
    return builder(site, rng, float(pixel_size_m), seed)
