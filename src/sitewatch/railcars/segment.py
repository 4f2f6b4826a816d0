"""Cutting a track into cars: a semi-Markov dynamic programme over the along-track evidence.

Cars are runs whose lengths lie in the freight-car range; the programme rewards cuts where
the boundary evidence is strong and penalises lengths far from the nominal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .evidence import TrackEvidence

# Freight cars on 1520 mm and standard gauge: bodies about 3.1 m wide, 12-25 m long, coupled
# with about a metre between bodies.
CAR_WIDTH_M = 3.1
CAR_LENGTH_RANGE_M = (11.0, 26.0)
NOMINAL_CAR_LENGTH_M = 15.5
COUPLER_GAP_M = 1.0


@dataclass(frozen=True)
class SegmentationPrior:
    """What a railcar looks like along the track, for the segmentation.

    Attributes
    ----------
    length_range_m : (float, float)
        Hard limits on one car's length along the track (coupler gap included).
    nominal_length_m : float
        The most likely car length; counts by occupied length divide by it plus the gap.
    length_sigma_m : float
        Spread of car lengths about the nominal.
    boundary_weight : float
        Reward for a car end where the boundary evidence is strong (and penalty where none).
    occupancy_margin : float
        Taken from the occupancy inside a car, so a stretch must look clearly occupied
        (mean occupancy above half the margin) to become a car.
    """

    length_range_m: tuple[float, float] = CAR_LENGTH_RANGE_M
    nominal_length_m: float = NOMINAL_CAR_LENGTH_M
    length_sigma_m: float = 6.0
    boundary_weight: float = 2.0
    occupancy_margin: float = 0.3

    @property
    def pitch_m(self) -> float:
        """Track length one coupled car takes up: body plus coupler gap."""
        return self.nominal_length_m + COUPLER_GAP_M


def segment_cars(
    evidence: TrackEvidence, *, step_m: float, prior: SegmentationPrior = SegmentationPrior()
) -> list[tuple[int, int]]:
    """Cut a track into empty stretches and cars: a semi-Markov dynamic programme.

    Each car spans a run of positions whose length is within ``prior.length_range_m``.  A
    segmentation scores the occupancy evidence (per metre: + inside cars, - outside), the
    boundary evidence at each car end, and the length prior; the best-scoring one is exact.

    Parameters
    ----------
    evidence : TrackEvidence
    step_m : float
        Spacing of the evidence positions, metres.
    prior : SegmentationPrior

    Returns
    -------
    list of (start, stop)
        Position indices of each car, ``stop`` exclusive, in order along the track.
    """
    occ = evidence.occupancy.astype(np.float64) * step_m
    ends = prior.boundary_weight * np.clip(evidence.boundary.astype(np.float64) - 1.5, -1.5, 0.5)
    margin = prior.occupancy_margin * step_m
    n = len(occ)
    lo = max(1, int(np.ceil(prior.length_range_m[0] / step_m)))
    hi = int(np.floor(prior.length_range_m[1] / step_m))
    lengths = np.arange(lo, hi + 1)
    length_score = -0.5 * ((lengths * step_m - prior.nominal_length_m) / prior.length_sigma_m) ** 2
    # boundary evidence at a cut between positions i-1 and i: take the stronger neighbour
    cut = np.maximum(np.concatenate([[ends[0]], ends]), np.concatenate([ends, [ends[-1]]]))
    csum = np.concatenate([[0.0], np.cumsum(occ)])
    best = np.full(n + 1, -np.inf)
    best[0] = 0.0
    back = np.zeros(n + 1, dtype=np.int64)  # start of the last segment; -1 marks an empty step
    for j in range(1, n + 1):
        best[j] = best[j - 1] - occ[j - 1]
        back[j] = -1
        starts = j - lengths
        ok = starts >= 0
        if not ok.any():
            continue
        s = starts[ok]
        score = best[s] + (csum[j] - csum[s]) - margin * (j - s) + cut[s] + cut[j] + length_score[ok]
        k = int(np.argmax(score))
        if score[k] > best[j]:
            best[j] = score[k]
            back[j] = s[k]
    cars = []
    j = n
    while j > 0:
        if back[j] < 0:
            j -= 1
        else:
            cars.append((int(back[j]), j))
            j = int(back[j])
    return cars[::-1]
