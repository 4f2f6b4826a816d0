"""``sitewatch batch``: a plan of sites and dates on a Dask LocalCluster of 2 workers (the sample sites).

One cluster serves the module; the jobs use the fast ``cva`` method so the module runs in a
minute or two. A plan is checked whole before anything runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import AOI_DIR, SAMPLES

from sitewatch import cli
from sitewatch.cli import main
from sitewatch.errors import PlanError, SitewatchError
from sitewatch.io.plan import read_plan

pytest.importorskip("dask.distributed")

SINUIJU = SAMPLES / "sinuiju-instrument-factory"
TUMANGANG = SAMPLES / "tumangang-rail-crossing"
HAMHUNG = SAMPLES / "hamhung-feb11-plant"
GOOD_JOBS = ("sinuiju-instrument-factory/2022-09-05_2024-04-12", "tumangang-rail-crossing/2023-03-10_2023-07-14")
CORRUPT_JOB = "hamhung-corrupt/2023-06-15_2024-10-20"


def _plan(folder: Path, corrupt: Path) -> Path:
    """Sinuiju (one pair), Tumangang's first two dates (tracks: railcars and timeline too), a corrupt image."""
    text = f"""
[detect]
method = "cva"

[[sites]]
site = "sinuiju-instrument-factory"
images = ["{SINUIJU / "2024-04-12.tif"}", "{SINUIJU / "2022-09-05.tif"}"]

[[sites]]
site = "{AOI_DIR / "tumangang-rail-crossing.geojson"}"
images = ["{TUMANGANG / "2023-03-10.tif"}", {{ path = "{TUMANGANG / "2023-07-14.tif"}", date = "2023-07-14" }}]

[[sites]]
site = "hamhung-feb11-plant"
name = "hamhung-corrupt"
images = ["{corrupt}", "{HAMHUNG / "2024-10-20.tif"}"]
"""
    path = folder / "plan.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes, made the way ``batch`` makes its own; yields its address."""
    from sitewatch.pipeline.batch import dask_client

    with dask_client(workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def first_run(cluster, tmp_path_factory):
    """The plan run once: two jobs finish, the one with a truncated image fails."""
    folder = tmp_path_factory.mktemp("batch")
    corrupt = folder / "images" / "2023-06-15.tif"
    corrupt.parent.mkdir()
    corrupt.write_bytes((HAMHUNG / "2023-06-15.tif").read_bytes()[:4096])
    plan = _plan(folder, corrupt)
    out = folder / "out"
    res = CliRunner().invoke(main, ["batch", str(plan), "--scheduler", cluster.scheduler.address, "-o", str(out)])
    return plan, out, res


def _states(stdout: str) -> dict[str, str]:
    """Job -> state from the table that batch prints."""
    return {line.split()[0]: line.split()[1] for line in stdout.splitlines()[1:] if "/" in line.split()[0]}


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_workers_run_one_thread_each(cluster):
    import os

    assert len(cluster.scheduler_info()["workers"]) == 2
    limits = cluster.run(lambda: (os.environ.get("OMP_NUM_THREADS"), os.environ.get("OPENBLAS_NUM_THREADS")))
    assert set(limits.values()) == {("1", "1")}


def test_jobs_run_and_a_failure_does_not_stop_the_others(first_run):
    _, out, res = first_run
    assert res.exit_code == 1, res.output
    assert _states(res.stdout) == {GOOD_JOBS[0]: "done", GOOD_JOBS[1]: "done", CORRUPT_JOB: "failed"}
    assert "2 done, 0 skipped, 1 failed" in res.stdout
    # the failure names the job and the file; piped, stderr holds nothing else (no progress bar, no cluster logs)
    errors = res.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: {CORRUPT_JOB}: ") and "2023-06-15.tif" in errors[0]
    # a failed job leaves nothing: no folder, no staging folder
    assert not (out / "hamhung-corrupt").exists() and not list(out.glob(".sitewatch-*"))
    summary = json.loads((out / "batch.json").read_text())
    assert summary["counts"] == {"done": 2, "skipped": 0, "failed": 1}


def test_each_job_chains_detect_railcars_timeline_and_report(first_run):
    _, out, _ = first_run
    sinuiju, tumangang = (out / j for j in GOOD_JOBS)
    for name in ("changes.geojson", "changes.gpkg", "change_score.tif", "overlay.png", "summary.json", "report.html"):
        assert (sinuiju / "detect" / name).is_file(), name
        assert (tumangang / "detect" / name).is_file(), name
    # railcars and timeline only where the site has rail tracks
    assert not (sinuiju / "railcars").exists() and not (sinuiju / "timeline").exists()
    for name in ("railcars.json", "railcars.csv", "railcars.geojson", "report.html"):
        assert (tumangang / "railcars" / name).is_file(), name
    for name in ("timeline.csv", "timeline.json", "timeline.png", "report.html"):
        assert (tumangang / "timeline" / name).is_file(), name
    counted = json.loads((tumangang / "railcars" / "railcars.json").read_text())
    timeline = json.loads((tumangang / "timeline" / "timeline.json").read_text())
    assert [i["date"] for i in counted["images"]] == ["2023-03-10", "2023-07-14"]
    assert [r["railcars_total"] for r in timeline["dates"]] == [i["total"] for i in counted["images"]]
    marker = json.loads((sinuiju / "job.json").read_text())
    assert marker["inputs"]["before"]["date"] == "2022-09-05" and marker["inputs"]["detect"] == {"method": "cva"}


def test_outputs_match_detect_run_directly(first_run, tmp_path):
    from sitewatch.pipeline import detect

    _, out, _ = first_run
    direct = detect(SINUIJU / "2022-09-05.tif", SINUIJU / "2024-04-12.tif", "sinuiju-instrument-factory", method="cva")
    batch_dir = out / GOOD_JOBS[0] / "detect"
    summary = json.loads((batch_dir / "summary.json").read_text())
    assert summary["counts"] == direct.summary["counts"] and direct.objects
    assert summary["shift"]["shift_px"] == direct.summary["shift"]["shift_px"]
    features = json.loads((batch_dir / "changes.geojson").read_text())["features"]
    assert [round(f["properties"]["area_m2"], 1) for f in features] == [round(o.area_m2, 1) for o in direct.objects]


def test_a_second_run_skips_finished_jobs(first_run, cluster, monkeypatch):
    plan, out, _ = first_run
    before = {job: _files(out / job) for job in GOOD_JOBS}
    monkeypatch.setattr(cli, "_stderr_is_tty", lambda: True)  # a terminal: the progress bar over jobs shows
    res = CliRunner().invoke(main, ["batch", str(plan), "--scheduler", cluster.scheduler.address, "-o", str(out)])
    assert res.exit_code == 1, res.output
    assert _states(res.stdout) == {GOOD_JOBS[0]: "skipped", GOOD_JOBS[1]: "skipped", CORRUPT_JOB: "failed"}
    assert "3/3" in res.stderr and "job" in res.stderr
    for job in GOOD_JOBS:
        assert _files(out / job) == before[job]  # not one file rewritten


def test_a_changed_input_is_not_taken_for_finished(first_run, tmp_path):
    from sitewatch.pipeline.batch import finished, plan_jobs

    plan, out, _ = first_run
    jobs = {j.key: j for j in plan_jobs(read_plan(plan), out)}
    assert finished(jobs[GOOD_JOBS[0]]) and not finished(jobs[CORRUPT_JOB])
    moved = plan.parent / "moved.toml"
    shutil.copy(SINUIJU / "2022-09-05.tif", tmp_path / "2022-09-05.tif")
    moved.write_text(plan.read_text().replace(str(SINUIJU / "2022-09-05.tif"), str(tmp_path / "2022-09-05.tif")))
    again = {j.key: j for j in plan_jobs(read_plan(moved), out)}
    assert not finished(again[GOOD_JOBS[0]])


# ------------------------------------------------------------------ the plan, checked before anything runs


def _invoke_plan(tmp_path: Path, text: str, suffix: str = ".toml"):
    plan = tmp_path / f"plan{suffix}"
    plan.write_text(text, encoding="utf-8")
    res = CliRunner().invoke(main, ["batch", str(plan), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "out").exists()  # nothing run
    return res.stderr


GOOD_IMAGES = f'images = ["{SINUIJU / "2022-09-05.tif"}", "{SINUIJU / "2024-04-12.tif"}"]'


def test_unknown_site_is_named_with_the_plan_and_entry(tmp_path):
    err = _invoke_plan(
        tmp_path,
        f'[[sites]]\nsite = "sinuiju-instrument-factory"\n{GOOD_IMAGES}\n\n'
        f'[[sites]]\nsite = "nowhere"\n{GOOD_IMAGES}\n',
    )
    assert err.startswith(f"error: {tmp_path / 'plan.toml'}: sites[2]: unknown site 'nowhere'")


def test_missing_image_is_named(tmp_path):
    err = _invoke_plan(
        tmp_path, '[[sites]]\nsite = "sinuiju-instrument-factory"\nimages = ["a/2023-01-01.tif", "b.tif"]\n'
    )
    assert 'sites[1] ("sinuiju-instrument-factory"): images[1]: a/2023-01-01.tif does not exist' in err


def test_bad_date_is_refused(tmp_path):
    bad = f'{{ path = "{SINUIJU / "2022-09-05.tif"}", date = "2023-02-30" }}'
    text = f'[[sites]]\nsite = "sinuiju-instrument-factory"\nimages = [{bad}, "{SINUIJU / "2024-04-12.tif"}"]\n'
    err = _invoke_plan(tmp_path, text)
    assert "images[1]: date '2023-02-30': give an acquisition date as YYYY-MM-DD" in err


def test_two_images_of_one_date_and_unknown_keys_are_refused(tmp_path):
    same = (
        f'images = ["{SINUIJU / "2022-09-05.tif"}", {{ path = "{SINUIJU / "2024-04-12.tif"}", date = "2022-09-05" }}]'
    )
    assert "more than one image for date(s) 2022-09-05" in _invoke_plan(
        tmp_path, f'[[sites]]\nsite = "sinuiju-instrument-factory"\n{same}\n'
    )
    assert "sites[1]: unknown key(s) 'image'" in _invoke_plan(
        tmp_path, '[[sites]]\nsite = "sinuiju-instrument-factory"\nimage = "x.tif"\n'
    )
    assert "detect: method 'fast'" in _invoke_plan(
        tmp_path, f'[detect]\nmethod = "fast"\n[[sites]]\nsite = "sinuiju-instrument-factory"\n{GOOD_IMAGES}\n'
    )
    assert "not a valid TOML plan" in _invoke_plan(tmp_path, "[[sites]\n")


def test_yaml_plan_reads_as_the_toml_one(tmp_path):
    pytest.importorskip("yaml")
    toml = tmp_path / "plan.toml"
    dates = ("2023-10-18", "2023-03-10", "2023-07-14")
    images = ", ".join(f'"{TUMANGANG}/{d}.tif"' for d in dates)
    toml.write_text(f'[[sites]]\nsite = "tumangang-rail-crossing"\npairs = "first"\nimages = [{images}]\n')
    yaml_plan = tmp_path / "plan.yaml"
    yaml_plan.write_text(
        "sites:\n  - site: tumangang-rail-crossing\n    pairs: first\n    images:\n"
        + "".join(f"      - {TUMANGANG}/{d}.tif\n" for d in dates)
    )
    a, b = read_plan(toml), read_plan(yaml_plan)
    assert a.sites == b.sites
    pairs = [(x.date, y.date) for x, y in a.sites[0].date_pairs()]
    assert pairs == [("2023-03-10", "2023-07-14"), ("2023-03-10", "2023-10-18")]  # earliest first, then each later
    assert a.sites[0].has_tracks


def test_without_dask_the_message_says_what_to_install(monkeypatch):
    import sys

    from sitewatch.pipeline.batch import dask_client

    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(SitewatchError, match=r"pip install 'sitewatch\[batch\]'"), dask_client(workers=1):
        pass


def test_plan_error_is_a_value_error():
    with pytest.raises(ValueError, match="no such plan file") as caught:
        read_plan("/nonexistent/plan.toml")
    assert isinstance(caught.value, PlanError)


def test_workers_and_scheduler_together_are_refused(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(f'[[sites]]\nsite = "sinuiju-instrument-factory"\n{GOOD_IMAGES}\n', encoding="utf-8")
    res = CliRunner().invoke(main, ["batch", str(plan), "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"])
    assert res.exit_code == 2 and "--workers sizes the local cluster" in res.stderr
    assert not (tmp_path / "plan_output").exists()
