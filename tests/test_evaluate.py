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


# Floors: the targets (F1 >= 0.55 on levir-cd-1024, >= 0.50 on levir-cd-256) a hair
# under the measured 0.555 / 0.510, and false alarms on Harvey held well under its 2 % (0.08 %
# measured); a change that lowers any of them fails.
FLOORS = {
    "levir-cd-1024": {"f1": 0.55, "precision": 0.5},
    "levir-cd-256": {"f1": 0.50, "precision": 0.65},
    "xbd-harvey-nochange": {"false_alarm_rate_max": 0.005},
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
    if "false_alarm_rate_max" in floor:
        assert out["false_alarm_rate"] <= floor["false_alarm_rate_max"], out
