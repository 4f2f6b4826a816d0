"""Pictures of a run: display stretches, colour maps, ``overlay.png`` and the timeline chart.

Arrays and geometries in, RGB arrays or PNG files out.  Bands follow the project's
convention: the first three bands of an image are red, green and blue; a single band is
shown in grey.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from shapely.geometry.base import BaseGeometry

# colours used for the same thing in every picture, the HTML report and the web map
COLOURS = {
    "new": "#e8412c",
    "removed": "#2c7be8",
    "changed": "#f5a623",
    "railcar": "#ffd400",
    "train": "#ffa000",
    "track": "#00e5ff",
}


def display_rgb(
    bands: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    percentiles: tuple[float, float] = (2.0, 98.0),
    limits: np.ndarray | None = None,
) -> np.ndarray:
    """An 8-bit RGB picture of an image, each band stretched between two percentiles.

    Parameters
    ----------
    bands : ndarray of shape (bands, rows, cols)
        Any dtype; the first three bands are shown as red, green and blue.
    valid : ndarray of bool, shape (rows, cols), optional
        Pixels to draw and to take the percentiles from; the rest are black.
    percentiles : (float, float)
        Lower and upper stretch points, per band.
    limits : ndarray of shape (3, 2), optional
        Fixed (low, high) per band instead of percentiles, so two dates can share a stretch.

    Returns
    -------
    ndarray of uint8, shape (rows, cols, 3)
    """
    rgb = np.asarray(bands[:3] if bands.shape[0] >= 3 else np.repeat(bands[:1], 3, axis=0), dtype=np.float32)
    if valid is None:
        valid = np.all(np.isfinite(rgb), axis=0)
    if limits is None:
        limits = stretch_limits(rgb, valid, percentiles)
    lo, hi = limits[:, 0, None, None], limits[:, 1, None, None]
    scaled = np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0)
    out = (np.nan_to_num(scaled) * 255).astype(np.uint8)
    out[:, ~valid] = 0
    return np.moveaxis(out, 0, -1)


def stretch_limits(bands: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
    """(low, high) display limits per band of the first three, from the valid pixels."""
    rgb = bands[:3] if bands.shape[0] >= 3 else np.repeat(bands[:1], 3, axis=0)
    if not valid.any():
        return np.tile([0.0, 1.0], (3, 1))
    # a strided sample keeps the percentiles cheap on large scenes
    sample = rgb[:, valid][:, :: max(1, int(valid.sum()) // 200_000)].astype(np.float32)
    return np.nanpercentile(sample, percentiles, axis=1).T


def score_rgb(score: np.ndarray, threshold: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Change score as an 8-bit RGB picture: dark below the threshold, hot above it.

    The colour scale runs from 0 to three times the threshold (``magma``), so the
    threshold itself sits a third of the way up; invalid pixels are black.
    """
    from matplotlib import colormaps

    s = np.nan_to_num(np.asarray(score, dtype=np.float32), nan=0.0)
    top = 3.0 * threshold if threshold > 0 else float(np.nanmax(s) or 1.0)
    rgb = (colormaps["magma"](np.clip(s / top, 0.0, 1.0))[..., :3] * 255).astype(np.uint8)
    if valid is not None:
        rgb[~valid] = 0
    return rgb


def to_pixels(geometry: BaseGeometry, transform: Affine) -> list[np.ndarray]:
    """Exterior rings (polygons) or coordinates (lines) of a geometry as (col, row) arrays."""
    inverse = ~transform
    parts = getattr(geometry, "geoms", [geometry])
    out = []
    for part in parts:
        coords = part.exterior.coords if part.geom_type == "Polygon" else part.coords
        xy = np.asarray(coords)[:, :2]
        cols, rows = inverse * (xy[:, 0], xy[:, 1])
        out.append(np.column_stack([cols, rows]))
    return out


@dataclass
class Shape:
    """A geometry to draw on a panel: polygons outlined, lines stroked, with an optional label."""

    geometry: BaseGeometry
    colour: str
    label: str | None = None
    width: float = 1.5
    dashed: bool = False


@dataclass
class Panel:
    """One picture of an overlay: an RGB array on a grid, a title and what to draw over it."""

    title: str
    rgb: np.ndarray
    transform: Affine
    shapes: list[Shape] = field(default_factory=list)
    colour_scale: ColourScale | None = None


@dataclass(frozen=True)
class ColourScale:
    """What a panel's colours mean: a matplotlib colour map from ``low`` to ``high``, with a label."""

    low: float
    high: float
    label: str
    cmap: str = "magma"


def nice_length(span: float) -> float:
    """A round length (1, 2 or 5 times a power of ten) of about a fifth of ``span``."""
    if span <= 0:
        return 0.0
    target = span / 5.0
    power = 10.0 ** np.floor(np.log10(target))
    return float(max(m * power for m in (1.0, 2.0, 5.0) if m * power <= target))


