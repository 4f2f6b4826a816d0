"""Scene-level statistics handed to a detector that runs on one block of a larger scene.

A detector run on a whole image takes a few statistics over all of it: the median
brightness that shadows are measured against, the percentile that stretches an image for
segmentation, the histograms one date is matched to the other's, the luminance levels the
presence network's input is normalised by.  Run block by block, each block would take its
own and the blocks would disagree along their edges; :class:`SceneStats` carries the
scene's, measured once (``sitewatch.pipeline.tiles``), into every block.  ``None`` in a
field (the default) means: take it from the arrays at hand, as an untiled run does.

Pure: plain numbers and small arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SceneStats:
    """Statistics of the whole scene, for a detector run on one block of it.

    Attributes
    ----------
    brightness_median : (float, float), optional
        Median band-mean brightness of BEFORE and AFTER (as read, not normalised) over the
        scene's valid pixels: what :func:`.scores.shadow_mask` compares against.
    stretch_top : (float, float), optional
        :data:`.roofs.STRETCH_PERCENTILE` of bands 0-2 of BEFORE and AFTER (as read):
        what :func:`.roofs.segment_surfaces` stretches by.
    quantiles : (ndarray, ndarray), optional
        Per-band quantiles of BEFORE and AFTER (as read), each of shape (B, Q) at the same
        Q evenly spaced levels: :func:`.roofs.new_structure_score` matches one date's
        histogram to the other's through them.
    presence_levels : ((float, float, float), (float, float, float)), optional
        Luminance at :data:`.presence.NORMALISE_PERCENTILES` of BEFORE and of AFTER as the
        detector is handed it (normalised): :func:`.presence.normalise`'s offset and scale.
    origin : (int, int)
        (row, col) of the block's first pixel in the scene, so tiled steps (the
        segmentation's tiles) cut the block where they cut the scene.
    """

    brightness_median: tuple[float, float] | None = None
    stretch_top: tuple[float, float] | None = None
    quantiles: tuple[np.ndarray, np.ndarray] | None = None
    presence_levels: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    origin: tuple[int, int] = (0, 0)
