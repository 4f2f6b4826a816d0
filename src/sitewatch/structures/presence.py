"""Per-date building presence: a small convolutional network, run in NumPy.

Each date is judged on its own: how likely each pixel is to lie on a building's roof. The
network is a four-level U-Net (about 390 000 weights, :data:`MODEL_FILE`) trained on
single-date building outlines from six regions (Zanzibar, Nairobi, Kampala, Kathmandu,
the Philippines, Houston) and on labelled new buildings, with the imagery resampled to
satellite pixels and varied as sensors vary it (blur, colour casts, gamma, haze, noise,
8 and 16 bits). ``training/`` in the source tree holds the scripts that made it and the
terms of the data (``training/README.md``).

Inference is plain NumPy (each 3 x 3 convolution is nine matrix products on one padded
array; batch normalisation is folded into the weights), so no deep-learning framework is
needed at run time, nothing is fetched, and the result is the same on every run. Scenes are run
in tiles with a halo, so memory stays bounded.

Pure: arrays in, arrays out.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
from scipy import ndimage

# The weights, shipped in the package (float32, batch normalisation folded in).
MODEL_FILE = "presence-v1.npz"
# Pixel sizes the network was trained at (metres): finer images are averaged down to the
# finest, coarser ones are refused by the methods that read presence.
TRAINED_PIXEL_RANGE_M = (0.3, 1.2)
# The network pools four times, so its input sides must be multiples of 16.
DEPTH_MULTIPLE = 16
# Tiles of this many pixels a side, each read with this many pixels of context around it:
# about a third of the network's receptive field is enough for the answer not to change.
TILE_PX = 512
HALO_PX = 64
# Input normalisation: the scene's luminance percentiles (one offset and scale for all
# bands, so colour ratios survive; 8-bit, 16-bit and reflectance give the same input).
NORMALISE_PERCENTILES = (2.0, 50.0, 98.0)
# Percentiles are taken on at most this many pixels (a regular subsample).
NORMALISE_SAMPLE = 200_000


@lru_cache(maxsize=1)
def _weights() -> dict[str, np.ndarray]:
    with resources.files("sitewatch.models").joinpath(MODEL_FILE).open("rb") as f:
        with np.load(f) as npz:
            return {k: npz[k] for k in npz.files}


def normalise(
    rgb: np.ndarray, valid: np.ndarray | None = None, *, levels: tuple[float, float, float] | None = None
) -> np.ndarray:
    """Bands 0-2 of a (B, M, N) image with the scene's median luminance at 0 and its 2-98 % spread at 1.

    Parameters
    ----------
    rgb : ndarray of shape (B, M, N)
        Bands 0-2 are red, green and blue.
    valid : ndarray of bool, shape (M, N), optional
        Pixels the statistics are taken over.
    levels : (float, float, float), optional
        The luminance at :data:`NORMALISE_PERCENTILES` where the caller has it (a block of a
        larger scene is normalised as the scene is); by default taken over ``valid``.

    Returns
    -------
    ndarray of shape (3, M, N), float32
    """
    rgb = rgb[:3].astype(np.float32)
    lum = rgb.mean(axis=0)
    if levels is None:
        levels = luminance_levels(lum, valid)
    low, median, high = levels
    return ((rgb - median) / max(float(high - low), 1e-6)).astype(np.float32)


def luminance_levels(lum: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float, float]:
    """Luminance (band mean of bands 0-2) at :data:`NORMALISE_PERCENTILES` over ``valid``, on a regular subsample."""
    sample = lum[valid] if valid is not None and valid.any() else lum.ravel()
    if sample.size > NORMALISE_SAMPLE:
        sample = sample[:: sample.size // NORMALISE_SAMPLE]
    low, median, high = np.percentile(sample, NORMALISE_PERCENTILES)
    return float(low), float(median), float(high)


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Same-padded convolution of (C, H, W) by (O, C, k, k) as k * k matrix products.

    The padded image is flattened row by row, so each of the k * k shifted inputs is a
    slice of that one array (a matrix BLAS reads in place, no copy) and the products are
    taken on rows as wide as the padded image; the extra columns are dropped at the end.
    Memory traffic, not arithmetic, bounds the narrow layers: this runs 1.6-1.8x faster
    than copying each shifted input (measured on 640 x 640 tiles).
    """
    out_channels, channels, k, _ = weight.shape
    rows, cols = x.shape[1:]
    if k == 1:
        out = (weight[:, :, 0, 0] @ x.reshape(channels, -1)).reshape(out_channels, rows, cols)
    else:
        pad = k // 2
        width = cols + 2 * pad
        # one row more at the bottom, so the last shifted slice stays inside the array
        flat = np.pad(x, ((0, 0), (pad, pad + 1), (pad, pad))).reshape(channels, -1)
        n = rows * width
        out = weight[:, :, 0, 0] @ flat[:, :n]
        for dy in range(k):
            for dx in range(k):
                if dy or dx:
                    offset = dy * width + dx
                    out += weight[:, :, dy, dx] @ flat[:, offset : offset + n]
        out = out.reshape(out_channels, rows, width)[:, :, :cols]
    return np.ascontiguousarray(out + bias[:, None, None], dtype=np.float32)


