"""Areas of interest: load, validate and project a site's GeoJSON.

An AOI file is an RFC 7946 FeatureCollection in lon/lat with the site's metadata in a
top-level ``properties`` member and a ``role`` on every feature (see
``schemas/aoi.schema.json``).  :func:`load_aoi` validates a file and returns a
:class:`SiteAOI`; :func:`aoi_problems` returns every problem without raising, for
``sitewatch aoi validate``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from .errors import AOIError

ROLES = ("footprint", "reference_structure", "rail_track", "exclusion", "source_point")


@dataclass(frozen=True)
class AOIFeature:
    """One feature of a site: its role, name, geometry (lon/lat) and properties."""

    role: str
    name: str
    geometry: BaseGeometry
    basis: str
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def track_id(self) -> str | None:
        return self.properties.get("track_id")


@dataclass(frozen=True)
class SiteAOI:
    """A validated site.

    Geometries are in lon/lat (EPSG:4326); use :meth:`features_in` to get them in a
    projected CRS for measuring or rasterising.
    """

    site_id: str
    name: str
    aliases: tuple[str, ...]
    confidence: str
    sources: tuple[dict[str, Any], ...]
    features: tuple[AOIFeature, ...]
    path: Path | None = None
    description: str = ""

    def by_role(self, role: str) -> list[AOIFeature]:
        """Features with the given role, in file order."""
        return [f for f in self.features if f.role == role]

    @property
    def footprint(self) -> BaseGeometry:
        """Union of all footprint polygons (lon/lat)."""
        return shapely.union_all([f.geometry for f in self.by_role("footprint")])

    @property
    def centroid_lonlat(self) -> tuple[float, float]:
        c = self.footprint.centroid
        return (c.x, c.y)

    def utm_crs(self) -> CRS:
        """The WGS84 UTM zone CRS that contains the footprint's centroid."""
        return utm_crs_for(*self.centroid_lonlat)

    def features_in(self, crs: Any) -> list[AOIFeature]:
        """All features with geometries reprojected from lon/lat to ``crs``."""
        to_crs = lonlat_transformer(CRS.from_user_input(crs))
        return [
            AOIFeature(f.role, f.name, shapely.transform(f.geometry, to_crs, interleaved=False), f.basis, f.properties)
            for f in self.features
        ]

    def summary(self) -> dict[str, Any]:
        """Plain-dict description used by ``aoi list --json`` and ``aoi show``."""
        lon, lat = self.centroid_lonlat
        counts = {role: len(self.by_role(role)) for role in ROLES}
        return {
            "site_id": self.site_id,
            "name": self.name,
            "aliases": list(self.aliases),
            "confidence": self.confidence,
            "centroid_lonlat": [round(lon, 6), round(lat, 6)],
            "footprint_km2": round(self.footprint_area_m2() / 1e6, 3),
            "features": counts,
            "sources": list(self.sources),
            "path": str(self.path) if self.path else None,
        }

    def footprint_area_m2(self) -> float:
        crs = self.utm_crs()
        fp = shapely.transform(self.footprint, lonlat_transformer(crs), interleaved=False)
        return float(fp.area)


