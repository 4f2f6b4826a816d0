"""``search`` and ``fetch``: a site's public imagery from a STAC catalog, clipped to the AOI, ready for ``timeline``.

``fetch`` writes ``DIR/YYYY-MM-DD.tif`` (a COG of red, green, blue[, near-infrared] and an
alpha band that is 0 on cloud, cloud shadow and no data) and ``DIR/YYYY-MM-DD.json`` (a STAC
Item with the date, sun angles and source hrefs: the sidecar ``detect``, ``timeline`` and
``railcars`` read), and ``DIR/fetch.json`` (every date, fetched or skipped, and why). All
dates share one grid: the site's UTM zone at the collection's finest colour pixel size, edges
on multiples of it. The files appear all together or not at all.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..aoi import SiteAOI
from ..errors import ImageryError
from ..io import check_out_dir, check_outputs_free, staged_outputs, write_json
from ..io.raster import Grid
from ..io.sources import is_remote
from ..io.stac_assets import ItemAssets, item_assets
from ..io.stac_fetch import (
    COG_MEDIA_TYPE,
    MAX_UNUSABLE_AOI_FRACTION,
    SceneCache,
    aoi_mask,
    cache_root,
    cached_item,
    keep_item,
    read_scene,
    target_grid,
    write_scene_cog,
)
from ..io.stac_search import FoundItem, StacQuery, describe_item, search_items
from ._common import Progress, site_of, versions

log = logging.getLogger(__name__)

STAC_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
]
# Source item properties copied to the sidecar (the date is written from the item's datetime).
SIDECAR_PROPERTIES = (
    "platform",
    "constellation",
    "instruments",
    "eo:cloud_cover",
    "view:sun_azimuth",
    "view:sun_elevation",
)


def search(site: SiteAOI | str | os.PathLike[str], query: StacQuery) -> list[FoundItem]:
    """The items of ``query`` over the site's footprint (see :func:`sitewatch.io.stac_search.search_items`)."""
    site = site_of(site)
    return search_items(site.footprint, site.utm_crs(), query)


@dataclass
class FetchedDate:
    """One date of a fetch: ``status`` ``fetched`` or ``skipped`` (with ``reason``), its items, and
    the shares of the AOI that were no data and cloud."""

    date: str
    status: str
    items: list[str]
    nodata_fraction: float
    cloud_fraction: float
    reason: str | None = None
    cached: bool = False
    image: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "status": self.status,
            "items": self.items,
            "aoi_nodata": round(self.nodata_fraction, 4),
            "aoi_cloud": round(self.cloud_fraction, 4),
            "reason": self.reason,
            "from_cache": self.cached,
            "image": self.image,
        }


@dataclass
class FetchResult:
    """What a fetch wrote: one entry per date, the grid, and the output folder."""

    site: SiteAOI
    dates: list[FetchedDate]
    grid: Grid | None
    out_dir: Path
    cache: Path
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "site_id": self.site.site_id,
            "out_dir": str(self.out_dir),
            "cache": str(self.cache),
            "crs": self.grid.crs.to_string() if self.grid else None,
            "pixel_size_m": self.grid.pixel_size_m if self.grid else None,
            "shape": list(self.grid.shape) if self.grid else None,
            "max_unusable_aoi_fraction": MAX_UNUSABLE_AOI_FRACTION,
            "dates": [d.to_dict() for d in self.dates],
        }


def _load_item(ref: str, cache: Path) -> Any:
    """A STAC Item from its URL or path, from the cache when it was read before."""
    import pystac

    href = ref if is_remote(ref) else str(Path(ref).resolve())
    doc = cached_item(href, cache)
    try:
        if doc is None:
            item = pystac.Item.from_file(href)
            item.set_self_href(href)
            keep_item(href, item.to_dict(include_self_link=True, transform_hrefs=False), cache)
            return item
        item = pystac.Item.from_dict(doc)
        item.set_self_href(href)
        return item
    except (OSError, ValueError, KeyError, TypeError, pystac.STACError) as exc:
        raise ImageryError(f"{ref}: not a readable STAC Item ({exc})") from exc


def _items_for(site: SiteAOI, refs: list[str], query: StacQuery | None, cache: Path) -> list[FoundItem]:
    if query is not None:
        return search_items(site.footprint, site.utm_crs(), query)
    if not refs:
        raise ImageryError("fetch: give item URLs or paths, or --search")
    return [describe_item(_load_item(r, cache), site.footprint, site.utm_crs()) for r in refs]


def _grid_for(site: SiteAOI, groups: dict[str, list[tuple[FoundItem, ItemAssets]]]) -> Grid:
    sizes = [a.pixel_size_m for group in groups.values() for _, a in group if a.pixel_size_m]
    if not sizes:
        first = next(iter(groups.values()))[0][0].item
        raise ImageryError(f"item {first.id}: no asset declares its pixel size (gsd, raster:bands, proj:transform)")
    return target_grid(site.footprint, site.utm_crs(), min(sizes))


