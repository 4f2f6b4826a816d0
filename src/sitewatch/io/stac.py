"""A STAC Item given as an image: its picture asset, date, sun angles and ``eo:bands`` (read with pystac).

An analyst may pass ``item.json`` (a file, or an ``http(s)`` URL) wherever a GeoTIFF goes. The asset read is the item's
``visual`` asset (by key, then by role), else one whose ``eo:bands`` name red, green and blue,
else its only raster asset; relative hrefs are resolved against the item's file. The date is
the item's ``datetime`` (or ``start_datetime``), the sun angles the view extension's
``view:sun_azimuth`` and ``view:sun_elevation``, and the bands (when ``--bands`` is not given)
the positions of the ``eo:bands`` common names ``red``, ``green``, ``blue`` and ``nir``.
Reading an item's assets is asking for them, wherever their hrefs point.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ImageryError
from .sources import RemotePath, image_path, is_remote

# Asset keys tried first, in order, for the picture to read.
VISUAL_KEYS = ("visual", "rgb", "image")
# Media types of assets that are rasters GDAL reads.
RASTER_MEDIA = ("image/tiff", "image/vnd.stac.geotiff", "image/jp2", "image/png", "image/jpeg")
# eo:bands common names in the order sitewatch reads bands (red, green, blue[, near-infrared]).
COLOUR_NAMES = ("red", "green", "blue", "nir")
# A STAC item is a small JSON file; larger "images" ending in .json are not sniffed.
MAX_ITEM_BYTES = 16 * 2**20


@dataclass(frozen=True)
class StacImage:
    """What a STAC Item says about the image it describes."""

    item: Path | RemotePath
    asset: Path | RemotePath
    asset_key: str
    bands: tuple[int, ...] | None
    properties: dict[str, Any] = field(default_factory=dict)


def is_stac_item(path: str | os.PathLike[str]) -> bool:
    """True for a local JSON file holding a STAC Item (``"type": "Feature"`` with ``stac_version``),
    or an ``http(s)`` URL of a ``.json`` file (the user asked for it: read as an item, or refused)."""
    if is_remote(path):
        return str(path).startswith(("http://", "https://")) and image_path(path).suffix.lower() == ".json"
    if Path(path).suffix.lower() != ".json":
        return False
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > MAX_ITEM_BYTES:
            return False
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and doc.get("type") == "Feature" and "stac_version" in doc


def eo_bands(asset: Any, item: Any) -> list[dict[str, Any]]:
    """An asset's band entries: its ``eo:bands`` (STAC 1.0), else its ``bands`` (STAC 1.1), else the item's."""
    bands = (
        asset.extra_fields.get("eo:bands")
        or asset.extra_fields.get("bands")
        or item.properties.get("eo:bands")
        or item.properties.get("bands")
        or []
    )
    return [b for b in bands if isinstance(b, dict)] if isinstance(bands, list) else []


def common_name(band: dict[str, Any]) -> str:
    """A band entry's common name (``common_name`` in STAC 1.0 eo:bands, ``eo:common_name`` in 1.1), lower case."""
    return str(band.get("common_name") or band.get("eo:common_name") or "").lower()


def _colour_bands(bands: list[dict[str, Any]]) -> tuple[int, ...] | None:
    """1-based positions of red, green, blue[, nir] among ``eo:bands`` common names; None when not all three."""
    names = [common_name(b) for b in bands]
    found = tuple(names.index(c) + 1 for c in COLOUR_NAMES if c in names)
    return found if len(found) >= 3 and all(c in names for c in COLOUR_NAMES[:3]) else None


def _pick_asset(item: Any, path: Path) -> str:
    """The key of the asset to read: visual (by key, then role), else red-green-blue eo:bands, else the only raster."""
    assets = item.assets
    for key in VISUAL_KEYS:
        if key in assets:
            return key
    for key, asset in assets.items():
        if "visual" in (asset.roles or []):
            return key
    for key, asset in assets.items():
        if _colour_bands(eo_bands(asset, item)):
            return key
    rasters = [k for k, a in assets.items() if (a.media_type or "").split(";")[0].strip() in RASTER_MEDIA]
    if len(rasters) == 1:
        return rasters[0]
    raise ImageryError(
        f"{path}: a STAC Item with no visual asset, none whose eo:bands name red, green and blue, and "
        f"{len(rasters)} raster assets to choose from (assets: {', '.join(assets) or 'none'})"
    )


@lru_cache(maxsize=32)
def _remote_item(url: str) -> Any:
    """A STAC Item fetched from ``url`` (pystac's reader), kept for the run: the date, sun angles
    and asset of one item are asked for separately."""
    import pystac

    return pystac.Item.from_file(url)


def read_stac_item(path: str | os.PathLike[str]) -> StacImage:
    """The asset to read, its band order and the item's properties, from a STAC Item file or URL.

    An item given by URL is fetched once per run (:func:`_remote_item`); its relative asset
    hrefs resolve against that URL.

    Raises
    ------
    ImageryError
        If pystac cannot read (or fetch) the item, or no asset is a picture to read.
    """
    import pystac

    path = image_path(path)
    try:
        item = _remote_item(str(path)) if is_remote(path) else pystac.Item.from_file(str(path))
    except (pystac.STACError, KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
        raise ImageryError(f"{path}: not a readable STAC Item ({exc})") from exc
    except Exception as exc:  # pystac reports a URL it cannot fetch as a bare Exception
        if not is_remote(path):
            raise
        raise ImageryError(f"{path}: not a readable STAC Item ({exc})") from exc
    key = _pick_asset(item, path)
    asset = item.assets[key]
    href = asset.get_absolute_href() or asset.href
    properties = dict(item.properties)
    if item.datetime is not None:
        properties["datetime"] = item.datetime.isoformat()
    elif properties.get("start_datetime"):
        properties["datetime"] = properties["start_datetime"]
    return StacImage(path, image_path(href), key, _colour_bands(eo_bands(asset, item)), properties)
