"""``sitewatch report``: one self-contained HTML page from a run folder.

The page embeds every picture as a ``data:`` URI and carries its own CSS; it loads no
script, font or stylesheet from anywhere, so it reads the same offline and can be mailed
or archived as one file.  It reads what ``detect``, ``timeline`` or ``railcars`` wrote:

- ``summary.json`` (detect): site, inputs, dates, shift, method, counts;
  ``overlay.png``; ``before.tif``, ``after.tif``, ``change_score.tif`` and ``changes.gpkg`` for
  the interactive panel (:mod:`.viewer`: change polygons drawn as SVG over the imagery or the
  score, switchable or side by side, linked to the table).
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
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import OutputExistsError, RunError
from ..io import check_out_dir, read_vectors, spaced_mgrs
from ..structures import METHODS
from .figures import jpeg_bytes
from .viewer import change_view, railcar_method

RUN_FILES = ("summary.json", "timeline.json", "railcars.json")


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

    if isinstance(doc, dict) and "schema_version" not in doc:
        raise RunError(
            f"{path}: has no schema_version: written by an older sitewatch, or not by sitewatch; "
            "run the command again to report on it"
        )
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(output_schema(path.name)).iter_errors(doc))
    if error is not None:
        where = "/".join(str(k) for k in error.absolute_path) or "top level"
        raise RunError(f"{path}: {where}: {error.message}; not a {path.name} that sitewatch writes")


def _no_constant(name: str) -> None:
    """Refuse ``NaN`` and ``Infinity``: Python writes them, JSON has no such numbers, and sitewatch never does."""
    raise ValueError(f"{name} is not a JSON number")


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
                docs[name] = json.loads(f.read_text(encoding="utf-8"), parse_constant=_no_constant)
            except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
                raise RunError(f"{f}: not valid JSON ({exc})") from exc
            _check_against_schema(f, docs[name])
    if not docs:
        raise RunError(
            f"{path}: holds no sitewatch outputs (summary.json, timeline.json or railcars.json); "
            "give the folder that detect, timeline or railcars wrote with -o"
        )
    return RunFolder(path, docs.get("summary.json"), docs.get("timeline.json"), docs.get("railcars.json"))


# ------------------------------------------------------------------ what the template is given


def _data_uri(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")


def _image(data: bytes, alt: str, css: str = "panel", kind: str = "png") -> dict[str, Any]:
    return {"uri": _data_uri(data, kind), "alt": alt, "css": css}


def _photo(path: Path, alt: str) -> dict[str, Any]:
    """An image panel re-encoded as JPEG: imagery is noisy, and PNG would make the page several MB."""
    import matplotlib.image

    rgb = matplotlib.image.imread(path)
    rgb = (rgb[..., :3] * 255).astype(np.uint8) if rgb.dtype != np.uint8 else rgb[..., :3]
    return _image(jpeg_bytes(rgb, quality=88), alt, kind="jpeg")


def _cell(v: Any) -> dict[str, Any]:
    return {"text": _fmt(v), "num": isinstance(v, (int, float)) and not isinstance(v, bool)}


def _table(header: list[str], rows: list[list[Any]], *, css: str = "", row_ids: list[str] | None = None) -> dict:
    return {"header": header, "rows": [[_cell(v) for v in row] for row in rows], "css": css, "row_ids": row_ids}


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)


def _section(title: str, anchor: str, **parts: Any) -> dict[str, Any]:
    """A section of the page: paragraphs (text or (text, css)), images, tables, sources or a viewer."""
    paragraphs = [p if isinstance(p, dict) else {"text": p, "css": None} for p in parts.pop("paragraphs", [])]
    return {
        "title": title,
        "anchor": anchor,
        "paragraphs": paragraphs,
        "images": parts.pop("images", []),
        "tables": parts.pop("tables", []),
        "view": parts.pop("view", None),
        **parts,
    }


def _site_section(run: RunFolder) -> dict[str, Any]:
    site = run.site
    sources = [
        {
            "id": str(src.get("id", "")),
            "url": str(src.get("url", "")),
            "link": str(src.get("url", "")).startswith(("http://", "https://")),
            "says": str(src.get("says", "")),
        }
        for src in site["sources"] or []
    ]
    return _section("Site and sources", "site", paragraphs=[f"{site['name']} ({site['site_id']})"], sources=sources)


def _inputs_section(run: RunFolder) -> dict[str, Any]:
    rows: list[list[Any]] = []
    paragraphs = []
    if run.timeline:
        rows = [[r["date"], r["image"]] for r in run.timeline["dates"]]
        aoi = run.timeline.get("aoi")
    elif run.summary:
        s = run.summary
        rows = [[s["dates"]["before"], s["inputs"]["before"]], [s["dates"]["after"], s["inputs"]["after"]]]
        aoi = s["inputs"].get("aoi")
        for which, reason in (s["dates"].get("unknown") or {}).items():
            paragraphs.append(f"The {which} date is {reason}.")
    else:
        rows = [[im.get("date"), im["path"]] for im in run.railcars["images"]]
        aoi = None
    if aoi:
        paragraphs.append(f"AOI file: {aoi}")
    if run.summary:
        s = run.summary
        paragraphs.append(
            f"CRS {s['crs']}, pixel size {s['pixel_size_m']:.2f} m, window "
            f"{s['window']['cols']} × {s['window']['rows']} pixels."
        )
    return _section("Dates and inputs", "inputs", tables=[_table(["date", "image"], rows)], paragraphs=paragraphs)


def _shift_section(shift: dict[str, Any], before: str, after: str) -> dict[str, Any]:
    dx, dy = shift["shift_px"]
    mx, my = shift.get("shift_m", [None, None])
    text = (
        f"The {after} image's content sits {dx:+.2f} px across and {dy:+.2f} px down from the {before} image"
        + (f" ({mx:+.2f} m, {my:+.2f} m)" if mx is not None else "")
        + "; it was corrected before change was scored."
    )
    if "correlation" in shift:
        text += (
            f" Edge correlation {shift['correlation_unaligned']:.2f} before the correction, "
            f"{shift['correlation']:.2f} after."
        )
    return _section("Co-registration", "shift", paragraphs=[text])


def _changes_table(changes: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not changes:
        return None
    header = ["id", "direction", "area m²", "length × width m", "relative size", "score", "confidence"]
    header += ["lat", "lon", "MGRS", "change id"]
    rows = []
    for c in changes:
        size = c.get("relative_size")
        rel = f"{float(size):.0%} of {c['relative_to']}" if size is not None and not math.isnan(size) else None
        lat, lon = c.get("lat"), c.get("lon")
        rows.append(
            [
                c["id"],
                c["change"],
                round(float(c["area_m2"])),
                f"{float(c['length_m']):.0f} × {float(c['width_m']):.0f}",
                rel,
                c["score"],
                c.get("confidence"),
                None if lat is None else f"{float(lat):.6f}",
                None if lon is None else f"{float(lon):.6f}",
                spaced_mgrs(c.get("mgrs")),
                c.get("change_id"),
            ]
        )
    return _table(header, rows, css="changes", row_ids=[f"change-{c['id']}" for c in changes])


def _detect_sections(run: RunFolder) -> list[dict[str, Any]]:
    s = run.summary
    records, _ = read_vectors(run.file("changes.gpkg"), layer="changes") if run.file("changes.gpkg") else ([], None)
    changes = [{k: v for k, v in c.items() if k != "geometry"} for c in records]
    out = [_shift_section(s["shift"], s["dates"]["before"] or "before", s["dates"]["after"] or "after")]
    out.append(_section("Imagery and change", "viewer", **change_view(run, records)))
    if run.file("overlay.png"):
        out.append(
            _section(
                "Before, after and change",
                "panels",
                images=[_photo(run.file("overlay.png"), "before, after and change score with the change polygons")],
            )
        )
    counts, area = s["counts"], s["area_m2"]
    summary_line = (
        f"{counts['new']} new ({area['new']:,.0f} m²) and {counts['removed']} removed "
        f"({area['removed']:,.0f} m²) structures of at least {s['method']['min_area_m2']:.0f} m²"
        + (f"; {counts['changed']} other changes ({area['changed']:,.0f} m²)" if counts.get("changed") else "")
        + "."
    )
    low = sum((s.get("confidence") or {}).get("low", {}).values())
    if low:
        summary_line += (
            f" {low} of them {'is' if low == 1 else 'are'} low confidence (score below "
            f"{s['confidence']['low_below_score']:g}; drawn dashed)."
        )
    table = _changes_table(changes)
    paragraphs = [summary_line] if table else [summary_line, "No new or removed structures were found."]
    return out + [_section("Changes", "changes", paragraphs=paragraphs, tables=[table] if table else [])]


def _railcar_table(images: list[dict[str, Any]]) -> dict[str, Any]:
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
    return _table(["date", "image", "track", "railcars", "uncertainty", "occupied m", "method"], rows, css="railcars")


def _count_or_outside(count: int | None) -> int | str:
    return "outside the image" if count is None else count


def _timeline_sections(run: RunFolder) -> list[dict[str, Any]]:
    tl = run.timeline
    dates = tl["dates"]
    tracks = [k.split(":", 1)[1] for k in dates[0] if k.startswith("track:")]
    header = ["date", "railcars", "±"] + tracks
    has_structures = "new_area_m2" in dates[0]
    if has_structures:
        header += ["new m²", "removed m²"]
    rows = []
    for r in dates:
        total = "not counted" if r["railcars_total"] is None else r["railcars_total"]
        row = [r["date"], total, r["railcars_uncertainty"] if r["railcars_uncertainty"] is not None else ""] + [
            _count_or_outside(r[f"track:{t}"]) for t in tracks
        ]
        if has_structures:
            row += [r["new_area_m2"], r["removed_area_m2"]]
        rows.append(row)
    chart = run.file("timeline.png")
    out = [
        _section(
            "Timeline",
            "timeline",
            paragraphs=[{"text": tl["statement"], "css": "statement"}],
            images=[_image(chart.read_bytes(), "railcars by date", "chart")] if chart else [],
            tables=[_table(header, rows, css="timeline")],
        )
    ]
    if run.file("overlay.png"):
        out.append(
            _section(
                "First and last date",
                "panels",
                images=[_photo(run.file("overlay.png"), "first and last date with railcars, and structure change")],
            )
        )
    if "structures" in tl:
        st = tl["structures"]
        out.append(_shift_section(st["shift"], st["dates"]["before"], st["dates"]["after"]))
        table = _changes_table(st["changes"])
        out.append(
            _section(
                f"Structure changes {st['dates']['before']} to {st['dates']['after']}",
                "changes",
                tables=[table] if table else [],
                paragraphs=[] if table else ["No new or removed structures were found."],
            )
        )
    out.append(_section("Railcars by track", "railcars", tables=[_railcar_table(tl["images"])]))
    return out


def _method_section(run: RunFolder) -> dict[str, Any]:
    doc = run.summary or run.timeline or run.railcars
    parts = []
    if run.summary:
        m = run.summary["method"]
        known = METHODS.get(m["change"])  # a run of a method no longer registered has no description here
        score = f" ({known.score_description})" if known else ""
        parts.append(
            f"Change score {m['change']}{score}, normalisation {m['normalisation']}, threshold {m['threshold']}, "
            f"minimum area {m['min_area_m2']} m²."
        )
        if "timings" in run.summary:
            parts.append("Timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in run.summary["timings"].items()))
    images = (run.timeline or run.railcars or {}).get("images") or []
    parts += railcar_method(images)
    versions = doc.get("versions") or {}
    if versions:
        parts.append("Software: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return _section("Method", "method", paragraphs=parts or ["Not recorded."])


def build_report(run_dir: str | os.PathLike[str]) -> str:
    """The HTML of a run folder's report, as one string with everything embedded.

    The page is rendered from ``report/templates/report.html.j2`` with autoescaping: every
    text from the run folder reaches it escaped.

    Raises
    ------
    RunError
        If the folder holds no sitewatch outputs or one of them cannot be read.
    """
    run = load_run(run_dir)
    site = run.site
    title = f"{site['name'] or site['site_id'] or 'sitewatch run'}: {run.kind}"
    sections = [_site_section(run), _inputs_section(run)]
    try:
        if run.timeline:
            sections += _timeline_sections(run)
        elif run.summary:
            sections += _detect_sections(run)
        if run.railcars and not run.timeline:
            sections.append(_section("Railcars", "railcars", tables=[_railcar_table(run.railcars["images"])]))
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(
            f"{run.path}: an output lacks a field the report needs ({exc!r}); was it written by this "
            f"version of sitewatch ({__version__})?"
        ) from exc
    sections.append(_method_section(run))
    return _template().render(
        title=title,
        run_path=str(run.path),
        made=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        sections=sections,
    )


def _template():
    """The page template, with autoescaping on (a ``data:`` URI is a plain string and stays one)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sitewatch.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )
    return env.get_template("report.html.j2")


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
