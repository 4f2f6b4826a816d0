"""Interactive Leaflet maps of sitewatch results, for notebooks, that work with no network.

Analysts often work on air-gapped networks, so the maps are made with folium (install with
``pip install 'sitewatch[notebooks]'``) but carry Leaflet's JavaScript and CSS inlined from the
copy vendored in ``sitewatch/vendor/leaflet`` (BSD-2) instead of folium's CDN links
(:mod:`.controls`). Only Leaflet itself is kept (folium also links jQuery, Bootstrap and Font
Awesome, which these maps do not use), so a map is about 200 kB before its imagery.  Each map
has a legend, a before/after swipe and the cursor's coordinates; popups say what a feature is in
words. A basemap is off by default; ``basemap="OpenStreetMap"`` (or any xyzservices name) adds
one that needs a network.

Imagery is warped to Web Mercator before it is overlaid, so pixels land where they belong
rather than on a lon/lat box stretched over a UTM grid.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from ..io import Grid, read_aoi_window, spaced_mgrs
from ..pipeline.railcars import railcar_records
from ..pipeline.vectors import change_records
from ..report.figures import COLOURS, display_rgb, score_rgb, stretch_limits, webp_bytes
from .controls import cursor_position, inline_leaflet, legend_control, legend_html, side_by_side

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline import DetectResult, Timeline

WEB_MERCATOR = CRS.from_epsg(3857)
LONLAT = CRS.from_epsg(4326)


def _folium():
    try:
        import folium
    except ImportError as exc:  # an optional extra
        raise ImportError("sitewatch maps need folium: pip install 'sitewatch[notebooks]'") from exc
    return folium


def new_map(bounds_lonlat: tuple[float, float, float, float], *, basemap: str | None = None):
    """An empty map fitted to ``(west, south, east, north)``, with only Leaflet's own code inlined."""
    folium = _folium()
    west, south, east, north = bounds_lonlat
    fmap = folium.Map(
        location=[(south + north) / 2, (west + east) / 2],
        tiles=None,
        control_scale=True,
        zoom_start=15,
        max_zoom=22,
        zoom_snap=0.25,
    )
    inline_leaflet(fmap)
    if basemap:
        folium.TileLayer(basemap, name=f"basemap ({basemap}, needs a network)", max_zoom=22).add_to(fmap)
    fmap.fit_bounds([[south, west], [north, east]])
    return fmap


def image_overlay(
    rgb: np.ndarray, grid: Grid, name: str, *, valid: np.ndarray | None = None, opacity: float = 1.0, show: bool = True
):
    """A picture on ``grid`` as a Leaflet image overlay, warped to Web Mercator.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (rows, cols, 3)
    grid : Grid
        Where the picture lies.
    name : str
        Its name in the layer control.
    valid : ndarray of bool, optional
        Pixels to show; the rest are transparent.
    """
    folium = _folium()
    rows, cols = grid.shape
    alpha = np.full((rows, cols), 255, np.uint8) if valid is None else np.where(valid, 255, 0).astype(np.uint8)
    bands = np.concatenate([np.moveaxis(rgb, -1, 0), alpha[None]], axis=0)
    west, south, east, north = grid.bounds
    dst_transform, width, height = calculate_default_transform(
        grid.crs, WEB_MERCATOR, cols, rows, west, south, east, north
    )
    warped = np.zeros((4, height, width), np.uint8)
    reproject(
        bands,
        warped,
        src_transform=grid.transform,
        src_crs=grid.crs,
        dst_transform=dst_transform,
        dst_crs=WEB_MERCATOR,
        resampling=Resampling.nearest,
        src_nodata=None,
        dst_nodata=0,
    )
    to_lonlat = Transformer.from_crs(WEB_MERCATOR, LONLAT, always_xy=True)
    x0, y0 = dst_transform * (0, 0)
    x1, y1 = dst_transform * (width, height)
    (lon0, lon1), (lat0, lat1) = to_lonlat.transform([x0, x1], [y0, y1])
    uri = "data:image/webp;base64," + base64.b64encode(webp_bytes(np.moveaxis(warped, 0, -1))).decode("ascii")
    return folium.raster_layers.ImageOverlay(
        uri,
        bounds=[[min(lat0, lat1), lon0], [max(lat0, lat1), lon1]],
        name=name,
        opacity=opacity,
        show=show,
        interactive=False,
        cross_origin=False,
    )


def _lonlat(geometry: BaseGeometry, crs: Any) -> BaseGeometry:
    to_lonlat = Transformer.from_crs(CRS.from_user_input(crs), LONLAT, always_xy=True)
    return shapely.transform(geometry, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))


