"""Vector outputs an analyst opens as they are: RFC 7946 GeoJSON, styled GPKG, GeoParquet, places.

* :func:`write_rfc7946` - GeoJSON through GDAL's driver with ``RFC7946=YES`` (lon/lat, exterior
  rings counter-clockwise, 7 decimals);
* :func:`write_layer_styles` and :func:`qml_style` - a QGIS style (categorised by a field,
  labelled by another) as a ``layer_styles`` table in a GeoPackage and as a ``.qml`` file;
* :func:`write_geoparquet` - GeoParquet through geopandas;
* :func:`place_of` and :func:`stable_id` - a feature's centroid in lon/lat and MGRS, and an id
  that does not depend on the order a run found things in.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

# RFC 7946 section 11.2: 7 decimals of a degree are about 1 cm, finer than any image here.
GEOJSON_DECIMALS = 7
# MGRS references to 1 m (5 digits each of easting and northing in the 100 km square).
MGRS_DIGITS = 5
# A stable id rounds the centroid to 5 decimals of a degree (about 1 m): the same object found
# again from the same images lands on the same id.
STABLE_ID_DECIMALS = 5
STABLE_ID_HEX = 12


def write_rfc7946(gdf: Any, path: Path) -> None:
    """A GeoDataFrame as RFC 7946 GeoJSON: lon/lat, right-hand-rule rings, 7 decimals (GDAL's driver)."""
    gdf.to_file(
        path,
        driver="GeoJSON",
        engine="pyogrio",
        layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": str(GEOJSON_DECIMALS), "WRITE_NAME": "NO"},
    )


def write_geoparquet(gdf: Any, path: Path) -> None:
    """A GeoDataFrame as GeoParquet (geometry as WKB, CRS as PROJJSON in the file's metadata)."""
    gdf.to_parquet(path, index=False)


def place_of(geometry: BaseGeometry, crs: Any) -> dict[str, Any]:
    """The centroid of ``geometry`` (in ``crs``) as ``lat``, ``lon`` (degrees, 6 decimals) and ``mgrs`` (1 m)."""
    import mgrs

    c = geometry.centroid
    lon, lat = Transformer.from_crs(CRS.from_user_input(crs), 4326, always_xy=True).transform(c.x, c.y)
    return {"lat": round(lat, 6), "lon": round(lon, 6), "mgrs": mgrs.MGRS().toMGRS(lat, lon, MGRSPrecision=MGRS_DIGITS)}


def spaced_mgrs(ref: str | None) -> str | None:
    """An MGRS reference as people write it: ``52TDM1234567890`` -> ``52T DM 12345 67890``."""
    found = re.fullmatch(r"(\d{1,2}[A-Z])([A-Z]{2})(\d*)", ref or "")
    if not found:
        return ref
    zone, square, numbers = found.groups()
    half = len(numbers) // 2
    return " ".join(part for part in (zone, square, numbers[:half], numbers[half:]) if part)


def stable_id(site_id: str | None, dates: tuple[str | None, str | None], kind: str, lat: float, lon: float) -> str:
    """A short id from the site, the two dates, the kind of change and the rounded centroid.

    The same structure found again from the same images gets the same id whatever order the
    run found it in, so features of several runs can be merged and cited.
    """
    key = "|".join(
        [
            site_id or "",
            dates[0] or "unknown",
            dates[1] or "unknown",
            kind,
            f"{lat:.{STABLE_ID_DECIMALS}f}",
            f"{lon:.{STABLE_ID_DECIMALS}f}",
        ]
    )
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:STABLE_ID_HEX]


@dataclass(frozen=True)
class VectorStyle:
    """A QGIS style for a polygon layer: fill and outline per value of ``field``, labels from ``label``.

    ``colours`` maps each value of ``field`` to ``#rrggbb``; a ``dashed_where`` (field, value)
    draws those features with a dashed outline (low-confidence objects).
    """

    name: str
    field: str
    colours: dict[str, str]
    label: str | None = None
    dashed_where: tuple[str, str] | None = None
    fill_alpha: int = 50


