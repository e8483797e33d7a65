"""MATLAB ``imresize`` with the bicubic kernel, for PAN degradation.

The reference toolbox degrades PAN with ``imresize(I_PAN, 1/ratio)``: MATLAB's
default bicubic kernel (Keys, a = -0.5) and, when shrinking, antialiasing,
which stretches the kernel by 1/scale (h(x) = scale * cubic(scale * x), width
4/scale). Published reduced-resolution numbers depend on these exact weights,
which differ from ``torch.nn.functional.interpolate`` (no antialias with the
same centring, other border rule). This module reproduces MATLAB's
``contributions``:

* output pixel j (1-based) maps to input coordinate u = j/scale + (1 - 1/scale)/2;
* weights are kernel values at the distances to the ceil(width) + 2 nearest
  input pixels, normalised to sum to 1;
* out-of-range input indices are mirrored half-point ("symmetric": the border
  pixel is repeated), exactly as MATLAB's ``aux = [1:n, n:-1:1]`` indexing;
* the output size is ceil(scale * size).

The resampling is separable and is applied to rows then columns as gathers,
so memory stays linear in the image size; it works on (C, H, W) or batched
(B, C, H, W) tensors on any device.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


def cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (Keys, a = -0.5), support [-2, 2]."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def output_length(in_len: int, scale: float) -> int:
    """MATLAB's ceil(scale * size), guarded against 1/3-style float round-off."""
    return max(1, math.ceil(in_len * scale - 1e-9))


@lru_cache(maxsize=64)
def contributions(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Input indices (0-based) and weights per output pixel, each (out_len, P).

    Mirrors MATLAB ``imresize``'s ``contributions`` for the bicubic kernel.
    """
    if antialias and scale < 1:
        width = 4.0 / scale

        def kernel(d: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * d)
    else:
        width = 4.0
        kernel = cubic
    j = np.arange(1, out_len + 1, dtype=np.float64)
    u = j / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2)
    p = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(p, dtype=np.float64)[None, :]
    w = kernel(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    # Half-point mirror of out-of-range indices (MATLAB: aux = [1:n, n:-1:1]).
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(w != 0, axis=0)  # MATLAB drops all-zero weight columns
    idx, w = idx[:, keep], w[:, keep]
    idx.setflags(write=False)
    w.setflags(write=False)
    return idx, w


def _resize_dim(x: torch.Tensor, dim: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    idx, w = contributions(x.shape[dim], out_len, float(scale), bool(antialias))
    idx_t = torch.from_numpy(np.array(idx)).to(x.device)
    w_t = torch.from_numpy(np.array(w)).to(x.device, x.dtype)
    shape = [1] * x.dim()
    shape[dim] = out_len
    y = None
    for k in range(idx.shape[1]):
        term = torch.index_select(x, dim, idx_t[:, k]) * w_t[:, k].reshape(shape)
        y = term if y is None else y + term
    return y


def imresize(x: torch.Tensor, scale: float, *, antialias: bool = True) -> torch.Tensor:
    """Resize the last two dimensions like MATLAB ``imresize(x, scale)`` (bicubic).

    Args:
        x: (C, H, W) or (B, C, H, W) image(s); integer input is promoted to float64
            (MATLAB would round back to the integer class; we keep floats).
        scale: the same factor for both axes, e.g. ``1 / ratio`` to degrade PAN.
        antialias: MATLAB's default ``true``: widen the kernel when shrinking.

    Returns:
        The resized image(s), size ceil(scale * H) x ceil(scale * W).
    """
    if x.dim() not in (3, 4):
        raise ValueError(f"expected a (C, H, W) or (B, C, H, W) image, got shape {tuple(x.shape)}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    h, w = x.shape[-2:]
    # MATLAB resizes along the dimension with the smaller scale first; with
    # one scale for both that is rows (dim -2) first.
    y = _resize_dim(x, x.dim() - 2, output_length(h, scale), scale, antialias)
    return _resize_dim(y, x.dim() - 1, output_length(w, scale), scale, antialias)
