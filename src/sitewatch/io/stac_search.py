"""Find a site's scenes in a STAC catalog: a STAC API (pystac-client) or a static catalog (pystac).

The default catalog is Element 84's Earth Search (:data:`DEFAULT_CATALOG`), a public STAC API
whose ``sentinel-2-l2a`` collection holds Sentinel-2 L2A scenes as Cloud-Optimised GeoTIFFs.
``catalog`` may be any other STAC API, or a static catalog or collection (a ``catalog.json``
or ``collection.json`` by URL or path, or a folder holding one). A root that declares the
``item-search`` conformance class (or links to a ``search`` endpoint) is searched through the
API; any other is walked with pystac.

Each item found is described by its date, cloud cover (``eo:cloud_cover``, whole scene), the
share of the AOI footprint its geometry covers (areas in the site's UTM zone), the sun angles
(``view:sun_azimuth``, ``view:sun_elevation``) and the pixel size of its red band.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import shapely
from pyproj import CRS, Transformer
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import ImageryError
from .sources import is_remote
from .stac_assets import item_assets

DEFAULT_CATALOG = "https://earth-search.aws.element84.com/v1"
DEFAULT_COLLECTION = "sentinel-2-l2a"
# Items whose geometry covers less than this share of the AOI footprint are left out by default.
DEFAULT_MIN_COVERAGE = 0.5
# The most items one search returns (a year of Sentinel-2 over one site is about 150).
MAX_SEARCH_ITEMS = 2000
# The STAC API conformance class that offers item search.
ITEM_SEARCH_CONFORMANCE = "item-search"


@dataclass(frozen=True)
class StacQuery:
    """What to search for: a collection between two dates (inclusive), where to look, and the filters.

    ``max_cloud`` is the most whole-scene cloud cover (percent) kept, None for any;
    ``min_coverage`` the least share (0-1) of the AOI footprint an item must cover.
    """

    collection: str = DEFAULT_COLLECTION
    start: str | None = None
    end: str | None = None
    catalog: str = DEFAULT_CATALOG
    max_cloud: float | None = None
    min_coverage: float = DEFAULT_MIN_COVERAGE


@dataclass(frozen=True)
class FoundItem:
    """One STAC Item of the site, with what ``search`` lists about it; ``item`` is the pystac Item."""

    item: Any
    date: str
    cloud_cover: float | None
    aoi_coverage: float
    sun_azimuth: float | None
    sun_elevation: float | None
    pixel_size_m: float | None

    @property
    def href(self) -> str | None:
        """The item's own URL or path (its ``self`` link), where it has one."""
        return self.item.get_self_href()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.item.id,
            "collection": self.item.collection_id,
            "date": self.date,
            "datetime": _item_datetime(self.item),
            "cloud_cover": self.cloud_cover,
            "aoi_coverage": round(self.aoi_coverage, 4),
            "sun_azimuth": self.sun_azimuth,
            "sun_elevation": self.sun_elevation,
            "pixel_size_m": self.pixel_size_m,
            "href": self.href,
        }


def _item_datetime(item: Any) -> str | None:
    if item.datetime is not None:
        return item.datetime.isoformat()
    start = item.properties.get("start_datetime")
    return str(start) if start else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def aoi_coverage(item: Any, footprint_lonlat: BaseGeometry, utm: CRS) -> float:
    """The share (0-1) of the AOI footprint the item's geometry (else its bbox) covers, by area in ``utm``."""
    if item.geometry:
        geom = shape(item.geometry)
    elif item.bbox:
        geom = shapely.box(*item.bbox[:2], *item.bbox[-2:])
    else:
        return 0.0
    to_utm = Transformer.from_crs("EPSG:4326", utm, always_xy=True).transform
    aoi = shapely.transform(footprint_lonlat, to_utm, interleaved=False)
    covered = shapely.transform(geom.buffer(0), to_utm, interleaved=False).intersection(aoi)
    return float(covered.area / aoi.area) if aoi.area > 0 else 0.0


def describe_item(item: Any, footprint_lonlat: BaseGeometry, utm: CRS) -> FoundItem:
    """What ``search`` lists about an item (pixel size from its red band's metadata, None when it has no colours)."""
    props = item.properties
    try:
        pixel = item_assets(item).pixel_size_m
    except ImageryError:
        pixel = None
    return FoundItem(
        item,
        (_item_datetime(item) or "")[:10],
        _number(props.get("eo:cloud_cover")),
        aoi_coverage(item, footprint_lonlat, utm),
        _number(props.get("view:sun_azimuth")),
        _number(props.get("view:sun_elevation")),
        pixel,
    )


