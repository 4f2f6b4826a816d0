"""``evaluate``: a detector (the default one unless asked) on a labelled set of image pairs, scored pixel by pixel.

A set follows the LEVIR-CD layout: ``A/`` (before), ``B/`` (after) and ``label/`` (255 =
changed), plain pictures of the same name without georeference.  Each pair runs through
exactly the path ``detect`` uses (:func:`~sitewatch.pipeline.detect.detect_on_grid`) with
its defaults; nothing is tuned per set or per image.  Scores are pooled over every pixel of
the set.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np
from rasterio import features

from ..errors import ImageryError
from ..io import (
    RasterWindow,
    SourceRaster,
    check_outputs_free,
    picture_channels,
    read_picture,
    staged_outputs,
    write_mask_png,
)
from ..structures import DetectSettings, method_for_pixel_size
from ..structures.scores import cva_otsu_baseline
from ._common import Progress
from .detect import detect_on_grid
from .scoring import Evaluation, score_pair

log = logging.getLogger(__name__)

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
# ``evaluate``'s name for the classical baseline (not a detect method): histogram matching,
# change-vector magnitude, Otsu's threshold
BASELINE = "cva-otsu"


def list_pairs(set_dir: str | os.PathLike[str]) -> list[tuple[Path, Path, Path]]:
    """``(before, after, label)`` paths of every picture in ``A/`` with a namesake in ``B/`` and ``label/``.

    Raises
    ------
    ImageryError
        If a folder is missing, a picture lacks its partner or label, or there is none.
    """
    root = Path(set_dir)
    for sub in ("A", "B", "label"):
        if not (root / sub).is_dir():
            raise ImageryError(
                f"{root}: no {sub}/ folder; a set needs A/ (before), B/ (after) and label/ (255 = change)"
            )
    names = sorted(p.name for p in (root / "A").iterdir() if p.suffix.lower() in PICTURE_SUFFIXES)
    if not names:
        raise ImageryError(f"{root / 'A'}: holds no pictures ({', '.join(PICTURE_SUFFIXES)})")
    pairs = []
    for n in names:
        for sub in ("B", "label"):
            if not (root / sub / n).is_file():
                raise ImageryError(f"{root / 'A' / n}: has no partner {root / sub / n}")
        pairs.append((root / "A" / n, root / "B" / n, root / "label" / n))
    return pairs


def flagged_mask(
    before: RasterWindow, after: RasterWindow, *, method: str = "building", normalisation: str = "regression"
) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None]:
    """A detector's change mask and score map for a pair on one grid, and the shift it found.

    A pair that co-registration refuses is scored unshifted, and its shift is ``None``
    (``detect`` would stop there with an error). ``method`` :data:`BASELINE` runs the
    classical baseline on the pair as it is (no co-registration: its shift is ``None``).
    """
    if method == BASELINE:
        score, mask = cva_otsu_baseline(before.data, after.data, valid=before.valid & after.valid)
        return mask, score, None
    source = SourceRaster(
        after.path, np.where(after.valid, after.data, np.nan), after.grid.transform, after.grid.crs, None
    )
    # a labelled pair shows one place: where co-registration refuses (big change, floods),
    # score the pair unshifted rather than drop it, and count it as refused
    found = detect_on_grid(
        before,
        source,
        np.ones(before.grid.shape, bool),
        settings=DetectSettings(method=method),
        assume_registered=True,
        normalisation=normalisation,
    )
    objects = found.changes.objects
    mask = np.zeros(before.grid.shape, bool)
    if objects:
        mask = features.rasterize(
            ((o.geometry, 1) for o in objects),
            out_shape=before.grid.shape,
            transform=before.grid.transform,
            fill=0,
            dtype="uint8",
        ).astype(bool)
    shift = None if found.shift.model == "none" else (found.shift.dx, found.shift.dy)
    return mask, found.changes.score, shift


def _in_band_order(window: RasterWindow, bands: tuple[int, ...] | None) -> RasterWindow:
    return dataclasses.replace(window, data=picture_channels(window.data, bands, Path(window.path)))


def evaluate(
    set_dir: str | os.PathLike[str],
    *,
    pixel_size_m: float,
    masks_out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    method: str = "building",
    normalisation: str = "regression",
    bands: tuple[int, ...] | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Run a detector (by default ``detect``'s) on every pair of a labelled set and pool its scores.

    Parameters
    ----------
    set_dir : path-like
        A folder with ``A/``, ``B/`` and ``label/`` (LEVIR-CD layout).
    pixel_size_m : float
        Metres per pixel of the set (LEVIR-CD: about 0.5), for areas in m².
    masks_out : path-like, optional
        Where to write each binary change mask (255 = change) as a PNG named like its input;
        all are written at the end, or none.
    method, normalisation : str
        As for ``detect`` (its defaults unless asked otherwise): a key of
        :data:`sitewatch.structures.METHODS` (or :data:`BASELINE`) and of
        :data:`sitewatch.radiometry.NORMALISATION_METHODS`.
    bands : tuple of int, optional
        The pictures' red, green and blue channels (``--bands``, :func:`~sitewatch.io.picture_channels`):
        ``(3, 2, 1)`` for a set stored blue-green-red.
    progress : callable, optional
        Called with a message per pair.
    """
    pairs = list_pairs(set_dir)
    if masks_out is not None:
        check_outputs_free([Path(masks_out) / (a.stem + ".png") for a, _, _ in pairs], overwrite)
    ran = method if method == BASELINE else method_for_pixel_size(method, pixel_size_m)[0]
    result = Evaluation(Path(set_dir), pixel_size_m, method, method_ran=ran)
    masks: dict[str, np.ndarray] = {}
    for i, (a, b, lab) in enumerate(pairs):
        if progress:
            progress(f"{a.name} ({i + 1}/{len(pairs)})")
        t = time.perf_counter()
        before, after = (_in_band_order(read_picture(p, pixel_size_m), bands) for p in (a, b))
        label = read_picture(lab, pixel_size_m, mode="L").data[0] > 127
        if before.data.shape != after.data.shape or label.shape != before.data.shape[1:]:
            raise ImageryError(
                f"{a}: before {before.data.shape[1:]}, after {after.data.shape[1:]} and label "
                f"{label.shape} differ in size"
            )
        flagged, score_map, shift = flagged_mask(before, after, method=method, normalisation=normalisation)
        score = score_pair(a.name, flagged, label, shift, pixel_size_m=pixel_size_m)
        result.score_samples.append((score_map.astype(np.float32).ravel(), label.ravel()))
        score.seconds = time.perf_counter() - t
        result.pairs.append(score)
        if masks_out is not None:
            masks[Path(a.name).stem + ".png"] = flagged
        log.info(
            "%s: %d flagged, %d labelled, %d of %d buildings found, %.1f s",
            a.name,
            score.tp + score.fp,
            score.tp + score.fn,
            score.objects_found,
            score.objects,
            score.seconds,
        )
    if masks_out is not None:
        with staged_outputs(masks_out, list(masks), overwrite=overwrite) as stage:
            for name, mask in masks.items():
                write_mask_png(stage / name, mask)
    return result