def utm_crs_for(lon: float, lat: float) -> CRS:
    """WGS84 / UTM CRS for a lon/lat position."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    epsg = (32600 if lat >= 0 else 32700) + zone
    return CRS.from_epsg(epsg)


def lonlat_transformer(crs: CRS):
    """Vectorised ``(x, y) -> (x', y')`` from lon/lat to ``crs``, for ``shapely.transform(..., interleaved=False)``."""
    return Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True).transform


@lru_cache(maxsize=1)
def aoi_schema() -> dict[str, Any]:
    """The shipped JSON Schema for AOI files."""
    text = resources.files("sitewatch").joinpath("schemas/aoi.schema.json").read_text("utf-8")
    return json.loads(text)


def _feature_label(doc: dict[str, Any], index: int) -> str:
    try:
        name = doc["features"][index]["properties"]["name"]
        return f"feature {index} ({name!r})"
    except (KeyError, IndexError, TypeError):
        return f"feature {index}"


def _schema_message(doc: dict[str, Any], err: jsonschema.ValidationError) -> str:
    path = list(err.absolute_path)
    where = "top level"
    if len(path) >= 2 and path[0] == "features" and isinstance(path[1], int):
        where = _feature_label(doc, path[1])
        rest = path[2:]
    else:
        rest = path
    field_path = ".".join(str(p) for p in rest)
    message = err.message
    if err.validator == "const" or err.validator == "enum":
        message = f"{err.instance!r} is not one of {err.validator_value!r}"
    return f"{where}: {field_path + ': ' if field_path else ''}{message}"


def _refuse_constant(name: str) -> Any:
    """``NaN``/``Infinity`` are not JSON (Python's reader accepts them): a coordinate must be a number."""
    raise ValueError(f"not valid JSON: {name} is not a number JSON allows")


def aoi_problems(path: str | os.PathLike[str]) -> list[str]:
    """Every problem found in an AOI file, as readable sentences (empty if valid).

    Parameters
    ----------
    path : path-like
        The GeoJSON file.

    Returns
    -------
    list of str
        Each entry names the feature (index and name) and what is wrong.
    """
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        return [f"cannot read file: {exc.strerror or exc}"]
    except UnicodeDecodeError as exc:
        return [f"not UTF-8 text (byte {exc.start}); GeoJSON must be UTF-8 (RFC 7946)"]
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        return [f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
    except ValueError as exc:
        return [str(exc)]
    if not isinstance(doc, dict):
        return ["top level: expected a GeoJSON FeatureCollection object"]

    validator = jsonschema.Draft202012Validator(aoi_schema())
    problems = [_schema_message(doc, e) for e in sorted(validator.iter_errors(doc), key=str)]
    if problems:
        return problems

    source_ids = {s["id"] for s in doc["properties"]["sources"]}
    n_footprints = 0
    track_ids: set[str] = set()
    for i, feat in enumerate(doc["features"]):
        label = _feature_label(doc, i)
        props = feat["properties"]
        try:
            geom = shape(feat["geometry"])
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, shapely.errors.ShapelyError) as exc:
            problems.append(f"{label}: geometry cannot be read: {exc}")
            continue
        if geom.is_empty:
            problems.append(f"{label}: geometry is empty")
            continue
        minx, miny, maxx, maxy = geom.bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            problems.append(
                f"{label}: coordinates outside lon/lat range (GeoJSON must be WGS84 lon, lat): bounds {geom.bounds}"
            )
        if not geom.is_valid:
            problems.append(f"{label}: invalid geometry ({shapely.is_valid_reason(geom)})")
        if props["role"] == "footprint":
            n_footprints += 1
        if props["role"] == "rail_track":
            if props["track_id"] in track_ids:
                problems.append(f"{label}: duplicate track_id {props['track_id']!r}")
            track_ids.add(props["track_id"])
        if props["basis"] == "source" and not props.get("source_ids"):
            problems.append(f"{label}: basis is 'source' but no source_ids say which source")
        for sid in props.get("source_ids", []):
            if sid not in source_ids:
                problems.append(f"{label}: source_ids names {sid!r}, which is not in the site's sources")
    if n_footprints == 0:
        problems.append("top level: no feature has role 'footprint'")
    return problems


def load_aoi(path: str | os.PathLike[str]) -> SiteAOI:
    """Read and validate an AOI file.

    Raises
    ------
    AOIError
        With the file name and every problem found.
    """
    path = Path(path)
    problems = aoi_problems(path)
    if problems:
        raise AOIError(f"{path}: " + "; ".join(problems))
    doc = json.loads(path.read_text("utf-8"))
    meta = doc["properties"]
    features = tuple(
        AOIFeature(
            role=f["properties"]["role"],
            name=f["properties"]["name"],
            geometry=shape(f["geometry"]),
            basis=f["properties"]["basis"],
            properties=dict(f["properties"]),
        )
        for f in doc["features"]
    )
    return SiteAOI(
        site_id=meta["site_id"],
        name=meta["name"],
        aliases=tuple(meta["aliases"]),
        confidence=meta["confidence"],
        sources=tuple(meta["sources"]),
        features=features,
        path=path,
        description=meta.get("description", ""),
    )


def default_aoi_dir() -> Path:
    """Where named sites live: ``$SITEWATCH_AOI_DIR``, else ``./aoi``, else the source tree's ``aoi/``."""
    env = os.environ.get("SITEWATCH_AOI_DIR")
    if env:
        return Path(env)
    cwd_dir = Path.cwd() / "aoi"
    if cwd_dir.is_dir():
        return cwd_dir
    # src/sitewatch/aoi.py -> repository root (editable installs and source checkouts)
    return Path(__file__).resolve().parents[2] / "aoi"


def list_site_files(aoi_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The ``*.geojson`` files of an AOI folder, sorted by name."""
    folder = Path(aoi_dir) if aoi_dir is not None else default_aoi_dir()
    if not folder.is_dir():
        raise AOIError(f"{folder}: AOI folder does not exist (set SITEWATCH_AOI_DIR or pass --aoi-dir)")
    return sorted(folder.glob("*.geojson"))


def resolve_site(site: str, aoi_dir: str | os.PathLike[str] | None = None) -> SiteAOI:
    """Load a site given either a path to a GeoJSON file or a site id from the AOI folder."""
    candidate = Path(site)
    if candidate.suffix.lower() in (".geojson", ".json") or candidate.exists():
        if not candidate.exists():
            raise AOIError(f"{candidate}: no such AOI file")
        return load_aoi(candidate)
    for path in list_site_files(aoi_dir):
        if path.stem == site:
            return load_aoi(path)
    known = ", ".join(p.stem for p in list_site_files(aoi_dir)) or "none"
    raise AOIError(f"unknown site {site!r}; known sites: {known}")
