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
