"""Speed and memory of ``detect`` on a 4096 x 4096, 4-band uint16 pair.

Writes a synthetic pair (textured ground, 40 planted buildings with their shadows, a known sub-pixel shift) in
the Hamhung AOI's UTM zone, covering its footprint, then times in separate processes:

- reading both rasters whole (the floor any tool pays), and
- ``sitewatch.pipeline.detect`` with its defaults (writing nothing).

Each child reports its wall time and its peak resident memory (``ru_maxrss``).

    .venv/bin/python benchmarks/bench_detect.py [--size 4096] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
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


def _texture(shape, rng, smooth):
    from scipy import ndimage

    t = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), smooth)
    return (t - t.mean()) / (t.std() + 1e-6)


def generate(folder: Path, size: int) -> tuple[Path, Path]:
    import rasterio
    from rasterio.transform import from_origin
    from scipy import ndimage

    from sitewatch.aoi import load_aoi

    site = load_aoi(AOI)
    crs = site.utm_crs()
    west, _, _, north = _bounds(site, crs)
    rng = np.random.default_rng(0)
    ground = 0.6 * _texture((size, size), rng, 2.0) + 0.4 * _texture((size, size), rng, 12.0)
    levels = np.array([900.0, 1100.0, 1000.0, 2200.0])[:, None, None]
    before = levels + 180.0 * ground[None] * np.array([1.0, 0.9, 0.8, 1.3])[:, None, None]
    after = before.copy()
    for _ in range(40):  # new pale roofs, 10-40 m, each with its shadow to the south
        r, c = rng.integers(100, size - 100, 2)
        h, w = rng.integers(10, 40, 2)
        after[:, r + h : r + h + max(3, h // 3), c : c + w] *= 0.35
        after[:, r : r + h, c : c + w] = np.array([2600.0, 2500.0, 2400.0, 2300.0])[:, None, None]
    after = np.stack([ndimage.shift(b, (SHIFT[1], SHIFT[0]), order=1, mode="nearest") for b in after])
    after += rng.normal(0, 15, after.shape).astype(np.float32)
    paths = []
    for name, data in (("2023-01-01.tif", before), ("2024-01-01.tif", after)):
        path = folder / name
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=size,
            height=size,
            count=4,
            dtype="uint16",
            crs=crs,
            transform=from_origin(west, north, 1.0, 1.0),
            tiled=True,
            blockxsize=512,
            blockysize=512,
            compress="deflate",
        ) as dst:
            dst.write(np.clip(data, 0, 65535).astype(np.uint16))
        paths.append(path)
    return paths[0], paths[1]


def _bounds(site, crs):
    import shapely
    from pyproj import Transformer

    to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return shapely.transform(site.footprint, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))).bounds


def child(mode: str, before: str, after: str) -> None:
    t0 = time.perf_counter()
    if mode == "generate":
        generate(Path(before), int(after))
        return
    if mode == "read":
        import rasterio

        for p in (before, after):
            with rasterio.open(p) as src:
                src.read()
        extra = {}
    else:
        from sitewatch.pipeline import detect

        result = detect(before, after, AOI)
        extra = {
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
    ap.add_argument("--child", nargs=3, metavar=("MODE", "BEFORE", "AFTER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--child", "generate", str(folder), str(args.size)], check=True)
        before, after = folder / "2023-01-01.tif", folder / "2024-01-01.tif"
        print(
            f"pair: {args.size} x {args.size}, 4 bands uint16, written in {time.perf_counter() - t:.1f} s; "
            f"true shift {SHIFT[0]:+.2f}, {SHIFT[1]:+.2f} px"
        )
        rows = {}
        for mode in ("read", "detect"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(before), str(after)],
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
            f"{mpx / d['seconds']:.2f} Mpx/s (per image pixel)"
        )
        print(f"  window {d['window'][0]} x {d['window'][1]} px, shift found {d['shift_px']}, {d['objects']} objects")
        print(f"  stages: {d['timings']}")


if __name__ == "__main__":
    main()