@dataclass(frozen=True)
class LayerStyle:
    """How a GeoJSON layer is drawn.

    ``colour`` is one colour, or a mapping from the value of the ``colour_by`` property to a
    colour (white for values it does not name).
    """

    colour: str | dict[str, str]
    colour_by: str | None = None
    weight: float = 2.0
    fill_opacity: float = 0.15

    def of(self, feature: dict[str, Any]) -> dict[str, Any]:
        """Leaflet's style of one feature."""
        c = self.colour
        if not isinstance(c, str):
            c = c.get(str(feature["properties"].get(self.colour_by)), "#ffffff")
        style = {"color": c, "weight": self.weight, "fillColor": c, "fillOpacity": self.fill_opacity}
        if feature["properties"].get("confidence") == "low":
            style["dashArray"] = "6 4"
        return style


# the change polygons: red new, blue removed
CHANGE_STYLE = LayerStyle({kind: COLOURS[kind] for kind in ("new", "removed", "changed")}, colour_by="change")
# outlines of the site's known buildings
REFERENCE_COLOUR = "#7fff00"


def _popup_value(value: Any) -> Any:
    """A property as a popup shows it: NaN as empty, text HTML-escaped."""
    if isinstance(value, float) and np.isnan(value):
        return None
    return escape(value) if isinstance(value, str) else value


def geojson_layer(
    records: list[dict[str, Any]],
    crs: Any,
    name: str,
    *,
    style: LayerStyle,
    popup_fields: list[str] | None = None,
    show: bool = True,
):
    """Features (dicts with a ``geometry`` in ``crs``) as a GeoJSON layer with popups."""
    folium = _folium()
    features = []
    for rec in records:
        # popups and tooltips are set through innerHTML: every text reaches the page escaped
        props = {k: _popup_value(v) for k, v in rec.items() if k != "geometry"}
        features.append({"type": "Feature", "geometry": mapping(_lonlat(rec["geometry"], crs)), "properties": props})
    collection = {"type": "FeatureCollection", "features": features}
    layer = folium.GeoJson(collection, name=escape(name), style_function=style.of, show=show)
    if popup_fields and features:
        folium.GeoJsonPopup(fields=popup_fields).add_to(layer)
        folium.GeoJsonTooltip(fields=popup_fields[:2]).add_to(layer)
    return layer


def change_map(result: DetectResult, *, basemap: str | None = None):
    """Before, after and change score as toggleable overlays, with the change polygons.

    Parameters
    ----------
    result : DetectResult
        What :func:`sitewatch.detect` returned.
    basemap : str, optional
        A tile layer name (needs a network); none by default.

    Returns
    -------
    folium.Map
        Shown inline in a notebook; ``.save("map.html")`` writes a standalone page.
    """
    folium = _folium()
    grid, valid = result.display_grid, result.valid
    fmap = new_map(_bounds_lonlat(grid), basemap=basemap)
    limits = stretch_limits(result.before, valid)
    dates = result.summary["dates"]
    before = image_overlay(
        display_rgb(result.before, valid, limits=limits), grid, f"before {dates['before']}", valid=valid
    ).add_to(fmap)
    after = image_overlay(
        display_rgb(result.after, valid, limits=limits), grid, f"after {dates['after']}", valid=valid
    ).add_to(fmap)
    image_overlay(
        score_rgb(result.changes.score, result.changes.threshold, valid),
        grid,
        "change score",
        valid=valid,
        opacity=0.85,
        show=False,
    ).add_to(fmap)
    _site_layers(fmap, result.site, grid.crs)
    records = [{**r, **readable_change(r)} for r in change_records(result)]
    geojson_layer(
        records,
        grid.crs,
        f"changes ({len(records)})",
        style=CHANGE_STYLE,
        popup_fields=list(CHANGE_POPUP),
    ).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    side_by_side(before, after, f"drag: before {dates['before']} (left) | after {dates['after']} (right)").add_to(fmap)
    legend_control(change_legend(result.changes.threshold)).add_to(fmap)
    cursor_position().add_to(fmap)
    return fmap


# what a change's popup shows, in words: label -> record key (made by readable_change)
CHANGE_POPUP = ("Change", "Area", "Size", "Relative size", "Score", "Where", "MGRS", "Change id")


