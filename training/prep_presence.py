"""Training scenes for the building-presence network, as npz files in ``training/cache/presence/``.

* The single-date building chips (``buildings/``: hotosm regions 1 Zanzibar, 3 Kathmandu,
  4 Philippines, 5 Nairobi; Kampala from OpenAerialMap) mosaicked into larger scenes and
  resampled to 0.3 m.
* Harvey (xBD) pre-event images with their footprints, 0.5 m. Not the post-event images: they
  are misregistered against the footprints by up to ~15 m and taught the network wrong roofs.
* LEVIR-CD pairs (0.5 m) as partial labels: on labelled change pixels the after image shows a
  building and the before image none; other pixels carry no weight (``weight``).

    python training/prep_presence.py     # data from ../shared/data, or $SITEWATCH_REALDATA
"""

import json
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
D = Path(os.environ.get("SITEWATCH_REALDATA", ROOT.parent / "shared" / "data"))  # as tests/conftest.py
OUT = ROOT / "training" / "cache" / "presence"
OUT.mkdir(parents=True, exist_ok=True)
BASE_GSD = 0.3
REGION_NAMES = {1: "zanzibar", 3: "kathmandu", 4: "philippines", 5: "nairobi"}


def tile_gsd(lat, z):
    return 156543.03392 * math.cos(math.radians(lat)) / 2**z


def clusters(keys):
    keys = set(keys)
    seen = set()
    out = []
    for k in sorted(keys):
        if k in seen:
            continue
        stack = [k]
        comp = []
        seen.add(k)
        while stack:
            x, y = stack.pop()
            comp.append((x, y))
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    n = (x + dx, y + dy)
                    if n in keys and n not in seen:
                        seen.add(n)
                        stack.append(n)
        out.append(comp)
    return out


def resize(arr, factor, resample):
    h, w = arr.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if arr.ndim == 3:
        return np.stack(
            [
                np.asarray(Image.fromarray(arr[..., c].astype(np.float32)).resize(size, resample))
                for c in range(arr.shape[2])
            ],
            -1,
        )
    return np.asarray(Image.fromarray(arr.astype(np.float32)).resize(size, resample))


def save_mosaics(region, chips):
    """chips: dict (x,y,z) -> (img path, mask path, lat)."""
    byz = defaultdict(dict)
    for (x, y, z), v in chips.items():
        byz[z][(x, y)] = v
    n = 0
    for z, tiles in byz.items():
        for comp in clusters(tiles):
            xs = [c[0] for c in comp]
            ys = [c[1] for c in comp]
            x0, y0 = min(xs), min(ys)
            W, H = (max(xs) - x0 + 1) * 256, (max(ys) - y0 + 1) * 256
            img = np.zeros((H, W, 3), np.float32)
            msk = np.zeros((H, W), np.float32)
            val = np.zeros((H, W), np.float32)
            lat = None
            for x, y in comp:
                ip, mp, lat = tiles[(x, y)]
                a = np.asarray(Image.open(ip).convert("RGB"), np.float32)
                m = np.asarray(Image.open(mp)).astype(np.float32)
                m = (m > 0).astype(np.float32)
                if a.shape[:2] != (256, 256):
                    continue
                r, c = (y - y0) * 256, (x - x0) * 256
                img[r : r + 256, c : c + 256] = a
                msk[r : r + 256, c : c + 256] = m
                val[r : r + 256, c : c + 256] = 1
            gsd = tile_gsd(lat, z)
            f = gsd / BASE_GSD
            if f < 1:
                img = resize(img, f, Image.BOX)
                msk = resize(msk, f, Image.BOX)
                val = resize(val, f, Image.BOX)
            if min(msk.shape) < 16:
                continue
            np.savez_compressed(
                OUT / f"{region}_z{z}_{n:03d}.npz",
                image=img.astype(np.float32),
                mask=msk.astype(np.float32),
                valid=(val > 0.99),
                gsd=np.float32(max(gsd, BASE_GSD)),
            )
            n += 1
    print(region, n, "mosaics")


tiles = json.load(open(D / "buildings/hotosm-drone/tiles.json"))
for reg, rname in REGION_NAMES.items():
    chips = {}
    for name, v in tiles.items():
        if v["region"] != reg:
            continue
        _, x, y, z = name.split("-")
        lat = (v["bounds_lonlat"][1] + v["bounds_lonlat"][3]) / 2
        chips[(int(x), int(y), int(z))] = (
            D / f"buildings/hotosm-drone/image/{name}.png",
            D / f"buildings/hotosm-drone/mask/{name}.png",
            lat,
        )
    save_mosaics(rname, chips)


chips = {}
for p in sorted((D / "buildings/kampala-oam/image").glob("*.tif")):
    _, x, y, z = p.stem.split("-")
    with rasterio.open(p) as src:
        b = src.bounds
    chips[(int(x), int(y), int(z))] = (p, D / "buildings/kampala-oam/mask" / p.name, (b.bottom + b.top) / 2)
save_mosaics("kampala", chips)

for p in sorted((D / "realcd/xbd-harvey-nochange/A").glob("*.png")):
    m = (np.asarray(Image.open(D / "realcd/xbd-harvey-nochange/buildings" / p.name)) > 127).astype(np.float32)
    for date in "A":
        a = np.asarray(Image.open(D / f"realcd/xbd-harvey-nochange/{date}" / p.name).convert("RGB"), np.float32)
        np.savez_compressed(
            OUT / f"harvey_{date}_{p.stem[-3:]}.npz", image=a, mask=m, valid=np.ones(m.shape, bool), gsd=np.float32(0.5)
        )
print("harvey done")

for name in ("levir-cd-256", "levir-cd-1024"):
    tag = "levir" + name.rsplit("-", 1)[1]
    for p in sorted((D / "realcd" / name / "label").glob("*.png")):
        label = (np.asarray(Image.open(p).convert("L")) > 127).astype(np.float32)
        for date, mask in (("A", np.zeros_like(label)), ("B", label)):
            a = np.asarray(Image.open(D / "realcd" / name / date / p.name).convert("RGB"), np.float32)
            np.savez_compressed(
                OUT / f"{tag}_{date}_{p.stem}.npz",
                image=a,
                mask=mask,
                weight=label,
                valid=np.ones(label.shape, bool),
                gsd=np.float32(0.5),
            )
print("levir done")
