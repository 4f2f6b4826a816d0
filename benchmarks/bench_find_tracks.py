"""Tracks found in the image (``railcars --find-tracks``) against the synthetic yards' true centrelines.

Each scene is a random yard of a named style (:mod:`sitewatch.synth.yards`, as in
``bench_railcars.py``); :func:`sitewatch.railcars.find.find_tracks` gets the rendered image
and its pixel size only.  A true track is *found* when one found line lies within
``MATCH_MEAN_M`` of its centreline on average and covers at least ``MATCH_COVER`` of its
length inside the image (a true point is covered where the found line passes within
``COVER_RADIUS_M`` of it, its nearest point not one of the found line's ends).  A found line
is *false* when less than half of it lies within ``COVER_RADIUS_M`` of any true track.

    .venv/bin/python benchmarks/bench_find_tracks.py --style classic gravel weedy --first-seed 0 --scenes 12
    .venv/bin/python benchmarks/bench_find_tracks.py --count      # also count railcars on the found lines

Prints per style and pixel size: tracks, the share found, the mean and median distance (m)
of the found tracks' matched lines, false lines per scene and in all; with ``--count`` the
railcar counts' total absolute error (sum over true tracks of |found - true|, plus the cars
counted on false lines, over the true total) with found lines and, in the same run, with the
given lines.

Tuning record: the finder's constants (:mod:`sitewatch.railcars.find`) were chosen on the
``TUNED_STYLES`` at seeds 0-11; the ``HELD_OUT_STYLES`` were not looked at while tuning.
The benchmark's seeds start at ``FIRST_SEED``.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from pyproj import CRS
from shapely.geometry import LineString, box

from sitewatch.railcars import count_railcars, shadow_geometry
from sitewatch.railcars.find import find_tracks
from sitewatch.synth.yards import STYLES, styled_yard

CRS_WKT = CRS.from_epsg(32652).to_wkt()
FIRST_SEED = 1000
TUNED_STYLES = ("classic", "gravel", "weedy")
HELD_OUT_STYLES = ("catenary", "soft-sensor", "mixed")
MATCH_MEAN_M = 0.5
MATCH_COVER = 0.8
COVER_RADIUS_M = 1.5
SAMPLE_M = 1.0


def match(true_px: dict[str, np.ndarray], found_px: list[np.ndarray], shape: tuple[int, int], pixel_size_m: float):
    """For each true track: (index of the found line matched or -1, its mean distance m, cover share);
    and for each found line whether it is false."""
    frame = box(0, 0, shape[1], shape[0])
    found_lines = [LineString(f) for f in found_px]
    radius = COVER_RADIUS_M / pixel_size_m
    per_true = {}
    for tid, px in true_px.items():
        inside = LineString(px).intersection(frame)
        if inside.is_empty:
            continue
        if inside.geom_type != "LineString":
            inside = max(inside.geoms, key=lambda g: g.length)
        pts = [inside.interpolate(d) for d in np.arange(0.0, inside.length + 1e-9, SAMPLE_M / pixel_size_m)]
        best = (-1, float("inf"), 0.0)
        for k, fl in enumerate(found_lines):
            dist = np.array([fl.distance(p) for p in pts])
            at = np.array([fl.project(p) for p in pts])
            covered = (dist <= radius) & (at > 1e-6) & (at < fl.length - 1e-6)
            share = float(covered.mean())
            if share == 0:
                continue
            mean_m = float(dist[covered].mean() * pixel_size_m)
            if share > best[2]:
                best = (k, mean_m, share)
        per_true[tid] = best
    true_lines = [LineString(px) for px in true_px.values()]
    false = []
    for fl in found_lines:
        pts = [fl.interpolate(d) for d in np.arange(0.0, fl.length + 1e-9, SAMPLE_M / pixel_size_m)]
        near = max(np.mean([tl.distance(p) <= radius for p in pts]) for tl in true_lines) if true_lines else 0.0
        false.append(bool(near < 0.5))
    return per_true, false


def one_scene(args: tuple[str, int, float, bool]) -> dict:
    style, seed, pixel_size_m, count = args
    yard = styled_yard(seed, pixel_size_m, style, crs_wkt=CRS_WKT, origin=(700000.0, 4700000.0))
    t0 = time.perf_counter()
    found = find_tracks(yard.image, pixel_size_m=pixel_size_m)
    seconds = time.perf_counter() - t0
    per_true, false = match(yard.true_lines_px, [f.line_px for f in found], yard.image.shape[1:], pixel_size_m)
    out = {"per_true": per_true, "false": false, "seconds": seconds, "n_found": len(found)}
    if count:
        sun = shadow_geometry(yard.sun_azimuth_deg, yard.sun_elevation_deg, yard.transform)
        given = count_railcars(yard.image, yard.lines_px, pixel_size_m=pixel_size_m, sun=sun)
        out["given_err"] = sum(abs(t.count - yard.counts[t.track_id]) for t in given.tracks)
        if found:
            lines = {f"found-{k + 1}": f.line_px for k, f in enumerate(found)}
            res = count_railcars(yard.image, lines, pixel_size_m=pixel_size_m, sun=sun)
            counts = [t.count for t in res.tracks]
        else:
            counts = []
        err = 0
        for tid, (k, mean_m, share) in per_true.items():
            ok = k >= 0 and share >= MATCH_COVER and mean_m <= MATCH_MEAN_M * 2
            err += abs((counts[k] if ok else 0) - yard.counts[tid])
        err += sum(c for c, f in zip(counts, false) if f)
        out["found_err"] = err
        out["cars"] = sum(yard.counts[t] for t in per_true)
    return out


def summary(scenes: list[dict]) -> dict:
    rows = [v for s in scenes for v in s["per_true"].values()]
    found = [(m, c) for k, m, c in rows if k >= 0 and m <= MATCH_MEAN_M and c >= MATCH_COVER]
    dists = np.array([m for m, _ in found])
    out = {
        "scenes": len(scenes),
        "tracks": len(rows),
        "found": len(found) / max(len(rows), 1),
        "mean_m": float(dists.mean()) if len(dists) else float("nan"),
        "median_m": float(np.median(dists)) if len(dists) else float("nan"),
        "false": sum(sum(s["false"]) for s in scenes),
        "seconds": float(np.mean([s["seconds"] for s in scenes])),
    }
    if scenes and "cars" in scenes[0]:
        cars = max(sum(s["cars"] for s in scenes), 1)
        out["found_err"] = sum(s["found_err"] for s in scenes) / cars
        out["given_err"] = sum(s["given_err"] for s in scenes) / cars
    return out


HEADER = (
    f"{'style':>12s} {'pixel':>6s} {'scenes':>6s} {'tracks':>6s} {'found':>7s} {'mean m':>7s} {'median m':>8s} "
    f"{'false':>6s} {'false/sc':>8s} {'s/scene':>8s}"
)


def line(style: str, pixel_size_m: float, s: dict) -> str:
    text = (
        f"{style:>12s} {pixel_size_m:5.1f}m {s['scenes']:6d} {s['tracks']:6d} {s['found']:7.1%} {s['mean_m']:7.2f} "
        f"{s['median_m']:8.2f} {s['false']:6d} {s['false'] / max(s['scenes'], 1):8.2f} {s['seconds']:8.2f}"
    )
    if "found_err" in s:
        text += f"   count abs err: found lines {s['found_err']:6.1%}, given lines {s['given_err']:6.1%}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=12, help="scenes per style and pixel size")
    parser.add_argument("--gsd", dest="pixel_sizes_m", type=float, nargs="*", default=[0.3, 0.5, 1.0])
    parser.add_argument("--style", dest="styles", nargs="*", choices=list(STYLES), default=list(STYLES))
    parser.add_argument("--workers", type=int, default=1, help="processes (1: run in this one)")
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED)
    parser.add_argument("--count", action="store_true", help="also count railcars on found and on given lines")
    parser.add_argument("--per-track", action="store_true", help="print every true track's match")
    args = parser.parse_args()
    print(HEADER)
    pool = ProcessPoolExecutor(args.workers) if args.workers > 1 else None
    mapper = pool.map if pool is not None else map
    results: dict[tuple[str, float], list] = {}
    for pixel_size_m in args.pixel_sizes_m:
        for style in args.styles:
            jobs = [(style, args.first_seed + k, pixel_size_m, args.count) for k in range(args.scenes)]
            scenes = list(mapper(one_scene, jobs))
            results[style, pixel_size_m] = scenes
            print(line(style, pixel_size_m, summary(scenes)), flush=True)
            if args.per_track:
                for (_, seed, _, _), sc in zip(jobs, scenes):
                    for tid, (k, m, c) in sc["per_true"].items():
                        print(f"  {style}\t{pixel_size_m}\t{seed}\t{tid}\tline {k}\tmean {m:.2f} m\tcover {c:.0%}")
                    print(f"  {style}\t{pixel_size_m}\t{seed}\tfound {sc['n_found']}, false {sum(sc['false'])}")
        for label, group in (("tuned", TUNED_STYLES), ("held-out", HELD_OUT_STYLES)):
            pooled = [r for st in group if (st, pixel_size_m) in results for r in results[st, pixel_size_m]]
            if pooled and len(args.styles) > 1:
                print(line(label, pixel_size_m, summary(pooled)), flush=True)
    if pool is not None:
        pool.shutdown()


if __name__ == "__main__":
    main()
