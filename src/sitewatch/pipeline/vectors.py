"""The change layers as an analyst receives them: the fields of each feature, outlines and QGIS styles.

Every change feature says what it is (``change``, ``confidence``, measures), where
(``lat``, ``lon``, ``mgrs`` of its centroid), when (``site_id``, ``date_before``,
``date_after``) and which it is (``id`` in this run's pictures and tables, ``change_id``
stable across runs).  ``changes.gpkg`` also holds the regularised outlines (the minimum
rotated rectangle of each object, layer ``changes_rectangles``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import VectorStyle, add_gpkg_layer, clean_outline, place_of, stable_id, write_vectors
from ..report.figures import COLOURS
from ..structures import CHANGE_KINDS

if TYPE_CHECKING:  # pragma: no cover
    from .detect import DetectResult

CHANGE_LAYER = "changes"
RECTANGLE_LAYER = "changes_rectangles"
# vector files of a detect run, beside change_score.tif, overlay.png and summary.json
CHANGE_VECTOR_FILES = ["changes.geojson", "changes.qml", "changes.gpkg", "changes.parquet"]

# QGIS styles: red new, blue removed, dashed where the detector is not confident; labelled by id
CHANGE_STYLE = VectorStyle(
    "sitewatch changes",
    field="change",
    colours={kind: COLOURS[kind] for kind in CHANGE_KINDS},
    label="id",
    dashed_where=("confidence", "low"),
)
RECTANGLE_STYLE = VectorStyle(
    "sitewatch regularised outlines",
    field="change",
    colours={kind: COLOURS[kind] for kind in CHANGE_KINDS},
    label="id",
    fill_alpha=0,
)
RAILCAR_STYLE = VectorStyle(
    "sitewatch railcars",
    field="kind",
    colours={"railcar": COLOURS["railcar"], "train": COLOURS["train"]},
    label="index",
    fill_alpha=80,
)
UNKNOWN_PLACE = {"lat": None, "lon": None, "mgrs": None}


def change_records(result: DetectResult) -> list[dict[str, Any]]:
    """One dict per change object, its geometry (the cleaned outline) in the image CRS.

    ``id`` numbers the objects as the run's pictures and tables do; ``change_id`` is derived
    from the site, the dates, the kind of change and the centroid, so it does not depend on
    the run.  Images without a map position (``--gsd`` pictures) get no ``lat``, ``lon`` or
    ``mgrs``.
    """
    summary = result.summary
    dates = (summary["dates"]["before"], summary["dates"]["after"])
    located = "position" not in summary
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, obj in enumerate(result.objects):
        place = place_of(obj.geometry, result.grid.crs) if located else dict(UNKNOWN_PLACE)
        centre = (place["lat"], place["lon"]) if located else (obj.geometry.centroid.y, obj.geometry.centroid.x)
        cid = stable_id(summary.get("site_id"), dates, obj.change, *centre)
        seen[cid] = seen.get(cid, 0) + 1
        records.append(
            {
                "id": i + 1,
                "change_id": cid if seen[cid] == 1 else f"{cid}-{seen[cid]}",
                **obj.properties(),
                "site_id": summary.get("site_id"),
                "date_before": dates[0],
                "date_after": dates[1],
                **place,
                "geometry": clean_outline(obj.geometry, result.grid.pixel_size_m),
            }
        )
    return records


def rectangle_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The regularised building outline of each change record: its minimum rotated rectangle."""
    keep = ("id", "change_id", "change", "confidence", "length_m", "width_m", "orientation_deg")
    return [
        {**{k: r[k] for k in keep}, "geometry": r["geometry"].minimum_rotated_rectangle}
        for r in records
        if r["geometry"].minimum_rotated_rectangle.geom_type == "Polygon"
    ]


def write_change_vectors(result: DetectResult, stage: Path) -> list[dict[str, Any]]:
    """Write :data:`CHANGE_VECTOR_FILES` into ``stage``; returns the records written."""
    records = change_records(result)
    crs = result.grid.crs
    write_vectors(
        records,
        crs,
        stage / "changes.geojson",
        stage / "changes.gpkg",
        layer=CHANGE_LAYER,
        parquet_path=stage / "changes.parquet",
        style=CHANGE_STYLE,
    )
    add_gpkg_layer(stage / "changes.gpkg", rectangle_records(records), crs, RECTANGLE_LAYER, RECTANGLE_STYLE)
    return records
