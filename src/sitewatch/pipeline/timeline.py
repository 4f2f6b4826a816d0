"""``timeline``: railcars per track and structure change, date by date, for one site."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import railcars as core
from ..aoi import SiteAOI
from ..errors import ImageryError
from ..io import (
    check_outputs_free,
    dates_given,
    image_date,
    image_path,
    read_aoi_window,
    staged_outputs,
    write_csv,
    write_json,
    write_vectors,
)
from ..report.figures import COLOURS, Panel, Shape, display_rgb, render_overlay, timeline_chart
from ._common import SCHEMA_VERSION, Progress, site_of, versions
from .detect import DetectResult, detect, overlay_panels
from .railcars import (
    COARSEST_RAILCAR_PIXEL_M,
    RAILCAR_CSV_FIELDS,
    ImageRailcars,
    NotCountable,
    count_in_image,
    load_tracks,
    railcar_records,
    track_rows,
)
from .vectors import RAILCAR_STYLE, change_records

log = logging.getLogger(__name__)

TIMELINE_OUTPUTS = [
    "timeline.csv",
    "railcars.csv",
    "railcars.geojson",
    "railcars.qml",
    "timeline.png",
    "overlay.png",
    "timeline.json",
]


@dataclass
class Timeline:
    """A site's railcars and structure change by date.

    ``rows`` holds one dict per date (the rows of ``timeline.csv``); ``railcars`` the
    per-image counts behind them; ``statement`` the change factor in words.
    """

    site: SiteAOI
    rows: list[dict[str, Any]]
    railcars: list[ImageRailcars]
    track_ids: list[str]
    statement: str
    last_detect: DetectResult | None = field(default=None, repr=False)  # first date -> last date
    dated: list[tuple[str, Path]] = field(default_factory=list)  # every (date, image), railcars counted or not

    def to_dict(self) -> dict[str, Any]:
        out = {
            "schema_version": SCHEMA_VERSION,
            "site_id": self.site.site_id,
            "site_name": self.site.name,
            "sources": list(self.site.sources),
            "aoi": str(self.site.path) if self.site.path else None,
            "statement": self.statement,
            "dates": self.rows,
            "images": [r.to_dict() for r in self.railcars],
        }
        if self.last_detect is not None:
            det = self.last_detect
            out["structures"] = {
                "dates": det.summary["dates"],
                "shift": det.summary["shift"],
                "changes": [{k: v for k, v in r.items() if k != "geometry"} for r in change_records(det)],
            }
        return out


def _tracks_counted(row: dict[str, Any]) -> set[str]:
    return {k.removeprefix("track:") for k, v in row.items() if k.startswith("track:") and v is not None}


def change_statement(rows: list[dict[str, Any]]) -> str:
    """``"railcars ×3.6 from 2023-03-10 to 2023-10-18 (20 → 73)"``, or why there is no factor.

    Where the first and last images do not both show every track, the factor is taken over
    the tracks they both show, and says so; dates whose railcars were not counted (pixels
    too coarse) are left out of it.
    """
    if rows and all(r["railcars_total"] is None for r in rows):
        return f"railcars not counted (pixels coarser than {COARSEST_RAILCAR_PIXEL_M:.0f} m; see railcars_not_counted)"
    rows = [r for r in rows if r["railcars_total"] is not None]
    if len(rows) < 2:
        return (
            f"railcars: {rows[0]['railcars_total']} on {rows[0]['date']} (one date, no change factor)"
            if rows
            else "no dates"
        )
    first, last = rows[0], rows[-1]
    a, b = first["railcars_total"], last["railcars_total"]
    common = _tracks_counted(first) & _tracks_counted(last)
    scope = ""
    if common != _tracks_counted(first) or common != _tracks_counted(last):
        if not common:
            return f"railcars: no track is in both the {first['date']} and the {last['date']} image; no change factor"
        a, b = (sum(row[f"track:{t}"] for t in common) for row in (first, last))
        scope = f" on the {len(common)} track(s) both images show"
    if a == 0:
        return f"railcars from 0 on {first['date']} to {b} on {last['date']}{scope} (no factor from zero)"
    return f"railcars ×{b / a:.1f} from {first['date']} to {last['date']} ({a} → {b}){scope}"


def _by_date(images: list[str | os.PathLike[str]], given: Mapping[str, str]) -> list[tuple[str, Path]]:
    """(date, path) of every image, earliest first; ``given``: dates the user gave, by ``str(image)``.

    Raises
    ------
    ImageryError
        If there is no image, an image has no date, or two share one.
    """
    if len(images) < 1:
        raise ImageryError("timeline needs at least one image")
    dated = []
    for p in images:
        d = given.get(str(p)) or image_date(p)
        if d is None:
            raise ImageryError(
                f"{p}: no acquisition date found (STAC sidecar <name>.json, TIFFTAG_DATETIME, or an ISO "
                f"date such as 2023-10-18 in the file name); give it with --date {image_path(p).name}=YYYY-MM-DD"
            )
        dated.append((d, image_path(p)))
    dated.sort()
    dates = [d for d, _ in dated]
    if len(set(dates)) != len(dates):
        dup = sorted({d for d in dates if dates.count(d) > 1})
        raise ImageryError(f"more than one image for date(s) {', '.join(dup)}; give one image per date")
    return dated


def _railcar_row(date: str, path: Path, res: ImageRailcars | str, track_ids: list[str]) -> dict[str, Any]:
    """A date's row of ``timeline.csv`` as far as railcars go: the total, its spread and each track.

    ``railcars_total`` counts the tracks inside the image; those outside are named in
    ``tracks_outside_image`` and have no count.  Where ``res`` is the reason railcars could
    not be counted (:class:`~.railcars.NotCountable`), every count is None and the reason is
    in ``railcars_not_counted``.
    """
    if isinstance(res, str):
        row: dict[str, Any] = {"date": date, "image": path.name, "railcars_total": None, "railcars_uncertainty": None}
        row.update({"method": "not counted", **{f"track:{t}": None for t in track_ids}})
        return {**row, "tracks_outside_image": "", "railcars_not_counted": res}
    per_track = {t.track_id: t.count for t in res.result.tracks}
    row: dict[str, Any] = {
        "date": date,
        "image": path.name,
        "railcars_total": res.total,
        "railcars_uncertainty": round(res.result.uncertainty, 2),
        "method": res.result.method,
    }
    # a track outside this image has no count (None: an empty CSV cell, null in JSON), never 0
    row.update({f"track:{t}": per_track.get(t) for t in track_ids})
    row["tracks_outside_image"] = " ".join(t for t in track_ids if t not in per_track)
    row["railcars_not_counted"] = ""
    return row


def _count_each_date(
    dated: list[tuple[str, Path]],
    lines: dict[str, Any],
    *,
    prior: core.SegmentationPrior,
    bands: tuple[int, ...] | None,
    step: Progress,
) -> list[ImageRailcars | str]:
    """Each date's railcar count, or why there is none (:class:`~.railcars.NotCountable`: pixels too coarse)."""
    per_date: list[ImageRailcars | str] = []
    for i, (d, p) in enumerate(dated):
        step(f"{d}: counting railcars ({i + 1}/{len(dated)})")
        try:
            per_date.append(count_in_image(p, lines, prior=prior, skip_outside=True, bands=bands, date=d))
        except NotCountable as exc:
            log.warning("%s", exc)
            per_date.append(str(exc).removeprefix(f"{p}: "))
    return per_date


