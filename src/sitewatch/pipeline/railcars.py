"""``count_railcars``: railcars on each track of one or more images, with polygons."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import LineString, Polygon
from shapely.geometry.base import BaseGeometry

from .. import railcars as core
from ..aoi import SiteAOI
from ..errors import ImageryError, TrackError
from ..io import (
    Grid,
    RasterWindow,
    check_outputs_free,
    dates_given,
    image_path,
    image_sun,
    read_track_window,
    read_tracks_file,
    read_whole_image,
    staged_outputs,
    write_csv,
    write_json,
    write_vectors,
)
from ._common import DATE_UNKNOWN, SCHEMA_VERSION, Progress, site_of, versions
from .vectors import RAILCAR_STYLE

log = logging.getLogger(__name__)

RAILCAR_OUTPUTS = ["railcars.geojson", "railcars.qml", "railcars.csv", "railcars.json"]
# written beside them by --find-tracks: the lines found (GeoJSON in lon/lat, for --tracks; GPKG in the image CRS)
FOUND_TRACK_OUTPUTS = ["tracks.geojson", "tracks.gpkg"]
RAILCAR_CSV_FIELDS = ["image", "date", "track_id", "count", "occupied_m", "method", "uncertainty", "reason"]


@dataclass
class ImageRailcars:
    """Railcars counted in one image."""

    path: Path
    date: str | None
    grid: Grid
    result: core.RailcarCount
    tracks: dict[str, BaseGeometry] = field(repr=False)  # clipped lines in the image CRS
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.result.total

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "date": self.date,
            **({"date_unknown": DATE_UNKNOWN + "; give it in a STAC sidecar"} if self.date is None else {}),
            "total": self.total,
            "uncertainty": round(self.result.uncertainty, 2),
            "method": self.result.method,
            "pixel_size_m": round(self.grid.pixel_size_m, 3),
            "line_shift_px": [round(v, 2) for v in self.result.line_shift_px],
            "tracks": [t.to_dict() for t in self.result.tracks],
        }


def load_tracks(
    *, aoi: SiteAOI | str | os.PathLike[str] | None = None, tracks: str | os.PathLike[str] | None = None
) -> dict[str, BaseGeometry]:
    """Track centrelines (lon/lat) from an AOI's ``rail_track`` features or a tracks GeoJSON.

    Raises
    ------
    TrackError
        If neither or both sources are given, or the source holds no usable track.
    """
    if (aoi is None) == (tracks is None):
        raise TrackError("give exactly one of an AOI (--aoi) or a tracks file (--tracks)")
    if tracks is not None:
        return read_tracks_file(tracks)
    site = site_of(aoi)
    lines = {}
    for f in site.by_role("rail_track"):
        if not f.track_id:
            raise TrackError(f"{site.path}: rail_track {f.name!r} has no track_id")
        if f.geometry.is_empty:
            raise TrackError(f"{site.path}: track {f.track_id!r} has an empty geometry")
        lines[f.track_id] = f.geometry
    if not lines:
        raise TrackError(f"{site.path or site.site_id}: the AOI has no rail_track features")
    return lines


def _to_pixels(line: BaseGeometry, grid: Grid) -> np.ndarray:
    inverse = ~grid.transform
    return np.array([inverse * xy for xy in np.asarray(line.coords)[:, :2]])


def _to_crs(ring_px: np.ndarray, grid: Grid) -> Polygon:
    return Polygon([grid.transform * (float(c), float(r)) for c, r in ring_px])


# Railcars are counted on pixels no coarser than this (metres): a car is about 3 m wide, and the
# counter is measured to 3 m (benchmarks/bench_railcars.py); on coarser pixels (Sentinel-2's
# 10 m) the count is unknown, and said to be.
COARSEST_RAILCAR_PIXEL_M = 3.0


class NotCountable(ImageryError):
    """An image on which railcars cannot be counted (pixels too coarse): the count is unknown."""


# A track whose line runs over more nodata than this is not counted: its cars may lie in the
# gap, so its count is unknown, never 0.  (5 %: a car is 1/60 of a 1 km track.)
MAX_TRACK_NODATA_SHARE = 0.05
# Spread of pixel values below which an image shows nothing (all one value), in its units.
FEATURELESS_SPREAD = 1e-6


def _check_countable(path: Path, window: RasterWindow, lines_px: dict[str, np.ndarray]) -> None:
    """Refuse to count where the pixels hold no evidence: nothing but nodata or one value, or a track over nodata."""
    if not window.valid.any() or float(np.std(window.data[:, window.valid])) < FEATURELESS_SPREAD:
        raise ImageryError(
            f"{path}: the image around the tracks holds no data (all nodata, or one value everywhere); "
            "the railcar count is unknown, not 0"
        )
    rows, cols = window.valid.shape
    for track_id, px in lines_px.items():
        line = LineString(px)
        steps = np.linspace(0.0, line.length, max(2, int(np.ceil(line.length)) + 1))
        pts = np.array([line.interpolate(d).coords[0] for d in steps])
        c = np.clip(np.round(pts[:, 0]).astype(int), 0, cols - 1)
        r = np.clip(np.round(pts[:, 1]).astype(int), 0, rows - 1)
        share = 1.0 - float(window.valid[r, c].mean())
        if share > MAX_TRACK_NODATA_SHARE:
            raise ImageryError(
                f"{path}: {share:.0%} of track {track_id!r} lies on nodata; its railcar count is unknown "
                "(cars may stand in the gap), so it is not given"
            )


def count_in_image(
    path: str | os.PathLike[str],
    tracks_lonlat: dict[str, BaseGeometry],
    *,
    prior: core.SegmentationPrior = core.SegmentationPrior(),
    max_line_error_m: float | None = None,
    skip_outside: bool = False,
    bands: tuple[int, ...] | None = None,
    date: str | None = None,
) -> ImageRailcars:
    """Count railcars on each track in one image (read only around the tracks).

    With ``skip_outside``, tracks that miss the image are left out (logged) instead of
    being an error.  ``bands``: red, green, blue[, NIR] band numbers as ``--bands``;
    ``date``: the acquisition date the user gave, over what the file says.

    Raises
    ------
    NotCountable
        Where the pixels are coarser than :data:`COARSEST_RAILCAR_PIXEL_M`.
    ImageryError
        Where the count would be unknown: the image shows nothing around the tracks, or a
        track runs over nodata (its cars may lie in the gap).
    """
    t0 = time.perf_counter()
    window, lines = read_track_window(path, tracks_lonlat, margin_m=30.0, skip_outside=skip_outside, bands=bands)
    if window.grid.pixel_size_m > COARSEST_RAILCAR_PIXEL_M:
        raise NotCountable(
            f"{image_path(path)}: {window.grid.pixel_size_m:.1f} m pixels; railcars (about 3 m wide) are counted on "
            f"pixels of at most {COARSEST_RAILCAR_PIXEL_M:.0f} m, so the count is unknown here, not given"
        )
    _check_countable(image_path(path), window, {t: _to_pixels(ln, window.grid) for t, ln in lines.items()})
    for missing in sorted(set(tracks_lonlat) - set(lines)):
        log.info(
            "%s: track %s is outside the image, or too little of it inside to count; not counted",
            image_path(path).name,
            missing,
        )
    grid = window.grid
    data = np.where(window.valid, window.data, np.nan)
    # fill nodata with each band's median so gaps in the image do not read as cars
    med = np.nanmedian(data.reshape(data.shape[0], -1), axis=1)
    data = np.where(np.isnan(data), med[:, None, None], data).astype(np.float32)
    angles = image_sun(path)
    sun = None if angles is None else core.shadow_geometry(*angles, tuple(grid.transform)[:6])
    result = core.count_railcars(
        data,
        {t: _to_pixels(ln, grid) for t, ln in lines.items()},
        pixel_size_m=grid.pixel_size_m,
        prior=prior,
        max_line_error_m=max_line_error_m,
        sun=sun,
    )
    seconds = time.perf_counter() - t0
    log.info(
        "%s: %d railcars (%s), track lines shifted by (%.1f, %.1f) px, sun %s, %.2f s",
        image_path(path).name,
        result.total,
        result.method,
        *result.line_shift_px,
        "not in the metadata" if angles is None else f"azimuth {angles[0]:.0f}, elevation {angles[1]:.0f} degrees",
        seconds,
    )
    return ImageRailcars(image_path(path), date or window.date, grid, result, lines, seconds)


@dataclass
class ImageTracks:
    """Track centrelines found in one image (``--find-tracks``)."""

    path: Path
    grid: Grid
    tracks: list[core.FoundTrack] = field(repr=False)
    lines: dict[str, LineString] = field(repr=False)  # in the image CRS, ids found-1, found-2, ...

    def records(self) -> list[dict[str, Any]]:
        """One feature per line: ``track_id``, ``score``, ``length_m``, ``found_share``, geometry."""
        return [
            {
                "track_id": tid,
                "score": round(t.score, 2),
                "length_m": round(t.length_m, 1),
                "found_share": round(t.found_share, 3),
                "source": f"found in {self.path.name}",
                "geometry": line,
            }
            for (tid, line), t in zip(self.lines.items(), self.tracks)
        ]

    def lonlat(self) -> dict[str, BaseGeometry]:
        """The lines in lon/lat, as a tracks file gives them."""
        from rasterio.warp import transform_geom
        from shapely.geometry import mapping, shape

        return {t: shape(transform_geom(self.grid.crs, "EPSG:4326", mapping(ln))) for t, ln in self.lines.items()}


def find_tracks_in_image(path: str | os.PathLike[str], *, bands: tuple[int, ...] | None = None) -> ImageTracks:
    """Find the track centrelines in an image itself (:func:`sitewatch.railcars.find_tracks`).

    Raises
    ------
    NotCountable
        Where the pixels are coarser than :data:`sitewatch.railcars.FIND_MAX_PIXEL_M`.
    TrackError
        Where no track is found.
    """
    window = read_whole_image(path, bands=bands)
    name = image_path(path)
    size = window.grid.pixel_size_m
    if size > core.FIND_MAX_PIXEL_M:
        raise NotCountable(
            f"{name}: {size:.2f} m pixels; tracks are found in the image (--find-tracks) only on pixels of at most "
            f"{core.FIND_MAX_PIXEL_M:g} m (rails 1.5 m apart, cars 3 m wide); give the track lines with --tracks "
            "or --aoi instead"
        )
    data = np.where(window.valid, window.data, np.nan)
    med = np.nanmedian(data.reshape(data.shape[0], -1), axis=1)
    data = np.where(np.isnan(data), med[:, None, None], data).astype(np.float32)
    found = core.find_tracks(data, pixel_size_m=size)
    if not found:
        raise TrackError(
            f"{name}: no track found in the image ({size:.2f} m pixels); give the track lines with --tracks or --aoi"
        )
    lines = {
        f"found-{k + 1}": LineString([window.grid.transform * (float(c), float(r)) for c, r in t.line_px])
        for k, t in enumerate(found)
    }
    log.info("%s: %d tracks found in the image", name.name, len(found))
    return ImageTracks(name, window.grid, found, lines)


def write_found_tracks(found: ImageTracks, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> list[Path]:
    """Write ``tracks.geojson`` (lon/lat, RFC 7946: ready for ``--tracks``) and ``tracks.gpkg`` (image CRS)."""
    with staged_outputs(out_dir, FOUND_TRACK_OUTPUTS, overwrite=overwrite) as stage:
        write_vectors(
            found.records(),
            found.grid.crs,
            geojson_path=stage / "tracks.geojson",
            gpkg_path=stage / "tracks.gpkg",
            layer="tracks",
        )
    return [Path(out_dir) / n for n in FOUND_TRACK_OUTPUTS]


def count_railcars(
    images: list[str | os.PathLike[str]],
    *,
    aoi: SiteAOI | str | os.PathLike[str] | None = None,
    tracks: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    prior: core.SegmentationPrior = core.SegmentationPrior(),
    bands: tuple[int, ...] | None = None,
    dates: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    find_tracks: bool = False,
) -> list[ImageRailcars]:
    """Count railcars on every track of every image.

    Parameters
    ----------
    images : list of path-like
        GeoTIFFs in a projected CRS (metres).
    aoi, tracks :
        Exactly one: an AOI (site id or file) whose ``rail_track`` lines to use, or a
        GeoJSON of LineStrings with a ``track_id`` property.
    out_dir : path-like, optional
        Where to write ``railcars.geojson`` (one polygon per car, or per train where the
        pixels are too coarse to separate cars), ``railcars.csv`` and ``railcars.json``.
    overwrite : bool
        Replace existing outputs.
    prior : SegmentationPrior
        Car lengths; the nominal length sets the occupied-length count.
    bands : tuple of int, optional
        1-based red, green, blue[, NIR] band numbers (``--bands``); default: from the files.
    dates : mapping of str to str, optional
        Acquisition dates by image path or file name (``--date NAME=YYYY-MM-DD``), over what
        the files say (:func:`~sitewatch.io.dates_given`).
    progress : callable, optional
        Called with a message per image.
    find_tracks : bool
        Find the track lines in the (one) image instead of taking them from ``aoi`` or
        ``tracks`` (:func:`find_tracks_in_image`); with ``out_dir``, they are written there as
        ``tracks.geojson`` (for ``--tracks``) and ``tracks.gpkg``.

    Returns
    -------
    list of ImageRailcars, in the order given.
    """
    given = dates_given(images, dates or {})
    names = RAILCAR_OUTPUTS + (FOUND_TRACK_OUTPUTS if find_tracks else [])
    if out_dir is not None:
        check_outputs_free([Path(out_dir) / n for n in names], overwrite)
    if find_tracks:
        if aoi is not None or tracks is not None:
            raise TrackError("--find-tracks finds the track lines in the image: give no --aoi or --tracks with it")
        if len(images) != 1:
            raise TrackError(f"--find-tracks works on one image at a time ({len(images)} given)")
        if progress:
            progress(f"finding tracks in {image_path(images[0]).name}")
        found = find_tracks_in_image(images[0], bands=bands)
        lines = found.lonlat()
    else:
        lines = load_tracks(aoi=aoi, tracks=tracks)
    results = []
    for i, path in enumerate(images):
        if progress:
            progress(f"counting railcars in {image_path(path).name} ({i + 1}/{len(images)})")
        results.append(
            count_in_image(
                path, lines, prior=prior, skip_outside=tracks is None, bands=bands, date=given.get(str(path))
            )
        )
    if out_dir is not None:
        write_railcars(results, out_dir, overwrite=overwrite)
        if find_tracks:
            write_found_tracks(found, out_dir, overwrite=overwrite)
    return results


def railcar_records(results: list[ImageRailcars]) -> list[dict[str, Any]]:
    """One record per car (or per train for the occupied-length method).

    Geometries are in the first image's CRS; shapes from images in another CRS are
    reprojected into it.
    """
    import shapely
    from pyproj import Transformer

    target = results[0].grid.crs if results else None
    records = []
    for res in results:
        to_target = None
        if res.grid.crs != target:
            to_target = Transformer.from_crs(res.grid.crs, target, always_xy=True)
        for t in res.result.tracks:
            individual = t.method == core.METHOD_INDIVIDUAL
            for k, ring in enumerate(t.cars_px if individual else t.runs_px):
                geom = _to_crs(ring, res.grid)
                records.append(
                    {
                        "image": res.path.name,
                        "date": res.date,
                        "track_id": t.track_id,
                        "kind": "railcar" if individual else "train",
                        "index": k + 1,
                        "method": t.method,
                        "geometry": shapely.transform(
                            geom, lambda xy, t=to_target: np.column_stack(t.transform(xy[:, 0], xy[:, 1]))
                        )
                        if to_target
                        else geom,
                    }
                )
    return records


def track_rows(results: list[ImageRailcars]) -> list[dict[str, Any]]:
    """Rows of ``railcars.csv``: one per image and track."""
    return [{"image": r.path.name, "date": r.date or "", **t.to_dict()} for r in results for t in r.result.tracks]


def write_railcars(
    results: list[ImageRailcars], out_dir: str | os.PathLike[str], *, overwrite: bool = False
) -> list[Path]:
    """Write ``railcars.geojson``, ``railcars.csv`` and ``railcars.json`` (all or nothing)."""
    with staged_outputs(out_dir, RAILCAR_OUTPUTS, overwrite=overwrite) as stage:
        write_vectors(
            railcar_records(results),
            results[0].grid.crs,
            geojson_path=stage / "railcars.geojson",
            layer="railcars",
            style=RAILCAR_STYLE,
        )
        write_csv(stage / "railcars.csv", track_rows(results), RAILCAR_CSV_FIELDS)
        write_json(
            stage / "railcars.json",
            {"schema_version": SCHEMA_VERSION, "images": [r.to_dict() for r in results], "versions": versions()},
        )
    return [Path(out_dir) / n for n in RAILCAR_OUTPUTS]
