"""Write a site's synthetic imagery and its truth: the sample data and the benchmarks' input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import rasterio

from .. import __version__
from ..aoi import SiteAOI
from ..errors import AOIError
from ..io import Grid, staged_outputs, write_geotiff, write_vectors
from ._common import Progress, site_of


def synthesize(
    site: SiteAOI | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    pixel_size_m: float = 1.0,
    seed: int = 0,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> list[Path]:
    """Write a site's synthetic images (``DIR/YYYY-MM-DD.tif``) and ``DIR/truth.geojson``.

    Deterministic for a given site, ``pixel_size_m`` and ``seed``.

    Returns
    -------
    list of Path
        The files written, images first, truth last.
    """
    from ..synth import build_scene, render

    step = progress or (lambda msg: None)
    site = site_of(site)
    try:
        scene = build_scene(site, pixel_size_m=pixel_size_m, seed=seed)
    except KeyError as exc:  # a scenario draws round the site's named buildings
        raise AOIError(
            f"{site.path or site.site_id}: the synthetic scenario needs a reference_structure named {exc}"
        ) from exc
    names = [f"{a.date}.tif" for a in scene.acquisitions] + ["truth.geojson"]
    west, south, east, north = scene.bounds
    grid = Grid(
        rasterio.crs.CRS.from_wkt(scene.crs_wkt),
        rasterio.transform.from_origin(west, north, pixel_size_m, pixel_size_m),
        scene.shape,
    )
    with staged_outputs(out_dir, names, overwrite=overwrite) as stage:
        for i, acq in enumerate(scene.acquisitions):
            step(f"rendering {acq.date}")
            image = render(scene, i)
            write_geotiff(
                stage / f"{acq.date}.tif",
                image,
                grid,
                descriptions=("red", "green", "blue"),
                tags={
                    "TIFFTAG_DATETIME": acq.date.replace("-", ":") + " 10:30:00",
                    "SITEWATCH_SYNTHETIC": "yes",
                    "SITE_ID": site.site_id,
                    "SEED": seed,
                    "SUN_AZIMUTH": acq.sun_azimuth_deg,
                    "SUN_ELEVATION": acq.sun_elevation_deg,
                },
            )
        records = []
        for t in scene.truth:
            rec = {k: v for k, v in t.items()}
            rec["area_m2"] = round(t["geometry"].area, 2)
            records.append(rec)
        write_vectors(records, grid.crs, geojson_path=stage / "truth.geojson")
        _annotate_truth(stage / "truth.geojson", site, scene, pixel_size_m, seed)
    return [Path(out_dir) / n for n in names]


def _annotate_truth(path: Path, site: SiteAOI, scene, pixel_size_m: float, seed: int) -> None:
    """Add the scene's provenance (dates, sun, true misregistration) to the truth file."""
    doc = json.loads(path.read_text("utf-8"))
    doc["properties"] = {
        "site_id": site.site_id,
        "seed": seed,
        "gsd_m": pixel_size_m,  # truth.geojson's key since the first samples; the pixel size
        "crs": rasterio.crs.CRS.from_wkt(scene.crs_wkt).to_string(),
        "generator": f"sitewatch {__version__}",
        "acquisitions": [
            {
                "date": a.date,
                "season": a.season,
                "sun_azimuth_deg": a.sun_azimuth_deg,
                "sun_elevation_deg": a.sun_elevation_deg,
                "shift_px": list(a.shift_px),
            }
            for a in scene.acquisitions
        ],
        "shift_convention": "shift_px = (dx, dy): a ground feature at true pixel (col, row) "
        "appears at (col + dx, row + dy)",
    }
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