def _rgba(hex_colour: str, alpha: int = 255) -> str:
    h = hex_colour.lstrip("#")
    return ",".join(str(int(h[i : i + 2], 16)) for i in (0, 2, 4)) + f",{alpha}"


def _fill_symbol(name: str, colour: str, fill_alpha: int, outline: str = "solid") -> str:
    options = {
        "color": _rgba(colour, fill_alpha),
        "outline_color": _rgba(colour),
        "outline_style": outline,
        "outline_width": "0.6",
        "outline_width_unit": "MM",
        "style": "solid",
    }
    opts = "".join(f'<Option type="QString" name="{k}" value="{v}"/>' for k, v in options.items())
    return (
        f'<symbol type="fill" name="{name}" alpha="1" clip_to_extent="1" force_rhr="0">'
        f'<layer class="SimpleFill" pass="0" locked="0" enabled="1"><Option type="Map">{opts}</Option></layer>'
        "</symbol>"
    )


def _renderer(style: VectorStyle) -> str:
    if style.dashed_where is None:
        cats = "".join(
            f'<category symbol={quoteattr(str(i))} value={quoteattr(v)} label={quoteattr(v)} render="true"/>'
            for i, v in enumerate(style.colours)
        )
        symbols = "".join(_fill_symbol(str(i), c, style.fill_alpha) for i, c in enumerate(style.colours.values()))
        return (
            f'<renderer-v2 type="categorizedSymbol" attr={quoteattr(style.field)} symbollevels="0" forceraster="0" '
            f'enableorderby="0"><categories>{cats}</categories><symbols>{symbols}</symbols></renderer-v2>'
        )
    # rule-based: one rule per value, and a dashed outline where the second field says so
    dash_field, dash_value = style.dashed_where
    rules, symbols, k = [], [], 0
    for value, colour in style.colours.items():
        for dashed in (False, True):
            test = f"\"{style.field}\" = '{value}' AND \"{dash_field}\" {'=' if dashed else '<>'} '{dash_value}'"
            label = f"{value} ({dash_value} {dash_field})" if dashed else value
            rules.append(
                f"<rule key={quoteattr(f'r{k}')} symbol={quoteattr(str(k))} label={quoteattr(label)} "
                f"filter={quoteattr(test)}/>"
            )
            symbols.append(_fill_symbol(str(k), colour, style.fill_alpha, "dash" if dashed else "solid"))
            k += 1
    return (
        f'<renderer-v2 type="RuleRenderer" symbollevels="0" forceraster="0" enableorderby="0">'
        f'<rules key="root">{"".join(rules)}</rules><symbols>{"".join(symbols)}</symbols></renderer-v2>'
    )


def qml_style(style: VectorStyle) -> str:
    """The style as a QGIS ``.qml`` document (symbology and labels)."""
    labelling = ""
    if style.label:
        labelling = (
            '<labeling type="simple"><settings calloutType="simple">'
            f'<text-style fieldName={quoteattr(style.label)} isExpression="0" fontSize="9" fontSizeUnit="Point" '
            'textColor="255,255,255,255" fontWeight="75" namedStyle="Bold">'
            '<text-buffer bufferDraw="1" bufferSize="1" bufferSizeUnits="MM" bufferColor="0,0,0,255"/>'
            "</text-style>"
            '<placement placement="1" centroidInside="1"/><rendering obstacle="1" drawLabels="1"/>'
            "</settings></labeling>"
        )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        f'<qgis version="3.28.0" styleCategories="Symbology|Labeling" labelsEnabled="{int(bool(style.label))}">'
        f"{_renderer(style)}{labelling}</qgis>\n"
    )


def write_qml(style: VectorStyle, path: Path) -> None:
    """The style as a ``.qml`` file; QGIS applies ``<name>.qml`` to ``<name>.geojson`` beside it."""
    path.write_text(qml_style(style), encoding="utf-8")


_LAYER_STYLES_SQL = """CREATE TABLE IF NOT EXISTS layer_styles (
 id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256), f_table_schema TEXT(256),
 f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT,
 useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), update_time DATETIME)"""