def _thousands(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def readable_change(rec: dict[str, Any]) -> dict[str, Any]:
    """A change record's popup texts: ``Area: 5 700 m²``, ``Relative size: 63 % of Building B`` ..."""
    rel = rec.get("relative_size")
    has_rel = rel is not None and not (isinstance(rel, float) and np.isnan(rel))
    lat, lon = rec.get("lat"), rec.get("lon")
    return {
        "Change": f"{rec['change']} structure (#{rec['id']})",
        "Area": f"{_thousands(rec['area_m2'])} m²",
        "Size": f"{rec['length_m']:.0f} × {rec['width_m']:.0f} m, long side {rec['orientation_deg']:.0f}° from north",
        "Relative size": f"{100 * rel:.0f} % of {rec['relative_to']}" if has_rel else "no reference building",
        "Score": f"{rec['score']:.2f} ({rec['confidence']} confidence)",
        "Where": "no map position" if lat is None else f"{lat:.6f} N, {lon:.6f} E",
        "MGRS": spaced_mgrs(rec.get("mgrs")) or "–",
        "Change id": rec["change_id"],
    }


def change_legend(threshold: float) -> str:
    """The change map's legend: directions, confidence, the site's features and the score's colours."""
    from matplotlib import colormaps

    cmap = colormaps["magma"]
    stops = ",".join("#{:02x}{:02x}{:02x}".format(*(int(255 * c) for c in cmap(k / 4)[:3])) for k in range(5))
    return legend_html(
        "sitewatch changes",
        [
            ("new structure", COLOURS["new"], "fill"),
            ("removed structure", COLOURS["removed"], "fill"),
            ("low confidence (dashed)", "#555555", "dashed"),
            ("reference building", REFERENCE_COLOUR, "line"),
            ("AOI footprint (white)", "#bbbbbb", "line"),
        ],
        gradient=(stops, "0", f"{3 * threshold:.3g} (threshold {threshold:.3g})"),
    )


def railcar_map(result: Timeline, *, basemap: str | None = None):
    """Each date's image (toggleable), the track lines, each date's railcars and structure change.

    Parameters
    ----------
    result : Timeline
        What :func:`sitewatch.timeline` returned.
    basemap : str, optional
        A tile layer name (needs a network); none by default.
    """
    folium = _folium()

    first = result.railcars[0]
    window = read_aoi_window(first.path, result.site.footprint)
    fmap = new_map(_bounds_lonlat(window.grid), basemap=basemap)
    last = len(result.railcars) - 1
    overlays = []
    for k, res in enumerate(result.railcars):
        win = window if k == 0 else read_aoi_window(res.path, result.site.footprint)
        overlays.append(
            image_overlay(
                display_rgb(win.data, win.valid), win.grid, f"image {res.date}", valid=win.valid, show=k in (0, last)
            ).add_to(fmap)
        )
    _site_layers(fmap, result.site, first.grid.crs)
    records = railcar_records(result.railcars)
    for k, res in enumerate(result.railcars):
        mine = [r for r in records if r["image"] == res.path.name]
        geojson_layer(
            mine,
            first.grid.crs,
            f"railcars {res.date} ({res.total})",
            style=LayerStyle(COLOURS["railcar"], weight=1.5, fill_opacity=0.3),
            popup_fields=["track_id", "index", "kind", "date", "method"],
            show=k == last,
        ).add_to(fmap)
    if result.last_detect is not None:
        det = result.last_detect
        changes = [{**r, **readable_change(r)} for r in change_records(det)]
        geojson_layer(
            changes,
            det.grid.crs,
            f"structure change {result.rows[0]['date']} to {result.rows[-1]['date']}",
            style=CHANGE_STYLE,
            popup_fields=list(CHANGE_POPUP),
        ).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    first_date, last_date = result.railcars[0].date, result.railcars[-1].date
    side_by_side(overlays[0], overlays[-1], f"drag: {first_date} (left) | {last_date} (right)").add_to(fmap)
    legend_control(
        legend_html(
            "sitewatch railcars",
            [
                ("railcar", COLOURS["railcar"], "fill"),
                ("train (cars not separable)", COLOURS["train"], "fill"),
                ("rail track", COLOURS["track"], "line"),
                ("new structure", COLOURS["new"], "fill"),
                ("removed structure", COLOURS["removed"], "fill"),
                ("reference building", REFERENCE_COLOUR, "line"),
            ],
        )
    ).add_to(fmap)
    cursor_position().add_to(fmap)
    return fmap


def _site_layers(fmap, site, crs: Any) -> None:
    """The AOI footprint, reference buildings and rail tracks, as thin outlines."""
    feats = site.features_in(crs)
    for role, colour, label in (
        ("footprint", "#ffffff", "AOI footprint"),
        ("reference_structure", REFERENCE_COLOUR, "reference buildings"),
        ("rail_track", COLOURS["track"], "rail tracks"),
    ):
        recs = [
            {
                "name": f.name,
                "role": f.role,
                "basis": f.basis,
                **({"track_id": f.track_id} if f.track_id else {}),
                "geometry": f.geometry,
            }
            for f in feats
            if f.role == role
        ]
        if recs:
            geojson_layer(
                recs,
                crs,
                label,
                style=LayerStyle(colour, weight=1.0 if role != "rail_track" else 1.5, fill_opacity=0.0),
                popup_fields=["name", "basis"] + (["track_id"] if role == "rail_track" else []),
            ).add_to(fmap)


def _bounds_lonlat(grid: Grid) -> tuple[float, float, float, float]:
    west, south, east, north = grid.bounds
    lons, lats = Transformer.from_crs(grid.crs, LONLAT, always_xy=True).transform(
        [west, east, west, east], [south, south, north, north]
    )
    return min(lons), min(lats), max(lons), max(lats)


__all__ = ["LayerStyle", "change_map", "railcar_map", "new_map", "image_overlay", "geojson_layer"]
