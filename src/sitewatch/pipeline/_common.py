"""Small pieces the pipeline modules share."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import numpy as np
import rasterio

from .. import __version__
from ..aoi import SiteAOI, resolve_site
from ..io import Grid

# Called with a short message as each stage starts (the CLI shows it on a terminal).
Progress = Callable[[str], None]


def site_of(aoi: SiteAOI | str | os.PathLike[str]) -> SiteAOI:
    """A validated site from a SiteAOI, a site id or an AOI file path."""
    return aoi if isinstance(aoi, SiteAOI) else resolve_site(str(aoi))


def versions() -> dict[str, Any]:
    """Software versions recorded in every summary, so a result can be reproduced."""
    return {
        "sitewatch": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
    }


# The version of the documents sitewatch writes (summary.json, timeline.json, railcars.json); each
# carries it as "schema_version", and the JSON Schemas in sitewatch/schemas/ require it.
SCHEMA_VERSION = "1.0"

# Why a date is missing, said wherever the date would be (summary.json "dates", railcars.json images).
DATE_UNKNOWN = "unknown: no STAC sidecar, TIFF date tag or date in the file name says when the image was taken"


def unknown_dates(dates: dict[str, str | None], hint: str = "") -> dict[str, str]:
    """The reason each missing date (``None``) is missing: ``{"before": "unknown: ..."}``."""
    return {k: DATE_UNKNOWN + hint for k, v in dates.items() if v is None}


# Said in summary.json ("position") and by the CLI when the images were pictures without georeference.
NO_MAP_POSITION = (
    "no map position: the images are pictures without georeference, placed on a local grid at the given pixel "
    "size; areas, sizes and the shift are in metres, but coordinates in the outputs are not places on Earth, and "
    "no AOI footprint, exclusion or reference building was used"
)

SHIFT_MAP_MEANING = (
    "east_m, north_m: how far the later (moving) image shows each feature east and north of where the "
    "earlier (reference) image shows it, in metres on the reference grid's map axes; the correction "
    "applied is minus this"
)


def shift_in_map_axes(grid: Grid, dx: float, dy: float) -> dict[str, Any]:
    """The shift's map-axes entry of a summary: east and north in metres, with their sign spelled out."""
    east, north = grid.map_offset(dx, dy)
    return {"east_m": round(float(east), 3), "north_m": round(float(north), 3), "meaning": SHIFT_MAP_MEANING}
