"""The ``sitewatch`` command line: parse, call one library function, print, exit.

Errors that sitewatch raises on purpose become a one-line ``error: ...`` on stderr and
exit code 2; success is exit 0.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import SitewatchError


def complete_site_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of a site id (from SITEWATCH_AOI_DIR, ./aoi or the source tree), or of a file path."""
    from click.shell_completion import CompletionItem

    if "/" in incomplete or incomplete.startswith("."):
        return [CompletionItem(incomplete, type="file")]
    try:
        from .aoi import list_site_files

        ids = [p.stem for p in list_site_files()]
    except SitewatchError:  # no AOI folder: nothing to offer
        ids = []
    return [CompletionItem(i) for i in ids if i.startswith(incomplete)] or [CompletionItem(incomplete, type="file")]


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def _progress(quiet: bool) -> Callable[[str], None] | None:
    """Stage messages with the time elapsed, on stderr when it is a terminal and not ``-q``.

    Piped or redirected runs stay quiet; ``-v`` logs what each stage did instead.
    """
    if quiet or not _stderr_is_tty():
        return None
    start = time.monotonic()
    return lambda msg: click.echo(f"[{time.monotonic() - start:6.1f} s] {msg}", err=True)


def handle_errors(func: Callable) -> Callable:
    """Turn SitewatchError into ``error: ...`` and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SitewatchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


class FiniteFloatRange(click.FloatRange):
    """A ``click.FloatRange`` that also refuses ``nan`` and infinities (which every range check lets through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class BandsType(click.ParamType):
    """``--bands R,G,B[,NIR]``: 1-based band numbers, red first."""

    name = "R,G,B[,NIR]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            bands = tuple(int(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r}: give band numbers such as 3,2,1 or 3,2,1,4 (1-based, red first)", param, ctx)
        if len(bands) not in (3, 4) or len(set(bands)) != len(bands) or min(bands) < 1:
            self.fail(f"{value!r}: three or four different band numbers from 1 up (R,G,B or R,G,B,NIR)", param, ctx)
        return bands


class ImageType(click.ParamType):
    """An image: a local path, or a URL or GDAL ``/vsi…`` path handed to GDAL exactly as written.

    ``click.Path`` would turn ``http://host/x.tif`` into ``http:/host/x.tif`` (``pathlib`` folds ``//``).
    """

    name = "IMAGE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from .io.sources import image_path

        return image_path(value)


IMAGE = ImageType()


bands_option = click.option(
    "--bands",
    type=BandsType(),
    default=None,
    help="Band numbers (1-based) of red, green, blue[, near-infrared] in every image, e.g. 3,2,1,4 for "
    "blue-green-red-NIR. Default: read from the files' colour interpretation and band names, else 1,2,3[,4].",
)
picture_gsd_option = click.option(
    "--gsd",
    "picture_gsd",
    type=FiniteFloatRange(0.01, 100.0),
    default=None,
    help="For pictures without georeference (PNG/JPEG screenshots): metres per pixel. Outputs then have no map "
    "position (said in the output).",
)
image_date_option = click.option(
    "--date",
    "image_dates",
    multiple=True,
    metavar="IMAGE=YYYY-MM-DD",
    help="An image's acquisition date (by its path or file name), over what its file says; repeat per image.",
)


