"""Track centrelines: a tracks GeoJSON, and the part of an image around a set of tracks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from rasterio.warp import transform_geom
from shapely.geometry import LineString, box, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import TrackError
from .raster import (
    RasterWindow,
    measures_in_metres,
    opened_image,
    read_bounds,
    to_local_utm,
    utm_crs_at,
)
from .sources import image_path


def _finite_coordinates(geometry: object) -> bool:
    """False where a GeoJSON geometry's coordinates hold NaN or infinity (JSON as Python reads it allows them)."""
    coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
    try:
        return bool(np.isfinite(np.asarray(coords, dtype=float)).all()) if coords is not None else True
    except (TypeError, ValueError):
        return True  # ragged or not numbers: shape() says what is wrong


def read_tracks_file(path: str | os.PathLike[str]) -> dict[str, BaseGeometry]:
    """Track centrelines from a GeoJSON of LineStrings, each with a ``track_id`` property.

    Coordinates are lon/lat (RFC 7946).  Returns ``{track_id: geometry}`` in file order.

    Raises
    ------
    TrackError
        If the file is missing or not GeoJSON, or a feature is not a non-empty LineString
        with a unique ``track_id``; the message names the feature.
    """
    path = Path(path)
    if not path.exists():
        raise TrackError(f"{path}: no such file")
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrackError(f"{path}: not valid JSON ({exc})") from exc
    feats = doc.get("features") if isinstance(doc, dict) and doc.get("type") == "FeatureCollection" else None
    if not isinstance(feats, list):
        raise TrackError(f"{path}: expected a GeoJSON FeatureCollection of LineStrings")
    tracks: dict[str, BaseGeometry] = {}
    for i, feat in enumerate(feats):
        props = feat.get("properties") if isinstance(feat, dict) else None
        if not isinstance(props, dict):
            raise TrackError(f"{path}: feature {i} has no properties object (a track needs a track_id property)")
        track_id = props.get("track_id")
        label = f"track {track_id!r}" if track_id else f"feature {i}"
        if not track_id:
            raise TrackError(f"{path}: {label} has no track_id property")
        if not isinstance(track_id, str):
            raise TrackError(
                f"{path}: feature {i}: track_id {track_id!r} is a {type(track_id).__name__}; give it as text"
            )
        if track_id in tracks:
            raise TrackError(f"{path}: track {track_id!r} appears twice")
        if not _finite_coordinates(feat.get("geometry")):
            raise TrackError(f"{path}: {label} has a coordinate that is not a finite number (NaN or infinity)")
        try:
            geom = shape(feat["geometry"]) if feat.get("geometry") else None
        except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.ShapelyError) as exc:
            raise TrackError(f"{path}: {label} has an unreadable geometry ({exc})") from exc
        if geom is None or geom.is_empty:
            raise TrackError(f"{path}: {label} has an empty geometry")
        if geom.geom_type != "LineString":
            raise TrackError(f"{path}: {label} is a {geom.geom_type}; a track must be a LineString")
        minx, miny, maxx, maxy = geom.bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise TrackError(
                f"{path}: {label} has coordinates outside lon/lat range (bounds {geom.bounds}); "
                "GeoJSON tracks are WGS84 lon, lat"
            )

        tracks[track_id] = geom
    if not tracks:
        raise TrackError(f"{path}: contains no tracks")
    return tracks


# A track needs at least this much of its line inside an image (2 px in from the edge) to be counted.
MIN_TRACK_INSIDE_M = 20.0


def _length_m(line: BaseGeometry, crs: CRS) -> float:
    """A line's length in metres on the ground (geodesic)."""
    return float(Geod(ellps="WGS84").geometry_length(shape(transform_geom(crs, "EPSG:4326", mapping(line)))))


def _crs_units_per_metre(crs: CRS, at: BaseGeometry) -> float:
    """The most CRS units one ground metre spans near a point (either axis), to pad a read window."""
    lon, lat = shape(transform_geom(crs, "EPSG:4326", mapping(at))).coords[0]
    utm = utm_crs_at(lon, lat)
    x, y = Transformer.from_crs("EPSG:4326", utm, always_xy=True).transform(lon, lat)
    back = Transformer.from_crs(utm, crs, always_xy=True).transform
    (x0, x1, x2), (y0, y1, y2) = back([x, x + 1000.0, x], [y, y, y + 1000.0])
    return max(np.hypot(x1 - x0, y1 - y0), np.hypot(x2 - x0, y2 - y0)) / 1000.0


