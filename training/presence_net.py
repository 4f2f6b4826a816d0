"""Small U-Net for per-date building presence; torch for training, and the input normalisation shared with inference."""

from __future__ import annotations

import torch
from torch import nn

# the network's input, exactly as sitewatch prepares it at run time
from sitewatch.structures.presence import normalise  # noqa: F401 (re-exported for train_presence)

CHANNELS = (8, 16, 32, 64, 96)


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
