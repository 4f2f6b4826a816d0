"""Fold a trained network's batch normalisation into its convolutions and save float32 npz.

    python training/export_presence.py training/cache/presence.pt src/sitewatch/models/presence-v1.npz

The npz is what :mod:`sitewatch.structures.presence` reads: ``<layer>.w`` (O, C, k, k) and
``<layer>.b`` (O,) per convolution.
"""

import sys

import numpy as np
import torch

BN_EPSILON = 1e-5  # torch.nn.BatchNorm2d's default


def export(state_dict: dict, path: str) -> None:
    """Fold each convolution + batch-norm pair; save the float32 arrays in an npz."""
    sd = {k: v.detach().cpu().numpy() for k, v in state_dict.items()}
    out = {}
    convs = sorted({k.rsplit(".", 1)[0] for k in sd if k.endswith(".weight") and sd[k].ndim == 4})
    for name in convs:
        w = sd[name + ".weight"].astype(np.float64)
        # a convolution at index i inside a block is followed by its batch norm at i + 1
        prefix, _, idx = name.rpartition(".")
        bn = f"{prefix}.{int(idx) + 1}" if idx.isdigit() else ""
        if bn + ".running_mean" in sd:
            g, b, m, v = (sd[bn + s].astype(np.float64) for s in (".weight", ".bias", ".running_mean", ".running_var"))
            scale = g / np.sqrt(v + BN_EPSILON)
            out[name + ".w"] = (w * scale[:, None, None, None]).astype(np.float32)
            out[name + ".b"] = (b - m * scale).astype(np.float32)
        else:
            out[name + ".w"] = w.astype(np.float32)
            out[name + ".b"] = sd.get(name + ".bias", np.zeros(w.shape[0])).astype(np.float32)
    np.savez_compressed(path, **out)


if __name__ == "__main__":
    export(torch.load(sys.argv[1]), sys.argv[2])
