"""Randomised rail yards in named *styles*, for counting railcars on imagery the counter was not built on.

:func:`sitewatch.synth.railcars.railyard_scene` draws one kind of yard (beds on countryside,
dark rails, one sensor), and a counter tuned on it learns that renderer.  Here each style is a
family of yards drawn differently: the whole yard gravel (ballast the colour of the ground) or
beds on grass or soil; ballast colour, texture and weeds; rails from invisible to high
contrast; sleepers; crossovers between tracks; track spacing 4.2-6.5 m; catenary masts with
their long shadows and overhead wires; sheds whose shadows fall across tracks; a sensor's blur
(0.5-2 px), JPEG compression, haze, colour cast, noise and 8- or 16-bit data; a broad car
palette (weathered and rusty cars, containers, empty flat cars, tarpaulins); given track lines
off by up to 2.5 m; and about half of every line empty track, as on a real yard.

``"classic"`` is the original benchmark's yard, unchanged, so that its figures stay comparable.
Which styles the counter was tuned on and which were left out is recorded in
``benchmarks/bench_railcars.py`` (``TUNED_STYLES``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import shapely
from affine import Affine
from PIL import Image
from scipy import ndimage, stats
from shapely.geometry import LineString, Point, box
from shapely.ops import substring

from .railcars import (
    CAR_TYPES,
    CarType,
    GroupLayout,
    car_parts,
    drawn_track_lines,
    railyard_scene,
    random_track_groups,
)
from .render import (
    _Canvas,
    _ground,
    _mask,
    _paint,
    _paint_structures,
    _paint_trees,
    fractal_noise,
    render,
)
from .scene import SHADOW_TINT, Acquisition, Scene, Structure, add_countryside

GAUGE_M = 1.435  # standard gauge between the rails' inner faces
RAIL_HEAD_M = 0.07
RAIL_OFFSET_M = (GAUGE_M + RAIL_HEAD_M) / 2
SLEEPER_PITCH_M = 0.6
SLEEPER_LENGTH_M = 2.6
SLEEPER_WIDTH_M = 0.25
MAST_HEIGHT_M = 8.0
WIRE_HEIGHT_M = 6.0
YARD_SIZE_M = (420.0, 200.0)
# 16-bit data: digital numbers for reflectance 1 (an 11-bit sensor stored in 16 bits)
DN16_FULL_SCALE = 2047.0

# broad palette: weathered, rusty and faded colours beside the classic ones
WEATHERED = ((0.33, 0.27, 0.22), (0.45, 0.36, 0.28), (0.28, 0.26, 0.25), (0.52, 0.50, 0.47), (0.38, 0.20, 0.12))
TARPAULINS = ((0.20, 0.32, 0.22), (0.18, 0.26, 0.45), (0.55, 0.55, 0.52), (0.30, 0.30, 0.28))
BROAD_TYPES = CAR_TYPES + (
    CarType("rusty-box", (13.0, 17.5), WEATHERED, 4.4),
    CarType("empty-flat", (13.0, 24.0), WEATHERED[:4], 1.2),
    CarType("container-flat", (12.5, 25.0), ((0.30, 0.28, 0.26),), 1.3),
    CarType("tarpaulin", (12.0, 20.0), TARPAULINS, 3.4),
    CarType("long-hopper", (18.0, 26.0), WEATHERED, 4.3),
)


@dataclass(frozen=True)
class YardStyle:
    """A family of yards: ranges every scene of the style draws its look from.

    Ranges are (low, high) drawn uniformly; probabilities are in 0..1.
    """

    name: str
    ground: tuple[str, ...] = ("countryside",)  # "countryside", "gravel" (ballast = ground), "soil", "grass"
    ballast_tone: tuple[float, float] = (0.32, 0.48)
    ballast_texture: tuple[float, float] = (0.04, 0.12)
    weeds: tuple[float, float] = (0.0, 0.0)
    rail_contrast: tuple[float, float] = (0.45, 0.6)  # rail brightness / ballast's: 1 invisible
    sleepers: float = 0.0
    spacing_m: tuple[float, float] = (4.2, 6.5)
    tracks_per_group: tuple[int, int] = (1, 4)
    crossovers: float = 0.0
    catenary: float = 0.0
    sheds: int = 0
    blur_px: tuple[float, float] = (0.5, 0.8)
    jpeg_quality: tuple[int, int] | None = None
    haze: tuple[float, float] = (0.0, 0.05)
    colour_cast: float = 0.1
    noise: tuple[float, float] = (0.004, 0.01)
    bits16: float = 0.0
    broad_palette: bool = True
    line_error_m: float = 1.0
    empty_share: tuple[float, float] = (0.35, 0.65)


STYLES: dict[str, YardStyle | None] = {
    # the original benchmark's yard (sitewatch.synth.railcars.railyard_scene), drawn as before
    "classic": None,
    # the whole yard gravel, ballast the ground's colour, thin faint rails, sleepers, masts
    "gravel": YardStyle(
        "gravel",
        ground=("gravel",),
        rail_contrast=(0.7, 1.0),
        sleepers=0.7,
        crossovers=0.5,
        catenary=0.4,
        sheds=1,
        blur_px=(0.6, 1.3),
        jpeg_quality=(60, 90),
    ),
    # beds on grass or soil, weeds, rails from faint to high contrast, JPEG
    "weedy": YardStyle(
        "weedy",
        ground=("grass", "soil", "countryside"),
        ballast_tone=(0.28, 0.55),
        ballast_texture=(0.08, 0.2),
        weeds=(0.05, 0.35),
        rail_contrast=(0.35, 1.5),
        sleepers=0.5,
        crossovers=0.5,
        jpeg_quality=(50, 85),
    ),
    # electrified yard: masts and their long shadows across the tracks, wires, sheds' shadows
    "catenary": YardStyle(
        "catenary",
        ground=("gravel", "soil"),
        rail_contrast=(0.5, 1.3),
        sleepers=0.5,
        crossovers=0.7,
        catenary=1.0,
        sheds=2,
        blur_px=(0.5, 1.2),
        line_error_m=2.5,
    ),
    # a soft, noisy second sensor: 1.2-2 px blur, haze, strong colour cast, 16-bit data
    "soft-sensor": YardStyle(
        "soft-sensor",
        ground=("gravel", "countryside", "soil"),
        rail_contrast=(0.6, 1.2),
        sleepers=0.3,
        crossovers=0.3,
        catenary=0.3,
        blur_px=(1.2, 2.0),
        haze=(0.03, 0.12),
        colour_cast=0.25,
        noise=(0.01, 0.025),
        bits16=0.6,
    ),
    # everything at once, each at random
    "mixed": YardStyle(
        "mixed",
        ground=("gravel", "grass", "soil", "countryside"),
        ballast_tone=(0.25, 0.6),
        ballast_texture=(0.03, 0.2),
        weeds=(0.0, 0.25),
        rail_contrast=(0.4, 1.4),
        sleepers=0.5,
        crossovers=0.5,
        catenary=0.5,
        sheds=2,
        blur_px=(0.5, 2.0),
        jpeg_quality=(55, 95),
        haze=(0.0, 0.1),
        colour_cast=0.2,
        noise=(0.004, 0.02),
        bits16=0.4,
        line_error_m=2.5,
    ),
}


@dataclass(frozen=True)
class YardLook:
    """One scene's draw from its style: the concrete colours, contrasts and sensor."""

    ground: str
    ballast: tuple[float, float, float]
    ballast_texture: float
    weeds: float
    rail_factor: float
    sleeper_factor: float | None
    catenary: bool
    blur_px: float
    jpeg_quality: int | None
    haze: float
    cast: tuple[float, float, float]
    noise: float
    bits16: bool


