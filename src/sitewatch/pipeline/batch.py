"""``batch``: many sites × dates on a Dask cluster, one output folder per site and date pair.

A plan (:mod:`sitewatch.io.plan`) becomes one job per site and date pair. A job runs
:func:`detect`, and at a site with rail tracks :func:`count_railcars` and :func:`timeline`,
then writes each folder's report; it runs on a ``dask.distributed`` worker, one job per
worker thread. Jobs are written into a staging folder and renamed into place when all their
files are there, with a ``job.json`` that marks them finished: a second run of the same plan
skips finished jobs, and a failed job leaves nothing behind and does not stop the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import SitewatchError
from ..io import check_out_dir, write_json
from ..io.plan import Plan, PlanImage, read_plan
from ..report.html import write_report
from ._common import versions
from .detect import detect
from .railcars import NotCountable, count_railcars
from .timeline import timeline

log = logging.getLogger(__name__)

# Each worker runs one job at a time on one thread; the libraries under it must not start a
# thread per core each, or 2 workers on 2 cores run 2 x 2 threads and gain nothing.
THREAD_LIMITS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "GDAL_NUM_THREADS": "1",
}
DONE_MARKER = "job.json"  # written last into a job's folder; its presence means the job finished
STAGING_PREFIX = ".sitewatch-batch-"
BATCH_SUMMARY = "batch.json"  # every job's state after a run, in the output root
SCHEDULER_TIMEOUT_S = 30  # how long to try to reach a scheduler given with --scheduler
MISSING_DASK = "sitewatch batch needs dask.distributed; install it with: pip install 'sitewatch[batch]'"


@dataclass(frozen=True)
class Job:
    """One site and date pair: what to run and where its folder goes."""

    site: str  # the plan entry's name: the folder under the output root
    aoi: str
    before: PlanImage
    after: PlanImage
    steps: tuple[str, ...]
    detect: tuple[tuple[str, Any], ...]
    has_tracks: bool
    out_root: str

    @property
    def key(self) -> str:
        """``site/before_after``, the job's folder under the output root."""
        return f"{self.site}/{self.before.date}_{self.after.date}"

    @property
    def out_dir(self) -> Path:
        return Path(self.out_root) / self.key

    def inputs(self) -> dict[str, Any]:
        """What the job reads and how: recorded in ``job.json``; a finished job is skipped only when it matches."""
        return {
            "site": self.site,
            "aoi": self.aoi,
            "before": asdict(self.before),
            "after": asdict(self.after),
            "steps": list(self.steps),
            "detect": {k: list(v) if isinstance(v, tuple) else v for k, v in self.detect},
        }


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: ``done``, ``skipped`` (finished by an earlier run) or ``failed`` with the error."""

    key: str
    state: str
    seconds: float = 0.0
    error: str | None = None


@dataclass
class BatchResult:
    """Every job's outcome, in plan order."""

    plan: Path
    out_root: Path
    outcomes: list[JobOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.state == "failed"]

    def counts(self) -> dict[str, int]:
        return {s: sum(o.state == s for o in self.outcomes) for s in ("done", "skipped", "failed")}

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": str(self.plan),
            "out_root": str(self.out_root),
            "counts": self.counts(),
            "jobs": [asdict(o) for o in self.outcomes],
        }


def plan_jobs(plan: Plan, out_root: str | os.PathLike[str]) -> list[Job]:
    """The plan's jobs, one per site and date pair, in plan order."""
    root = str(Path(out_root).resolve())
    return [
        Job(site.name, site.aoi, a, b, plan.steps, plan.detect, site.has_tracks, root)
        for site in plan.sites
        for a, b in site.date_pairs()
    ]


def finished(job: Job) -> bool:
    """True when the job's folder holds a ``job.json`` for the same inputs."""
    marker = job.out_dir / DONE_MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("inputs") == job.inputs()
    except (OSError, ValueError):
        return False


def _run_steps(job: Job, folder: Path) -> dict[str, float]:
    """Run the job's steps into ``folder``; the seconds each took."""
    timings: dict[str, float] = {}
    images = [job.before.path, job.after.path]
    t = time.perf_counter()
    detect(*images, job.aoi, out_dir=folder / "detect", dates=(job.before.date, job.after.date), **dict(job.detect))
    timings["detect_s"] = time.perf_counter() - t
    bands = dict(job.detect).get("bands")
    # the plan's dates, where it gives them, over what the files say (as detect was given them)
    dates = {str(image): d for image, d in zip(images, (job.before.date, job.after.date)) if d}
    written = [folder / "detect"]
    if job.has_tracks and "railcars" in job.steps:
        t = time.perf_counter()
        try:
            count_railcars(images, aoi=job.aoi, out_dir=folder / "railcars", bands=bands, dates=dates)
            written.append(folder / "railcars")
        except NotCountable as exc:  # pixels too coarse: the timeline says "not counted"; no railcars folder
            log.warning("%s", exc)
        timings["railcars_s"] = time.perf_counter() - t
    if job.has_tracks and "timeline" in job.steps:
        t = time.perf_counter()
        # structure change of the pair is in detect/; the timeline adds railcars by date and its chart
        timeline(images, aoi=job.aoi, out_dir=folder / "timeline", structures=False, bands=bands, dates=dates)
        timings["timeline_s"] = time.perf_counter() - t
        written.append(folder / "timeline")
    if "report" in job.steps:
        t = time.perf_counter()
        for run_dir in written:
            write_report(run_dir)
        timings["report_s"] = time.perf_counter() - t
    return {k: round(v, 2) for k, v in timings.items()}


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SitewatchError) else f"{type(exc).__name__}: {exc}"


