"""The library API: what an analyst's notebook or the CLI calls.

* :func:`detect` - new and removed structures between two images of a site;
* :func:`count_railcars` - railcars on each track of one or more images;
* :func:`timeline` - railcars and structure change date by date;
* :func:`synthesize` - a site's synthetic imagery with its truth.

Each writes its outputs only when given an output folder, all at once, and never
overwrites without ``overwrite=True``.
"""

from ._common import Progress
from .detect import DETECT_OUTPUTS, DetectResult, change_records, detect, write_detection
from .railcars import ImageRailcars, count_railcars, load_tracks, write_railcars
from .synthetic import synthesize
from .timeline import Timeline, timeline, timeline_figure

__all__ = ["DETECT_OUTPUTS", "DetectResult", "ImageRailcars", "Progress", "Timeline", "change_records",
           "count_railcars", "detect", "load_tracks", "synthesize", "timeline", "timeline_figure", "write_detection", "write_railcars"]