@dataclass
class SyntheticYard:
    """A rendered yard: the image, the track lines a user would give, and the truth.

    Attributes
    ----------
    image : ndarray of shape (3, M, N), uint8 or uint16
    lines_px : dict of str to ndarray of shape (K, 2)
        Track lines as given (off by up to the style's line error), pixel (col, row).
    true_lines_px : dict of str to ndarray of shape (K, 2)
        The real track centrelines, pixel (col, row).
    counts : dict of str to int
        Cars on each track.
    sun_azimuth_deg, sun_elevation_deg : float
    transform : tuple of 6 floats
        The image's affine geotransform (a, b, c, d, e, f) as rasterio writes it.
    scene : Scene
    """

    image: np.ndarray
    lines_px: dict[str, np.ndarray]
    true_lines_px: dict[str, np.ndarray]
    counts: dict[str, int]
    sun_azimuth_deg: float
    sun_elevation_deg: float
    transform: tuple[float, float, float, float, float, float]
    scene: Scene
    look: YardLook | None = field(default=None, repr=False)


def _to_px(scene: Scene, line: LineString) -> np.ndarray:
    west, _, _, north = scene.bounds
    xy = np.asarray(line.coords)
    return np.column_stack([(xy[:, 0] - west) / scene.pixel_size_m, (north - xy[:, 1]) / scene.pixel_size_m])


