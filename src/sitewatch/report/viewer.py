"""The report's interactive panel and its method text for railcars.

The panel is an SVG: the before and after imagery (``before.tif``, ``after.tif``) and the
change score (``change_score.tif``) as switchable layers under the change polygons (from
``changes.gpkg``, each linked to its table row), or before and after side by side; with a
scale bar, a grid-north arrow and the score's colour scale.  It is switched by CSS alone
(radio buttons), so the page still runs no script.
"""

from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ImageryError, RunError
from ..io import read_rgb_preview, read_source
from ..structures import METHODS
from .figures import COLOURS, jpeg_bytes, nice_length, score_rgb, to_pixels

if TYPE_CHECKING:  # pragma: no cover
    from .html import RunFolder

# the SVG panel is drawn from pictures at most this many pixels across
PANEL_MAX_PX = 1000
# stops of the score's colour scale drawn as a CSS gradient
GRADIENT_STOPS = 9
# gap between the side-by-side pictures, in pixels of the panel
SIDE_GAP_PX = 8


def _jpeg_uri(rgb: np.ndarray) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(rgb)).decode("ascii")


def _gradient() -> str:
    from matplotlib import colormaps

    cmap = colormaps["magma"]
    stops = []
    for k in range(GRADIENT_STOPS):
        r, g, b, _ = cmap(k / (GRADIENT_STOPS - 1))
        stops.append(f"rgb({r * 255:.0f},{g * 255:.0f},{b * 255:.0f}) {100 * k / (GRADIENT_STOPS - 1):.0f}%")
    return ",".join(stops)


def _shapes(records: list[dict[str, Any]], transform: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Polygons (SVG points in panel pixels) and their labels."""
    shapes, labels = [], []
    for rec in records:
        cid = int(rec.get("id") or 0)
        change = str(rec.get("change"))
        low = rec.get("confidence") == "low"
        tip = f"#{cid} {change}, {float(rec.get('area_m2') or 0):.0f} m², score {float(rec.get('score') or 0):.2f}" + (
            " (low confidence)" if low else ""
        )
        for ring in to_pixels(rec["geometry"], transform):
            pts = " ".join(f"{c:.1f},{r:.1f}" for c, r in ring)
            shapes.append(
                {
                    "id": cid,
                    "change": change,
                    "low": low,
                    "points": pts,
                    "colour": COLOURS.get(change, "#fff"),
                    "tip": tip,
                }
            )
        p = rec["geometry"].representative_point()
        c, r = ~transform * (p.x, p.y)
        labels.append({"id": cid, "x": f"{c:.0f}", "y": f"{r:.0f}"})
    return shapes, labels


def _scale_and_north(rows: int, cols: int, pixel_m: float) -> dict[str, Any]:
    metres = nice_length(cols * pixel_m)
    length = metres / pixel_m if pixel_m > 0 else 0.0
    size = max(rows, cols) / 40
    return {
        "bar": {
            "x": f"{0.04 * cols:.0f}",
            "y": f"{0.95 * rows:.0f}",
            "length": round(length, 1),
            "height": round(size / 3, 1),
            "text": f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m",
        },
        "north": {"x": f"{0.95 * cols:.0f}", "y": f"{0.07 * rows:.0f}", "size": round(size, 1)},
    }


def change_view(run: RunFolder, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The interactive panel of a detect folder, as the template's ``view`` (or a note why there is none)."""
    score_path = run.file("change_score.tif")
    if score_path is None or run.file("changes.gpkg") is None:
        return {"paragraphs": ["(change_score.tif or changes.gpkg is missing from the folder; no interactive panel.)"]}
    try:
        raster = read_source(score_path, colour=False)
    except ImageryError as exc:
        raise RunError(str(exc)) from exc
    score = raster.data[0]
    rows, cols = score.shape
    step = max(1, math.ceil(max(rows, cols) / PANEL_MAX_PX))
    small = score[::step, ::step]
    threshold = float(run.summary["method"]["threshold"])
    method = METHODS.get(run.summary["method"]["change"])
    unit = method.score_unit if method else "1"
    previews = {}
    for name in ("before", "after"):
        path = run.file(f"{name}.tif")
        previews[name] = _jpeg_uri(read_rgb_preview(path, small.shape)) if path else None
    shapes, labels = _shapes(records, raster.transform)
    dates = run.summary["dates"]
    view = {
        "rows": rows,
        "cols": cols,
        "gap": SIDE_GAP_PX * step,
        "stroke": f"{max(cols, rows) / 400:.1f}",
        "font": f"{max(cols, rows) / 60:.0f}",
        "before_uri": previews["before"],
        "after_uri": previews["after"],
        "score_uri": _jpeg_uri(score_rgb(small, threshold, np.isfinite(small))),
        "before_date": dates["before"] or "",
        "after_date": dates["after"] or "",
        "shapes": shapes,
        "labels": labels,
        "gradient": _gradient(),
        "ticks": [{"at": 100 * k / 3, "text": f"{k * threshold:.3g}"} for k in range(4)],
        "threshold": f"{threshold:.3g}",
        "unit": None if unit == "1" else unit,
        "note": "Polygons from changes.gpkg (dashed: low confidence) over the after image; switch to the before "
        "image, the change score, or both images side by side. Hover for details; click to reach the row."
        + ("" if previews["after"] else " (before.tif and after.tif are missing: the score alone is shown.)"),
        **_scale_and_north(rows, cols, float(run.summary["pixel_size_m"])),
    }
    return {"view": view}


# What the report says about how railcars were counted, per counting method (railcars.json "method").
RAILCAR_METHODS = {
    "individual-cars": (
        "individual-cars: each track line was straightened into a strip and slid onto the real track (by its rails "
        "where they show, else by the ballast bed's edges); every position along it was scored for a car standing "
        "there (distance from empty ballast, contrast across a car's side, rails covered or visible, shadows on "
        "the ground beside it) and for a boundary between cars (a coupler gap), and a semi-Markov dynamic "
        "programme cut the track into empty stretches and cars 11-26 m long. Each car is counted."
    ),
    "occupied-length": (
        "occupied-length: at pixels coarser than about 1 m a coupler gap is smaller than a pixel, so the occupied "
        "length of each track (from the same occupancy evidence, or from unmixing each profile across the tracks "
        "into ballast, cars and their shadows) was divided by the nominal car length plus a 1 m gap."
    ),
}


def railcar_method(images: list[dict[str, Any]]) -> list[str]:
    """Paragraphs saying how the railcars in ``images`` (railcars.json entries) were counted."""
    methods = sorted({t["method"] for im in images for t in im.get("tracks", [])})
    if not methods:
        return []
    sizes = sorted({im["pixel_size_m"] for im in images if im.get("pixel_size_m")})
    where = f" on images of {', '.join(f'{s:g}' for s in sizes)} m pixels" if sizes else ""
    out = [f"Railcars were counted along each AOI rail track{where}, by {' and '.join(methods)}."]
    out += [RAILCAR_METHODS[m] for m in methods if m in RAILCAR_METHODS]
    out.append(
        "The uncertainty is a one-sigma spread in cars from the count's own evidence; the counts are what the "
        "detector found, not verified truth."
    )
    return out
