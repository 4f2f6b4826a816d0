"""Batch plan files: sites, their images and dates, read from TOML or YAML and checked before any work.

A plan lists sites, each with two or more dated images; ``sitewatch batch`` runs one job per
site and date pair (:mod:`sitewatch.pipeline.batch`). Paths in a plan are relative to the plan
file. Every problem is found before anything runs and named by file and entry::

    plan.toml: sites[2] ("tumangang"): images[1]: data/2023-07-14.tif does not exist
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..aoi import resolve_site
from ..errors import PlanError, SitewatchError
from .metadata import checked_date, image_date
from .sources import is_remote

PLAN_KEYS = frozenset({"detect", "sites", "steps"})
SITE_KEYS = frozenset({"site", "name", "images", "pairs"})
IMAGE_KEYS = frozenset({"path", "date"})
# detect() keywords a plan may set for every job (as the same-named detect options)
DETECT_KEYS = frozenset({"method", "normalisation", "min_area_m2", "bands", "assume_registered"})
# what a job runs, in this order; railcars and timeline only at sites with rail_track lines
STEPS = ("detect", "railcars", "timeline", "report")
# which dates are paired: each with the next, the first with each later one, or every two
PAIRINGS = ("consecutive", "first", "all")


@dataclass(frozen=True)
class PlanImage:
    """One image of a site: its location as given to GDAL (absolute when local) and its date."""

    path: str
    date: str


@dataclass(frozen=True)
class PlanSite:
    """A plan entry: a site, the folder name its jobs write under, its images (earliest first)."""

    name: str
    aoi: str  # the AOI file, absolute
    images: tuple[PlanImage, ...]
    pairs: str
    has_tracks: bool

    def date_pairs(self) -> list[tuple[PlanImage, PlanImage]]:
        """(earlier, later) images of each job, as ``pairs`` says."""
        ims = self.images
        if self.pairs == "first":
            return [(ims[0], b) for b in ims[1:]]
        if self.pairs == "all":
            return [(a, b) for i, a in enumerate(ims) for b in ims[i + 1 :]]
        return list(zip(ims[:-1], ims[1:]))


@dataclass(frozen=True)
class Plan:
    """A checked plan: its file, its sites, the detect settings and the steps of every job."""

    path: Path
    sites: tuple[PlanSite, ...]
    detect: tuple[tuple[str, Any], ...]  # detect() keywords, as (name, value) pairs
    steps: tuple[str, ...]


def _load(path: Path) -> Any:
    """The plan file's document (TOML, or YAML when PyYAML is installed)."""
    if not path.is_file():
        raise PlanError(f"{path}: no such plan file")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"{path}: not a valid TOML plan ({exc})") from exc
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise PlanError(f"{path}: reading a YAML plan needs PyYAML: pip install 'sitewatch[batch]'") from exc
        try:
            return yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise PlanError(f"{path}: not a valid YAML plan ({exc})") from exc
    raise PlanError(f"{path}: a plan is a .toml (or .yaml) file")


def _unknown(where: str, given: dict[str, Any], known: frozenset[str]) -> None:
    extra = sorted(set(given) - known)
    if extra:
        raise PlanError(f"{where}: unknown key(s) {', '.join(map(repr, extra))}; known: {', '.join(sorted(known))}")


def _image(where: str, entry: Any, base: Path) -> PlanImage:
    """One ``images`` item: a path, or a table with ``path`` and ``date``."""
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
        raise PlanError(f"{where}: give an image path, or a table with path and date")
    _unknown(where, entry, IMAGE_KEYS)
    text = entry["path"]
    if is_remote(text):
        location = text
    else:
        local = Path(text).expanduser()
        local = local if local.is_absolute() else base / local
        if not local.is_file():
            raise PlanError(f"{where}: {text} does not exist")
        location = str(local.resolve())
    try:
        when = checked_date(str(entry["date"])) if "date" in entry else image_date(location)
    except SitewatchError as exc:
        raise PlanError(f"{where}: {exc}") from exc
    if when is None:
        raise PlanError(
            f"{where}: {text}: no acquisition date found; give one (date = YYYY-MM-DD), or a STAC sidecar, "
            "TIFF date tag or ISO date in the file name"
        )
    return PlanImage(location, when)