def _finish(scene: Scene, image: np.ndarray, lines_px: dict[str, np.ndarray], look: YardLook | None) -> SyntheticYard:
    acq = scene.acquisitions[0]
    west, _, _, north = scene.bounds
    counts = {tid: sum(1 for r in scene.truth if r.get("track_id") == tid) for tid, _ in scene.tracks}
    return SyntheticYard(
        image,
        lines_px,
        {tid: _to_px(scene, ln) for tid, ln in scene.tracks},
        counts,
        acq.sun_azimuth_deg,
        acq.sun_elevation_deg,
        (scene.pixel_size_m, 0.0, west, 0.0, -scene.pixel_size_m, north),
        scene,
        look,
    )


def styled_yard(
    seed: int,
    pixel_size_m: float,
    style: str,
    *,
    crs_wkt: str,
    origin: tuple[float, float] = (0.0, 0.0),
    with_cars: bool = True,
) -> SyntheticYard:
    """A random yard of a named style (:data:`STYLES`), rendered, with its given lines and truth.

    Parameters
    ----------
    seed : int
        Everything random follows from it (and the style's name).
    pixel_size_m : float
        Pixel size in metres.
    style : str
        A key of :data:`STYLES`.
    crs_wkt : str
        Projected CRS (metres).
    origin : (float, float)
        South-west corner of the scene.
    with_cars : bool
        False: the same yard with every track empty.

    Returns
    -------
    SyntheticYard
    """
    if style not in STYLES:
        raise ValueError(f"unknown yard style {style!r}; choose from {', '.join(STYLES)}")
    spec = STYLES[style]
    if spec is None:
        scene = railyard_scene(seed, pixel_size_m, crs_wkt=crs_wkt, origin=origin)
        if not with_cars:
            _empty(scene)
        return _finish(scene, render(scene, 0), drawn_track_lines(scene, seed), None)
    rng = np.random.default_rng([seed, 5151, *style.encode()])
    scene = _styled_scene(rng, seed, pixel_size_m, spec, crs_wkt=crs_wkt, origin=origin)
    if not with_cars:
        _empty(scene)
    look = _draw_look(rng, spec)
    crossovers = _crossovers(rng, scene, spec)
    masts = _catenary(rng, scene) if look.catenary else []
    image = _render_styled(scene, look, crossovers, masts)
    return _finish(scene, image, _given_lines(scene, seed, spec.line_error_m), look)


def _empty(scene: Scene) -> None:
    """Take every car off the scene (and out of its truth)."""
    scene.structures = [s for s in scene.structures if s.kind != "railcar-part"]
    scene.truth = [r for r in scene.truth if r.get("kind") != "railcar"]


