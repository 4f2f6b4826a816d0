"""Co-registration on real texture (LEVIR-CD tiles from ../shared/data), and ``sitewatch coreg``.

Tiles are written as GeoTIFFs on one grid; shifted copies are resampled from the whole tile
with cubic splines and cropped to the centre, so no edge is invented.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_tif
from PIL import Image
from scipy import ndimage

from sitewatch.cli import main
from sitewatch.coreg import estimate_shift
from sitewatch.errors import AlignmentError

CROP = 768


def _tile(realdata, name: str, folder: str = "A") -> np.ndarray:
    path = realdata / "realcd" / "levir-cd-1024" / folder / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    return np.moveaxis(np.asarray(Image.open(path).convert("RGB"), np.float32), -1, 0)


def _centre(img: np.ndarray) -> np.ndarray:
    o = (img.shape[1] - CROP) // 2
    return img[:, o : o + CROP, o : o + CROP]


def _displaced(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Content at (col, row) moved to (col + dx, row + dy), cubic splines, then centre crop."""
    return _centre(np.stack([ndimage.shift(b, (dy, dx), order=3, mode="reflect") for b in img]))


def _degraded(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-band gain, offset and gamma, a slight blur and sensor noise."""
    gain = rng.uniform(0.8, 1.2, 3)[:, None, None]
    offset = rng.uniform(-10, 10, 3)[:, None, None]
    out = 255 * (np.clip(img, 0, 255) / 255) ** rng.uniform(0.85, 1.15) * gain + offset
    out = np.stack([ndimage.gaussian_filter(b, 0.6) for b in out])
    return out + rng.normal(0, 2, out.shape)


SHIFTS = [(0.25, -0.4), (1.3, 2.7), (-5.55, 3.1), (20.0, 15.35)]


@pytest.mark.parametrize("name", ["test_12.png", "test_102.png"])
def test_same_date_shift_within_three_hundredths(realdata, name):
    img = _tile(realdata, name)
    rng = np.random.default_rng(7)
    for dx, dy in SHIFTS:
        found = estimate_shift(_centre(img), _degraded(_displaced(img, dx, dy), rng))
        assert np.hypot(found.dx - dx, found.dy - dy) <= 0.03, (name, dx, dy, found.dx, found.dy)


@pytest.mark.parametrize("name", ["test_12.png", "test_7.png", "test_102.png"])
def test_two_dates_shift_difference_within_a_fifth(realdata, name):
    """A real before/after pair, the after image shifted by a known amount.

    test_102 is a field replaced by warehouses: most of the scene's edges are new.
    """
    before, after = _tile(realdata, name), _tile(realdata, name, "B")
    base = estimate_shift(_centre(before), _centre(after))
    for dx, dy in [(0.5, -0.3), (3.2, 1.7), (-7.6, 11.1)]:
        moved = estimate_shift(_centre(before), _displaced(after, dx, dy))
        assert np.hypot(moved.dx - base.dx - dx, moved.dy - base.dy - dy) <= 0.2, (name, dx, dy)


def test_unrelated_tiles_are_refused(realdata):
    a, b = _centre(_tile(realdata, "test_12.png")), _centre(_tile(realdata, "test_7.png", "B"))
    with pytest.raises(AlignmentError, match="no reliable shift"):
        estimate_shift(a, b)


@pytest.mark.parametrize(
    "a_name, b_name",
    [
        ("test_121_0768_0256.png", "train_36_0512_0512.png"),
        ("val_27_0000_0256.png", "test_7_0256_0512.png"),
        ("test_2_0000_0000.png", "test_55_0256_0000.png"),
    ],
)
def test_unrelated_small_crops_are_refused(realdata, a_name, b_name):
    """256-px crops hold few edges: unrelated ones can peak as distinctly as 1.65x (these three)."""
    folder = realdata / "realcd" / "levir-cd-256"
    if not folder.exists():
        pytest.skip(f"{folder} not found")
    load = lambda p: np.moveaxis(np.asarray(Image.open(p).convert("RGB"), np.float32), -1, 0)  # noqa: E731
    with pytest.raises(AlignmentError, match="no reliable shift"):
        estimate_shift(load(folder / "A" / a_name), load(folder / "B" / b_name))


def test_coreg_cli_json_and_corrected_copy(realdata, tmp_path):
    img = _tile(realdata, "test_12.png")
    ref = write_tif(tmp_path / "ref.tif", np.clip(_centre(img), 0, 255), pixel=0.5)
    mov = write_tif(tmp_path / "mov.tif", np.clip(_displaced(img, 3.3, -1.8), 0, 255), pixel=0.5)
    runner = CliRunner()
    res = runner.invoke(main, ["coreg", str(ref), str(mov), "--json", "-o", str(tmp_path / "fixed.tif")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # the documented convention: MOVING's content sits at (col + dx, row + dy)
    assert np.allclose(out["shift_px"], [3.3, -1.8], atol=0.05)  # uint8 rounding of the copy costs a little
    assert np.allclose(out["shift_m"], [1.65, -0.9], atol=0.03)
    assert out["windows_valid"] >= 3 and 0 < out["confidence"] <= 1
    # the corrected copy lines up with the reference (pixels untouched, geotransform edited)
    again = json.loads(runner.invoke(main, ["coreg", str(ref), str(tmp_path / "fixed.tif"), "--json"]).stdout)
    assert np.hypot(*again["shift_px"]) <= 0.05


def test_coreg_cli_refuses_unrelated_images(realdata, tmp_path):
    a = write_tif(tmp_path / "a.tif", _centre(_tile(realdata, "test_12.png")), pixel=0.5)
    b = write_tif(tmp_path / "b.tif", _centre(_tile(realdata, "test_7.png", "B")), pixel=0.5)
    res = CliRunner().invoke(main, ["coreg", str(a), str(b), "-o", str(tmp_path / "out.tif")])
    assert res.exit_code == 2 and "no reliable shift" in res.output
    assert not (tmp_path / "out.tif").exists()
