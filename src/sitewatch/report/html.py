"""``sitewatch report``: one self-contained HTML page from a run folder.

The page embeds every picture as a ``data:`` URI and carries its own CSS; it loads no
script, font or stylesheet from anywhere, so it reads the same offline and can be mailed
or archived as one file.  It reads what ``detect``, ``timeline`` or ``railcars`` wrote:

- ``summary.json`` (detect): site, inputs, dates, shift, method, counts;
  ``overlay.png``; ``change_score.tif`` and ``changes.gpkg`` for the interactive panel
  (change polygons drawn as SVG over the score, linked to the table).
- ``timeline.json`` (timeline): railcars by date and track, structure change against the
  first date; ``timeline.png`` and ``overlay.png``.
- ``railcars.json`` (railcars): counts per image and track.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import ImageryError, OutputExistsError, RunError
from ..io import check_out_dir, read_source, read_vectors
from ..structures import METHODS
from .figures import COLOURS, jpeg_bytes, score_rgb, to_pixels

RUN_FILES = ("summary.json", "timeline.json", "railcars.json")
# the SVG panel is drawn from a picture at most this many pixels across
PANEL_MAX_PX = 1000


@dataclass
class RunFolder:
    """The JSON outputs found in a run folder (``None`` where absent)."""

    path: Path
    summary: dict[str, Any] | None
    timeline: dict[str, Any] | None
    railcars: dict[str, Any] | None

    @property
    def kind(self) -> str:
        """``"timeline"``, ``"detect"`` or ``"railcars"``: which command wrote the folder."""
        return "timeline" if self.timeline else "detect" if self.summary else "railcars"

    @property
    def site(self) -> dict[str, Any]:
        """Site id, name and sources, from whichever output names them."""
        doc = self.timeline or self.summary or {}
        info = {"site_id": doc.get("site_id"), "name": doc.get("site_name"), "sources": doc.get("sources")}
        if info["site_id"] and info["sources"] is None:  # folders written before sources were recorded
            try:
                from ..aoi import resolve_site

                site = resolve_site(info["site_id"])
                info.update(name=info["name"] or site.name, sources=list(site.sources))
            except Exception:  # the site is unknown here; the report says so
                info["sources"] = []
        return info

    def file(self, name: str) -> Path | None:
        p = self.path / name
        return p if p.is_file() else None


def output_schema(name: str) -> dict[str, Any]:
    """The shipped JSON Schema of a run's ``summary.json``, ``timeline.json`` or ``railcars.json``."""
    text = resources.files("sitewatch").joinpath(f"schemas/{name.removesuffix('.json')}.schema.json").read_text("utf-8")
    return json.loads(text)