def _draw_look(rng: np.random.Generator, spec: YardStyle) -> YardLook:
    """One scene's concrete look, drawn from its style's ranges."""
    ground = str(rng.choice(spec.ground))
    tone = float(rng.uniform(*spec.ballast_tone))
    # ballast from blue-grey granite to brown: a small tint about grey
    tint = rng.uniform(-0.04, 0.04, 3) + np.array([0.01, 0.0, -0.01]) * rng.uniform(0, 3)
    ballast = tuple(float(np.clip(tone + t, 0.05, 0.9)) for t in tint)
    jpeg = None if spec.jpeg_quality is None else int(rng.integers(spec.jpeg_quality[0], spec.jpeg_quality[1] + 1))
    return YardLook(
        ground=ground,
        ballast=ballast,
        ballast_texture=float(rng.uniform(*spec.ballast_texture)),
        weeds=float(rng.uniform(*spec.weeds)),
        rail_factor=float(rng.uniform(*spec.rail_contrast)),
        sleeper_factor=float(rng.choice([0.6, 0.75, 1.3, 1.5])) if rng.random() < spec.sleepers else None,
        catenary=bool(rng.random() < spec.catenary),
        blur_px=float(rng.uniform(*spec.blur_px)),
        jpeg_quality=jpeg,
        haze=float(rng.uniform(*spec.haze)),
        cast=tuple(float(g) for g in rng.uniform(1 - spec.colour_cast, 1 + spec.colour_cast, 3)),
        noise=float(rng.uniform(*spec.noise)),
        bits16=bool(rng.random() < spec.bits16),
    )


def _styled_scene(
    rng: np.random.Generator,
    seed: int,
    pixel_size_m: float,
    spec: YardStyle,
    *,
    crs_wkt: str,
    origin: tuple[float, float],
) -> Scene:
    """The yard's layout: tracks, cars on about half of each line, countryside, trees and sheds."""
    elevation = float(rng.uniform(25, 70))
    azimuth = float(rng.uniform(100, 260))
    season = str(rng.choice(["spring", "summer", "autumn"]))
    # gains, haze and noise are the style's sensor (:func:`_styled_sensor`), not the acquisition's
    acq = Acquisition("2024-01-01", season, azimuth, elevation, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (0.0, 0.0))
    width, height = YARD_SIZE_M
    west = float(np.floor(origin[0] / pixel_size_m) * pixel_size_m)
    south = float(np.floor(origin[1] / pixel_size_m) * pixel_size_m)
    bounds = (
        west,
        south,
        west + round(width / pixel_size_m) * pixel_size_m,
        south + round(height / pixel_size_m) * pixel_size_m,
    )
    scene = Scene("railyard-" + spec.name, crs_wkt, bounds, pixel_size_m, [acq], seed=seed)
    scene.tracks = _layout(rng, bounds, spec)
    for track_id, line in scene.tracks:
        _place_consists(scene, rng, track_id, line, spec)
    corridor = shapely.union_all([ln for _, ln in scene.tracks]).buffer(14)
    add_countryside(scene, rng, keep_out=corridor, n_fields=4, n_tree_clumps=10)
    _add_sheds(scene, rng, spec.sheds)
    return scene


def _layout(
    rng: np.random.Generator, bounds: tuple[float, float, float, float], spec: YardStyle
) -> list[tuple[str, LineString]]:
    """One or two groups of parallel tracks, ``spec.spacing_m`` apart, straight or curved."""
    layout = GroupLayout(
        rows=(0.28, 0.28 + 0.44),
        length_m=(260.0, 380.0),
        tracks=(spec.tracks_per_group[0], spec.tracks_per_group[1] + 1),
        spacing_m=spec.spacing_m,
        curved_chance=0.35,
        min_length_m=100.0,
    )
    return random_track_groups(rng, bounds, YARD_SIZE_M, layout)