def _site(where: str, entry: Any, base: Path) -> PlanSite:
    """One ``sites`` entry, checked: the site resolves, each image exists and has one date of its own."""
    if not isinstance(entry, dict) or not isinstance(entry.get("site"), str):
        raise PlanError(f"{where}: give the site (a site id or AOI file) and its images")
    _unknown(where, entry, SITE_KEYS)
    ref = entry["site"]
    local = base / ref
    try:
        site = resolve_site(str(local) if local.suffix.lower() in (".geojson", ".json") else ref)
    except SitewatchError as exc:
        raise PlanError(f"{where}: {exc}") from exc
    name = entry.get("name", site.site_id)
    if not isinstance(name, str) or not name or name.startswith(".") or os.sep in name or not name.isprintable():
        raise PlanError(f"{where}: name {name!r} must be a folder name (no '/', not starting with '.')")
    where = f'{where} ("{name}")'
    pairs = entry.get("pairs", "consecutive")
    if pairs not in PAIRINGS:
        raise PlanError(f"{where}: pairs {pairs!r}: one of {', '.join(PAIRINGS)}")
    raw = entry.get("images")
    if not isinstance(raw, list) or len(raw) < 2:
        raise PlanError(f"{where}: images: give two or more images of the site")
    images = sorted((_image(f"{where}: images[{i + 1}]", e, base) for i, e in enumerate(raw)), key=lambda m: m.date)
    dates = [m.date for m in images]
    if len(set(dates)) != len(dates):
        dup = sorted({d for d in dates if dates.count(d) > 1})
        raise PlanError(f"{where}: more than one image for date(s) {', '.join(dup)}; give one image per date")
    aoi = str(Path(site.path).resolve()) if site.path else ref
    return PlanSite(name, aoi, tuple(images), pairs, bool(site.by_role("rail_track")))


def _detect_settings(where: str, given: Any) -> tuple[tuple[str, Any], ...]:
    """The plan's ``detect`` table, checked against the method and normalisation registries."""
    if not isinstance(given, dict):
        raise PlanError(f"{where}: a table of detect settings ({', '.join(sorted(DETECT_KEYS))})")
    _unknown(where, given, DETECT_KEYS)
    from ..radiometry import NORMALISATION_METHODS
    from ..structures import METHODS

    for key, registry in (("method", METHODS), ("normalisation", NORMALISATION_METHODS)):
        if key in given and given[key] not in registry:
            raise PlanError(f"{where}: {key} {given[key]!r}: one of {', '.join(registry)}")
    area = given.get("min_area_m2", 0)
    if isinstance(area, bool) or not isinstance(area, (int, float)) or not 0 <= area < float("inf"):
        raise PlanError(f"{where}: min_area_m2 {area!r}: a number of m², 0 or more")
    bands = given.get("bands", [1, 2, 3])
    if not isinstance(bands, list) or len(bands) not in (3, 4) or not all(type(b) is int and b >= 1 for b in bands):
        raise PlanError(f"{where}: bands {bands!r}: three or four band numbers from 1 up (R, G, B[, NIR])")
    if not isinstance(given.get("assume_registered", False), bool):
        raise PlanError(f"{where}: assume_registered: true or false")
    return tuple((k, tuple(v) if k == "bands" else v) for k, v in sorted(given.items()))


def read_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and check a plan file; nothing is run.

    Raises
    ------
    PlanError
        If the file is unreadable, or an entry names an unknown site or key, a missing image,
        an image without a date, two images of one date, or a folder name used twice.
    """
    path = Path(path)
    doc = _load(path)
    if not isinstance(doc, dict):
        raise PlanError(f"{path}: a plan is a table with a list of sites")
    _unknown(str(path), doc, PLAN_KEYS)
    raw = doc.get("sites")
    if not isinstance(raw, list) or not raw:
        raise PlanError(f"{path}: sites: give one or more sites, each with its images")
    base = path.resolve().parent
    sites = tuple(_site(f"{path}: sites[{i + 1}]", e, base) for i, e in enumerate(raw))
    names = [s.name for s in sites]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise PlanError(f"{path}: site name(s) {', '.join(dup)} used twice; give one entry a different name")
    steps = doc.get("steps", list(STEPS))
    if not isinstance(steps, list) or "detect" not in steps or not set(steps) <= set(STEPS):
        raise PlanError(f"{path}: steps {steps!r}: detect and any of {', '.join(STEPS[1:])}")
    settings = _detect_settings(f"{path}: detect", doc.get("detect", {}))
    return Plan(path, sites, settings, tuple(s for s in STEPS if s in steps))