def _upsample2(x: np.ndarray) -> np.ndarray:
    """Bilinear doubling of (C, H, W) with half-pixel centres (as the training framework does)."""

    def along(a: np.ndarray, axis: int) -> np.ndarray:
        n = a.shape[axis]
        before = np.take(a, np.r_[0, np.arange(n - 1)], axis=axis)
        after = np.take(a, np.r_[np.arange(1, n), n - 1], axis=axis)
        doubled = np.stack([0.25 * before + 0.75 * a, 0.75 * a + 0.25 * after], axis=axis + 1)
        shape = list(a.shape)
        shape[axis] = 2 * n
        return doubled.reshape(shape)

    return along(along(x, 1), 2).astype(np.float32)


def _pool2(x: np.ndarray) -> np.ndarray:
    channels, rows, cols = x.shape
    return x.reshape(channels, rows // 2, 2, cols // 2, 2).max(axis=(2, 4))


def _block(weights: dict[str, np.ndarray], prefix: str, x: np.ndarray) -> np.ndarray:
    x = np.maximum(_conv(x, weights[f"{prefix}.0.w"], weights[f"{prefix}.0.b"]), 0)
    return np.maximum(_conv(x, weights[f"{prefix}.3.w"], weights[f"{prefix}.3.b"]), 0)


def _logits(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The U-Net on one (3, H, W) tile whose sides are multiples of :data:`DEPTH_MULTIPLE`."""
    levels = 1 + max(int(k.split(".")[1]) for k in weights if k.startswith("enc."))
    skips = []
    for level in range(levels):
        x = _block(weights, f"enc.{level}", x)
        if level < levels - 1:
            skips.append(x)
            x = _pool2(x)
    for level in reversed(range(levels - 1)):
        x = _block(weights, f"dec.{level}", np.concatenate([skips[level], _upsample2(x)], axis=0))
    return _conv(x, weights["head.w"], weights["head.b"])[0]


def presence_logits(normalised: np.ndarray, *, weights: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The network's log-odds of a building at each pixel of a :func:`normalise`\\ d image, tile by tile.

    Returns
    -------
    ndarray of shape (M, N), float32
    """
    weights = _weights() if weights is None else weights
    _, rows, cols = normalised.shape
    out = np.zeros((rows, cols), np.float32)
    for r in range(0, rows, TILE_PX):
        for c in range(0, cols, TILE_PX):
            r0, c0 = max(r - HALO_PX, 0), max(c - HALO_PX, 0)
            r1, c1 = min(r + TILE_PX + HALO_PX, rows), min(c + TILE_PX + HALO_PX, cols)
            tile = normalised[:, r0:r1, c0:c1]
            pad_rows, pad_cols = (-tile.shape[1]) % DEPTH_MULTIPLE, (-tile.shape[2]) % DEPTH_MULTIPLE
            mode = "reflect" if min(tile.shape[1:]) > max(pad_rows, pad_cols) else "edge"
            tile = np.pad(tile, ((0, 0), (0, pad_rows), (0, pad_cols)), mode=mode)
            logits = _logits(weights, tile)
            r_end, c_end = min(r + TILE_PX, rows), min(c + TILE_PX, cols)
            out[r:r_end, c:c_end] = logits[r - r0 : r_end - r0, c - c0 : c_end - c0]
    return out


def building_presence(
    image: np.ndarray,
    *,
    pixel_size_m: float,
    valid: np.ndarray | None = None,
    levels: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """Probability that each pixel lies on a building, from one date's image.

    Parameters
    ----------
    image : ndarray of shape (B, M, N)
        Bands 0-2 red, green, blue (the caller maps the bands).
    pixel_size_m : float
        Metres per pixel. Images finer than :data:`TRAINED_PIXEL_RANGE_M` are averaged
        down to its finest size first, and the answer is brought back to the input grid.
    valid : ndarray of bool, shape (M, N), optional
        Pixels with data; the others read 0.
    levels : (float, float, float), optional
        A whole scene's luminance levels for :func:`normalise`, when ``image`` is a block of it.

    Returns
    -------
    ndarray of shape (M, N), float32, 0 to 1
    """
    finest = TRAINED_PIXEL_RANGE_M[0]
    factor = int(np.floor(finest / pixel_size_m)) if pixel_size_m < finest else 1
    data = image[:3].astype(np.float32)
    if valid is not None and not valid.all() and valid.any():
        # pixels without data take their nearest valid neighbour's colour: a border of any one
        # colour would make a straight edge, which the network reads as a roof's
        nearest = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
        data = data[:, nearest[0], nearest[1]]
    mask = valid
    if factor > 1:
        rows, cols = (data.shape[1] // factor) * factor, (data.shape[2] // factor) * factor
        data = data[:, :rows, :cols].reshape(3, rows // factor, factor, cols // factor, factor).mean(axis=(2, 4))
        if valid is not None:
            mask = valid[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor).all(axis=(1, 3))
    probability = 1.0 / (1.0 + np.exp(-presence_logits(normalise(data, mask, levels=levels))))
    if factor > 1:
        zoom = (image.shape[1] / probability.shape[0], image.shape[2] / probability.shape[1])
        probability = ndimage.zoom(probability, zoom, order=1, grid_mode=True, mode="nearest")
        probability = probability[: image.shape[1], : image.shape[2]]
    if valid is not None:
        probability = np.where(valid, probability, 0)
    return probability.astype(np.float32)
