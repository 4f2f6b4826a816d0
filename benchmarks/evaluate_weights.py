"""``sitewatch evaluate`` with other presence weights: the left-out figures of the presence network.

The shipped weights saw some of the dev sets (training/README.md). To report a set left out,
train weights without it (same recipe, ``--exclude``) and score them here:

    .venv/bin/python benchmarks/evaluate_weights.py WEIGHTS.npz SET:GSD [SET:GSD ...] [--method presence]

Prints one JSON line per set, as ``sitewatch evaluate --json`` does.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from sitewatch.pipeline import evaluate
from sitewatch.structures import presence


def main(argv: list[str]) -> None:
    method = "presence"
    if "--method" in argv:
        i = argv.index("--method")
        method = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    weights_path, *sets = argv
    with np.load(weights_path) as npz:
        weights = {k: npz[k] for k in npz.files}
    presence._weights.cache_clear()
    presence._weights = lambda: weights  # every caller reads the weights through this
    for spec in sets:
        path, _, size = spec.rpartition(":")
        result = evaluate(path, pixel_size_m=float(size), method=method)
        print(json.dumps({"weights": weights_path, **result.to_dict()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
