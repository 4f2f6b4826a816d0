"""``sitewatch batch`` on a LocalCluster with 1 and then 2 workers: wall time and speed-up for 8 site-date jobs.

The 8 jobs are the bundled sample sites (``sample_imagery/``): Sinuiju, Hamhung (February 11
plant) and the Vinalon complex (one pair each), every pair of Tumangang's three dates (detect,
railcars, timeline and report), and Hamhung and Sinuiju once more under other names (the same
work again, so the load is 8 jobs). Each run writes into a fresh output root, so no job is skipped.

    .venv/bin/python benchmarks/bench_batch.py                  # default detector, 1 then 2 workers
    .venv/bin/python benchmarks/bench_batch.py --method cva     # the fast colour-change method
    .venv/bin/python benchmarks/bench_batch.py --workers 1 2 4

Prints, per worker count: wall time (cluster start included), the sum of the jobs' own times,
and the speed-up over the first worker count; and the load average before and after, since
other work on the machine takes cores from the workers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sitewatch.pipeline.batch import batch

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_imagery"
PAIRS = {  # name -> (site, pairs)
    "sinuiju-instrument-factory": ("sinuiju-instrument-factory", "consecutive"),
    "hamhung-feb11-plant": ("hamhung-feb11-plant", "consecutive"),
    "hamhung-feb8-vinalon": ("hamhung-feb8-vinalon", "consecutive"),
    "tumangang-rail-crossing": ("tumangang-rail-crossing", "all"),
    "hamhung-feb11-plant-again": ("hamhung-feb11-plant", "consecutive"),
    "sinuiju-instrument-factory-again": ("sinuiju-instrument-factory", "consecutive"),
}


def write_plan(folder: Path, method: str | None) -> Path:
    """The benchmark's plan file (8 jobs), with absolute image paths and AOI files."""
    lines = [f'[detect]\nmethod = "{method}"\n'] if method else []
    for name, (site, pairs) in PAIRS.items():
        images = ", ".join(f'"{p}"' for p in sorted((SAMPLES / site).glob("*.tif")))
        lines.append(
            f'[[sites]]\nsite = "{ROOT / "aoi" / site}.geojson"\nname = "{name}"\npairs = "{pairs}"\n'
            f"images = [{images}]\n"
        )
    plan = folder / "plan.toml"
    plan.write_text("\n".join(lines), encoding="utf-8")
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default=None, help="detect method for every job (default: detect's default)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run (default 1 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        plan = write_plan(Path(tmp), args.method)
        print(f"cores: {os.cpu_count()}, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        first = None
        for n in args.workers:
            start = time.perf_counter()
            result = batch(plan, Path(tmp) / f"out-{n}", workers=n)
            wall = time.perf_counter() - start
            jobs = sum(o.seconds for o in result.outcomes)
            first = first or wall
            counts = result.counts()
            print(
                f"{n} worker(s): {len(result.outcomes)} jobs ({counts['done']} done, {counts['failed']} failed), "
                f"wall {wall:6.1f} s, jobs' own time {jobs:6.1f} s, speed-up {first / wall:4.2f}x",
                flush=True,
            )
            for o in result.failed:
                print(f"  failed {o.key}: {o.error}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
