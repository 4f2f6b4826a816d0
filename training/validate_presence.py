"""Single-date validation of presence weights: pooled IoU, F1 and AP against building footprints.

    .venv/bin/python training/validate_presence.py WEIGHTS.npz [WEIGHTS.npz ...]

Scores each date-A (pre-event) image of ``realcd/xbd-harvey-nochange`` against its footprints
(``buildings/``) at 0.5 m, the network run exactly as sitewatch runs it. Only weights trained
without Harvey (``--exclude harvey ...``) give a left-out figure here. Prints one JSON line per
weights file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from sitewatch.structures import presence

ROOT = Path(__file__).resolve().parents[1]
D = Path(os.environ.get("SITEWATCH_REALDATA", ROOT.parent / "shared" / "data"))
HARVEY = D / "realcd" / "xbd-harvey-nochange"


def average_precision(score: np.ndarray, truth: np.ndarray) -> float:
    order = np.argsort(-score, kind="stable")
    hits = truth[order]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, hits.size + 1)
    return float((precision * hits).sum() / max(hits.sum(), 1))


def score(weights: dict[str, np.ndarray]) -> dict:
    presence._weights.cache_clear()
    presence._weights = lambda: weights
    tp = fp = fn = 0
    scores, truths = [], []
    for p in sorted((HARVEY / "A").glob("*.png")):
        img = np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1)
        truth = np.asarray(Image.open(HARVEY / "buildings" / p.name)) > 127
        prob = presence.building_presence(img, pixel_size_m=0.5)
        found = prob > 0.5
        tp += int((found & truth).sum())
        fp += int((found & ~truth).sum())
        fn += int((~found & truth).sum())
        scores.append(prob[::2, ::2].ravel())
        truths.append(truth[::2, ::2].ravel())
    return {
        "harvey_iou": round(tp / max(tp + fp + fn, 1), 4),
        "harvey_f1": round(2 * tp / max(2 * tp + fp + fn, 1), 4),
        "harvey_precision": round(tp / max(tp + fp, 1), 4),
        "harvey_recall": round(tp / max(tp + fn, 1), 4),
        "harvey_ap": round(average_precision(np.concatenate(scores), np.concatenate(truths)), 4),
    }


def main(paths: list[str]) -> None:
    for path in paths:
        with np.load(path) as npz:
            weights = {k: npz[k] for k in npz.files}
        print(json.dumps({"weights": path, **score(weights)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