def run_job(job: Job) -> JobOutcome:
    """Run one job (on a Dask worker): skipped when finished, its folder in place all at once or not at all.

    A failure is returned as a ``failed`` outcome with its message, never raised, so the
    other jobs go on.
    """
    start = time.perf_counter()
    if finished(job):
        return JobOutcome(job.key, "skipped")
    final = job.out_dir
    try:
        if final.exists() or final.is_symlink():
            raise SitewatchError(
                f"{final}: exists, but holds no {DONE_MARKER} for this job's inputs (an unfinished or other run); "
                "remove it to run the job again"
            )
        # staged in the output root, so a failed job leaves not even its site's folder
        prefix = f"{STAGING_PREFIX}{job.key.replace('/', '.')}-"
        for stale in Path(job.out_root).glob(f"{prefix}*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed run (one batch per output root at a time)
        staging = Path(tempfile.mkdtemp(prefix=prefix, dir=job.out_root))
        try:
            timings = _run_steps(job, staging)
            marker = {
                "job": job.key,
                "inputs": job.inputs(),
                "timings": timings,
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "versions": versions(),
            }
            write_json(staging / DONE_MARKER, marker)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except Exception as exc:  # noqa: BLE001 - a job's failure is reported, and the other jobs go on
        return JobOutcome(job.key, "failed", round(time.perf_counter() - start, 2), _describe(exc))
    return JobOutcome(job.key, "done", round(time.perf_counter() - start, 2))


def _distributed() -> Any:
    """``dask.distributed``, imported only when a batch runs."""
    try:
        import dask.distributed
    except ImportError as exc:
        raise SitewatchError(MISSING_DASK) from exc
    return dask.distributed


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A client of the cluster at ``scheduler``, else of a local cluster of ``workers`` processes (default: all cores).

    Each local worker runs one job at a time on one thread, with the thread limits of
    :data:`THREAD_LIMITS` set before it starts.
    """
    distributed = _distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise SitewatchError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from exc
        with client:
            yield client
        return
    import dask

    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **THREAD_LIMITS}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        # dashboard on a free port: with None its server still takes :8787, and a second cluster on the machine fails
        cluster = distributed.LocalCluster(
            n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    with cluster, distributed.Client(cluster) as client:
        yield client


def _largest_first(jobs: list[Job]) -> list[Job]:
    """Jobs with the largest local images first, so the last job to finish is a short one."""

    def size(job: Job) -> int:
        paths = (job.before.path, job.after.path)
        return sum(os.path.getsize(p) for p in paths if os.path.isfile(p))

    return sorted(jobs, key=size, reverse=True)


def _write_summary(result: BatchResult) -> None:
    """``batch.json`` in the output root, replaced whole."""
    target = result.out_root / BATCH_SUMMARY
    fd, tmp = tempfile.mkstemp(prefix=f".{BATCH_SUMMARY}.", dir=result.out_root)
    os.close(fd)
    write_json(Path(tmp), result.to_dict())
    os.replace(tmp, target)


def batch(
    plan: str | os.PathLike[str] | Plan,
    out_root: str | os.PathLike[str],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    on_job: Callable[[JobOutcome], None] | None = None,
) -> BatchResult:
    """Run every job of a plan on a Dask cluster; finished jobs are skipped, a failure does not stop the others.

    Parameters
    ----------
    plan : path-like or Plan
        The plan file (checked whole before anything runs), or a plan already read.
    out_root : path-like
        Where each job's folder ``SITE/BEFORE_AFTER/`` goes, and ``batch.json``; it must
        be reachable by the workers at this path (a shared file system on a cluster).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); default: a local cluster.
    workers : int, optional
        Worker processes of the local cluster (default: all cores).
    on_job : callable, optional
        Called with each job's outcome as it ends (skipped jobs first).

    Returns
    -------
    BatchResult
        ``failed`` lists the jobs that failed, with their errors.
    """
    plan = plan if isinstance(plan, Plan) else read_plan(plan)
    out_root = Path(out_root)
    check_out_dir(out_root)
    jobs = plan_jobs(plan, out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, JobOutcome] = {}
    report = on_job or (lambda outcome: None)
    for job in jobs:
        if finished(job):
            outcomes[job.key] = JobOutcome(job.key, "skipped")
            report(outcomes[job.key])
    todo = _largest_first([j for j in jobs if j.key not in outcomes])
    if todo:
        distributed = _distributed()
        with dask_client(scheduler, workers) as client:
            futures = {client.submit(run_job, job, pure=False): job for job in todo}
            for future in distributed.as_completed(futures):
                job = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001 - a worker lost (killed, out of memory) fails its job only
                    outcome = JobOutcome(job.key, "failed", error=_describe(exc))
                outcomes[job.key] = outcome
                report(outcome)
    result = BatchResult(plan.path, out_root, [outcomes[j.key] for j in jobs])
    _write_summary(result)
    return result
