"""What an image's metadata says: its acquisition date and the sun's position.

Read from a STAC item beside the image (``<name>.json``), the GeoTIFF's tags, or, for the
date, an ISO date in the file name.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors

from ..errors import ImageryError
from .sources import RemotePath, check_no_network_sources, image_path, is_remote
from .stac import is_stac_item, read_stac_item

ISO_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
# 20230615031122 or 20230615T031122: a date and a time written together (Maxar/Planet file names)
COMPACT_DATETIME = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})T?\d{6}(?!\d)", re.IGNORECASE)
# 23JUN15021733-S2AS-...: Maxar (DigitalGlobe) file names, two-digit year, month name, day, then the time
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
MAXAR_DATE = re.compile(rf"(?<![A-Za-z0-9])(\d{{2}})({'|'.join(MONTHS)})(\d{{2}})(?=\d{{6}}|[^0-9]|$)", re.IGNORECASE)
MAXAR_CENTURY = 2000  # Maxar's two-digit years are this century (WorldView-1 flew from 2007)


def checked_date(text: str) -> str:
    """A date the user gave (``--date``), as ISO ``YYYY-MM-DD``.

    Raises
    ------
    ImageryError
        If it is not a real day written ``YYYY-MM-DD``.
    """
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(text)):
        try:
            return date.fromisoformat(str(text)).isoformat()
        except ValueError:
            pass
    raise ImageryError(f"date {text!r}: give an acquisition date as YYYY-MM-DD (e.g. 2023-06-15)")


def dates_given(images: Sequence[str | os.PathLike[str]], given: Mapping[str, str]) -> dict[str, str]:
    """Acquisition dates the user gave per image (``--date NAME=YYYY-MM-DD``), keyed by ``str(image)``.

    A ``NAME`` matches an image by its path as given or by its file name.

    Raises
    ------
    ImageryError
        If a date is not ``YYYY-MM-DD``, a name matches no image, or a file name is shared
        by two images (give their paths).
    """
    out: dict[str, str] = {}
    for name, text in given.items():
        day = checked_date(text)
        matches = [str(p) for p in images if str(p) == name] or [
            str(p) for p in images if Path(str(p)).name == Path(name).name
        ]
        if not matches:
            raise ImageryError(f"--date {name}={text}: {name!r} is none of the images given")
        if len(matches) > 1:
            raise ImageryError(f"--date {name}={text}: {name!r} names {len(matches)} images; give the path")
        out[matches[0]] = day
    return out


def date_from_name(name: str) -> str | None:
    """An acquisition date (ISO ``YYYY-MM-DD``) written in a file name, or None.

    Recognised: ISO dates (``2023-06-15``, ``20230615``), a date and time written together
    (``20230615031122``, ``20230615T031122``), and Maxar's ``23JUN15021733``.  A match that
    is not a real day (``20231345``) is passed over.
    """
    for pattern in (ISO_DATE, COMPACT_DATETIME, MAXAR_DATE):
        for m in pattern.finditer(name):
            y, mo, d = m.groups()
            if pattern is MAXAR_DATE:
                y, mo = str(MAXAR_CENTURY + int(y)), str(MONTHS.index(mo.upper()) + 1)
            try:
                return date(int(y), int(mo), int(d)).isoformat()
            except ValueError:
                continue
    return None


def _image_metadata(path: Path | RemotePath) -> tuple[dict[str, Any], dict[str, str]]:
    """An image's STAC item properties (``<name>.json`` beside it) and GeoTIFF tags (upper-cased keys).

    Either is empty where it is missing or unreadable; a remote image has no sidecar looked for.
    """
    props: dict[str, Any] = {}
    if is_stac_item(path):  # the image is a STAC Item: its properties, and the tags of the asset it reads
        item = read_stac_item(path)
        props, path = item.properties, item.asset
    stac = None if is_remote(path) or props else path.with_suffix(".json")
    if stac is not None and stac.exists():
        try:
            found = json.loads(stac.read_text("utf-8")).get("properties", {})
            props = found if isinstance(found, dict) else {}
        except (json.JSONDecodeError, AttributeError):
            pass
        except UnicodeDecodeError as exc:
            raise ImageryError(
                f"{stac}: not UTF-8 text (byte {exc.start}); a STAC item sidecar must be UTF-8 JSON"
            ) from exc
    check_no_network_sources(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                tags = {k.upper(): v for k, v in src.tags().items()}
    except rasterio.errors.RasterioIOError:
        tags = {}
    return props, tags


def image_date(path: str | os.PathLike[str]) -> str | None:
    """An image's acquisition date as ISO ``YYYY-MM-DD``.

    Looked up, in order: a STAC item beside the image (``<name>.json`` with
    ``properties.datetime``), the TIFF tag ``TIFFTAG_DATETIME``, then an ISO date in the
    file name (:func:`date_from_name`: ISO, compact or Maxar-style).  ``None`` when none of them has one.
    """
    path = image_path(path)
    props, tags = _image_metadata(path)
    if props.get("datetime"):
        return str(props["datetime"])[:10]
    tag = tags.get("TIFFTAG_DATETIME")
    if tag:
        m = re.match(r"(\d{4})[:-](\d{2})[:-](\d{2})", tag)
        if m:
            return "-".join(m.groups())
    return date_from_name(path.stem)


SUN_TAGS = ("SUN_AZIMUTH", "SUN_ELEVATION")


def _sun_pair(azimuth: Any, elevation: Any) -> tuple[float, float] | None:
    try:
        az, el = float(azimuth), float(elevation)
    except (TypeError, ValueError):
        return None
    if not (np.isfinite(az) and 0.0 < el < 90.0):
        return None
    return az % 360.0, el


def image_sun(path: str | os.PathLike[str]) -> tuple[float, float] | None:
    """The sun's azimuth and elevation (degrees) when the image was taken, from its metadata.

    Looked up, in order: a STAC item beside the image (``<name>.json`` with the view
    extension's ``properties["view:sun_azimuth"]`` and ``["view:sun_elevation"]``), then
    the GeoTIFF tags ``SUN_AZIMUTH`` and ``SUN_ELEVATION`` (any case).  Azimuth is clockwise
    from north.  ``None`` when neither has a usable pair (an elevation outside 0-90 degrees
    is not).
    """
    props, tags = _image_metadata(image_path(path))
    return _sun_pair(props.get("view:sun_azimuth"), props.get("view:sun_elevation")) or _sun_pair(
        *(tags.get(t) for t in SUN_TAGS)
    )
