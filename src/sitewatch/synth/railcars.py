"""Railcars for synthetic scenes, and random rail yards with known counts.

A railcar is drawn as one or more :class:`~sitewatch.synth.scene.Structure` parts (tank on
an underframe, deck plus load, gondola walls plus interior), each with its own height so
shadows come out right; the truth lists one record per car.  :func:`railyard_scene` lays
out a random yard (parallel tracks 4-5 m apart, straight or curved, consists of mixed cars
with ~1 m gaps, random sun and season) for the counting benchmark and tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString, Point, box
from shapely.ops import substring

from .scene import DIRT_ROAD, Acquisition, Scene, Structure, add_countryside

# the generator keeps its own car dimensions rather than importing the counter's, so the
# benchmark does not share the counter's assumptions by construction
CAR_WIDTH_M = 3.1


@dataclass(frozen=True)
class CarType:
    """A family of freight cars: length range over the body, body colours, height."""

    name: str
    length_m: tuple[float, float]
    colours: tuple[tuple[float, float, float], ...]
    height_m: float


CAR_TYPES = (
    CarType("tank", (12.0, 18.0), ((0.07, 0.07, 0.08), (0.62, 0.62, 0.62)), 4.3),
    CarType("box", (14.0, 17.0), ((0.36, 0.18, 0.12), (0.20, 0.30, 0.48), (0.25, 0.32, 0.25)), 4.6),
    CarType("flat", (13.0, 20.0), ((0.46, 0.43, 0.39), (0.70, 0.30, 0.15), (0.15, 0.35, 0.60)), 1.4),
    CarType("gondola", (12.5, 15.0), ((0.10, 0.10, 0.10), (0.42, 0.25, 0.16)), 3.3),
    CarType("hopper", (14.0, 25.0), ((0.55, 0.52, 0.45), (0.30, 0.30, 0.32)), 4.2),
)
# what rides on a flat car or fills a gondola
CONTAINER_COLOURS = ((0.55, 0.20, 0.12), (0.18, 0.32, 0.55), (0.75, 0.75, 0.72), (0.22, 0.40, 0.25))
GONDOLA_LOADS = ((0.06, 0.06, 0.06), (0.40, 0.22, 0.14), (0.50, 0.47, 0.42))


def _direction_deg(line: LineString, start: float, end: float) -> float:
    a = line.interpolate(start)
    b = line.interpolate(end)
    return float(np.degrees(np.arctan2(b.y - a.y, b.x - a.x)))


def car_parts(
    car_id: str,
    car: CarType,
    line: LineString,
    start: float,
    length: float,
    colour: tuple[float, float, float],
    rng: np.random.Generator,
    *,
    index: int,
) -> tuple[list[Structure], dict]:
    """The drawable parts of one car occupying ``line`` from ``start`` to ``start + length`` metres.

    Returns the parts (visible in acquisition ``index`` only) and extra truth properties.
    """
    half = CAR_WIDTH_M / 2
    body = substring(line, start, start + length).buffer(half, cap_style="flat")
    angle = _direction_deg(line, start, start + length)

    def part(suffix: str, geom, height: float, rgb, pitched: bool = False) -> Structure:
        return Structure(
            f"{car_id}-{suffix}",
            "railcar-part",
            geom,
            height,
            tuple(float(v) for v in rgb),
            appears=index,
            disappears=index + 1,
            pitched=pitched,
            ridge_angle_deg=angle,
        )

    extra: dict = {}
    if car.name == "tank":
        # a cylinder on an underframe: the frame shows dark at both ends, the tank is lit on one side
        frame = substring(line, start, start + length).buffer(half - 0.35, cap_style="flat")
        tank = substring(line, start + 0.7, start + length - 0.7).buffer(half - 0.1, cap_style="flat")
        parts = [part("frame", frame, 1.3, (0.09, 0.09, 0.09)), part("tank", tank, car.height_m, colour, pitched=True)]
    elif car.name == "flat":
        parts = [part("deck", body, car.height_m, colour)]
        loaded = bool(rng.random() < 0.5)
        extra["loaded"] = loaded
        if loaded:
            box_len = 12.2 if length >= 14.0 and rng.random() < 0.6 else 6.1
            n_boxes = 2 if box_len == 6.1 and length >= 14.0 and rng.random() < 0.5 else 1
            span = n_boxes * box_len + (n_boxes - 1) * 0.4
            first = start + (length - span) / 2
            for k in range(n_boxes):
                s0 = first + k * (box_len + 0.4)
                load = substring(line, s0, s0 + box_len).buffer(1.22, cap_style="flat")
                rgb = CONTAINER_COLOURS[int(rng.integers(len(CONTAINER_COLOURS)))]
                parts.append(part(f"load-{k + 1}", load, car.height_m + 2.6, rgb))
    elif car.name == "gondola":
        inner = substring(line, start + 0.25, start + length - 0.25).buffer(half - 0.25, cap_style="flat")
        load = GONDOLA_LOADS[int(rng.integers(len(GONDOLA_LOADS)))]
        parts = [part("walls", body, car.height_m, colour), part("load", inner, car.height_m + 0.01, load)]
    else:
        parts = [part("body", body, car.height_m, colour, pitched=car.name == "box")]
    return parts, {"geometry": body, **extra}


def _length_needed(cars: list[tuple[CarType, float, tuple]], end_margin_m: float) -> float:
    """Track length that ``cars`` (type, length, colour) need: bodies, the widest coupler gaps,
    both end margins and room for a 12 m gap between two consists."""
    return sum(length for _, length, _ in cars) + 1.2 * max(len(cars) - 1, 0) + 2 * end_margin_m + 12.0


def place_cars(
    scene: Scene,
    rng: np.random.Generator,
    tracks: list[tuple[str, LineString]],
    counts: list[int] | np.ndarray,
    index: int,
    *,
    end_margin_m: float = 5.0,
    drop_what_does_not_fit: bool = False,
) -> None:
    """Put ``counts[i]`` railcars in one or two coupled consists on ``tracks[i]``, visible in image ``index``.

    Cars in a consist are 0.8-1.2 m apart (coupler gap).  Raises ``ValueError`` when a track is
    too short for its cars, unless ``drop_what_does_not_fit``: then the last cars drawn are
    left off until the rest fit (a random yard whose lengths came out long).
    """
    date = scene.acquisitions[index].date
    for (track_id, line), n in zip(tracks, counts):
        n = int(n)
        cars = []
        for _ in range(n):
            car = CAR_TYPES[int(rng.integers(len(CAR_TYPES)))]
            cars.append((car, float(rng.uniform(*car.length_m)), car.colours[int(rng.integers(len(car.colours)))]))
        while drop_what_does_not_fit and cars and _length_needed(cars, end_margin_m) > line.length:
            cars.pop()
        n = len(cars)
        need = _length_needed(cars, end_margin_m)
        if need > line.length:
            raise ValueError(f"track {track_id} is {line.length:.0f} m long, too short for {n} cars")
        split = int(rng.integers(1, n)) if n > 3 and rng.random() < 0.6 else n
        slack = line.length - need
        pos = end_margin_m + float(rng.uniform(0, slack * 0.5))
        for k, (car, length, colour) in enumerate(cars):
            if k == split:
                pos += float(rng.uniform(12, 12 + slack * 0.4))
            car_id = f"railcar-{date}-{track_id}-{k + 1}"
            parts, extra = car_parts(car_id, car, line, pos, length, colour, rng, index=index)
            scene.structures.extend(parts)
            scene.truth.append(
                {
                    "id": car_id,
                    "kind": "railcar",
                    "change": "railcar",
                    "date": date,
                    "height_m": car.height_m,
                    "track_id": track_id,
                    "car_type": car.name,
                    "length_m": round(length, 2),
                    **extra,
                }
            )
            pos += length + float(rng.uniform(0.8, 1.2))


def _track_group(
    rng: np.random.Generator, centre: tuple[float, float], length: float, n_tracks: int, spacing: float, curved: bool
) -> list[LineString]:
    """``n_tracks`` parallel centrelines ``spacing`` metres apart, straight or on an arc."""
    cx, cy = centre
    heading = rng.uniform(-30, 30)
    if curved:
        radius = rng.uniform(250, 600)
        sweep = length / radius
        t = np.linspace(-sweep / 2, sweep / 2, 80)
        xs = cx + radius * np.sin(t)
        ys = cy + radius * (1 - np.cos(t)) * rng.choice([-1, 1])
        base = LineString(np.column_stack([xs, ys]))
    else:
        base = LineString([(cx - length / 2, cy), (cx + length / 2, cy)])
    base = shapely.affinity.rotate(base, heading, origin=(cx, cy))
    offsets = (np.arange(n_tracks) - (n_tracks - 1) / 2) * spacing
    lines = []
    for off in offsets:
        ln = base if abs(off) < 1e-9 else base.offset_curve(float(off))
        lines.append(LineString(ln.coords))
    return lines


@dataclass(frozen=True)
class GroupLayout:
    """How :func:`random_track_groups` lays out its groups (the defaults are the original yard's).

    ``rows`` are the two groups' centres as shares of the yard's height; lengths, track counts
    (``rng.integers`` bounds, upper exclusive) and spacings are drawn uniformly.
    """

    rows: tuple[float, float] = (0.3, 0.3 + 0.4)  # as first written, to the last bit
    length_m: tuple[float, float] = (220.0, 340.0)
    tracks: tuple[int, int] = (1, 4)
    spacing_m: tuple[float, float] = (4.0, 5.0)
    curved_chance: float = 0.4
    min_length_m: float = 80.0


def random_track_groups(
    rng: np.random.Generator,
    bounds: tuple[float, float, float, float],
    size: tuple[float, float],
    layout: GroupLayout = GroupLayout(),
) -> list[tuple[str, LineString]]:
    """One or two groups of parallel tracks across a yard of ``size`` (width, height) metres.

    Groups do not cross or run within 20 m of each other; a group that cannot be laid out in
    20 attempts is left out.  Returns (track id, line) pairs, ids ``track-<group><a|b|c...>``.
    """
    west, south = bounds[0], bounds[1]
    width, height = size
    frame = box(*bounds).buffer(-6)
    n_groups = int(rng.integers(1, 3))
    tracks: list[tuple[str, LineString]] = []
    for g in range(n_groups):
        cy = south + height * layout.rows[g] if n_groups == 2 else south + height / 2
        for _attempt in range(20):
            lines = _track_group(
                rng,
                (west + width / 2 + rng.uniform(-20, 20), cy + rng.uniform(-8, 8)),
                float(rng.uniform(*layout.length_m)),
                int(rng.integers(*layout.tracks)),
                float(rng.uniform(*layout.spacing_m)),
                curved=bool(rng.random() < layout.curved_chance),
            )
            lines = [ln.intersection(frame) for ln in lines]
            lines = [ln for ln in lines if ln.geom_type == "LineString" and ln.length > layout.min_length_m]
            if lines and not any(ln.distance(other) < 20 for ln in lines for _, other in tracks):
                break
        else:
            continue
        tracks.extend((f"track-{g + 1}{'abcdefgh'[k]}", ln) for k, ln in enumerate(lines))
    return tracks


def railyard_scene(seed: int, pixel_size_m: float, *, crs_wkt: str, origin: tuple[float, float] = (0.0, 0.0)) -> Scene:
    """A random single-date rail yard with known railcars, for counting benchmarks and tests.

    One or two groups of 1-3 parallel tracks (4-5 m apart, straight or curved, any heading
    within 30 degrees of east), each with 0-14 cars of mixed types in one or two consists,
    on a countryside background with a random season and sun.

    Parameters
    ----------
    seed : int
        Everything random follows from it.
    pixel_size_m : float
        Pixel size in metres.
    crs_wkt : str
        Projected CRS of the scene (metres).
    origin : (float, float)
        South-west corner of the scene in that CRS.
    """
    rng = np.random.default_rng([seed, 4242])
    season = str(rng.choice(["spring", "summer", "autumn"]))
    elevation = float(rng.uniform(25, 70))
    azimuth = float(rng.uniform(100, 260))
    gain = tuple(float(g) for g in rng.uniform(0.8, 1.2, 3))
    haze = float(rng.uniform(0.0, 0.05))
    acq = Acquisition("2024-01-01", season, azimuth, elevation, gain, (haze * 0.6, haze * 0.8, haze * 1.2), (0.0, 0.0))
    width, height = 420.0, 200.0
    x0, y0 = origin
    west = np.floor(x0 / pixel_size_m) * pixel_size_m
    south = np.floor(y0 / pixel_size_m) * pixel_size_m
    bounds = (
        float(west),
        float(south),
        float(west + round(width / pixel_size_m) * pixel_size_m),
        float(south + round(height / pixel_size_m) * pixel_size_m),
    )
    scene = Scene("railyard", crs_wkt, bounds, pixel_size_m, [acq], seed=seed)

    tracks = random_track_groups(rng, bounds, (width, height))
    scene.tracks = tracks
    counts = []
    for _, ln in tracks:
        capacity = int((ln.length - 30) // 18.5)
        counts.append(int(rng.integers(0, min(14, capacity) + 1)))
    # the capacity allows for average cars; a track whose cars came out long gets fewer
    place_cars(scene, rng, tracks, counts, 0, drop_what_does_not_fit=True)

    corridor = shapely.union_all([ln for _, ln in tracks]).buffer(14)
    road = LineString([(west, south + rng.uniform(5, 30)), (west + width, south + rng.uniform(5, 30))]).buffer(3.5)
    if not road.intersects(corridor):
        scene.roads.append((road, DIRT_ROAD))
    add_countryside(scene, rng, keep_out=corridor.union(road.buffer(4)), n_fields=4, n_tree_clumps=10)
    # a few trees right beside the tracks: their shadows fall across the ballast
    for _ in range(int(rng.integers(0, 4))):
        tid, ln = tracks[int(rng.integers(len(tracks)))]
        p = ln.interpolate(float(rng.uniform(0, ln.length)))
        q = Point(p.x, p.y + rng.choice([-1, 1]) * rng.uniform(9, 13))
        if not q.buffer(4).intersects(corridor.buffer(-9)):
            scene.trees.append((q.x, q.y, float(rng.uniform(2.0, 3.5))))
    return scene


def drawn_track_lines(
    scene: Scene, seed: int, *, max_shift_px: float = 2.5, jitter_m: float = 0.3, simplify_m: float = 0.2
) -> dict[str, np.ndarray]:
    """Track lines as an analyst would draw them: a little off, in pixel coordinates (col, row).

    Every line is moved by one common shift of up to ``max_shift_px`` pixels in a random
    direction (an AOI drawn over a misregistered basemap), then each sideways by up to
    ``jitter_m`` metres on its own, and simplified (hand-drawn curves have few vertices).
    """
    from shapely import affinity

    rng = np.random.default_rng([seed, 99])
    angle = rng.uniform(0, 2 * np.pi)
    size = rng.uniform(0, max_shift_px) * scene.pixel_size_m
    common = (size * np.cos(angle), size * np.sin(angle))
    west, _, _, north = scene.bounds
    lines = {}
    for track_id, line in scene.tracks:
        jitter = float(rng.uniform(-jitter_m, jitter_m))
        moved = line.offset_curve(jitter) if abs(jitter) > 1e-6 else line
        moved = affinity.translate(LineString(moved.coords), *common).simplify(simplify_m)
        xy = np.asarray(moved.coords)
        lines[track_id] = np.column_stack(
            [(xy[:, 0] - west) / scene.pixel_size_m, (north - xy[:, 1]) / scene.pixel_size_m]
        )
    return lines
