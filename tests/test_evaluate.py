"""``sitewatch evaluate``: pooled pixel scores on a LEVIR-layout set, synthetic and real."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import textured
from PIL import Image

from sitewatch.cli import main
from sitewatch.pipeline.evaluate import score_pair
from sitewatch.pipeline.scoring import average_precision

KEYS = {"precision", "recall", "f1", "iou", "false_alarm_rate", "object_recall", "pairs"}


def _planted_set(root, n=3):
    """n pairs of textured ground; B gains a pale 20 x 30 m building (0.5 m pixels) and its shadow."""
    for sub in ("A", "B", "label"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        ground = np.stack([textured((256, 256), seed=10 * i + b) * f for b, f in enumerate((0.9, 0.8, 0.7))])
        after = ground + np.random.default_rng(i).normal(0, 2, ground.shape)
        r0, c0 = 60 + 20 * i, 80
        after[:, r0 : r0 + 40, c0 : c0 + 60] = 215.0
        after[:, r0 + 40 : r0 + 46, c0 + 4 : c0 + 64] *= 0.45  # its shadow
        label = np.zeros((256, 256), np.uint8)
        label[r0 : r0 + 40, c0 : c0 + 60] = 255
        name = f"pair_{i}.png"
        Image.fromarray(np.clip(np.moveaxis(ground, 0, -1), 0, 255).astype(np.uint8)).save(root / "A" / name)
        Image.fromarray(np.clip(np.moveaxis(after, 0, -1), 0, 255).astype(np.uint8)).save(root / "B" / name)
        Image.fromarray(label).save(root / "label" / name)
    return root


def test_scores_pool_pixel_counts():
    flagged = np.zeros((10, 10), bool)
    label = np.zeros((10, 10), bool)
    label[0:4, 0:4] = True  # a building of 16 px, 12 of them flagged: found
    label[8:10, 8:10] = True  # one of 4 px, none flagged: missed
    flagged[0:3, 0:4] = True
    flagged[5, 5] = True  # one false alarm
    s = score_pair("x", flagged, label)
    assert (s.tp, s.fp, s.fn, s.tn) == (12, 1, 8, 79)
    assert (s.objects, s.objects_found) == (2, 1)


def test_objects_are_binned_by_labelled_area():
    label = np.zeros((100, 100), bool)
    label[0:5, 0:5] = True  # 25 px = 56 m² at 1.5 m
    label[10:20, 10:20] = True  # 100 px = 225 m²
    label[40:80, 40:80] = True  # 1600 px = 3600 m²
    flagged = np.zeros_like(label)
    flagged[40:80, 40:70] = True  # three quarters of the large one
    s = score_pair("x", flagged, label, pixel_size_m=1.5)
    assert s.objects_by_size == (1, 1, 1) and s.found_by_size == (0, 0, 1)


def test_average_precision_known_answers():
    labels = np.array([1, 0, 1, 0, 0], bool)
    # ranked 1, 0, 1, 0, 0: precision 1 at recall 0.5, 2/3 at recall 1 -> AP = 0.5 + 0.5 * 2/3
    assert average_precision(np.array([0.9, 0.8, 0.7, 0.2, 0.1]), labels) == pytest.approx(0.5 + 1 / 3)
    assert average_precision(np.array([0.9, 0.1, 0.8, 0.2, 0.3]), labels) == pytest.approx(1.0)
    # one score for all: one threshold, precision = the positive share
    assert average_precision(np.ones(5), labels) == pytest.approx(0.4)
    assert average_precision(np.ones(5), np.zeros(5, bool)) == 0.0


def test_several_sets_each_with_its_pixel_size_and_the_baseline(tmp_path):
    one = _planted_set(tmp_path / "one", n=1)
    two = _planted_set(tmp_path / "two", n=2)
    res = CliRunner().invoke(main, ["evaluate", f"{one}:0.5", str(two), "--gsd", "1.0", "--baseline", "--json"])
    assert res.exit_code == 0, res.output
    sets = json.loads(res.stdout)["sets"]
    assert [(d["method"], d["pairs"], d["pixel_size_m"]) for d in sets] == [
        ("building", 1, 0.5),
        ("cva-otsu", 1, 0.5),
        ("building", 2, 1.0),
        ("cva-otsu", 2, 1.0),
    ]
    # the planted building is 40 x 60 px: 600 m² at 0.5 m, 2400 m² at 1 m
    assert sets[0]["object_recall_by_size_m2"]["100-1000"]["objects"] == 1
    assert sets[2]["object_recall_by_size_m2"][">=1000"]["objects"] == 2  # 40 x 60 px at 1 m
    for d in sets:
        assert 0.0 <= d["average_precision"] <= 1.0
    assert sets[0]["average_precision"] > 0.5  # the building's score ranks its pixels first
    assert [d["method_ran"] for d in sets] == ["building", "cva-otsu", "building", "cva-otsu"]
    res = CliRunner().invoke(main, ["evaluate", str(one)])
    assert res.exit_code == 2 and "GSD" in res.output


def test_a_method_handed_over_at_coarse_pixels_is_named_in_the_scores(tmp_path):
    one = _planted_set(tmp_path / "one", n=1)
    res = CliRunner().invoke(main, ["evaluate", f"{one}:1.5"])
    assert res.exit_code == 0, res.output
    assert "building->change" in res.stdout  # the network's trained pixels end at 1.2 m


def test_planted_buildings_are_found(tmp_path):
    root = _planted_set(tmp_path / "set")
    res = CliRunner().invoke(
        main, ["evaluate", str(root), "--gsd", "0.5", "--json", "--masks-out", str(tmp_path / "m")]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert KEYS <= set(out) and out["pairs"] == 3
    # the third building partly stands on ground as bright as its roof: only ~40 % of it is
    # flagged (a limit of a colour-change score), so 2 of 3 count as found
    assert out["f1"] >= 0.8 and out["object_recall"] >= 0.66 and out["false_alarm_rate"] <= 0.01
    masks = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert masks == ["pair_0.png", "pair_1.png", "pair_2.png"]
    values = np.unique(np.asarray(Image.open(tmp_path / "m" / "pair_0.png")))
    assert set(values.tolist()) <= {0, 255}


def test_bad_sets_fail_cleanly(tmp_path):
    root = _planted_set(tmp_path / "set", n=1)
    (root / "label" / "pair_0.png").unlink()
    res = CliRunner().invoke(main, ["evaluate", str(root), "--gsd", "0.5"])
    assert res.exit_code == 2 and "pair_0.png" in res.output and "label" in res.output
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "nowhere"), "--gsd", "0.5"])
    assert res.exit_code == 2 and "A/" in res.output


# Floors, a hair under what the default method measures (levir-cd-1024 F1 0.553, precision
# 0.520, 5 of 6 buildings >= 1000 m²; levir-cd-256 F1 0.585, precision 0.555, 3 of 3 >= 1000 m²;
# Harvey false alarms 0.05 %); a change that lowers any of them fails. These sets were used to
# tune the default method: the figures are not left-out ones (README, "Real imagery").
FLOORS = {
    "levir-cd-1024": {"f1": 0.545, "precision": 0.5, "large_object_recall": 0.8},
    "levir-cd-256": {"f1": 0.575, "precision": 0.54, "large_object_recall": 0.8},
    "xbd-harvey-nochange": {"false_alarm_rate_max": 0.002},
}


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_real_sets_hold_their_floor(realdata, name):
    set_dir = realdata / "realcd" / name
    if not set_dir.is_dir():
        pytest.skip(f"{set_dir} not found")
    res = CliRunner().invoke(main, ["evaluate", str(set_dir), "--gsd", "0.5", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    floor = FLOORS[name]
    if "f1" in floor:
        assert out["f1"] >= floor["f1"] and out["precision"] >= floor["precision"], out
    if "large_object_recall" in floor:
        assert out["object_recall_by_size_m2"][">=1000"]["recall"] >= floor["large_object_recall"], out
    if "false_alarm_rate_max" in floor:
        assert out["false_alarm_rate"] <= floor["false_alarm_rate_max"], out


def test_a_set_stored_blue_green_red_scores_the_same_with_bands(tmp_path):
    root = _planted_set(tmp_path / "rgb", n=2)
    bgr = tmp_path / "bgr"
    for sub in ("A", "B", "label"):
        (bgr / sub).mkdir(parents=True)
        for p in (root / sub).iterdir():
            im = Image.open(p)
            (im if sub == "label" else Image.fromarray(np.asarray(im)[..., ::-1].copy())).save(bgr / sub / p.name)

    def scores(*args):
        res = CliRunner().invoke(main, ["evaluate", *args, "--gsd", "0.5", "--json", "--method", "roofs"])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    want = scores(str(root))
    got = scores(str(bgr), "--bands", "3,2,1")
    assert want["f1"] > 0.5
    assert {k: got[k] for k in ("f1", "precision", "recall")} == {k: want[k] for k in ("f1", "precision", "recall")}
    res = CliRunner().invoke(main, ["evaluate", str(bgr), "--gsd", "0.5", "--bands", "3,2,4"])
    assert res.exit_code == 2 and "does not fit a picture" in res.output
