"""Which assets of a STAC Item hold red, green, blue and near-infrared, and which holds its cloud mask.

Colours are found by the ``eo:bands`` common names of each asset (STAC 1.0 ``eo:bands``, or
STAC 1.1 ``bands`` with ``eo:common_name``), never by asset key alone: Earth Search's
Sentinel-2 ``red`` asset is the band whose common name is ``red``. Cloud-optimised GeoTIFFs
are preferred over other copies of a band (Earth Search also lists ``red-jp2``), single-band
assets over a multi-band picture, and an asset named after its colour over others.

The cloud and scene-class mask is read where the collection has one, by asset key:

* Sentinel-2 L2A ``scl`` (scene classification): class 0 is no data; 3 (cloud shadow),
  8 and 9 (cloud, medium and high probability) and 10 (thin cirrus) are cloud;
* Landsat Collection 2 ``qa_pixel`` (bit flags): bit 0 is fill; bits 1 (dilated cloud),
  2 (cirrus), 3 (cloud) and 4 (cloud shadow) are cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ImageryError
from .stac import common_name, eo_bands

# Common names accepted for each colour, best first (Landsat's near-infrared is ``nir08``).
COLOUR_COMMON_NAMES = {"red": ("red",), "green": ("green",), "blue": ("blue",), "nir": ("nir", "nir08")}
REQUIRED_COLOURS = ("red", "green", "blue")
# Media types (and file endings) of assets read as Cloud-Optimised GeoTIFFs: range reads of the AOI window.
COG_MEDIA = ("image/tiff", "image/vnd.stac.geotiff")
COG_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class MaskRule:
    """How a collection's mask asset marks no data and cloud.

    With ``bits``, the values are bit numbers (a pixel is flagged when any is set); otherwise
    they are class values.
    """

    name: str
    asset_keys: tuple[str, ...]
    nodata: tuple[int, ...]
    cloud: tuple[int, ...]
    bits: bool = False

    def classify(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boolean (nodata, cloud) arrays for the mask asset's ``values``."""
        values = np.asarray(values).astype(np.int64)
        if self.bits:
            nodata = np.zeros(values.shape, bool)
            cloud = np.zeros(values.shape, bool)
            for bit in self.nodata:
                nodata |= (values >> bit) & 1 == 1
            for bit in self.cloud:
                cloud |= (values >> bit) & 1 == 1
            return nodata, cloud & ~nodata
        return np.isin(values, self.nodata), np.isin(values, self.cloud)

    def describe(self) -> str:
        """``Sentinel-2 SCL classes 3, 8, 9, 10`` or ``Landsat QA_PIXEL bits 1, 2, 3, 4``."""
        what = "bits" if self.bits else "classes"
        return f"{self.name} {what} {', '.join(str(v) for v in self.cloud)}"


SCL_RULE = MaskRule("Sentinel-2 SCL", ("scl",), nodata=(0,), cloud=(3, 8, 9, 10))
LANDSAT_QA_RULE = MaskRule("Landsat QA_PIXEL", ("qa_pixel",), nodata=(0,), cloud=(1, 2, 3, 4), bits=True)
MASK_RULES = (SCL_RULE, LANDSAT_QA_RULE)


@dataclass(frozen=True)
class BandRef:
    """One colour of an item: the asset (key, absolute href) and the 1-based band in it."""

    colour: str
    key: str
    href: str
    band: int
    pixel_size_m: float | None


@dataclass(frozen=True)
class MaskRef:
    """An item's mask asset and the rule that reads it."""

    key: str
    href: str
    rule: MaskRule


@dataclass(frozen=True)
class ItemAssets:
    """The assets fetched for one item: red, green, blue[, nir] in that order, and its mask if any."""

    bands: tuple[BandRef, ...]
    mask: MaskRef | None

    @property
    def pixel_size_m(self) -> float | None:
        """The finest pixel size the colour assets declare, or None when none does."""
        sizes = [b.pixel_size_m for b in self.bands if b.pixel_size_m]
        return min(sizes) if sizes else None


def _is_cog(asset: Any) -> bool:
    media = (asset.media_type or "").split(";")[0].strip().lower()
    return media in COG_MEDIA or asset.href.lower().split("?")[0].endswith(COG_SUFFIXES)


def asset_pixel_size(asset: Any, item: Any) -> float | None:
    """An asset's pixel size in metres: its ``gsd``, ``raster:bands`` resolution or ``proj:transform``, else the
    item's ``gsd``; None when none is given."""
    fields = asset.extra_fields
    raster = fields.get("raster:bands") or [{}]
    transform = fields.get("proj:transform") or item.properties.get("proj:transform")
    for value in (
        fields.get("gsd"),
        raster[0].get("spatial_resolution") if isinstance(raster[0], dict) else None,
        abs(transform[0]) if isinstance(transform, list) and transform else None,
        item.properties.get("gsd"),
    ):
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return None


def _candidates(item: Any, colour: str) -> list[tuple[tuple, BandRef]]:
    """Every (rank, band) of an item whose common name is one of ``colour``'s, best rank first."""
    names = COLOUR_COMMON_NAMES[colour]
    found = []
    for key, asset in item.assets.items():
        bands = eo_bands(asset, item) if asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") else []
        for i, band in enumerate(bands):
            if common_name(band) in names:
                rank = (not _is_cog(asset), names.index(common_name(band)), len(bands) > 1, key != colour, key)
                href = asset.get_absolute_href() or asset.href
                found.append((rank, BandRef(colour, key, href, i + 1, asset_pixel_size(asset, item))))
    return sorted(found, key=lambda pair: pair[0])


def item_assets(item: Any) -> ItemAssets:
    """The red, green, blue[, nir] bands and the mask of a STAC Item.

    Raises
    ------
    ImageryError
        Naming the item, when no asset's ``eo:bands`` name one of red, green and blue.
    """
    bands = []
    for colour in COLOUR_COMMON_NAMES:
        found = _candidates(item, colour)
        if found:
            bands.append(found[0][1])
        elif colour in REQUIRED_COLOURS:
            raise ImageryError(
                f"item {item.id}: no asset whose eo:bands common name is {colour!r} "
                f"(assets: {', '.join(item.assets) or 'none'}); sitewatch needs red, green and blue"
            )
    mask = None
    for key, asset in item.assets.items():
        rule = next((r for r in MASK_RULES if key.lower() in r.asset_keys), None)
        if rule is not None:
            mask = MaskRef(key, asset.get_absolute_href() or asset.href, rule)
            break
    return ItemAssets(tuple(bands), mask)
