"""Small U-Net for per-date building presence; torch for training, and the input normalisation shared with inference."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

CHANNELS = (8, 16, 32, 64, 96)


def normalise(rgb: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(3, M, N) any scale -> float32 with the scene's luminance median at 0 and its 2-98 % spread at 1.

    The same offset and scale for every band, so colour ratios survive; 8-bit, 16-bit or
    reflectance data give the same input.
    """
    rgb = rgb.astype(np.float32)
    lum = rgb.mean(0)
    sample = lum[valid] if valid is not None and valid.any() else lum.ravel()
    if sample.size > 200_000:
        sample = sample[:: sample.size // 200_000]
    lo, med, hi = np.percentile(sample, [2, 50, 98])
    return ((rgb - med) / max(hi - lo, 1e-6)).astype(np.float32)


def block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, cin=3, ch=CHANNELS):
        super().__init__()
        self.enc = nn.ModuleList([block(cin if i == 0 else ch[i - 1], c) for i, c in enumerate(ch)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False) for _ in ch[:-1]])
        self.dec = nn.ModuleList([block(ch[i] + ch[i + 1], ch[i]) for i in range(len(ch) - 1)])
        self.head = nn.Conv2d(ch[0], 1, 1)

    def forward(self, x):
        skips = []
        for i, e in enumerate(self.enc):
            x = e(x)
            if i < len(self.enc) - 1:
                skips.append(x)
                x = self.pool(x)
        for i in reversed(range(len(self.dec))):
            x = self.up[i](x)
            x = self.dec[i](torch.cat([skips[i], x], 1))
        return self.head(x)