def write_layer_styles(gpkg: Path, styles: dict[str, VectorStyle], geometry_column: str = "geom") -> None:
    """Store a default QGIS style per layer in the GeoPackage's ``layer_styles`` table (as QGIS does).

    ``styles`` maps a layer name to its style; the table is registered in ``gpkg_contents`` as
    an attributes table, so the file stays a valid GeoPackage.
    """
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with sqlite3.connect(gpkg) as db:
        db.execute(_LAYER_STYLES_SQL)
        db.execute(
            "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, last_change) "
            "VALUES ('layer_styles', 'attributes', 'layer_styles', ?)",
            (now,),
        )
        for layer, style in styles.items():
            db.execute(
                "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
                "styleName, styleQML, styleSLD, useAsDefault, description, owner, ui, update_time) "
                "VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', NULL, ?)",
                (layer, geometry_column, style.name, qml_style(style), f"sitewatch: {style.name}", now),
            )
    db.close()


# Traced outlines keep their area within this fraction of the pixel area when cleaned.
OUTLINE_AREA_TOLERANCE = 0.02
# The opening and closing take off spurs and notches up to this many pixels wide (one pixel,
# with room for rounding).
OUTLINE_SPUR_PX = 1.1
# Douglas-Peucker tolerances tried, largest first, in pixels (a 1-px step of a staircase is
# about 0.7 px off the line it approximates).
OUTLINE_TOLERANCES_PX = (1.0, 0.75, 0.5)


def clean_outline(geometry: BaseGeometry, pixel_size_m: float) -> BaseGeometry:
    """A traced pixel outline without its staircase: 1-px spurs and notches closed, then simplified.

    A morphological opening and closing by half a pixel takes off one-pixel bumps along an
    edge; a topology-preserving Douglas-Peucker simplification then straightens the steps, at
    the largest of :data:`OUTLINE_TOLERANCES_PX` that keeps the area within
    :data:`OUTLINE_AREA_TOLERANCE` of the traced one (half a pixel, never more than the traced
    outline, when none does).
    """
    mitre = {"join_style": "mitre", "mitre_limit": 5.0}
    r = 0.5 * OUTLINE_SPUR_PX * pixel_size_m
    area = geometry.area
    if area <= 0:
        return geometry
    smoothed = geometry.buffer(-r, **mitre).buffer(r, **mitre).buffer(r, **mitre).buffer(-r, **mitre)
    if smoothed.is_empty or smoothed.geom_type != geometry.geom_type:
        smoothed = geometry
    candidates = [smoothed.simplify(t * pixel_size_m, preserve_topology=True) for t in OUTLINE_TOLERANCES_PX]
    for candidate in candidates:
        if candidate.is_valid and abs(candidate.area / area - 1.0) <= OUTLINE_AREA_TOLERANCE:
            return candidate
    return geometry.simplify(0.5 * pixel_size_m, preserve_topology=True)


# Display previews (8-bit RGB, JPEG in a COG): the imagery a report or GIS shows under the polygons.
PREVIEW_JPEG_QUALITY = 85


def write_rgb_cog(path: Path, rgb: Any, crs: Any, transform: Any) -> None:
    """An (rows, cols, 3) uint8 picture on a grid as a JPEG-compressed Cloud-Optimised GeoTIFF."""
    import numpy as np
    import rasterio

    data = np.moveaxis(np.asarray(rgb, dtype=np.uint8), -1, 0)
    profile = {
        "driver": "COG",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": 3,
        "dtype": "uint8",
        "crs": crs,
        "transform": transform,
        "compress": "JPEG",
        "quality": PREVIEW_JPEG_QUALITY,
        "blocksize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for k, name in enumerate(("red", "green", "blue"), start=1):
            dst.set_band_description(k, f"{name}, display stretch (not radiometry)")


def read_rgb_preview(path: Path, shape: tuple[int, int]) -> Any:
    """A preview written by :func:`write_rgb_cog`, read (from its overviews) at ``shape`` (rows, cols)."""
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(path) as src:
        data = src.read(out_shape=(3, *shape), resampling=Resampling.average)
    return np.moveaxis(data, 0, -1)
