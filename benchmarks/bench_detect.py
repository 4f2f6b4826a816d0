"""Speed and memory of ``detect`` on an N x N, 4-band uint16 pair (``--size``, default 4096).

Writes a synthetic pair block by block, on disk (textured ground, 40 new roofs per 4096² with their shadows,
AFTER's georeference offset by a known sub-pixel shift) in the Hamhung AOI's UTM zone from its north-west
corner, then times in separate processes (the site's footprint widened to the whole scene, so every pixel is
searched; at 1 m the real footprint is 4000 m a side):

- reading both rasters whole (the floor any tool pays), and
- ``sitewatch.pipeline.detect`` with its defaults (writing nothing): blocks of 1024 px on all cores;
  ``--block-size 0`` runs the window whole as before tiling, ``--workers`` and ``--method`` as ``detect``'s.

Each child reports its wall time and its peak resident memory (``ru_maxrss``).

    .venv/bin/python benchmarks/bench_detect.py [--size 4096|8192|16384] [--keep DIR [--reuse]]
        [--workers N] [--block-size PX] [--method NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
AOI = ROOT / "aoi" / "hamhung-feb11-plant.geojson"
SHIFT = (2.3, -1.7)


# The pair is written in blocks of this many pixels a side, so a 16384 x 16384 pair is made in
# bounded memory; the ground's noise comes in cells seeded by their position, so blocks join
# seamlessly.
BLOCK = 1024
CELL = 256
SMOOTH = (2.0, 12.0)  # gaussian sigmas (px) of the ground's fine and coarse texture
BUILDINGS_PER_4096 = 40  # new roofs planted per 4096 x 4096 px, the same density at every size


def _noise(r0: int, c0: int, rows: int, cols: int, sigma: float, seed: int) -> np.ndarray:
    """Gaussian-smoothed white noise (unit variance) over rows x cols at (r0, c0), the same whichever block asks."""
    from scipy import ndimage

    halo = int(4 * sigma) + 1
    top, left = r0 - halo, c0 - halo
    cr0, cc0 = top // CELL, left // CELL
    cr1, cc1 = (r0 + rows + halo) // CELL + 1, (c0 + cols + halo) // CELL + 1
    field = np.concatenate(
        [
            np.concatenate(
                [
                    np.random.default_rng([seed, int(sigma * 10), cr + 1000, cc + 1000]).standard_normal(
                        (CELL, CELL), dtype=np.float32
                    )
                    for cc in range(cc0, cc1)
                ],
                axis=1,
            )
            for cr in range(cr0, cr1)
        ],
        axis=0,
    )
    field = ndimage.gaussian_filter(field, sigma)
    r, c = top - cr0 * CELL + halo, left - cc0 * CELL + halo
    # unit white noise smoothed by a gaussian of sigma has standard deviation 1 / (2 sqrt(pi) sigma)
    return field[r : r + rows, c : c + cols] * (2.0 * np.sqrt(np.pi) * sigma)


def _buildings(size: int) -> list[tuple[int, int, int, int]]:
    """(row, col, height, width) of each planted roof, in pixels."""
    rng = np.random.default_rng(0)
    n = max(1, round(BUILDINGS_PER_4096 * (size / 4096) ** 2))
    return [(*rng.integers(100, size - 100, 2), *rng.integers(10, 40, 2)) for _ in range(n)]


def _block(r0: int, c0: int, rows: int, cols: int, roofs: list, after: bool) -> np.ndarray:
    ground = 0.6 * _noise(r0, c0, rows, cols, SMOOTH[0], 0) + 0.4 * _noise(r0, c0, rows, cols, SMOOTH[1], 1)
    levels = np.array([900.0, 1100.0, 1000.0, 2200.0])[:, None, None]
    data = levels + 180.0 * ground[None] * np.array([1.0, 0.9, 0.8, 1.3])[:, None, None]
    if not after:
        return data
    for r, c, h, w in roofs:  # new pale roofs, 10-40 m, each with its shadow to the south
        shadow = (
            slice(max(r + h - r0, 0), max(r + h + max(3, h // 3) - r0, 0)),
            slice(max(c - c0, 0), max(c + w - c0, 0)),
        )
        data[:, shadow[0], shadow[1]] *= 0.35
        roof = (slice(max(r - r0, 0), max(r + h - r0, 0)), slice(max(c - c0, 0), max(c + w - c0, 0)))
        data[:, roof[0], roof[1]] = np.array([2600.0, 2500.0, 2400.0, 2300.0])[:, None, None]
    noise = np.random.default_rng([7, r0, c0]).normal(0, 15, data.shape)
    return data + noise


def generate(folder: Path, size: int) -> tuple[Path, Path]:
    """Write the pair block by block (memory bounded by one block, whatever the size).

    AFTER holds the same ground with the new roofs, and its georeference is offset by
    :data:`SHIFT` pixels: a misregistration as a sensor makes one, with no resampling.
    """
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from sitewatch.aoi import load_aoi

    site = load_aoi(AOI)
    crs = site.utm_crs()
    west, _, _, north = _bounds(site, crs)
    roofs = _buildings(size)
    paths = []
    for name, after in (("2023-01-01.tif", False), ("2024-01-01.tif", True)):
        origin = (west + SHIFT[0], north - SHIFT[1]) if after else (west, north)
        path = folder / name
        profile = dict(driver="GTiff", width=size, height=size, count=4, dtype="uint16", crs=crs)
        profile.update(transform=from_origin(*origin, 1.0, 1.0), tiled=True, blockxsize=512, blockysize=512)
        with rasterio.open(path, "w", compress="deflate", BIGTIFF="IF_SAFER", **profile) as dst:
            for r0 in range(0, size, BLOCK):
                for c0 in range(0, size, BLOCK):
                    rows, cols = min(BLOCK, size - r0), min(BLOCK, size - c0)
                    data = _block(r0, c0, rows, cols, roofs, after)
                    dst.write(np.clip(data, 0, 65535).astype(np.uint16), window=Window(c0, r0, cols, rows))
        paths.append(path)
    return paths[0], paths[1]


def _bounds(site, crs):
    import shapely
    from pyproj import Transformer

    to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return shapely.transform(site.footprint, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))).bounds


def _site_over(image: str):
    """The Hamhung site with its footprint widened to the whole image: every pixel of the scene is searched."""
    import dataclasses

    import rasterio
    from rasterio.warp import transform_bounds
    from shapely.geometry import box

    from sitewatch.aoi import AOIFeature, load_aoi

    site = load_aoi(AOI)
    with rasterio.open(image) as src:
        lonlat = box(*transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21))
    footprint = AOIFeature("footprint", "the whole benchmark scene", lonlat, "benchmark")
    features = tuple(f for f in site.features if f.role != "footprint") + (footprint,)
    return dataclasses.replace(site, features=features)


def child(mode: str, before: str, after: str, options: str = "{}") -> None:
    t0 = time.perf_counter()
    if mode == "generate":
        generate(Path(before), int(after))
        return
    if mode == "read":
        import rasterio

        for p in (before, after):  # every pixel, block by block (the floor any tool pays, in bounded memory)
            with rasterio.open(p) as src:
                for _, window in src.block_windows(1):
                    src.read(window=window)
        extra = {}
    else:
        from sitewatch.pipeline import detect
        from sitewatch.pipeline.detect import Tiling

        opts = json.loads(options)
        tiling = Tiling(block_px=opts.get("block_px") or None, workers=opts.get("workers"))
        result = detect(before, after, _site_over(before), method=opts.get("method", "building"), tiling=tiling)
        extra = {
            "blocks": result.summary["stats"].get("blocks", 1),
            "shift_px": result.summary["shift"]["shift_px"],
            "objects": len(result.objects),
            "window": [result.summary["window"]["cols"], result.summary["window"]["rows"]],
            "timings": result.summary["timings"],
        }
    seconds = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "seconds": seconds, "peak_mib": peak_mib, **extra}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--keep", type=Path, help="Write the pair here and keep it.")
    ap.add_argument("--reuse", action="store_true", help="With --keep: use the pair already there.")
    ap.add_argument("--workers", type=int, help="Threads over blocks (detect --workers) [default: all cores].")
    ap.add_argument("--block-size", type=int, default=1024, help="detect --block-size; 0 runs the window whole.")
    ap.add_argument("--method", default="building", help="detect --method [default: building].")
    ap.add_argument("--child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        before, after = folder / "2023-01-01.tif", folder / "2024-01-01.tif"
        if not (args.reuse and before.exists() and after.exists()):
            subprocess.run([sys.executable, __file__, "--child", "generate", str(folder), str(args.size)], check=True)
        options = json.dumps({"workers": args.workers, "block_px": args.block_size, "method": args.method})
        print(
            f"pair: {args.size} x {args.size}, 4 bands uint16, written in {time.perf_counter() - t:.1f} s; "
            f"true shift {SHIFT[0]:+.2f}, {SHIFT[1]:+.2f} px"
        )
        rows = {}
        for mode in ("read", "detect"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(before), str(after), options],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows[mode] = json.loads(out.strip().splitlines()[-1])
        mpx = args.size * args.size / 1e6
        r, d = rows["read"], rows["detect"]
        print(f"read both rasters : {r['seconds']:6.2f} s   peak {r['peak_mib']:6.0f} MiB")
        print(
            f"detect            : {d['seconds']:6.2f} s   peak {d['peak_mib']:6.0f} MiB   "
            f"{mpx / d['seconds']:.2f} Mpx/s (per image pixel), {d['seconds'] / r['seconds']:.0f}x the read time"
        )
        print(
            f"  window {d['window'][0]} x {d['window'][1]} px in {d['blocks']} block(s), method {args.method}, "
            f"workers {args.workers or os.cpu_count()}, shift found {d['shift_px']}, {d['objects']} objects"
        )
        print(f"  stages: {d['timings']}")


if __name__ == "__main__":
    main()