def _random_cars(rng: np.random.Generator, spec: YardStyle, room_m: float) -> list[tuple[CarType, float, tuple]]:
    """Cars (type, length, colour) whose bodies and ~1 m gaps fit in ``room_m``."""
    types = BROAD_TYPES if spec.broad_palette else CAR_TYPES
    cars: list[tuple[CarType, float, tuple]] = []
    used = 0.0
    while True:
        car = types[int(rng.integers(len(types)))]
        length = float(rng.uniform(*car.length_m))
        colour = np.asarray(car.colours[int(rng.integers(len(car.colours)))], float)
        colour = tuple(float(c) for c in np.clip(colour * rng.uniform(0.85, 1.15), 0.03, 0.9))
        if used + length > room_m:
            return cars
        cars.append((car, length, colour))
        used += length + 1.2


def _place_consists(scene: Scene, rng: np.random.Generator, track_id: str, line: LineString, spec: YardStyle) -> None:
    """Cars in one or two consists over about ``1 - spec.empty_share`` of the line; the rest empty track.

    Some tracks stay empty (one in six).  The consists sit anywhere along the line, so empty
    stretches lie at either end or between them.
    """
    if rng.random() < 1 / 6:
        return
    occupied = (1 - float(rng.uniform(*spec.empty_share))) * (line.length - 10)
    cars = _random_cars(rng, spec, occupied)
    if not cars:
        return
    need = sum(length for _, length, _ in cars) + 1.2 * (len(cars) - 1)
    split = int(rng.integers(1, len(cars))) if len(cars) > 3 and rng.random() < 0.5 else len(cars)
    slack = line.length - 10 - need
    gap = float(rng.uniform(12, max(12.0, 12 + slack * 0.6))) if split < len(cars) else 0.0
    pos = 5.0 + float(rng.uniform(0, max(slack - gap, 0.0)))
    date = scene.acquisitions[0].date
    for k, (car, length, colour) in enumerate(cars):
        if k == split:
            pos += gap
        if pos + length > line.length - 2:
            break
        car_id = f"railcar-{date}-{track_id}-{k + 1}"
        parts, extra = _car(car_id, car, line, pos, length, colour, rng)
        scene.structures.extend(parts)
        scene.truth.append(
            {"id": car_id, "kind": "railcar", "change": "railcar", "date": date, "track_id": track_id,
             "car_type": car.name, "length_m": round(length, 2), "height_m": car.height_m, **extra}
        )  # fmt: skip
        pos += length + float(rng.uniform(0.7, 1.3))


def _car(
    car_id: str,
    car: CarType,
    line: LineString,
    start: float,
    length: float,
    colour: tuple,
    rng: np.random.Generator,
) -> tuple[list[Structure], dict]:
    """A car's parts: the classic types by :func:`car_parts`, the broad palette's here."""
    if car.name in ("rusty-box", "long-hopper", "tarpaulin"):
        base = CarType("box" if car.name != "long-hopper" else "hopper", car.length_m, car.colours, car.height_m)
        return car_parts(car_id, base, line, start, length, colour, rng, index=0)
    if car.name == "empty-flat":
        # a bare deck 1.2 m up, 2.8 m wide: often the ballast's own colour
        deck = substring(line, start, start + length).buffer(1.4, cap_style="flat")
        part = Structure(f"{car_id}-deck", "railcar-part", deck, car.height_m, colour, 0, 1)
        return [part], {"geometry": deck, "loaded": False}
    if car.name == "container-flat":
        parts, extra = car_parts(car_id, CAR_TYPES[2], line, start, length, colour, rng, index=0)
        if len(parts) == 1:  # the classic flat car came out unloaded: load it
            box_len = 12.2 if length >= 13.0 else 6.1
            first = start + (length - box_len) / 2
            load = substring(line, first, first + box_len).buffer(1.22, cap_style="flat")
            rgb = tuple(float(c) for c in rng.uniform(0.1, 0.8, 3))
            parts.append(Structure(f"{car_id}-load-1", "railcar-part", load, 3.9, rgb, 0, 1))
            extra["loaded"] = True
        return parts, extra
    return car_parts(car_id, car, line, start, length, colour, rng, index=0)