def _root_href(catalog: str) -> str:
    """A catalog given as a folder means the ``catalog.json`` (or ``collection.json``) in it."""
    if is_remote(catalog) or not Path(catalog).is_dir():
        return catalog
    for name in ("catalog.json", "collection.json"):
        if (Path(catalog) / name).is_file():
            return str(Path(catalog) / name)
    raise ImageryError(f"{catalog}: a folder with no catalog.json or collection.json")


def _read_root(href: str) -> dict[str, Any]:
    import pystac

    try:
        root = pystac.StacIO.default().read_json(href)
    except (OSError, ValueError, pystac.STACError) as exc:
        raise ImageryError(f"{href}: not a readable STAC catalog ({exc})") from exc
    if not isinstance(root, dict) or root.get("type") not in ("Catalog", "Collection"):
        raise ImageryError(f"{href}: not a STAC catalog or collection (type {root.get('type')!r})")
    return root


def is_stac_api(root: dict[str, Any]) -> bool:
    """True when a catalog root offers item search (conformance class or a ``search`` link)."""
    conforms = root.get("conformsTo") or []
    links = root.get("links") or []
    return any(ITEM_SEARCH_CONFORMANCE in str(c) for c in conforms) or any(
        isinstance(link, dict) and link.get("rel") == "search" for link in links
    )


def _api_items(href: str, query: StacQuery, footprint_lonlat: BaseGeometry, ids: list[str] | None) -> list[Any]:
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    when = f"{query.start or '..'}/{query.end or '..'}" if (query.start or query.end) else None
    try:
        client = Client.open(href)
        search = client.search(
            collections=[query.collection],
            intersects=None if ids else mapping(footprint_lonlat),
            datetime=when,
            ids=ids,
            max_items=MAX_SEARCH_ITEMS,
        )
        return list(search.items())
    except (APIError, OSError, ValueError, NotImplementedError) as exc:
        raise ImageryError(f"{href}: STAC search of {query.collection!r} failed ({exc})") from exc


def _static_items(href: str, query: StacQuery, root: dict[str, Any], ids: list[str] | None) -> list[Any]:
    import pystac

    try:
        catalog = pystac.read_file(href)
        items = list(catalog.get_items(recursive=True))
    except (OSError, ValueError, KeyError, pystac.STACError) as exc:
        raise ImageryError(f"{href}: the static catalog cannot be walked ({exc})") from exc
    default = root.get("id") if root.get("type") == "Collection" else None
    return [i for i in items if (i.collection_id or default) == query.collection and (ids is None or i.id in ids)]


def _in_dates(found: FoundItem, query: StacQuery) -> bool:
    return bool(found.date) and (query.start or "") <= found.date <= (query.end or "9999-12-31")


def search_items(
    footprint_lonlat: BaseGeometry, utm: CRS, query: StacQuery, *, ids: list[str] | None = None
) -> list[FoundItem]:
    """The items of ``query.collection`` over the AOI footprint, earliest first, filtered.

    Kept: items dated from ``query.start`` to ``query.end`` (inclusive, by UTC date), with
    whole-scene cloud cover at most ``query.max_cloud`` (an item without ``eo:cloud_cover``
    is kept), covering at least ``query.min_coverage`` of the footprint. With ``ids``, only
    those items (and no AOI, date or cloud filter: the user named them).

    Raises
    ------
    ImageryError
        If the catalog cannot be read or searched.
    """
    for text in (query.start, query.end):
        if text is not None:
            try:
                date.fromisoformat(text)
            except ValueError as exc:
                raise ImageryError(f"date {text!r}: give dates as YYYY-MM-DD (e.g. 2024-03-01)") from exc
    href = _root_href(os.fspath(query.catalog))
    root = _read_root(href)
    if is_stac_api(root):
        items = _api_items(href, query, footprint_lonlat, ids)
    else:
        items = _static_items(href, query, root, ids)
    found = [describe_item(i, footprint_lonlat, utm) for i in items]
    if ids is None:
        found = [
            f
            for f in found
            if _in_dates(f, query)
            and (query.max_cloud is None or f.cloud_cover is None or f.cloud_cover <= query.max_cloud)
            and f.aoi_coverage >= query.min_coverage
        ]
    return sorted(found, key=lambda f: (_item_datetime(f.item) or "", f.item.id))
