"""Shared fixtures: tiny synthetic rasters written to tmp_path, the repo's folders, real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

ROOT = Path(__file__).resolve().parents[1]
AOI_DIR = ROOT / "aoi"
SAMPLES = ROOT / "sample_imagery"
FIXTURES = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _aoi_dir(monkeypatch):
    """Site ids resolve against the repository's aoi/ wherever pytest runs from."""
    monkeypatch.setenv("SITEWATCH_AOI_DIR", str(AOI_DIR))


def textured(shape, seed=0, smooth=2.0):
    """Smooth random texture in 0..255, float32, shape (M, N)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.normal(size=shape), smooth) + 0.5 * ndimage.gaussian_filter(
        rng.normal(size=shape), 8
    )
    img = (img - img.min()) / (img.max() - img.min())
    return (40 + 160 * img).astype(np.float32)


def write_tif(path, data, *, crs="EPSG:32652", origin=(500000.0, 4400000.0), pixel=1.0, dtype="uint8", nodata=None):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=dtype,
        crs=crs,
        transform=from_origin(*origin, pixel, pixel),
        nodata=nodata,
    ) as dst:
        dst.write(data.astype(dtype))
    return Path(path)


@pytest.fixture
def realdata() -> Path:
    """../shared/data (or $SITEWATCH_REALDATA); skips with the reason when absent."""
    env = os.environ.get("SITEWATCH_REALDATA")
    path = Path(env) if env else ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"real evaluation data not found at {path} (set SITEWATCH_REALDATA)")
    return path