def _add_sheds(scene: Scene, rng: np.random.Generator, most: int) -> None:
    """Up to ``most`` tall sheds 8-14 m beside a track, whose shadows may fall across the tracks."""
    for k in range(int(rng.integers(0, most + 1))):
        _, line = scene.tracks[int(rng.integers(len(scene.tracks)))]
        s = float(rng.uniform(0.2, 0.8)) * line.length
        p, q = line.interpolate(s), line.interpolate(min(s + 1.0, line.length))
        d = np.array([q.x - p.x, q.y - p.y])
        d /= max(np.hypot(*d), 1e-9)
        side = float(rng.choice([-1, 1]))
        others = shapely.union_all([ln for _, ln in scene.tracks]).buffer(3.5)
        for dist in np.arange(10.0, 40.0, 2.0):
            c = np.array([p.x, p.y]) + side * dist * np.array([-d[1], d[0]])
            shed = shapely.affinity.rotate(
                box(c[0] - 20, c[1] - 7, c[0] + 20, c[1] + 7),
                float(np.degrees(np.arctan2(d[1], d[0]))),
                origin=tuple(c),
            )
            if not shed.intersects(others.buffer(4)):
                roof = tuple(float(v) for v in rng.uniform(0.3, 0.7) * np.ones(3) + rng.uniform(-0.05, 0.05, 3))
                scene.structures.append(Structure(f"shed-{k}", "building", shed, float(rng.uniform(10, 18)), roof))
                break


def _crossovers(rng: np.random.Generator, scene: Scene, spec: YardStyle) -> list[LineString]:
    """Diagonal tracks joining neighbouring parallel tracks (crossovers, turnouts into a siding)."""
    out = []
    ids = dict(scene.tracks)
    for track_id, line in scene.tracks:
        nxt = track_id[:-1] + chr(ord(track_id[-1]) + 1)
        if nxt not in ids or rng.random() >= spec.crossovers:
            continue
        s = float(rng.uniform(0.1, 0.9)) * line.length
        a = line.interpolate(s)
        b = ids[nxt].interpolate(ids[nxt].project(a) + float(rng.choice([-1, 1])) * 30.0)
        out.append(LineString([(a.x, a.y), (b.x, b.y)]))
    return out


def _catenary(rng: np.random.Generator, scene: Scene) -> list[tuple[Point, LineString]]:
    """Masts beside each group every 50-65 m, each with a headspan across the group: (mast, span)."""
    out = []
    groups: dict[str, list[LineString]] = {}
    for track_id, line in scene.tracks:
        groups.setdefault(track_id[:-1], []).append(line)
    for lines in groups.values():
        first, last = lines[0], lines[-1]
        pitch = float(rng.uniform(50, 65))
        for s in np.arange(float(rng.uniform(0, pitch)), first.length, pitch):
            a = first.interpolate(s)
            b = last.interpolate(last.project(a))
            d = np.array([b.x - a.x, b.y - a.y])
            n = d / np.hypot(*d) if np.hypot(*d) > 1e-6 else np.array([0.0, 1.0])
            if len(lines) == 1:
                p, q = first.interpolate(s), first.interpolate(min(s + 1, first.length))
                t = np.array([q.x - p.x, q.y - p.y])
                n = np.array([-t[1], t[0]]) / max(np.hypot(*t), 1e-9)
            m0 = np.array([a.x, a.y]) - 3.0 * n
            m1 = np.array([b.x, b.y]) + 3.0 * n
            out.append((Point(*m0), LineString([tuple(m0), tuple(m1)])))
            out.append((Point(*m1), LineString([tuple(m0), tuple(m1)])))
    return out