def _dates_by_image(assignments: tuple[str, ...]) -> dict[str, str]:
    """``("a.tif=2023-01-02", ...)`` as ``{"a.tif": "2023-01-02"}``; a usage error when one has no ``=``."""
    out = {}
    for text in assignments:
        name, sep, day = text.rpartition("=")
        if not sep or not name:
            raise click.BadParameter(f"{text!r}: give IMAGE=YYYY-MM-DD, e.g. scene.tif=2023-06-15", param_hint="--date")
        out[name] = day
    return out


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace existing outputs.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sitewatch")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Watch named facilities in satellite imagery."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    # force: a second invocation in one process (tests, notebooks) logs to the current stderr
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    warnings.showwarning = _one_line_warning
    ctx.obj = {"quiet": quiet}


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001 (the hook's signature)
    """A library's warning (rasterio's NotGeoreferencedWarning, ...) as one line on stderr, without source lines."""
    click.echo(f"warning: {category.__name__.removesuffix('Warning') or 'warning'}: {message}", err=True)


# ------------------------------------------------------------------ aoi


@main.group()
def aoi() -> None:
    """List, show and validate areas of interest."""


@aoi.command("list")
@click.option("--aoi-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder of site GeoJSON files.")
@json_option
@handle_errors
def aoi_list(aoi_dir: Path | None, as_json: bool) -> None:
    """List the known sites."""
    from .aoi import list_site_files, load_aoi

    sites = [load_aoi(p).summary() for p in list_site_files(aoi_dir)]
    if as_json:
        _echo_json(sites)
        return
    for s in sites:
        click.echo(f"{s['site_id']:30s} {s['confidence']:6s} {s['footprint_km2']:6.1f} km²  {s['name']}")


@aoi.command("show")
@click.argument("site", shell_complete=complete_site_ids)
@click.option("--aoi-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder of site GeoJSON files.")
@json_option
@handle_errors
def aoi_show(site: str, aoi_dir: Path | None, as_json: bool) -> None:
    """Show one site (by id or file): metadata, features and sources."""
    from .aoi import resolve_site

    s = resolve_site(site, aoi_dir)
    info = s.summary()
    info["feature_list"] = [
        {
            "role": f.role,
            "name": f.name,
            "basis": f.basis,
            "geometry": f.geometry.geom_type,
            **({"track_id": f.track_id} if f.track_id else {}),
        }
        for f in s.features
    ]
    if as_json:
        _echo_json(info)
        return
    click.echo(f"{s.name}  [{s.site_id}]")
    click.echo(f"  aliases:    {', '.join(s.aliases)}")
    click.echo(f"  confidence: {s.confidence}")
    click.echo(
        f"  centroid:   lon {info['centroid_lonlat'][0]}, lat {info['centroid_lonlat'][1]}  "
        f"({info['footprint_km2']} km²)"
    )
    click.echo("  features:")
    for f in info["feature_list"]:
        extra = f"  track_id={f['track_id']}" if "track_id" in f else ""
        click.echo(f"    {f['role']:20s} {f['basis']:8s} {f['geometry']:10s} {f['name']}{extra}")
    click.echo("  sources:")
    for src in s.sources:
        click.echo(f"    [{src['id']}] {src['url']}\n        {src['says']}")


@aoi.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
def aoi_validate(files: tuple[Path, ...], as_json: bool) -> None:
    """Check AOI files against the schema; exit 0 only if all are valid (2 if any is not)."""
    from .aoi import aoi_problems

    report = {str(f): aoi_problems(f) for f in files}
    if as_json:
        _echo_json([{"file": f, "valid": not p, "problems": p} for f, p in report.items()])
    else:
        for f, problems in report.items():
            if problems:
                for p in problems:
                    click.echo(f"error: {f}: {p}", err=True)
            else:
                click.echo(f"{f}: ok")
    sys.exit(2 if any(report.values()) else 0)


# ------------------------------------------------------------------ synth


@main.command()
@click.argument("site", shell_complete=complete_site_ids)
@click.option(
    "--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@click.option(
    "--gsd",
    "pixel_size_m",
    type=FiniteFloatRange(0.1, 10.0),
    default=1.0,
    show_default=True,
    help="Pixel size in metres (ground sample distance).",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=0,
    show_default=True,
    help="Random seed; same seed, same images.",
)
@overwrite_option
@json_option
@click.pass_context
@handle_errors
def synth(
    ctx: click.Context, site: str, out_dir: Path, pixel_size_m: float, seed: int, overwrite: bool, as_json: bool
) -> None:
    """Write synthetic dated GeoTIFFs of SITE and truth.geojson listing every planted change."""
    from .pipeline import synthesize

    files = synthesize(
        site, out_dir, pixel_size_m=pixel_size_m, seed=seed, overwrite=overwrite, progress=_progress(ctx.obj["quiet"])
    )
    if as_json:
        _echo_json({"files": [str(f) for f in files]})
    elif not ctx.obj["quiet"]:
        for f in files:
            click.echo(str(f))


# ------------------------------------------------------------------ coreg


@main.command("coreg")
@click.argument("reference", type=IMAGE)
@click.argument("moving", type=IMAGE)
@click.option(
    "--out",
    "-o",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write MOVING with the correction in its geotransform (pixels unchanged).",
)
@click.option("--windows", "show_windows", is_flag=True, help="With --json, list every window's shift.")
@bands_option
@picture_gsd_option
@overwrite_option
@json_option
@click.pass_context
@handle_errors
def coreg_cmd(
    ctx: click.Context,
    reference: Path,
    moving: Path,
    out_file: Path | None,
    show_windows: bool,
    bands: tuple[int, ...] | None,
    picture_gsd: float | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Measure the shift of MOVING's content relative to REFERENCE (a feature at (col, row) in
    REFERENCE appears at (col + dx, row + dy) in MOVING)."""
    from .pipeline import coregister

    result = coregister(reference, moving, out=out_file, overwrite=overwrite, bands=bands, pixel_size_m=picture_gsd)
    if as_json:
        _echo_json(result.to_dict(windows=show_windows))
        return
    if ctx.obj["quiet"]:
        return
    if result.position:
        click.echo(f"note: {result.position}")
    s = result.shift
    click.echo(
        f"{moving.name} relative to {reference.name}: {s.dx:+.3f}, {s.dy:+.3f} px "
        f"({s.shift_m[0]:+.2f}, {s.shift_m[1]:+.2f} m), {s.model}"
    )
    east, north = result.grid.map_offset(s.dx, s.dy)
    click.echo(
        f"  on the map: MOVING shows each feature {abs(east):.2f} m {'east' if east >= 0 else 'west'} and "
        f"{abs(north):.2f} m {'north' if north >= 0 else 'south'} of where REFERENCE shows it"
    )
    click.echo(
        f"  windows: {s.windows_valid} agree, {s.windows_rejected} rejected; confidence {s.confidence:.2f}; "
        f"residual {s.residual_px:.2f} px; gradient correlation {s.correlation_unaligned:.2f} -> {s.correlation:.2f}"
    )
    if out_file is not None:
        click.echo(f"  corrected: {out_file}")


# ------------------------------------------------------------------ detect


class RegistryChoice(click.Choice):
    """The keys of a registry as a ``click.Choice``, read each time click asks.

    ``load`` returns the registry; it is called only when the option is used or its help
    shown (the registries' modules load the scientific stack), and a name registered after
    the CLI was imported is offered too.
    """

    def __init__(self, load: Callable[[], Mapping[str, Any]]) -> None:
        self._load = load
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._load())

    @choices.setter
    def choices(self, _: Any) -> None:  # click.Choice.__init__ assigns the choices; they are read live
        pass


def _change_methods() -> Mapping[str, Any]:
    from .structures import METHODS

    return METHODS


def _normalisations() -> Mapping[str, Any]:
    from .radiometry import NORMALISATION_METHODS

    return NORMALISATION_METHODS


normalisation_option = click.option(
    "--normalisation",
    type=RegistryChoice(_normalisations),
    default="regression",
    show_default=True,
    help="Radiometric normalisation of AFTER to BEFORE (irmad: orthogonal regression on IR-MAD "
    "no-change pixels; none: as they are).",
)


class MethodOption(click.Option):
    """``--method``, its help written from the registry when shown: each method's summary and pixel sizes."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = "How structures are found. " + "; ".join(
            f"{name}, {m.summary} (measured at {m.pixel_size_range_m[0]:g}-{m.pixel_size_range_m[1]:g} m pixels)"
            for name, m in _change_methods().items()
        )
        return super().get_help_record(ctx)


method_option = click.option(
    "--method", cls=MethodOption, type=RegistryChoice(_change_methods), default="building", show_default=True
)


@main.command()
@click.argument("before", type=IMAGE)
@click.argument("after", type=IMAGE)
@click.option("--aoi", "aoi_ref", required=True, help="AOI GeoJSON file or site id.", shell_complete=complete_site_ids)
@click.option(
    "--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@method_option
@normalisation_option
@click.option(
    "--min-area",
    "min_area_m2",
    type=FiniteFloatRange(min=0),
    default=40.0,
    show_default=True,
    help="Smallest structure reported, m².",
)
@click.option(
    "--mask",
    "masks",
    multiple=True,
    metavar="FILE[:V1,V2,...]",
    help="A raster of unusable pixels (cloud, haze), any grid: non-zero in band 1, or band 1 holding one of the "
    "values given (Sentinel-2 SCL: FILE:3,8,9,10), or not clear in a Planet UDM2. Masked pixels are neither "
    "changed nor counted. May be repeated (one per image).",
)
@picture_gsd_option
@click.option("--before-date", metavar="YYYY-MM-DD", help="BEFORE's acquisition date, over what its file says.")
@click.option("--after-date", metavar="YYYY-MM-DD", help="AFTER's acquisition date, over what its file says.")
@click.option(
    "--assume-registered",
    is_flag=True,
    help="If co-registration finds no reliable shift, go on unshifted instead of stopping.",
)
@bands_option
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Blocks run side by side on this many threads [default: all cores].",
)
@click.option(
    "--block-size",
    "block_px",
    type=click.IntRange(min=0),
    default=1024,
    show_default=True,
    help="A window larger than this (pixels) is run block by block in bounded memory; 0 runs it whole.",
)
@overwrite_option
@json_option
@click.pass_context
@handle_errors
# a click command takes one parameter per option (tests/test_function_size.py allows it)
def detect(
    ctx: click.Context,
    before: Path,
    after: Path,
    aoi_ref: str,
    out_dir: Path,
    method: str,
    normalisation: str,
    min_area_m2: float,
    masks: tuple[str, ...],
    picture_gsd: float | None,
    before_date: str | None,
    after_date: str | None,
    assume_registered: bool,
    bands: tuple[int, ...] | None,
    workers: int | None,
    block_px: int,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Find new and removed structures between BEFORE and AFTER inside an AOI."""
    from .pipeline import DETECT_OUTPUTS
    from .pipeline import detect as run_detect
    from .pipeline.detect import Tiling

    bar = _BlockBar(ctx.obj["quiet"])
    try:
        result = run_detect(
            before,
            after,
            aoi_ref,
            out_dir=out_dir,
            overwrite=overwrite,
            method=method,
            normalisation=normalisation,
            min_area_m2=min_area_m2,
            assume_registered=assume_registered,
            bands=bands,
            dates=(before_date, after_date),
            masks=masks,
            pixel_size_m=picture_gsd,
            progress=_progress(ctx.obj["quiet"]),
            tiling=Tiling(block_px or None, workers, bar.update),
        )
    finally:
        bar.close()
    s = result.summary
    if as_json:
        _echo_json(
            {
                **s,
                "out_dir": str(out_dir),
                "changes": [{"id": i + 1, **o.properties()} for i, o in enumerate(result.objects)],
            }
        )
        return
    if ctx.obj["quiet"]:
        return
    shift = s["shift"]
    click.echo(
        f"{s['site_id']}: {s['dates']['before']} -> {s['dates']['after']}, {s['pixel_size_m']:.2f} m pixels, "
        f"shift {shift['shift_px'][0]:+.2f}, {shift['shift_px'][1]:+.2f} px"
    )
    method = s["method"]
    if method.get("note"):
        click.echo(f"  note: {method['note']}")
    if s.get("position"):
        click.echo(f"  note: {s['position']}")
    kinds = [k for k in ("new", "removed", "changed") if k != "changed" or s["counts"].get(k)]
    click.echo("  " + ", ".join(f"{s['counts'][k]} {k} ({s['area_m2'][k]:.0f} m²)" for k in kinds))
    if not result.objects:
        click.echo(
            f"  nothing above the {method['change']!r} method's threshold ({method['threshold']:g}) "
            f"of at least {method['min_area_m2']:g} m²; the score map is in change_score.tif"
        )
    for i, o in enumerate(result.objects[:10]):
        rel = f", {o.relative_size:.0%} of {o.relative_to}" if o.relative_size is not None else ""
        click.echo(
            f"  #{i + 1:<3d} {o.change:8s} {o.area_m2:8.0f} m²  {o.length_m:5.0f} x {o.width_m:<4.0f} m  "
            f"score {o.score:4.2f}{rel}" + (" (low confidence)" if o.confidence == "low" else "")
        )
    if len(result.objects) > 10:
        click.echo(f"  … {len(result.objects) - 10} more in changes.geojson")
    click.echo(f"  outputs: {out_dir}/ ({', '.join(DETECT_OUTPUTS)})")


# ------------------------------------------------------------------ railcars

nominal_length_option = click.option(
    "--car-length",
    "car_length_m",
    type=FiniteFloatRange(8.0, 30.0),
    default=15.5,
    show_default=True,
    help="Nominal railcar length in metres; sets the count where cars blur together (pixels over 1 m).",
)


@main.command()
@click.argument("images", nargs=-1, required=True, type=IMAGE)
@click.option(
    "--aoi",
    "aoi_ref",
    help="AOI GeoJSON file or site id whose rail_track lines to count along.",
    shell_complete=complete_site_ids,
)
@click.option(
    "--tracks",
    "tracks_file",
    type=click.Path(path_type=Path),
    help="GeoJSON of LineStrings with a track_id property (instead of --aoi).",
)
@click.option(
    "--find-tracks",
    "find_tracks",
    is_flag=True,
    help="Find the track lines in the image itself (one image, pixels of at most 1 m; instead of --aoi/--tracks); "
    "with --out they are written as tracks.geojson for --tracks.",
)
@click.option(
    "--out",
    "-o",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder for railcars.geojson, railcars.csv and railcars.json (and tracks.geojson with --find-tracks).",
)
@nominal_length_option
@bands_option
@image_date_option
@overwrite_option
@json_option
@click.pass_context
@handle_errors
def railcars(
    ctx: click.Context,
    images: tuple[Path, ...],
    aoi_ref: str | None,
    tracks_file: Path | None,
    find_tracks: bool,
    out_dir: Path | None,
    car_length_m: float,
    bands: tuple[int, ...] | None,
    image_dates: tuple[str, ...],
    overwrite: bool,
    as_json: bool,
) -> None:
    """Count railcars on each track of each IMAGE."""
    from .pipeline import count_railcars
    from .railcars import SegmentationPrior

    results = count_railcars(
        list(images),
        aoi=aoi_ref,
        tracks=tracks_file,
        out_dir=out_dir,
        overwrite=overwrite,
        prior=SegmentationPrior(nominal_length_m=car_length_m),
        bands=bands,
        dates=_dates_by_image(image_dates),
        progress=_progress(ctx.obj["quiet"]),
        find_tracks=find_tracks,
    )
    if as_json:
        _echo_json({"images": [r.to_dict() for r in results]})
        return
    if ctx.obj["quiet"]:
        return
    if find_tracks:
        where = (
            f"written to {out_dir}/tracks.geojson" if out_dir is not None else "not written (give --out to keep them)"
        )
        click.echo(f"{len(results[0].tracks)} tracks found in the image; their lines {where}")
        click.echo(
            "note: found lines are a draft: on yards unlike the benchmark's own most tracks are missed or misplaced "
            "(README, Tracks from the image); check them, then count with --tracks",
            err=True,
        )
    for r in results:
        click.echo(
            f"{r.path.name} ({r.date or 'no date'}): {r.total} railcars ± {r.result.uncertainty:.1f}  "
            f"[{r.result.method}, {r.grid.pixel_size_m:.2f} m pixels]"
        )
        for t in r.result.tracks:
            click.echo(f"  {t.track_id:16s} {t.count:4d}  ± {t.uncertainty:3.1f}   {t.occupied_m:6.0f} m occupied")
    if out_dir is not None:
        from .pipeline.railcars import FOUND_TRACK_OUTPUTS, RAILCAR_OUTPUTS

        names = RAILCAR_OUTPUTS + (FOUND_TRACK_OUTPUTS if find_tracks else [])
        click.echo(f"outputs: {out_dir}/ ({', '.join(names)})")


@main.command("timeline")
@click.argument("images", nargs=-1, required=True, type=IMAGE)
@click.option("--aoi", "aoi_ref", required=True, help="AOI GeoJSON file or site id.", shell_complete=complete_site_ids)
@click.option(
    "--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@click.option(
    "--no-structures", is_flag=True, help="Count railcars only; skip structure change against the first date."
)
@nominal_length_option
@bands_option
@image_date_option
@overwrite_option
@json_option
@click.pass_context
@handle_errors
def timeline_cmd(
    ctx: click.Context,
    images: tuple[Path, ...],
    aoi_ref: str,
    out_dir: Path,
    no_structures: bool,
    car_length_m: float,
    bands: tuple[int, ...] | None,
    image_dates: tuple[str, ...],
    overwrite: bool,
    as_json: bool,
) -> None:
    """Railcars per track and structure change, date by date, from IMAGES of one site."""
    from .pipeline import timeline
    from .railcars import SegmentationPrior

    result = timeline(
        list(images),
        aoi=aoi_ref,
        out_dir=out_dir,
        overwrite=overwrite,
        structures=not no_structures,
        prior=SegmentationPrior(nominal_length_m=car_length_m),
        bands=bands,
        dates=_dates_by_image(image_dates),
        progress=_progress(ctx.obj["quiet"]),
    )
    if as_json:
        _echo_json(result.to_dict())
        return
    if ctx.obj["quiet"]:
        return
    click.echo(f"{result.site.name}: {result.statement}")
    head = f"  {'date':10s}  {'railcars':>12s}"
    has_structures = "new_area_m2" in result.rows[0]
    has_changed = any(r.get("changed_area_m2") for r in result.rows)
    if has_structures:
        head += f"  {'new m²':>8s}  {'removed m²':>10s}" + (f"  {'changed m²':>10s}" if has_changed else "")
    click.echo(head)
    for row in result.rows:
        counted = row["railcars_total"] is not None
        cars = f"{row['railcars_total']:5d} ± {row['railcars_uncertainty']:4.1f}" if counted else "not counted"
        line = f"  {row['date']:10s}  {cars:>12s}"
        if has_structures:
            line += f"  {row['new_area_m2']:8.0f}  {row['removed_area_m2']:10.0f}"
            line += f"  {row['changed_area_m2']:10.0f}" if has_changed else ""
        click.echo(line)
    from .pipeline.timeline import TIMELINE_OUTPUTS

    click.echo(f"outputs: {out_dir}/ ({', '.join(TIMELINE_OUTPUTS)})")


# ------------------------------------------------------------------ evaluate


def _set_and_pixel_size(spec: str, default_m: float | None) -> tuple[Path, float]:
    """``PATH`` or ``PATH:GSD`` -> (path, metres per pixel); a usage error when no size is known."""
    path, _, size = spec.rpartition(":")
    if path:
        try:
            value = float(size)
        except ValueError:
            path, value = "", 0.0
        if path and not (0.05 <= value <= 100.0):
            raise click.BadParameter(f"{spec}: pixel size {size} m is outside 0.05-100", param_hint="SET_DIRS")
        if path:
            return Path(path), value
    if default_m is None:
        raise click.BadParameter(f"{spec}: give its pixel size as {spec}:GSD or with --gsd", param_hint="SET_DIRS")
    return Path(spec), default_m


def _evaluation_line(d: dict[str, Any]) -> str:
    """One row of the evaluate table."""
    by_size = "  ".join(
        f"{v['found']}/{v['objects']}" if v["objects"] else "-" for v in d["object_recall_by_size_m2"].values()
    )
    ran = d.get("method_ran", d["method"])
    name = d["method"] if ran == d["method"] else f"{d['method']}->{ran}"
    return (
        f"  {name:<10} P {d['precision']:.3f}  R {d['recall']:.3f}  F1 {d['f1']:.3f}  "
        f"FA {d['false_alarm_rate']:.4f}  AP {d['average_precision']:.3f}  objects <100/100-1000/>=1000 m²: {by_size}"
    )


@main.command("evaluate")
@click.argument("set_dirs", nargs=-1, required=True, metavar="SET[:GSD]...")
@click.option(
    "--gsd",
    "pixel_size_m",
    type=FiniteFloatRange(0.05, 100.0, min_open=False),
    help="Pixel size in metres of every set given without :GSD (LEVIR-CD: 0.5).",
)
@click.option(
    "--masks-out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write each change mask (255 = change) as a PNG named like its input (one set only).",
)
@click.option("--per-pair", is_flag=True, help="With --json, add each pair's counts.")
@click.option("--baseline", is_flag=True, help="Also score the CVA + Otsu baseline on each set.")
@method_option
@normalisation_option
@bands_option
@overwrite_option
@json_option
@click.pass_context
@handle_errors
# a click command takes one parameter per option (tests/test_function_size.py allows it)
def evaluate_cmd(
    ctx: click.Context,
    set_dirs: tuple[str, ...],
    pixel_size_m: float | None,
    masks_out: Path | None,
    per_pair: bool,
    baseline: bool,
    method: str,
    normalisation: str,
    bands: tuple[int, ...] | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Score a detector (by default detect's) on each labelled set (A/, B/, label/ as in LEVIR-CD).

    Each SET is a folder, with its pixel size as SET:GSD or from --gsd. Per set: precision,
    recall, F1, false-alarm rate, average precision of the score map, and object recall by
    labelled object size; scores are pooled over all pixels of the set.
    """
    from .pipeline import evaluate
    from .pipeline.evaluate import BASELINE

    sets = [_set_and_pixel_size(spec, pixel_size_m) for spec in set_dirs]
    if masks_out is not None and len(sets) > 1:
        raise click.BadParameter("write masks for one set at a time", param_hint="--masks-out")
    methods = [method, BASELINE] if baseline else [method]
    results = []
    for set_dir, size_m in sets:
        for name in methods:
            result = evaluate(
                set_dir,
                pixel_size_m=size_m,
                masks_out=masks_out if name == method else None,
                overwrite=overwrite,
                method=name,
                normalisation=normalisation,
                bands=bands,
                progress=_progress(ctx.obj["quiet"]),
            )
            results.append(result.to_dict(per_pair=per_pair))
    if as_json:
        _echo_json(results[0] if len(results) == 1 else {"sets": results})
        return
    if ctx.obj["quiet"]:
        return
    for d in results:
        if d["method"] == method:
            click.echo(
                f"{d['set']}: {d['pairs']} pairs, {d['objects']} labelled objects, {d['pixel_size_m']} m pixels"
                + (f", {d['refused']} pairs refused by co-registration" if d["refused"] else "")
            )
        click.echo(_evaluation_line(d))
    if masks_out is not None:
        click.echo(f"masks: {masks_out}/")


# ------------------------------------------------------------------ search, fetch (public imagery through STAC)


def stac_query_options(func: Callable) -> Callable:
    """The options that say which STAC items to look for (shared by ``search`` and ``fetch --search``)."""
    from .io.stac_search import DEFAULT_CATALOG, DEFAULT_COLLECTION, DEFAULT_MIN_COVERAGE

    for option in reversed(
        [
            click.option("--collection", default=DEFAULT_COLLECTION, show_default=True, help="STAC collection id."),
            click.option("--from", "start", metavar="YYYY-MM-DD", help="First acquisition date (inclusive)."),
            click.option("--to", "end", metavar="YYYY-MM-DD", help="Last acquisition date (inclusive)."),
            click.option(
                "--max-cloud",
                type=FiniteFloatRange(0.0, 100.0),
                default=None,
                help="Most whole-scene cloud cover (eo:cloud_cover, percent) kept. Default: any.",
            ),
            click.option(
                "--min-coverage",
                type=FiniteFloatRange(0.0, 1.0),
                default=DEFAULT_MIN_COVERAGE,
                show_default=True,
                help="Least share (0-1) of the AOI footprint an item must cover.",
            ),
            click.option(
                "--catalog",
                default=DEFAULT_CATALOG,
                show_default=True,
                help="A STAC API URL, or a static catalog/collection (URL, path or folder).",
            ),
        ]
    ):
        func = option(func)
    return func


def _stac_query(collection: str, start: str | None, end: str | None, catalog: str, max_cloud, min_coverage):
    from .io.stac_search import StacQuery

    return StacQuery(collection, start, end, catalog, max_cloud, min_coverage)


@main.command("search")
@click.argument("site")
@stac_query_options
@json_option
@click.pass_context
@handle_errors
# a click command takes one parameter per option (tests/test_function_size.py allows it)
def search_cmd(
    ctx: click.Context,
    site: str,
    collection: str,
    start: str | None,
    end: str | None,
    max_cloud: float | None,
    min_coverage: float,
    catalog: str,
    as_json: bool,
) -> None:
    """List the STAC items of SITE: date, cloud cover, share of the AOI covered, sun angles, pixel size."""
    from .pipeline.fetch import search

    found = search(site, _stac_query(collection, start, end, catalog, max_cloud, min_coverage))
    if as_json:
        _echo_json([f.to_dict() for f in found])
        return
    if ctx.obj["quiet"]:
        return
    click.echo(f"{len(found)} item(s) of {collection} over {site}")
    for f in found:
        cloud = f"{f.cloud_cover:5.1f} %" if f.cloud_cover is not None else "    ? %"
        sun = (
            f"sun {f.sun_azimuth:5.1f}° az {f.sun_elevation:4.1f}° el"
            if f.sun_azimuth is not None and f.sun_elevation is not None
            else "sun unknown"
        )
        pixel = f"{f.pixel_size_m:g} m" if f.pixel_size_m else "? m"
        click.echo(f"  {f.date}  {f.item.id:40s}  cloud {cloud}  AOI {f.aoi_coverage:4.0%}  {sun}  {pixel}")


@main.command("fetch")
@click.argument("site")
@click.argument("items", nargs=-1)
@click.option("--search", "use_search", is_flag=True, help="Fetch what the search options find instead of ITEMS.")
@stac_query_options
@click.option(
    "--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache folder [default: $SITEWATCH_CACHE_DIR, else ~/.cache/sitewatch]; STAC data goes in its stac/.",
)
@overwrite_option
@json_option
@click.pass_context
@handle_errors
# a click command takes one parameter per option (tests/test_function_size.py allows it)
def fetch_cmd(
    ctx: click.Context,
    site: str,
    items: tuple[str, ...],
    use_search: bool,
    collection: str,
    start: str | None,
    end: str | None,
    max_cloud: float | None,
    min_coverage: float,
    catalog: str,
    out_dir: Path,
    cache_dir: Path | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Fetch the AOI window of STAC ITEMS (URLs or paths), or of what --search finds, as DIR/YYYY-MM-DD.tif."""
    from .pipeline.fetch import fetch

    if use_search == bool(items):
        raise click.UsageError("give ITEM URLs or paths, or --search (not both)")
    query = _stac_query(collection, start, end, catalog, max_cloud, min_coverage) if use_search else None
    result = fetch(
        site,
        list(items),
        out_dir=out_dir,
        query=query,
        cache_dir=cache_dir,
        overwrite=overwrite,
        progress=_progress(ctx.obj["quiet"]),
    )
    if as_json:
        _echo_json(result.to_dict())
        return
    if ctx.obj["quiet"]:
        return
    for d in result.dates:
        what = f"{d.image}" if d.status == "fetched" else f"skipped: {d.reason}"
        click.echo(f"  {d.date}  {what}{'  (cached)' if d.cached else ''}")
    fetched = sum(d.status == "fetched" for d in result.dates)
    click.echo(
        f"{fetched} of {len(result.dates)} date(s) fetched; outputs: {out_dir}/ (DATE.tif, DATE.json, fetch.json)"
    )


# ------------------------------------------------------------------ batch


class _BlockBar:
    """A progress bar over a detection's blocks (tqdm) on a terminal; nothing when piped, redirected or ``-q``."""

    def __init__(self, quiet: bool) -> None:
        self.shown = not quiet and _stderr_is_tty()
        self.bar: Any = None

    def update(self, done: int, total: int) -> None:
        """Called as each block finishes: (blocks done, blocks in all)."""
        if not self.shown:
            return
        if self.bar is None:
            try:
                from tqdm import tqdm
            except ImportError:  # the stage messages go on without a bar
                self.shown = False
                return
            self.bar = tqdm(total=total, unit="block", desc="blocks", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _job_bar(quiet: bool, total: int) -> Any:
    """A progress bar over jobs (tqdm) on a terminal; None when piped, redirected or ``-q``."""
    if quiet or not _stderr_is_tty() or total == 0:
        return None
    try:
        from tqdm import tqdm
    except ImportError as exc:
        raise SitewatchError("sitewatch batch needs tqdm; install it with: pip install 'sitewatch[batch]'") from exc
    return tqdm(total=total, unit="job", desc="batch", file=sys.stderr, dynamic_ncols=True)


@main.command("batch")
@click.argument("plan_file", metavar="PLAN", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--scheduler", metavar="ADDRESS", help="A running Dask scheduler (tcp://host:8786); default: local.")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Local worker processes [default: all cores]."
)
@click.option(
    "--out",
    "-o",
    "out_root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output root: one folder per site and date pair [default: PLAN's folder/<plan name>_output].",
)
@json_option
@click.pass_context
@handle_errors
def batch_cmd(
    ctx: click.Context,
    plan_file: Path,
    scheduler: str | None,
    workers: int | None,
    out_root: Path | None,
    as_json: bool,
) -> None:
    """Run a PLAN of sites and dates (TOML or YAML) on a Dask cluster: detect, railcars, timeline and report.

    A finished job is skipped when the plan is run again; a failed job is reported and the
    others go on (exit 1 if any failed).
    """
    from .io.plan import read_plan
    from .pipeline.batch import batch, plan_jobs

    if scheduler is not None and workers is not None:
        raise click.UsageError("--workers sizes the local cluster; a cluster at --scheduler has its own workers")
    # the cluster's own INFO lines (workers starting, closing) only with -vv
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("distributed").setLevel(max(logging.getLogger().level, logging.WARNING))
    plan = read_plan(plan_file)
    out_root = out_root if out_root is not None else plan_file.parent / f"{plan_file.stem}_output"
    bar = _job_bar(ctx.obj["quiet"], len(plan_jobs(plan, out_root)))

    def on_job(outcome: Any) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{outcome.key} {outcome.state}")

    try:
        result = batch(plan, out_root, scheduler=scheduler, workers=workers, on_job=on_job)
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        _echo_json(result.to_dict())
    elif not ctx.obj["quiet"]:
        width = max(len(o.key) for o in result.outcomes)
        click.echo(f"{'job':{width}s}  {'state':7s}  {'seconds':>7s}")
        for o in result.outcomes:
            click.echo(f"{o.key:{width}s}  {o.state:7s}  {o.seconds:7.1f}")
        counts = result.counts()
        click.echo(", ".join(f"{n} {s}" for s, n in counts.items()) + f"; outputs: {out_root}/ (batch.json)")
    for o in result.failed:
        click.echo(f"error: {o.key}: {o.error}", err=True)
    if result.failed:
        sys.exit(1)


# ------------------------------------------------------------------ report


@main.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    "-o",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="HTML file to write [default: RUN_DIR/report.html].",
)
@overwrite_option
@click.pass_context
@handle_errors
def report_cmd(ctx: click.Context, run_dir: Path, out_file: Path | None, overwrite: bool) -> None:
    """Write one self-contained HTML report of a folder that detect, timeline or railcars wrote."""
    from .report.html import write_report

    path = write_report(run_dir, out_file, overwrite=overwrite)
    if not ctx.obj["quiet"]:
        click.echo(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB, opens offline)")


# ------------------------------------------------------------------ help: examples, files, exit codes, completion

MAIN_EPILOG = """\b
Examples:
  sitewatch aoi list
  sitewatch detect before.tif after.tif --aoi hamhung-feb11-plant -o run/
  sitewatch report run/

\b
Exit codes: 0 success; 2 bad input, a usage error or a refusal (a one-line
"error: FILE: problem" on stderr, nothing written); 1 an unexpected failure (a bug).

\b
Environment: SITEWATCH_AOI_DIR is the folder site ids (hamhung-feb11-plant, ...) resolve in;
without it, ./aoi, else the aoi/ folder of sitewatch's source tree.

\b
Shell completion (commands, options and site ids), e.g. in ~/.bashrc:
  eval "$(_SITEWATCH_COMPLETE=bash_source sitewatch)"
zsh: _SITEWATCH_COMPLETE=zsh_source; fish: _SITEWATCH_COMPLETE=fish_source sitewatch | source
"""

# Each command's one line in `sitewatch --help` (a whole sentence, never cut) and its examples.
COMMAND_HELP: dict[str, tuple[str, str]] = {
    "aoi": (
        "List, show and validate areas of interest.",
        "sitewatch aoi list\n  sitewatch aoi show tumangang-rail-crossing",
    ),
    "aoi list": ("List the known sites.", "sitewatch aoi list --json"),
    "aoi show": ("Show a site's metadata, features and sources.", "sitewatch aoi show hamhung-feb11-plant"),
    "aoi validate": ("Check AOI files against the schema.", "sitewatch aoi validate aoi/*.geojson"),
    "synth": (
        "Write synthetic images of a site with known truth.",
        "sitewatch synth hamhung-feb11-plant --out synth/ --gsd 0.5 --seed 1",
    ),
    "coreg": (
        "Measure the shift between two images of a place.",
        "sitewatch coreg 2023-06-15.tif 2024-10-20.tif --json\n"
        "  sitewatch coreg ref.tif moving.tif -o moving_fixed.tif",
    ),
    "detect": (
        "Find new and removed structures between two images.",
        "sitewatch detect sample_imagery/hamhung-feb11-plant/2023-06-15.tif \\\n"
        "      sample_imagery/hamhung-feb11-plant/2024-10-20.tif --aoi hamhung-feb11-plant -o run/\n"
        "  sitewatch detect a.png b.png --aoi hamhung-feb11-plant --gsd 0.5 -o shots/",
    ),
    "railcars": (
        "Count railcars on each track of each image.",
        "sitewatch railcars 2023-03-10.tif --aoi tumangang-rail-crossing -o cars/",
    ),
    "timeline": (
        "Count railcars and structure change date by date.",
        "sitewatch timeline sample_imagery/tumangang-rail-crossing/*.tif --aoi tumangang-rail-crossing -o tl/",
    ),
    "evaluate": (
        "Score a detector on labelled change sets.",
        "sitewatch evaluate ../shared/data/realcd/levir-cd-256:0.5 --baseline --json",
    ),
    "search": (
        "List a site's public scenes in a STAC catalog.",
        "sitewatch search tumangang-rail-crossing --from 2024-03-01 --to 2024-10-31 --max-cloud 20",
    ),
    "fetch": (
        "Fetch a site's window of STAC scenes as dated COGs.",
        "sitewatch fetch tumangang-rail-crossing --search --from 2024-03-01 --max-cloud 20 -o s2/\n"
        "  sitewatch timeline s2/*.tif --aoi tumangang-rail-crossing -o s2-timeline/",
    ),
    "batch": (
        "Run a plan of sites and dates on a Dask cluster.",
        "sitewatch batch plan.toml -o runs/ --workers 2\n"
        "  sitewatch batch plan.toml -o runs/ --scheduler tcp://10.0.0.5:8786",
    ),
    "report": (
        "Write a self-contained HTML report of a run.",
        "sitewatch report run/\n  sitewatch report run/ -o run.html",
    ),
}


def detect_files_help() -> str:
    """What ``detect --help`` says it writes."""
    from .pipeline.detect import DETECT_OUTPUTS

    return (
        "\b\nWrites into -o, all together or not at all:\n"
        + "".join(f"  {name}\n" for name in DETECT_OUTPUTS)
        + "\nVectors: GeoJSON in lon/lat per RFC 7946, GPKG and GeoParquet in the image's CRS, styled for QGIS;"
        " change_score.tif a COG; before.tif/after.tif display previews; summary.json per its schema."
    )


def _add_help(group: click.Group, prefix: str = "") -> None:
    for name, cmd in group.commands.items():
        key = f"{prefix}{name}"
        if key in COMMAND_HELP:
            short, example = COMMAND_HELP[key]
            cmd.short_help = short
            cmd.epilog = f"\b\nExamples:\n  {example}" + ("\n\n" + detect_files_help() if key == "detect" else "")
        if isinstance(cmd, click.Group):
            _add_help(cmd, f"{key} ")


main.epilog = MAIN_EPILOG
_add_help(main)


if __name__ == "__main__":  # pragma: no cover
    main()
