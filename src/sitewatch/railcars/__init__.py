"""Railcar counting along track centrelines: pure NumPy/SciPy on arrays.

The image is resampled along each track into a straightened strip (along x cross-track,
:mod:`.strip`); the strip is slid sideways onto the real track, since AOI centrelines are
often a few pixels off: by its rails where the pixels show them (:mod:`.rails`), otherwise
by the outline of the group's ballast bed (:mod:`.bed`) and each track's mirror symmetry.
Each along-track position then gets occupancy and boundary evidence (:mod:`.evidence`);
without rails, where neighbours' shadows lie and where a car's own would fall decide what a
shadow colour means (:mod:`.shadows`).  On pixels about as wide as a car, where tracks share
pixels, each profile across the tracks is unmixed instead: ballast, cars, their shadows and
the pixel's blur, all tracks of a group at once (:mod:`.profile`; shadows from the sun's
angles where the image's metadata gives them).  A semi-Markov dynamic programme cuts the
track into empty stretches and cars (:mod:`.segment`).  Where the pixel is too coarse to see
a one-metre gap, the count is the occupied length divided by the nominal car pitch instead,
and the result says so.  :mod:`.count` puts the steps together (:func:`count_railcars`).

Geometry convention: track lines arrive in pixel coordinates of the image as ``(col, row)``
with rasterio's convention that ``(0, 0)`` is the outer corner of the top-left pixel.
"""

from .count import METHOD_INDIVIDUAL, METHOD_LENGTH, RailcarCount, TrackCount, count_railcars
from .evidence import COARSE_PIXEL_M, Ground, TrackEvidence, track_evidence
from .find import FIND_MAX_PIXEL_M, FoundTrack, find_tracks
from .profile import ShadowGeometry, shadow_geometry
from .segment import (
    CAR_LENGTH_RANGE_M,
    CAR_WIDTH_M,
    COUPLER_GAP_M,
    NOMINAL_CAR_LENGTH_M,
    SegmentationPrior,
    segment_cars,
)
from .strip import TrackStrip

__all__ = [
    "CAR_LENGTH_RANGE_M",
    "CAR_WIDTH_M",
    "COARSE_PIXEL_M",
    "COUPLER_GAP_M",
    "FIND_MAX_PIXEL_M",
    "METHOD_INDIVIDUAL",
    "METHOD_LENGTH",
    "NOMINAL_CAR_LENGTH_M",
    "FoundTrack",
    "Ground",
    "RailcarCount",
    "SegmentationPrior",
    "ShadowGeometry",
    "TrackCount",
    "TrackEvidence",
    "TrackStrip",
    "count_railcars",
    "find_tracks",
    "segment_cars",
    "shadow_geometry",
    "track_evidence",
]