def _paint_beds(canvas: np.ndarray, scene: Scene, look: YardLook, grid: _Canvas, crossovers: list[LineString]) -> None:
    """Ballast beds (or the whole yard gravel), weeds, sleepers and rails."""
    shape, transform = grid.shape, grid.transform
    world = np.random.default_rng([scene.seed, 17])
    texture = 1.0 + look.ballast_texture * fractal_noise(shape, 1.0, world)
    lines = [ln for _, ln in scene.tracks] + crossovers
    bed = _mask([ln.buffer(2.3, cap_style="flat") for ln in lines], shape, transform)
    ballast = np.asarray(look.ballast, np.float32)
    if look.ground == "gravel":
        # the whole yard one gravel, a little patchy; the beds the same stone
        patches = 1.0 + 0.06 * fractal_noise(shape, 2.5, world)
        canvas[:] = ballast[:, None, None] * (texture * patches)[None]
    else:
        _paint(canvas, bed, ballast, texture)
    if look.weeds > 0:
        # fractal noise is close to a unit normal: its (1 - weeds) quantile leaves ``weeds`` of it above
        weedy = fractal_noise(shape, 2.2, world) > float(stats.norm.ppf(1 - look.weeds))
        green = np.asarray((0.16, 0.27, 0.10), np.float32)
        _paint(canvas, weedy & (bed | (look.ground == "gravel")), green, texture)
    if look.sleeper_factor is not None:
        sleepers = []
        for ln in lines:
            for s in np.arange(0.3, ln.length, SLEEPER_PITCH_M):
                p, q = ln.interpolate(s), ln.interpolate(min(s + 0.05, ln.length))
                t = np.array([q.x - p.x, q.y - p.y]) / max(p.distance(q), 1e-9)
                h = SLEEPER_LENGTH_M / 2
                sleepers.append(LineString([(p.x - h * t[1], p.y + h * t[0]), (p.x + h * t[1], p.y - h * t[0])]))
        m = _mask(list(shapely.buffer(sleepers, SLEEPER_WIDTH_M / 2, cap_style="flat")), shape, transform)
        canvas[:, m] *= np.float32(look.sleeper_factor)
    rails = [
        ln.offset_curve(off).buffer(RAIL_HEAD_M, cap_style="flat")
        for ln in lines
        for off in (-RAIL_OFFSET_M, RAIL_OFFSET_M)
    ]
    m = _mask(rails, shape, transform)
    canvas[:, m] = ballast[:, None] * np.float32(look.rail_factor)


def _paint_catenary(canvas: np.ndarray, scene: Scene, grid: _Canvas, masts: list[tuple[Point, LineString]]) -> None:
    """Mast and headspan shadows (long, across the tracks), then masts and wires seen from above."""
    if not masts:
        return
    acq = scene.acquisitions[0]
    shape, transform = grid.shape, grid.transform
    dx, dy = acq.shadow_vector(MAST_HEIGHT_M)
    shade = []
    for mast, span in masts:
        tip = Point(mast.x + dx, mast.y + dy)
        shade.append(LineString([mast, tip]).buffer(0.2, cap_style="flat"))
        shade.append(shapely.affinity.translate(span, dx, dy).buffer(0.15, cap_style="flat"))
    wdx, wdy = acq.shadow_vector(WIRE_HEIGHT_M)
    wires = [ln.buffer(0.03) for _, ln in scene.tracks]
    shade.extend(shapely.affinity.translate(w, wdx, wdy) for w in wires)
    m = _mask(shade, shape, transform)
    canvas[:, m] *= np.asarray(SHADOW_TINT, np.float32)[:, None]
    dark = np.asarray((0.12, 0.12, 0.12), np.float32)
    _paint(canvas, _mask([span.buffer(0.1) for _, span in masts] + wires, shape, transform), dark)
    _paint(canvas, _mask([mast.buffer(0.25) for mast, _ in masts], shape, transform), (0.45, 0.45, 0.43))