def _sidecar(site: SiteAOI, date: str, group: list[tuple[FoundItem, ItemAssets]], grid: Grid) -> dict[str, Any]:
    """The STAC Item written beside ``DATE.tif``: date, sun, cloud, and where its pixels came from."""
    from pyproj import Transformer

    first, assets = group[0]
    to_lonlat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    west, south, east, north = to_lonlat.transform_bounds(*grid.bounds)
    props = {k: first.item.properties[k] for k in SIDECAR_PROPERTIES if k in first.item.properties}
    props.update({"datetime": first.to_dict()["datetime"], "gsd": grid.pixel_size_m})
    links = [{"rel": "derived_from", "href": f.href or f.item.id, "title": f.item.id} for f, _ in group]
    links += [
        {"rel": "via", "href": ref.href, "title": f"{f.item.id} {ref.key}"}
        for f, a in group
        for ref in (*a.bands, *([a.mask] if a.mask else []))
    ]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": STAC_EXTENSIONS,
        "id": f"{site.site_id}-{date}",
        "collection": first.item.collection_id,
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        },
        "bbox": [west, south, east, north],
        "properties": props,
        "links": links,
        "assets": {
            "image": {
                "href": f"./{date}.tif",
                "type": COG_MEDIA_TYPE,
                "roles": ["data"],
                "eo:bands": [{"name": b.key, "common_name": b.colour} for b in assets.bands],
            }
        },
    }


def _fetch_date(
    date: str, group: list[tuple[FoundItem, ItemAssets]], grid: Grid, inside: Any, cache: SceneCache
) -> tuple[FetchedDate, Path | None]:
    """One date: from the cache, else read (and cached), else skipped with the reason."""
    pairs = [(f.item.id, a) for f, a in group]
    key = SceneCache.key(pairs, grid)
    hit = cache.get(key)
    cached = hit is not None
    if hit is None:
        scene = read_scene(pairs, grid, inside)
        record = {"nodata": scene.nodata_fraction, "cloud": scene.cloud_fraction, "status": "fetched"}
        if scene.data is None:
            mask = group[0][1].mask
            what = f"cloud ({mask.rule.describe()})" if mask else "cloud"
            record.update(
                status="skipped",
                reason=f"{scene.unusable_fraction:.0%} of the AOI is {what} or no data "
                f"({scene.cloud_fraction:.0%} cloud, {scene.nodata_fraction:.0%} no data; "
                f"more than {MAX_UNUSABLE_AOI_FRACTION:.0%} is skipped)",
            )
            hit = cache.put(key, record)
        else:
            colours = tuple(b.colour for b in group[0][1].bands)
            hit = cache.put(key, record, lambda path: write_scene_cog(path, scene, grid, colours))
    record, tif = hit
    entry = FetchedDate(
        date, record["status"], [i for i, _ in pairs], record["nodata"], record["cloud"], record.get("reason"), cached
    )
    return entry, tif


def fetch(
    site: SiteAOI | str | os.PathLike[str],
    items: list[str] | None = None,
    *,
    out_dir: str | os.PathLike[str],
    query: StacQuery | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> FetchResult:
    """Fetch the AOI window of STAC Items (URLs or paths in ``items``, or those ``query`` finds) into ``out_dir``.

    Items of one date are read into one scene; a date whose AOI is more than
    :data:`~sitewatch.io.stac_fetch.MAX_UNUSABLE_AOI_FRACTION` cloud and no data is skipped,
    with the reason. What was read is cached (``cache_dir``, default
    :func:`~sitewatch.io.stac_fetch.cache_root`), so a second fetch reads nothing.

    Raises
    ------
    ImageryError
        If the catalog, an item or an asset cannot be read (naming it); nothing is written then.
    """
    step = progress or (lambda msg: None)
    site = site_of(site)
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    cache = cache_root(cache_dir)
    step("finding items")
    found = _items_for(site, list(items or []), query, cache)
    groups: dict[str, list[tuple[FoundItem, ItemAssets]]] = {}
    for f in found:
        if not f.date:
            raise ImageryError(f"item {f.item.id}: no datetime")
        groups.setdefault(f.date, []).append((f, item_assets(f.item)))
    grid = _grid_for(site, groups) if groups else None
    dates, sources = [], {}
    scenes = SceneCache(cache)
    inside = aoi_mask(site.footprint, grid) if grid else None
    for i, (date, group) in enumerate(sorted(groups.items())):
        step(f"{date}: reading {len(group)} item(s) ({i + 1}/{len(groups)})")
        entry, tif = _fetch_date(date, group, grid, inside, scenes)
        log.info("%s: %s%s", date, entry.status, f" ({entry.reason})" if entry.reason else "")
        if tif is not None:
            entry.image = f"{date}.tif"
            sources[date] = (tif, _sidecar(site, date, group, grid))
        dates.append(entry)
    names = [n for d in sources for n in (f"{d}.tif", f"{d}.json")] + ["fetch.json"]
    check_outputs_free([out_dir / n for n in names], overwrite)
    result = FetchResult(site, dates, grid, out_dir, cache)
    step("writing")
    with staged_outputs(out_dir, names, overwrite=overwrite) as stage:
        for date, (tif, sidecar) in sources.items():
            shutil.copyfile(tif, stage / f"{date}.tif")
            write_json(stage / f"{date}.json", sidecar)
        write_json(stage / "fetch.json", {**result.to_dict(), "versions": versions()})
    result.files = [out_dir / n for n in names]
    return result