def _scale_bar_and_north(ax: Any, panel: Panel) -> None:
    """A scale bar (metres, from the grid's pixel size) and a grid-north arrow in the panel's corners."""
    rows, cols = panel.rgb.shape[:2]
    pixel_m = float(np.hypot(panel.transform.a, panel.transform.d))
    metres = nice_length(cols * pixel_m)
    if metres <= 0:
        return
    bar_px = metres / pixel_m
    x0, y0 = 0.04 * cols, 0.95 * rows
    box = {"boxstyle": "round,pad=0.2", "fc": "black", "ec": "none", "alpha": 0.55}
    ax.plot([x0, x0 + bar_px], [y0, y0], color="white", linewidth=3, solid_capstyle="butt")
    ax.plot([x0, x0 + bar_px], [y0, y0], color="black", linewidth=1, solid_capstyle="butt")
    text = f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"
    ax.annotate(
        text,
        (x0 + bar_px / 2, y0),
        xytext=(0, 4),
        textcoords="offset points",
        ha="center",
        va="bottom",
        color="white",
        fontsize=7,
        bbox=box,
    )
    ax.annotate(
        "N",
        xy=(0.94 * cols, 0.05 * rows),
        xytext=(0.94 * cols, 0.16 * rows),
        ha="center",
        va="center",
        color="white",
        fontsize=8,
        fontweight="bold",
        bbox=box,
        arrowprops={"arrowstyle": "-|>", "color": "white", "lw": 1.5},
    )