def _render_styled(
    scene: Scene, look: YardLook, crossovers: list[LineString], masts: list[tuple[Point, LineString]]
) -> np.ndarray:
    """Paint the yard at twice the output resolution, bottom up, then :func:`_styled_sensor`."""
    acq = scene.acquisitions[0]
    rows, cols = scene.shape
    ss = 2
    shape = (rows * ss, cols * ss)
    west, _, _, north = scene.bounds
    step = scene.pixel_size_m / ss
    transform = Affine(step, 0.0, west, 0.0, -step, north)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    grid = _Canvas(shape, step, transform, west + (xx + 0.5) * step, north - (yy + 0.5) * step)
    world = np.random.default_rng([scene.seed, 7])
    canvas, _ = _ground(scene, acq, grid, world)
    if look.ground in ("soil", "grass"):
        base = (0.38, 0.31, 0.23) if look.ground == "soil" else (0.22, 0.31, 0.14)
        canvas[:] = np.asarray(base, np.float32)[:, None, None] * (1 + 0.08 * fractal_noise(shape, 1.5, world))[None]
    _paint_beds(canvas, scene, look, grid, crossovers)
    forest_tex = 1.0 + 0.25 * fractal_noise(shape, 1.6, world)
    _paint_trees(canvas, scene, acq, grid, forest_tex)
    _paint_structures(canvas, scene, 0, grid, world)
    _paint_catenary(canvas, scene, grid, masts)
    image = canvas.reshape(3, rows, ss, cols, ss).mean(axis=(2, 4))
    return _styled_sensor(image, scene, look)


def _styled_sensor(image: np.ndarray, scene: Scene, look: YardLook) -> np.ndarray:
    """Sun, colour cast, haze, blur, noise, then 8-bit (maybe JPEG) or 16-bit digital numbers."""
    acq = scene.acquisitions[0]
    irradiance = (0.85 * np.sin(np.radians(acq.sun_elevation_deg)) + 0.15) / (0.85 * np.sin(np.radians(65)) + 0.15)
    gain = np.asarray(look.cast, np.float32)[:, None, None] * irradiance
    haze = look.haze * np.asarray((0.6, 0.8, 1.2), np.float32)[:, None, None]
    image = np.stack([ndimage.gaussian_filter(band, look.blur_px) for band in image * gain + haze])
    sensor = np.random.default_rng([scene.seed, 101])
    noise = sensor.standard_normal(image.shape).astype(np.float32)
    image = image + noise * (look.noise + 0.01 * np.sqrt(np.clip(image, 0, None)))
    if look.bits16:
        return np.clip(np.round(image * DN16_FULL_SCALE), 0, 65535).astype(np.uint16)
    data = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    if look.jpeg_quality is None:
        return data
    buf = io.BytesIO()
    Image.fromarray(np.moveaxis(data, 0, -1)).save(buf, format="JPEG", quality=look.jpeg_quality)
    return np.moveaxis(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), -1, 0).copy()


def _given_lines(scene: Scene, seed: int, error_m: float) -> dict[str, np.ndarray]:
    """Track lines as given (an OpenStreetMap line, an AOI drawn on another basemap): one common
    shift of up to ``error_m`` in a random direction, each line a little more on its own, simplified."""
    rng = np.random.default_rng([seed, 98])
    angle = rng.uniform(0, 2 * np.pi)
    size = rng.uniform(0, error_m)
    common = (size * np.cos(angle), size * np.sin(angle))
    out = {}
    for track_id, line in scene.tracks:
        jitter = float(rng.uniform(-0.3, 0.3))
        moved = line.offset_curve(jitter) if abs(jitter) > 1e-6 else line
        moved = shapely.affinity.translate(LineString(moved.coords), *common).simplify(0.3)
        out[track_id] = _to_px(scene, moved)
    return out
