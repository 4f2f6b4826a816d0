"""Co-registration accuracy and speed on real texture (LEVIR-CD tiles in ../shared/data).

1. Same date: each 1024 tile against a copy resampled by a known (dx, dy) with cubic
   splines, plus per-band gain/offset/gamma, a slight blur and noise; 768 x 768 centre crops.
2. Two dates: each real before/after pair, the after image shifted by a known amount; the
   difference between the shifts found with and without it, against that amount.
3. Unrelated tiles: every pair of different tiles must be refused.
4. AROSICS' own Sentinel-2 test pair (``geotiff/arosics-inter1``, 10 m, 3200 x 2400): the shift
   ``sitewatch.pipeline.coregister`` finds and its time, against AROSICS' global match (its
   figures in ../shared/data/README.md: about +0.71, -1.81 px in 1.6-2.6 s).

With ``--size N`` instead (N = 4096, 8192, 10980, 16384): the scene-size benchmark. The pair of
``bench_detect.py`` (N x N, 4-band uint16, written block by block on disk, AFTER's georeference
offset by a known shift) is co-registered by the ``coreg`` command's path in a child process:
its wall time, peak resident memory and the shift found against the planted one, beside the
time to read both rasters whole.

    .venv/bin/python benchmarks/bench_coreg.py [--data ../shared/data]
    .venv/bin/python benchmarks/bench_coreg.py --size 10980 [--keep DIR [--reuse]]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from sitewatch.coreg import estimate_shift
from sitewatch.errors import AlignmentError

CROP = 768
SAME_DATE = [(0.25, -0.4), (1.3, 2.7), (-5.55, 3.1), (12.2, -7.9), (20.0, 15.35), (-19.7, -0.6)]
TWO_DATES = [(0.5, -0.3), (3.2, 1.7), (-7.6, 11.1)]


def load(path: Path) -> np.ndarray:
    return np.moveaxis(np.asarray(Image.open(path).convert("RGB"), np.float32), -1, 0)


def centre(img: np.ndarray) -> np.ndarray:
    o = (img.shape[1] - CROP) // 2
    return img[:, o : o + CROP, o : o + CROP]


def displaced(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    return centre(np.stack([ndimage.shift(b, (dy, dx), order=3, mode="reflect") for b in img]))


def degraded(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = 255 * (np.clip(img, 0, 255) / 255) ** rng.uniform(0.85, 1.15) * rng.uniform(0.8, 1.2, 3)[:, None, None]
    out = out + rng.uniform(-10, 10, 3)[:, None, None]
    return np.stack([ndimage.gaussian_filter(b, 0.6) for b in out]) + rng.normal(0, 2, out.shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("SITEWATCH_REALDATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--data", type=Path, default=Path(default))
    ap.add_argument("--size", type=int, help="Scene-size benchmark on an N x N pair instead (see above).")
    ap.add_argument("--keep", type=Path, help="With --size: write the pair here and keep it.")
    ap.add_argument("--reuse", action="store_true", help="With --keep: use the pair already there.")
    ap.add_argument("--child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.size:
        scene_size(args.size, args.keep, args.reuse)
        return
    tiles = sorted((args.data / "realcd" / "levir-cd-1024" / "A").glob("*.png"))
    if not tiles:
        raise SystemExit(f"no LEVIR-CD tiles under {args.data}/realcd/levir-cd-1024 (set --data)")
    rng = np.random.default_rng(0)
    errors, seconds = [], []
    for p in tiles:
        img = load(p)
        for dx, dy in SAME_DATE:
            t = time.perf_counter()
            s = estimate_shift(centre(img), degraded(displaced(img, dx, dy), rng))
            seconds.append(time.perf_counter() - t)
            errors.append(np.hypot(s.dx - dx, s.dy - dy))
    print(
        f"same date: {len(errors)} cases, error max {max(errors):.4f} px, mean {np.mean(errors):.4f} px; "
        f"{np.median(seconds):.2f} s median per {CROP}x{CROP} pair"
    )
    for p in tiles:
        before, after = load(p), load(p.parent.parent / "B" / p.name)
        try:
            base = estimate_shift(centre(before), centre(after))
        except AlignmentError as exc:
            print(f"two dates {p.name}: refused without a shift ({exc})")
            continue
        line = []
        for dx, dy in TWO_DATES:
            try:
                s = estimate_shift(centre(before), displaced(after, dx, dy))
                line.append(f"{np.hypot(s.dx - base.dx - dx, s.dy - base.dy - dy):.3f}")
            except AlignmentError:
                line.append("refused")
        print(
            f"two dates {p.name}: pair's own shift {base.dx:+.2f}, {base.dy:+.2f} px ({base.model}, "
            f"{base.windows_valid} windows agree); error for {TWO_DATES}: {', '.join(line)} px"
        )
    accepted = 0
    pairs = list(itertools.permutations(tiles, 2))
    for p, q in pairs:
        try:
            estimate_shift(centre(load(p)), centre(load(q.parent.parent / "B" / q.name)))
            accepted += 1
        except AlignmentError:
            pass
    print(f"unrelated: {len(pairs) - accepted} of {len(pairs)} refused")
    arosics_pair(args.data / "geotiff" / "arosics-inter1")


def child(mode: str, before: str, after: str) -> None:
    """One measurement in its own process, so its peak memory is its own: ``read`` or ``coreg``."""
    t0 = time.perf_counter()
    extra = {}
    if mode == "read":
        import rasterio

        for p in (before, after):  # every pixel, block by block
            with rasterio.open(p) as src:
                for _, window in src.block_windows(1):
                    src.read(window=window)
    else:
        from sitewatch.pipeline import coregister

        found = coregister(before, after)
        extra = {
            "shift_px": [found.shift.dx, found.shift.dy],
            "windows": found.shift.windows_valid,
            "rejected": found.shift.windows_rejected,
            "model": found.shift.model,
        }
    seconds = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, **extra}))


def scene_size(size: int, keep: Path | None, reuse: bool) -> None:
    """The ``--size`` benchmark: the coreg command's path on bench_detect's N x N pair."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_detect import SHIFT

    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        before, after = folder / "2023-01-01.tif", folder / "2024-01-01.tif"
        if not (reuse and before.exists() and after.exists()):
            script = Path(__file__).resolve().parent / "bench_detect.py"
            subprocess.run([sys.executable, str(script), "--child", "generate", str(folder), str(size)], check=True)
        rows = {}
        for mode in ("read", "coreg"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(before), str(after)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows[mode] = json.loads(out.strip().splitlines()[-1])
        r, c = rows["read"], rows["coreg"]
        error = np.hypot(c["shift_px"][0] - SHIFT[0], c["shift_px"][1] - SHIFT[1])
        print(f"pair {size} x {size}, 4 bands uint16; planted shift {SHIFT[0]:+.2f}, {SHIFT[1]:+.2f} px")
        print(f"read both rasters: {r['seconds']:6.2f} s   peak {r['peak_mib']:6.0f} MiB")
        print(
            f"coreg            : {c['seconds']:6.2f} s   peak {c['peak_mib']:6.0f} MiB   "
            f"{c['seconds'] / r['seconds']:.1f}x the read; shift {c['shift_px'][0]:+.3f}, {c['shift_px'][1]:+.3f} px "
            f"(error {error:.3f} px), {c['model']}, {c['windows']} windows agree, {c['rejected']} rejected"
        )


def arosics_pair(folder: Path) -> None:
    """Section 4: the whole co-registration command's path on AROSICS' test pair, timed (best of three)."""
    from sitewatch.pipeline import coregister

    ref, tgt = sorted(folder.glob("ref_*.jp2")), sorted(folder.glob("tgt_*.jp2"))
    if not ref or not tgt:
        print(f"AROSICS pair: not found under {folder}")
        return
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        found = coregister(ref[0], tgt[0])
        runs.append(time.perf_counter() - t)
    print(
        f"AROSICS pair: shift {found.shift.dx:+.3f}, {found.shift.dy:+.3f} px ({found.shift.model}, "
        f"{found.shift.windows_valid} windows agree) in {min(runs):.2f} s (best of 3); "
        "AROSICS' global match: about +0.71, -1.81 px in 1.6-2.6 s"
    )


if __name__ == "__main__":
    main()