def _colour_bar(ax: Any, scale: ColourScale) -> None:
    """A horizontal colour bar inside a panel's lower right corner (it takes no room from the panels)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mappable = ScalarMappable(Normalize(scale.low, scale.high), colormaps[scale.cmap])
    cax = ax.inset_axes((0.5, 0.1, 0.45, 0.035))
    bar = ax.figure.colorbar(mappable, cax=cax, orientation="horizontal")
    bar.set_label(scale.label, fontsize=6, color="white")
    bar.ax.tick_params(labelsize=6, colors="white")
    bar.outline.set_edgecolor("white")


def render_overlay(
    panels: Iterable[Panel],
    path: Path | None = None,
    *,
    panel_inches: float = 5.0,
    dpi: int = 110,
    caption: str | None = None,
    legend: bool = False,
) -> bytes:
    """Draw panels side by side with their shapes and write a PNG.

    Parameters
    ----------
    panels : iterable of Panel
    path : Path, optional
        Where to write the PNG; the bytes are returned either way.
    panel_inches : float
        Width of one panel in inches; heights follow the images' aspect ratio.
    caption : str, optional
        A line of text under the panels (a legend in words).
    legend : bool
        Draw a scale bar and a grid-north arrow on each panel, and a colour bar under each
        panel with a :class:`ColourScale`.

    Returns
    -------
    bytes
        The PNG.
    """
    # a bare Figure, not pyplot: no global backend switch, nothing left open in a notebook
    from matplotlib.figure import Figure

    panels = list(panels)
    rows, cols = panels[0].rgb.shape[:2]
    aspect = rows / cols
    if aspect < 0.6:  # wide sites (a rail yard) read better stacked, each panel full width
        width = 2 * panel_inches
        fig = Figure(figsize=(width, (width * aspect + 0.4) * len(panels) + 0.5), dpi=dpi)
        axes = fig.subplots(len(panels), 1, squeeze=False)
        axes = axes[:, 0]
    else:
        fig = Figure(figsize=(panel_inches * len(panels), panel_inches * aspect + 0.9), dpi=dpi)
        axes = fig.subplots(1, len(panels), squeeze=False)
        axes = axes[0]
    for ax, panel in zip(axes, panels):
        _draw_panel(ax, panel)
        if legend:
            _scale_bar_and_north(ax, panel)
            if panel.colour_scale is not None:
                _colour_bar(ax, panel.colour_scale)
    if caption:
        fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.04 if caption else 0, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    png = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(png)
    return png


def _draw_panel(ax: Any, panel: Panel) -> None:
    """One panel: its picture, shapes outlined (dashed where asked) and labelled."""
    from matplotlib.patches import Polygon as PolygonPatch

    ax.imshow(panel.rgb, interpolation="nearest")
    ax.set_title(panel.title, fontsize=10)
    ax.set_axis_off()
    for shp in panel.shapes:
        style = "--" if shp.dashed else "-"
        for ring in to_pixels(shp.geometry, panel.transform):
            if shp.geometry.geom_type.endswith("Polygon"):
                ax.add_patch(
                    PolygonPatch(
                        ring - 0.5, closed=True, fill=False, edgecolor=shp.colour, linewidth=shp.width, linestyle=style
                    )
                )
            else:
                ax.plot(ring[:, 0] - 0.5, ring[:, 1] - 0.5, color=shp.colour, linewidth=shp.width, alpha=0.8)
        if shp.label:
            c = shp.geometry.representative_point()
            col, row = ~panel.transform * (c.x, c.y)
            ax.annotate(
                shp.label,
                (col, row),
                color="white",
                fontsize=7,
                ha="center",
                va="center",
                bbox={"boxstyle": "round,pad=0.15", "fc": shp.colour, "ec": "none", "alpha": 0.85},
            )
    ax.set_xlim(-0.5, panel.rgb.shape[1] - 0.5)
    ax.set_ylim(panel.rgb.shape[0] - 0.5, -0.5)


def jpeg_bytes(rgb: np.ndarray, quality: int = 85) -> bytes:
    """Encode an (rows, cols, 3) uint8 array as JPEG (for noisy pictures PNG cannot shrink)."""
    import matplotlib.image

    buf = io.BytesIO()
    matplotlib.image.imsave(buf, rgb, format="jpeg", pil_kwargs={"quality": quality})
    return buf.getvalue()


def webp_bytes(rgba: np.ndarray, quality: int = 85) -> bytes:
    """Encode an (rows, cols, 3 or 4) uint8 array as lossy WebP, keeping transparency.

    A web-map overlay of real imagery is a few MB as PNG and tens of kB as WebP.
    """
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba)).save(buf, format="WEBP", quality=quality)
    return buf.getvalue()


def timeline_chart(rows: list[dict[str, Any]], track_ids: list[str], *, title: str):
    """The timeline chart: railcars per track (stacked) with the total's uncertainty, and structure area.

    Parameters
    ----------
    rows : list of dict
        One per date, as in ``timeline.csv``: ``date``, ``railcars_total``,
        ``railcars_uncertainty``, ``track:<id>`` per track and, where structures were
        compared, ``new_area_m2`` and ``removed_area_m2``.
    track_ids : list of str
        The tracks, in the order their bars stack.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        Not made through pyplot, so it changes no backend.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    dates = [r["date"] for r in rows]
    x = list(range(len(dates)))
    fig = Figure(figsize=(8, 4.5), dpi=120)
    ax = fig.subplots()
    bottom = [0] * len(dates)
    cmap = colormaps["tab10"]
    for k, t in enumerate(track_ids):
        vals = [r[f"track:{t}"] or 0 for r in rows]  # no bar where a track is outside the image
        if any(vals):
            ax.bar(x, vals, bottom=bottom, color=cmap(k % 10), label=t, width=0.6)
            bottom = [b + v for b, v in zip(bottom, vals)]
    # dates whose railcars were not counted (pixels too coarse) have no point on the line
    counted = [(xi, r) for xi, r in zip(x, rows) if r["railcars_total"] is not None]
    if counted:
        ax.errorbar(
            [xi for xi, _ in counted],
            [r["railcars_total"] for _, r in counted],
            yerr=[r["railcars_uncertainty"] for _, r in counted],
            fmt="o-",
            color="black",
            label="total ± 1σ",
            capsize=4,
        )
    # each total above its error bar, on a white box, clear of the line through the totals
    for xi, row in counted:
        ax.annotate(
            str(row["railcars_total"]),
            (xi, row["railcars_total"] + row["railcars_uncertainty"]),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            va="bottom",
            fontsize=9,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.9},
        )
    top = max((r["railcars_total"] + r["railcars_uncertainty"] for _, r in counted), default=0)
    ax.set_ylim(0, top * 1.2 + 1)
    ax.set_xticks(x, dates)
    ax.set_ylabel("railcars")
    ax.set_title(title, fontsize=10)
    # a structure-area axis only where some structure changed (an axis of 0-0.05 m² says nothing)
    if any(r.get("new_area_m2") or r.get("removed_area_m2") or r.get("changed_area_m2") for r in rows):
        ax2 = ax.twinx()
        ax2.plot(x, [r["new_area_m2"] for r in rows], "s--", color="tab:red", label="new structures (m²)")
        ax2.plot(x, [r["removed_area_m2"] for r in rows], "v--", color="tab:purple", label="removed structures (m²)")
        if any(r.get("changed_area_m2") for r in rows):  # pixels too coarse for structures: any change
            ax2.plot(x, [r["changed_area_m2"] for r in rows], "d--", color="tab:orange", label="changed area (m²)")
        ax2.set_ylabel(f"structure area vs {dates[0]} (m²)")
        ax2.set_ylim(bottom=0)
        handles, labels = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(handles + h2, labels + l2, fontsize=8, loc="upper left")
    else:
        if "new_area_m2" in rows[0]:
            ax.plot([], [], " ", label=f"no structure changed since {dates[0]}")
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
