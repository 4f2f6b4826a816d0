"""Scores of a change mask against a label: pixel counts, average precision, object recall by size.

Pure: arrays in, dataclasses and numbers out. :mod:`.evaluate` runs the detectors and pools
these over a set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

# a labelled building counts as found when at least this share of its pixels is flagged
OBJECT_FOUND_FRACTION = 0.5
# Labelled objects are counted by area (m²) in bins with these upper edges, and one above:
# a house, a block or a shed, and a hall or a warehouse.
SIZE_EDGES_M2 = (100.0, 1000.0)
SIZE_BINS = ("<100", "100-1000", ">=1000")


@dataclass
class PairScore:
    """Pixel counts of one pair against its label, and its labelled objects by size bin."""

    name: str
    tp: int
    fp: int
    fn: int
    tn: int
    objects: int
    objects_found: int
    shift_px: tuple[float, float] | None  # None when co-registration refused the pair
    seconds: float = 0.0
    objects_by_size: tuple[int, ...] = (0,) * len(SIZE_BINS)
    found_by_size: tuple[int, ...] = (0,) * len(SIZE_BINS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "objects": self.objects,
            "objects_found": self.objects_found,
            "shift_px": None if self.shift_px is None else [round(v, 2) for v in self.shift_px],
            "seconds": round(self.seconds, 2),
        }


def score_pair(
    name: str,
    flagged: np.ndarray,
    label: np.ndarray,
    shift_px: tuple[float, float] | None = None,
    *,
    pixel_size_m: float = 1.0,
) -> PairScore:
    """Compare a flagged mask with a label mask (both bool, same shape).

    Each connected labelled component is an object; it is found when
    :data:`OBJECT_FOUND_FRACTION` of its pixels are flagged, and binned by its area
    (``pixel_size_m`` metres per pixel) at :data:`SIZE_EDGES_M2`.
    """
    tp = int(np.count_nonzero(flagged & label))
    fp = int(np.count_nonzero(flagged & ~label))
    fn = int(np.count_nonzero(~flagged & label))
    tn = int(flagged.size - tp - fp - fn)
    components, n = ndimage.label(label)
    by_size, found_by_size = [0] * len(SIZE_BINS), [0] * len(SIZE_BINS)
    found = 0
    if n:
        index = np.arange(1, n + 1)
        is_found = np.asarray(ndimage.mean(flagged, components, index)) >= OBJECT_FOUND_FRACTION
        areas = np.bincount(components.ravel(), minlength=n + 1)[1:] * pixel_size_m**2
        bins = np.searchsorted(SIZE_EDGES_M2, areas, side="right")
        by_size = np.bincount(bins, minlength=len(SIZE_BINS)).tolist()
        found_by_size = np.bincount(bins[is_found], minlength=len(SIZE_BINS)).tolist()
        found = int(np.count_nonzero(is_found))
    return PairScore(name, tp, fp, fn, tn, n, found, shift_px, 0.0, tuple(by_size), tuple(found_by_size))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve of a score, over every threshold (step-wise, as scikit-learn).

    ``sum over thresholds of (recall_n - recall_{n-1}) * precision_n``, with tied scores
    taken together. 0 when nothing is labelled.
    """
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels, bool).ravel()
    positives = int(labels.sum())
    if positives == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    true_positives = np.cumsum(labels)
    # the last index of each run of equal scores: one threshold per distinct score
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    precision = true_positives[last] / (last + 1)
    recall = true_positives[last] / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


@dataclass
class Evaluation:
    """Pooled scores of a set, and the counts of each pair behind them.

    ``score_samples`` holds each pair's score map and label (flattened), for the average
    precision; they are not written out.
    """

    set_dir: Path
    pixel_size_m: float
    method: str = "building"
    pairs: list[PairScore] = field(default_factory=list)
    # the method that ran, where ``method`` cannot work at this pixel size and handed over
    method_ran: str | None = None
    score_samples: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)

    def _sum(self, key: str) -> int:
        return sum(getattr(p, key) for p in self.pairs)

    @property
    def precision(self) -> float:
        return _ratio(self._sum("tp"), self._sum("tp") + self._sum("fp"))

    @property
    def recall(self) -> float:
        return _ratio(self._sum("tp"), self._sum("tp") + self._sum("fn"))

    @property
    def f1(self) -> float:
        return _ratio(2 * self._sum("tp"), 2 * self._sum("tp") + self._sum("fp") + self._sum("fn"))

    @property
    def iou(self) -> float:
        return _ratio(self._sum("tp"), self._sum("tp") + self._sum("fp") + self._sum("fn"))

    @property
    def false_alarm_rate(self) -> float:
        """Flagged unchanged pixels ÷ unchanged pixels."""
        return _ratio(self._sum("fp"), self._sum("fp") + self._sum("tn"))

    @property
    def object_recall(self) -> float:
        """Labelled connected components with at least half their pixels flagged ÷ all of them."""
        return _ratio(self._sum("objects_found"), self._sum("objects"))

    @property
    def average_precision(self) -> float:
        """Average precision of the score maps, pooled over every pixel of the set."""
        if not self.score_samples:
            return 0.0
        scores = np.concatenate([s for s, _ in self.score_samples])
        labels = np.concatenate([lab for _, lab in self.score_samples])
        return average_precision(scores, labels)

    def object_recall_by_size(self) -> dict[str, dict[str, int | float | None]]:
        """Per size bin: labelled objects, those found, and their ratio (None when there are none)."""
        out: dict[str, dict[str, int | float | None]] = {}
        for i, name in enumerate(SIZE_BINS):
            total = sum(p.objects_by_size[i] for p in self.pairs)
            found = sum(p.found_by_size[i] for p in self.pairs)
            out[name] = {"objects": total, "found": found, "recall": round(found / total, 4) if total else None}
        return out

    def to_dict(self, *, per_pair: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "set": str(self.set_dir),
            "method": self.method,
            "method_ran": self.method_ran or self.method,
            "pixel_size_m": self.pixel_size_m,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "iou": round(self.iou, 4),
            "false_alarm_rate": round(self.false_alarm_rate, 5),
            "average_precision": round(self.average_precision, 4),
            "object_recall": round(self.object_recall, 4),
            "object_recall_by_size_m2": self.object_recall_by_size(),
            "pairs": len(self.pairs),
            "objects": self._sum("objects"),
            "refused": sum(p.shift_px is None for p in self.pairs),
        }
        if per_pair:
            out["per_pair"] = [p.to_dict() for p in self.pairs]
        return out