def timeline(
    images: list[str | os.PathLike[str]],
    *,
    aoi: SiteAOI | str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    structures: bool = True,
    prior: core.SegmentationPrior = core.SegmentationPrior(),
    bands: tuple[int, ...] | None = None,
    dates: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> Timeline:
    """Railcar counts per track and structure change against the first date, for each date.

    Parameters
    ----------
    images : list of path-like
        Two or more GeoTIFFs of the site, in any order; each needs a date (STAC sidecar,
        TIFF date tag or an ISO date in the file name).
    aoi : SiteAOI, site id or path
        The site; its ``rail_track`` lines are counted along and its footprint is searched
        for structure change.
    out_dir : path-like, optional
        Where to write ``timeline.csv``, ``railcars.csv``, ``railcars.geojson``,
        ``timeline.png`` and ``timeline.json``.
    structures : bool
        Also run :func:`detect` from the first date to each later one.
    prior : SegmentationPrior
        Car lengths; the nominal length sets the occupied-length count.
    bands : tuple of int, optional
        1-based red, green, blue[, NIR] band numbers (``--bands``); default: from the files.
    dates : mapping of str to str, optional
        Acquisition dates by image path or file name (``--date NAME=YYYY-MM-DD``), over what
        the files say (:func:`~sitewatch.io.dates_given`).
    progress : callable, optional
        Called with a short message as each stage starts.
    """
    step = progress or (lambda msg: None)
    site = site_of(aoi)
    dated = _by_date(images, dates_given(images, dates or {}))
    if out_dir is not None:
        check_outputs_free([Path(out_dir) / n for n in TIMELINE_OUTPUTS], overwrite)
    lines = load_tracks(aoi=site)
    per_date = _count_each_date(dated, lines, prior=prior, bands=bands, step=step)
    counted = [r for r in per_date if not isinstance(r, str)]
    track_ids = [t for t in lines if any(t in r.tracks for r in counted)]
    rows = []
    det = None
    for i, ((d, p), res) in enumerate(zip(dated, per_date)):
        row = _railcar_row(d, p, res, track_ids)
        if structures and i > 0:
            step(f"{d}: structure change against {dated[0][0]} ({i}/{len(dated) - 1})")
            det = detect(dated[0][1], p, site, bands=bands, dates=(dated[0][0], d))
            row.update(
                {
                    "new_structures": det.summary["counts"]["new"],
                    "new_area_m2": det.summary["area_m2"]["new"],
                    "removed_structures": det.summary["counts"]["removed"],
                    "removed_area_m2": det.summary["area_m2"]["removed"],
                    # the "change" method (pixels too coarse for structures) reports change of any kind
                    "changed_structures": det.summary["counts"].get("changed", 0),
                    "changed_area_m2": det.summary["area_m2"].get("changed", 0.0),
                }
            )
        elif structures:
            row.update({"new_structures": 0, "new_area_m2": 0.0, "removed_structures": 0, "removed_area_m2": 0.0})
            row.update({"changed_structures": 0, "changed_area_m2": 0.0})
        rows.append(row)
    result = Timeline(site, rows, counted, track_ids, change_statement(rows), last_detect=det, dated=dated)
    log.info("%s", result.statement)
    if out_dir is not None:
        step("writing")
        write_timeline(result, out_dir, overwrite=overwrite)
    return result


def timeline_figure(result: Timeline):
    """The timeline chart of a result (:func:`sitewatch.report.figures.timeline_chart`).

    Returns a ``matplotlib.figure.Figure``; a notebook shows it inline.
    """
    return timeline_chart(result.rows, result.track_ids, title=f"{result.site.name}: {result.statement}")


def write_timeline(result: Timeline, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> list[Path]:
    """Write the timeline's outputs (all or nothing)."""
    fields = list(result.rows[0].keys())
    with staged_outputs(out_dir, TIMELINE_OUTPUTS, overwrite=overwrite) as stage:
        write_csv(stage / "timeline.csv", result.rows, fields)
        write_csv(stage / "railcars.csv", track_rows(result.railcars), RAILCAR_CSV_FIELDS)
        write_vectors(
            railcar_records(result.railcars),
            _vector_crs(result),
            geojson_path=stage / "railcars.geojson",
            layer="railcars",
            style=RAILCAR_STYLE,
        )
        timeline_figure(result).savefig(stage / "timeline.png")
        render_overlay(
            overlay_panels_timeline(result),
            stage / "overlay.png",
            caption="yellow: railcars (orange: trains where cars are not separable), cyan: track lines; "
            "red: new and blue: removed structures, first date to last",
            legend=True,
        )
        write_json(stage / "timeline.json", {**result.to_dict(), "versions": versions()})
    return [Path(out_dir) / n for n in TIMELINE_OUTPUTS]


def _vector_crs(result: Timeline) -> Any:
    """The CRS railcar vectors are written in: the first counted image's, else the structure grid's."""
    if result.railcars:
        return result.railcars[0].grid.crs
    return result.last_detect.grid.crs if result.last_detect is not None else "EPSG:4326"


def overlay_panels_timeline(result: Timeline) -> list[Panel]:
    """First and last date with their railcars and tracks, then structure change between them."""
    records = railcar_records(result.railcars)
    by_path = {r.path: r for r in result.railcars}
    dated = result.dated or [(r.date, r.path) for r in result.railcars]
    panels = []
    for date, path in [dated[0]] if len(dated) == 1 else [dated[0], dated[-1]]:
        window = read_aoi_window(path, result.site.footprint)
        res = by_path.get(path)
        shapes = [] if res is None else [Shape(line, COLOURS["track"], width=0.4) for line in res.tracks.values()]
        # railcar records are in the first image's CRS; all dates share it in practice, and
        # a date in another CRS is drawn from its own pixels without its cars
        if res is not None and window.grid.crs == result.railcars[0].grid.crs:
            shapes += [Shape(r["geometry"], COLOURS[r["kind"]], width=1.2) for r in records if r["image"] == path.name]
        title = f"{date}: {res.total} railcars" if res is not None else f"{date}: railcars not counted"
        panels.append(Panel(title, display_rgb(window.data, window.valid), window.grid.transform, shapes))
    if result.last_detect is not None:
        change = overlay_panels(result.last_detect)[-1]
        change.title = f"structure change {result.rows[0]['date']} to {result.rows[-1]['date']}"
        panels.append(change)
    return panels
