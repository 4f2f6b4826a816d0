"""The library API: what an analyst's notebook or the CLI calls.

* :func:`coregister` - the shift between two images, and a corrected copy;
* :func:`detect` - new and removed structures between two images of a site;
* :func:`count_railcars` - railcars on each track of one or more images;
* :func:`timeline` - railcars and structure change date by date;
* :func:`evaluate` - the default detector scored on a labelled set of pairs;
* :func:`synthesize` - a site's synthetic imagery with its truth;
* :func:`search`, :func:`fetch` - a site's public imagery from a STAC catalog, clipped to its AOI.
* :func:`batch` - a plan of many sites and dates on a Dask cluster.

Each writes its outputs only when given an output folder, all at once, and never
overwrites without ``overwrite=True``.
"""

from ._common import Progress
from .batch import BatchResult, JobOutcome, batch
from .coregister import Coregistration, coregister
from .detect import DETECT_OUTPUTS, DetectResult, detect, write_detection
from .evaluate import Evaluation, evaluate
from .fetch import FetchResult, fetch, search
from .railcars import ImageRailcars, count_railcars, load_tracks, write_railcars
from .synthetic import synthesize
from .timeline import Timeline, timeline, timeline_figure
from .vectors import change_records

__all__ = [
    "BatchResult",
    "JobOutcome",
    "batch",
    "Coregistration",
    "coregister",
    "DETECT_OUTPUTS",
    "DetectResult",
    "Evaluation",
    "evaluate",
    "FetchResult",
    "fetch",
    "search",
    "ImageRailcars",
    "Progress",
    "Timeline",
    "change_records",
    "count_railcars",
    "detect",
    "load_tracks",
    "synthesize",
    "timeline",
    "timeline_figure",
    "write_detection",
    "write_railcars",
]