def _check_against_schema(path: Path, doc: Any) -> None:
    """Refuse an output whose shape is not what sitewatch writes: nothing in it reaches the page unchecked."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(output_schema(path.name)).iter_errors(doc))
    if error is not None:
        where = "/".join(str(k) for k in error.absolute_path) or "top level"
        raise RunError(f"{path}: {where}: {error.message}; not a {path.name} that sitewatch writes")


def load_run(run_dir: str | os.PathLike[str]) -> RunFolder:
    """Read a run folder's JSON outputs.

    Raises
    ------
    RunError
        If the folder is missing, holds none of ``summary.json``, ``timeline.json`` or
        ``railcars.json``, or one of them is not valid JSON.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError(f"{path}: no such folder")
    docs: dict[str, Any] = {}
    for name in RUN_FILES:
        f = path / name
        if f.is_file():
            try:
                docs[name] = json.loads(f.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RunError(f"{f}: not valid JSON ({exc})") from exc
            _check_against_schema(f, docs[name])
    if not docs:
        raise RunError(
            f"{path}: holds no sitewatch outputs (summary.json, timeline.json or railcars.json); "
            "give the folder that detect, timeline or railcars wrote with -o"
        )
    return RunFolder(path, docs.get("summary.json"), docs.get("timeline.json"), docs.get("railcars.json"))


# ------------------------------------------------------------------ pieces of HTML


def _data_uri(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")


def _img(png: bytes, alt: str, css_class: str = "panel") -> str:
    return f'<img class="{css_class}" alt="{escape(alt)}" src="{_data_uri(png)}">'


def _photo(path: Path, alt: str) -> str:
    """An image panel re-encoded as JPEG: imagery is noisy, and PNG would make the page several MB."""
    import matplotlib.image

    rgb = matplotlib.image.imread(path)
    rgb = (rgb[..., :3] * 255).astype(np.uint8) if rgb.dtype != np.uint8 else rgb[..., :3]
    return f'<img class="panel" alt="{escape(alt)}" src="{_data_uri(jpeg_bytes(rgb, quality=88), "jpeg")}">'


def _table(header: list[str], rows: list[list[Any]], *, css_class: str = "", row_ids: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        rid = f' id="{escape(row_ids[i])}"' if row_ids else ""
        cells = "".join(
            f'<td class="num">{escape(_fmt(v))}</td>'
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            else f"<td>{escape(_fmt(v))}</td>"
            for v in row
        )
        body.append(f"<tr{rid}>{cells}</tr>")
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def _site_section(run: RunFolder) -> str:
    site = run.site
    items = []
    for src in site["sources"] or []:
        url = str(src.get("url", ""))
        link = f'<a href="{escape(url)}">{escape(url)}</a>' if url.startswith(("http://", "https://")) else escape(url)
        items.append(f"<li><b>[{escape(str(src.get('id', '')))}]</b> {link}<br>{escape(str(src.get('says', '')))}</li>")
    sources = f'<ul class="sources">{"".join(items)}</ul>' if items else "<p>No sources recorded for this site.</p>"
    return _section(
        "Site and sources",
        f"<p><b>{escape(str(site['name']))}</b> <code>{escape(str(site['site_id']))}</code></p>{sources}",
        "site",
    )


def _inputs_section(run: RunFolder) -> str:
    rows: list[list[Any]] = []
    if run.timeline:
        for r in run.timeline["dates"]:
            rows.append([r["date"], r["image"]])
        aoi = run.timeline.get("aoi")
    elif run.summary:
        s = run.summary
        rows = [[s["dates"]["before"], s["inputs"]["before"]], [s["dates"]["after"], s["inputs"]["after"]]]
        aoi = s["inputs"].get("aoi")
    else:
        rows = [[im.get("date"), im["path"]] for im in run.railcars["images"]]
        aoi = None
    extra = ""
    if run.summary:
        s = run.summary
        extra = (
            f"<p>CRS {escape(s['crs'])}, pixel size {s['pixel_size_m']:.2f} m, window "
            f"{s['window']['cols']} × {s['window']['rows']} pixels.</p>"
        )
    aoi_line = f"<p>AOI file: <code>{escape(str(aoi))}</code></p>" if aoi else ""
    return _section("Dates and inputs", _table(["date", "image"], rows) + aoi_line + extra, "inputs")


def _shift_section(shift: dict[str, Any], before: str, after: str) -> str:
    dx, dy = shift["shift_px"]
    mx, my = shift.get("shift_m", [None, None])
    body = (
        f"<p>The {escape(str(after))} image's content sits <b>{dx:+.2f} px</b> across and <b>{dy:+.2f} px</b> down "
        f"from the {escape(str(before))} image"
        + (f" ({mx:+.2f} m, {my:+.2f} m)" if mx is not None else "")
        + "; it was corrected before change was scored."
    )
    if "correlation" in shift:
        body += (
            f" Edge correlation {shift['correlation_unaligned']:.2f} before the correction, "
            f"{shift['correlation']:.2f} after."
        )
    return _section("Co-registration", body + "</p>", "shift")


def _change_svg(run: RunFolder, records: list[dict[str, Any]]) -> str:
    """The change score with every change polygon (records from changes.gpkg, native CRS) drawn
    over it, each linked to its table row."""
    score_path = run.file("change_score.tif")
    if score_path is None or run.file("changes.gpkg") is None:
        return "<p>(change_score.tif or changes.gpkg is missing from the folder; no interactive panel.)</p>"
    try:
        raster = read_source(score_path, colour=False)
    except ImageryError as exc:
        raise RunError(str(exc)) from exc
    score = raster.data[0]
    rows, cols = score.shape
    step = max(1, math.ceil(max(rows, cols) / PANEL_MAX_PX))
    small = score[::step, ::step]
    threshold = float(run.summary["method"]["threshold"])
    picture = jpeg_bytes(score_rgb(small, threshold, np.isfinite(small)))  # a noisy score compresses badly as PNG
    shapes = []
    for rec in records:
        cid = int(rec.get("id") or 0)
        change = str(rec.get("change"))
        tip = f"#{cid} {change}, {float(rec.get('area_m2') or 0):.0f} m², score {float(rec.get('score') or 0):.1f}"
        for ring in to_pixels(rec["geometry"], raster.transform):
            pts = " ".join(f"{c:.1f},{r:.1f}" for c, r in ring)
            shapes.append(
                f'<a href="#change-{cid}"><polygon class="change {escape(change)}" data-id="{cid}" '
                f'points="{pts}" stroke="{COLOURS.get(change, "#fff")}"><title>{escape(tip)}</title></polygon></a>'
            )
        p = rec["geometry"].representative_point()
        c, r = ~raster.transform * (p.x, p.y)
        shapes.append(f'<text x="{c:.0f}" y="{r:.0f}" class="label">{cid}</text>')
    font = max(cols, rows) / 60
    return (
        f'<svg class="panel" viewBox="0 0 {cols} {rows}" xmlns="http://www.w3.org/2000/svg" '
        f'role="img" aria-label="change score with {len(records)} change polygons">'
        f'<image width="{cols}" height="{rows}" preserveAspectRatio="none" href="{_data_uri(picture, "jpeg")}"/>'
        f'<g style="stroke-width:{max(cols, rows) / 400:.1f};font-size:{font:.0f}px">{"".join(shapes)}</g></svg>'
        f'<p class="note">Change score, 0 to {3 * threshold:.1f} (threshold {threshold:.1f}); polygons from '
        f"changes.gpkg. Hover for details; click to reach the row.</p>"
    )


def _changes_table(changes: list[dict[str, Any]]) -> str:
    if not changes:
        return "<p>No new or removed structures were found.</p>"
    header = ["id", "direction", "area m²", "length × width m", "relative size", "score"]
    rows = []
    for c in changes:
        size = c.get("relative_size")
        rel = f"{float(size):.0%} of {c['relative_to']}" if size is not None and not math.isnan(size) else None
        rows.append(
            [
                c["id"],
                c["change"],
                round(float(c["area_m2"])),
                f"{float(c['length_m']):.0f} × {float(c['width_m']):.0f}",
                rel,
                c["score"],
            ]
        )
    return _table(header, rows, css_class="changes", row_ids=[f"change-{c['id']}" for c in changes])


def _detect_sections(run: RunFolder) -> list[str]:
    s = run.summary
    records, _ = read_vectors(run.file("changes.gpkg")) if run.file("changes.gpkg") else ([], None)
    changes = [{k: v for k, v in c.items() if k != "geometry"} for c in records]
    out = [_shift_section(s["shift"], s["dates"]["before"] or "before", s["dates"]["after"] or "after")]
    panels = []
    if run.file("overlay.png"):
        panels.append(_photo(run.file("overlay.png"), "before, after and change score with the change polygons"))
    panels.append(_change_svg(run, records))
    out.append(_section("Before, after and change", "".join(panels), "panels"))
    counts, area = s["counts"], s["area_m2"]
    summary_line = (
        f"<p>{counts['new']} new ({area['new']:,.0f} m²) and {counts['removed']} removed "
        f"({area['removed']:,.0f} m²) structures of at least {s['method']['min_area_m2']:.0f} m²"
        + (f"; {counts['changed']} other changes ({area['changed']:,.0f} m²)" if counts.get("changed") else "")
        + ".</p>"
    )
    out.append(_section("Changes", summary_line + _changes_table(changes), "changes"))
    return out


def _railcar_rows(images: list[dict[str, Any]]) -> str:
    rows = []
    for im in images:
        for t in im["tracks"]:
            rows.append(
                [
                    im.get("date"),
                    Path(im["path"]).name,
                    t["track_id"],
                    t["count"],
                    f"± {t['uncertainty']:.1f}",
                    round(float(t["occupied_m"])),
                    t["method"],
                ]
            )
    return _table(
        ["date", "image", "track", "railcars", "uncertainty", "occupied m", "method"], rows, css_class="railcars"
    )


def _count_or_outside(count: int | None) -> int | str:
    return "outside the image" if count is None else count


def _timeline_sections(run: RunFolder) -> list[str]:
    tl = run.timeline
    out = []
    dates = tl["dates"]
    tracks = [k.split(":", 1)[1] for k in dates[0] if k.startswith("track:")]
    header = ["date", "railcars", "±"] + tracks
    has_structures = "new_area_m2" in dates[0]
    if has_structures:
        header += ["new m²", "removed m²"]
    rows = []
    for r in dates:
        row = [r["date"], r["railcars_total"], r["railcars_uncertainty"]] + [
            _count_or_outside(r[f"track:{t}"]) for t in tracks
        ]
        if has_structures:
            row += [r["new_area_m2"], r["removed_area_m2"]]
        rows.append(row)
    chart = _img(run.file("timeline.png").read_bytes(), "railcars by date", "chart") if run.file("timeline.png") else ""
    out.append(
        _section(
            "Timeline",
            f'<p class="statement">{escape(tl["statement"])}</p>{chart}' + _table(header, rows, css_class="timeline"),
            "timeline",
        )
    )
    if run.file("overlay.png"):
        out.append(
            _section(
                "First and last date",
                _photo(run.file("overlay.png"), "first and last date with railcars, and structure change"),
                "panels",
            )
        )
    if "structures" in tl:
        st = tl["structures"]
        out.append(_shift_section(st["shift"], st["dates"]["before"], st["dates"]["after"]))
        out.append(
            _section(
                f"Structure changes {st['dates']['before']} to {st['dates']['after']}",
                _changes_table(st["changes"]),
                "changes",
            )
        )
    out.append(_section("Railcars by track", _railcar_rows(tl["images"]), "railcars"))
    return out


def _method_section(run: RunFolder) -> str:
    doc = run.summary or run.timeline or run.railcars
    parts = []
    if run.summary:
        m = run.summary["method"]
        known = METHODS.get(m["change"])  # a run of a method no longer registered has no description here
        score = f" ({escape(known.score_description)})" if known else ""
        parts.append(
            f"<p>Change score <code>{escape(m['change'])}</code>{score}, normalisation "
            f"<code>{escape(m['normalisation'])}</code>, threshold {escape(str(m['threshold']))}, minimum area "
            f"{escape(str(m['min_area_m2']))} m².</p>"
        )
        if "timings" in run.summary:
            parts.append(
                "<p>Timings: " + ", ".join(f"{escape(k)} {v:.2f} s" for k, v in run.summary["timings"].items()) + "</p>"
            )
    versions = doc.get("versions") or {}
    if versions:
        parts.append("<p>Software: " + ", ".join(f"{escape(k)} {escape(str(v))}" for k, v in versions.items()) + "</p>")
    return _section("Method", "".join(parts) or "<p>Not recorded.</p>", "method")


STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;
color:#1d2430;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em}\
h2{font-size:1.15em;border-bottom:1px solid #ccd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}\
th,td{border:1px solid #ccd;padding:.25em .6em;text-align:left}td.num{text-align:right}td{white-space:nowrap}
th{background:#eef1f6}tr:target{background:#fff3b0}
img.panel{width:100%;height:auto;display:block;margin:.5em 0;border:1px solid #ccd}
svg.panel{width:100%;max-width:800px;height:auto;display:block;margin:.5em 0;border:1px solid #ccd}
img.chart{max-width:100%;height:auto}
svg polygon{fill:none}svg polygon:hover{fill:rgba(255,255,255,.25)}
svg text.label{fill:#fff;paint-order:stroke;stroke:#000;stroke-width:3px;text-anchor:middle;dominant-baseline:middle}
.note,footer{color:#556;font-size:.85em}.statement{font-size:1.1em;font-weight:600}
ul.sources li{margin-bottom:.4em}code{background:#f3f4f7;padding:0 .2em}
"""


def build_report(run_dir: str | os.PathLike[str]) -> str:
    """The HTML of a run folder's report, as one string with everything embedded.

    Raises
    ------
    RunError
        If the folder holds no sitewatch outputs or one of them cannot be read.
    """
    run = load_run(run_dir)
    site = run.site
    title = f"{site['name'] or site['site_id'] or 'sitewatch run'}: {run.kind}"
    body = [_site_section(run), _inputs_section(run)]
    try:
        if run.timeline:
            body += _timeline_sections(run)
        elif run.summary:
            body += _detect_sections(run)
        if run.railcars and not run.timeline:
            body.append(_section("Railcars", _railcar_rows(run.railcars["images"]), "railcars"))
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(
            f"{run.path}: an output lacks a field the report needs ({exc!r}); was it written by this "
            f"version of sitewatch ({__version__})?"
        ) from exc
    body.append(_method_section(run))
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<header><h1>{escape(title)}</h1><p class="note">Report of <code>{escape(str(run.path))}</code>, '
        f"made {made} by sitewatch {escape(__version__)}. Everything is embedded; the page makes no requests.</p>"
        f"</header>{''.join(body)}<footer><p>Areas are in m² on the image's projected grid. Counts and areas are "
        f"what the detector found, not verified truth; see the method section.</p></footer></body></html>\n"
    )


def write_report(
    run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, overwrite: bool = False
) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``), atomically.

    Raises
    ------
    OutputExistsError
        If ``out`` exists and ``overwrite`` is false.
    RunError
        If the run folder cannot be reported on.
    """
    target = Path(out) if out is not None else Path(run_dir) / "report.html"
    check_out_dir(target.parent)
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise OutputExistsError(f"{target}: exists; pass --overwrite to replace it")
    html = build_report(run_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    # created exclusively (O_EXCL, a fresh name): a planted file or symlink is never written through
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(html)
        os.replace(tmp_name, target)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise RunError(f"{target}: cannot be written ({exc.strerror or exc})") from exc
    return target