def _clip_tracks(
    tracks_lonlat: dict[str, BaseGeometry], src, path: Path, crs: CRS, skip_outside: bool
) -> dict[str, LineString]:
    """Each track in the image CRS, clipped to 2 px inside the image; too little inside is an error or skipped."""
    image_box = box(*src.bounds)
    inner = image_box.buffer(-2 * abs(src.transform.a))
    clipped_lines: dict[str, LineString] = {}
    for track_id, geom in tracks_lonlat.items():
        if geom is None or geom.is_empty:
            raise TrackError(f"track {track_id!r}: empty geometry")
        clipped = shape(transform_geom("EPSG:4326", src.crs, mapping(geom))).intersection(inner)
        inside_m = 0.0 if clipped.is_empty else _length_m(clipped, crs)
        if inside_m < MIN_TRACK_INSIDE_M:
            if skip_outside:
                continue
            where = "lies outside" if clipped.is_empty else f"has only {inside_m:.0f} m inside"
            raise TrackError(
                f"track {track_id!r} {where} {path} (at least {MIN_TRACK_INSIDE_M:.0f} m must be inside to count "
                f"it; image bounds {tuple(round(v, 6) for v in src.bounds)} in {crs.to_string()})"
            )
        if clipped.geom_type != "LineString":
            # leaves and re-enters the image: keep the longest piece
            clipped = max(getattr(clipped, "geoms", [clipped]), key=lambda g: g.length)
        clipped_lines[track_id] = clipped
    if not clipped_lines:
        raise TrackError(
            f"none of the tracks ({', '.join(tracks_lonlat)}) lies inside {path} (image bounds "
            f"{tuple(round(v, 6) for v in src.bounds)} in {crs.to_string()})"
        )
    return clipped_lines


def read_track_window(
    path: str | os.PathLike[str],
    tracks_lonlat: dict[str, BaseGeometry],
    *,
    margin_m: float = 20.0,
    skip_outside: bool = False,
    bands: tuple[int, ...] | None = None,
) -> tuple[RasterWindow, dict[str, LineString]]:
    """Read the part of an image around a set of track lines, and the lines in its CRS.

    A line partly outside the image is clipped to it.  A line wholly outside, or with less
    than :data:`MIN_TRACK_INSIDE_M` inside, is an error naming the track, unless
    ``skip_outside`` is true (an AOI may hold tracks beyond one image's extent): then it is
    left out, and only when no track at all is inside is it an error.  Bands are read as
    red, green, blue[, NIR] (``bands`` as ``--bands``, see
    :func:`~sitewatch.io.raster.band_layout`); a one-band image is refused, since cars are
    told from ballast and shadow by colour.  An image whose grid is not metres at true scale
    (degrees, Web Mercator: :func:`~.raster.measures_in_metres`) is warped once, around the
    tracks, onto its local UTM grid (:func:`~.raster.to_local_utm`), since car lengths are
    counted in metres.

    Returns
    -------
    window : RasterWindow
    tracks : dict of str to LineString
        Each track in the window's CRS (metres), clipped to the image.
    """
    path = image_path(path)
    with opened_image(path, bands, True, "counting railcars") as (src, layout):
        crs = CRS.from_user_input(src.crs)
        lines = _clip_tracks(tracks_lonlat, src, path, crs, skip_outside)
        union = shapely.union_all(list(lines.values()))
        if measures_in_metres(crs, src.transform, src.shape):
            extent = union.buffer(margin_m).intersection(box(*src.bounds))
            return read_bounds(src, path, extent.bounds, layout), lines
        extent = union.buffer(margin_m * _crs_units_per_metre(crs, union.centroid)).intersection(box(*src.bounds))
        window = to_local_utm(read_bounds(src, path, extent.bounds, layout))
    return window, {t: shape(transform_geom(crs, window.grid.crs, mapping(ln))) for t, ln in lines.items()}


def read_whole_image(path: str | os.PathLike[str], *, bands: tuple[int, ...] | None = None) -> RasterWindow:
    """Read a whole colour image (to find its tracks), on a grid in metres.

    Bands as in :func:`read_track_window`; an image whose grid is not metres at true scale is
    warped onto its local UTM grid.

    Raises
    ------
    ImageryError
        If the file is missing, has no CRS, or has fewer than three colour bands.
    """
    path = image_path(path)
    with opened_image(path, bands, True, "finding tracks") as (src, layout):
        crs = CRS.from_user_input(src.crs)
        window = read_bounds(src, path, tuple(src.bounds), layout)
    return window if measures_in_metres(crs, window.grid.transform, window.valid.shape) else to_local_utm(window)
