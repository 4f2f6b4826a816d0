"""Score detect on the bundled sample imagery against its truth: per planted object, the best IoU
with a detected polygon of the same direction, plus detections that match nothing.

    .venv/bin/python benchmarks/score_samples.py [--method M] [SITE ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import geopandas as gpd

from sitewatch.pipeline import detect

ROOT = Path(__file__).resolve().parents[1]


def score(site: str, method: str = "building") -> None:
    folder = ROOT / "sample_imagery" / site
    tifs = sorted(folder.glob("*.tif"))
    result = detect(tifs[0], tifs[1], ROOT / "aoi" / f"{site}.geojson", method=method)
    truth = gpd.read_file(folder / "truth.geojson").to_crs(result.grid.crs)
    truth = truth[truth["change"].isin(["new", "removed"])]
    true_shift = json.loads((folder / "truth.geojson").read_text())["properties"]["acquisitions"][1]["shift_px"]
    print(
        f"== {site}: shift found ({result.shift.dx:+.2f}, {result.shift.dy:+.2f}) px, "
        f"planted ({true_shift[0]:+.2f}, {true_shift[1]:+.2f})"
    )
    used = set()
    for _, t in truth.iterrows():
        cands = [
            (t.geometry.intersection(o.geometry).area / t.geometry.union(o.geometry).area, i)
            for i, o in enumerate(result.objects)
            if o.change == t["change"]
        ]
        iou, i = max(cands, default=(0.0, None))
        if iou >= 0.5:
            used.add(i)
        rel = ""
        if i is not None and t.get("relative_size") == t.get("relative_size") and t.get("relative_size") is not None:
            rel = f"  relative_size {result.objects[i].relative_size:.3f} (true {t['relative_size']:.3f})"
        print(f"  {t['id']:26s} {t['change']:8s} IoU {iou:.2f}{rel}")
    extra = [o for i, o in enumerate(result.objects) if i not in used]
    print(
        f"  detections matching nothing planted (IoU >= 0.5): {len(extra)}"
        + (" — " + ", ".join(f"{o.change} {o.area_m2:.0f} m²" for o in extra) if extra else "")
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    chosen = "building"
    if args[:1] == ["--method"]:
        chosen, args = args[1], args[2:]
    for s in args or ["hamhung-feb11-plant", "sinuiju-instrument-factory", "hamhung-feb8-vinalon"]:
        score(s, chosen)
