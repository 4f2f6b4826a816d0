"""Train the building-presence U-Net on the single-date masks, with augmentation toward satellite imagery.

usage: train_presence.py OUT.pt --exclude REGION [REGION ...] --steps N [--crop PX] [--roof-recolour P]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from presence_net import UNet, normalise
from scipy import ndimage
from torch import nn

CACHE = Path(__file__).resolve().parent / "cache" / "presence"
CROP = 96  # --crop


def load(exclude, exclude_names=None):
    import re

    scenes = []
    for f in sorted(CACHE.glob("*.npz")):
        region = f.stem.split("_")[0]
        if region in exclude or (exclude_names and re.search(exclude_names, f.stem)):
            continue
        d = np.load(f)
        img = d["image"].transpose(2, 0, 1)
        weight = d["weight"] if "weight" in d.files else np.ones(d["mask"].shape, np.float32)
        scenes.append(
            dict(
                name=f.stem,
                region=region,
                image=img,
                mask=d["mask"],
                valid=d["valid"],
                gsd=float(d["gsd"]),
                weight=weight.astype(np.float32),
            )
        )
    return scenes


def resample(a, factor, resample=Image.BILINEAR):
    if abs(factor - 1) < 1e-3:
        return a
    h, w = a.shape[-2:]
    size = (max(8, round(w * factor)), max(8, round(h * factor)))
    if a.ndim == 3:
        return np.stack([np.asarray(Image.fromarray(c.astype(np.float32)).resize(size, resample)) for c in a])
    return np.asarray(Image.fromarray(a.astype(np.float32)).resize(size, resample))


def sample(scenes, rng, roof_recolour=0.0):
    """One augmented crop: image (3, CROP, CROP) normalised, mask (CROP, CROP) in 0-1."""
    regions = sorted({x["region"] for x in scenes})
    while True:
        region = regions[rng.integers(len(regions))]
        pool = [x for x in scenes if x["region"] == region]
        sizes = np.array([x["mask"].size for x in pool], float)
        s = pool[rng.choice(len(pool), p=sizes / sizes.sum())]
        target = float(np.exp(rng.uniform(np.log(0.3), np.log(1.2))))
        factor = s["gsd"] / target
        if factor > 1.0:  # never upsample the training data much: it would fake a sharpness no sensor gives
            factor = 1.0
        need = int(np.ceil(CROP / factor)) + 2
        H, W = s["mask"].shape
        if H < need or W < need:
            if H * factor < CROP * 0.5 or W * factor < CROP * 0.5:
                continue
            need = min(H, W)
        r, c = rng.integers(0, H - need + 1), rng.integers(0, W - need + 1)
        if s["valid"][r : r + need, c : c + need].mean() < 0.95:
            continue
        img = s["image"][:, r : r + need, c : c + need]
        msk = s["mask"][r : r + need, c : c + need]
        wgt = s["weight"][r : r + need, c : c + need]
        if wgt.sum() < 0.02 * wgt.size:
            continue
        img = resample(img, factor, Image.BOX)
        msk = resample(msk, factor, Image.BOX)
        wgt = resample(wgt, factor, Image.BOX)
        img, msk, wgt = img[:, :CROP, :CROP], msk[:CROP, :CROP], wgt[:CROP, :CROP]
        if img.shape[1] < CROP or img.shape[2] < CROP:
            pr, pc = CROP - img.shape[1], CROP - img.shape[2]
            img = np.pad(img, ((0, 0), (0, pr), (0, pc)), mode="reflect")
            msk = np.pad(msk, ((0, pr), (0, pc)), mode="reflect")
            wgt = np.pad(wgt, ((0, pr), (0, pc)))
        break
    if roof_recolour and rng.random() < roof_recolour:
        img = recolour_roofs(img, msk, wgt, rng)
    img = augment(img, rng)
    k = rng.integers(4)
    img, msk, wgt = np.rot90(img, k, (1, 2)), np.rot90(msk, k), np.rot90(wgt, k)
    if rng.random() < 0.5:
        img, msk, wgt = img[:, :, ::-1], msk[:, ::-1], wgt[:, ::-1]
    return normalise(np.ascontiguousarray(img)), np.ascontiguousarray(msk), np.ascontiguousarray(wgt)


def recolour_roofs(img, msk, wgt, rng):
    """Each labelled roof (a connected part of the mask) darkened or lightened, desaturated and tinted on its own.

    The drone regions' roofs are mostly bright iron and concrete; satellite suburbs have dark
    shingle among trees. Scaling each roof's own colour (soft-edged by the mask, so the outline
    stays as it was) teaches shape and context rather than one roof colour. Only labelled
    buildings are touched (weight > 0), and the ground around them is left alone.
    """
    roof = msk * (wgt > 0)
    labels, n = ndimage.label(roof > 0.5)
    if n == 0:
        return img
    # a per-pixel gain, saturation and tint field: one draw per roof, spread over its soft mask
    soft = np.clip(ndimage.gaussian_filter(roof, 0.7), 0, 1)
    nearest = ndimage.distance_transform_edt(labels == 0, return_distances=False, return_indices=True)
    owner = labels[nearest[0], nearest[1]]
    gain = np.concatenate([[1.0], np.exp(rng.uniform(np.log(0.3), np.log(1.25), n))]).astype(np.float32)
    sat = np.concatenate([[1.0], rng.uniform(0.2, 1.2, n)]).astype(np.float32)
    tint = np.concatenate([np.ones((1, 3)), rng.uniform(0.85, 1.15, (n, 3))]).astype(np.float32)
    grey = img.mean(0, keepdims=True)
    changed = (grey + (img - grey) * sat[owner][None]) * gain[owner][None] * tint[owner].transpose(2, 0, 1)
    return np.clip(img + soft[None] * (changed - img), 0, 255).astype(np.float32)


def augment(img, rng):
    """Sensor and scene variation: blur, colour cast, gamma, contrast, haze, saturation, noise, bit depth."""
    img = img.astype(np.float32) / 255.0
    if rng.random() < 0.7:
        img = ndimage.gaussian_filter(img, (0, rng.uniform(0.3, 1.3), rng.uniform(0.3, 1.3)))
    grey = img.mean(0, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.5, 1.4)  # saturation
    img = img * rng.uniform(0.85, 1.15, size=(3, 1, 1))  # colour cast
    img = np.clip(img, 0, None) ** rng.uniform(0.7, 1.4)  # gamma
    img = img * rng.uniform(0.6, 1.6) + rng.uniform(-0.05, 0.2)  # gain, offset (haze)
    img = img + rng.normal(0, rng.uniform(0, 0.02), img.shape)
    scale = 255.0 if rng.random() < 0.5 else 4095.0
    return (np.clip(img, 0, None) * scale).astype(np.float32)


def main():
    global CROP
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--exclude", nargs="*", default=[])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exclude-names", default=None, help="regex of scene names to leave out")
    ap.add_argument("--init", default=None, help="start from these weights")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--crop", type=int, default=CROP, help="training crop side (px)")
    ap.add_argument("--channels", default=None, help="U-Net widths, e.g. 8,16,32,64,96 (presence_net.CHANNELS)")
    ap.add_argument("--roof-recolour", type=float, default=0.0, help="share of crops whose roofs are recoloured")
    args = ap.parse_args()
    CROP = args.crop
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    scenes = load(set(args.exclude), args.exclude_names)
    print("regions:", sorted({s["region"] for s in scenes}), len(scenes), "scenes", flush=True)
    net = UNet(ch=tuple(int(c) for c in args.channels.split(","))) if args.channels else UNet()
    if args.init:
        net.load_state_dict(torch.load(args.init))
    print("params", sum(p.numel() for p in net.parameters()), flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    t0 = time.time()
    run = 0.0
    for step in range(args.steps):
        batch = [sample(scenes, rng, args.roof_recolour) for _ in range(args.batch)]
        x = torch.from_numpy(np.stack([b[0] for b in batch]))
        y = torch.from_numpy(np.stack([b[1] for b in batch]))[:, None]
        w = torch.from_numpy(np.stack([b[2] for b in batch]))[:, None]
        logit = net(x)
        p = torch.sigmoid(logit)
        dice = 1 - (2 * (p * y * w).sum() + 1) / ((p * w).sum() + (y * w).sum() + 1)
        loss = (nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="none") * w).sum() / w.sum().clamp(
            min=1
        ) + dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        run = 0.98 * run + 0.02 * loss.item() if step else loss.item()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step} loss {run:.3f} {time.time() - t0:.0f}s", flush=True)
    net.eval()
    torch.save(net.state_dict(), args.out)


if __name__ == "__main__":
    main()
