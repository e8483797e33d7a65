"""MTF-matched Gaussian filters, as the reference toolbox builds them.

Each band gets a 41x41 FIR filter whose frequency response is a Gaussian that
equals the sensor's MTF gain at the Nyquist frequency of the coarse grid
(fcut = 1/ratio). The filter is designed by frequency sampling and windowed
by a 2-D Kaiser window (beta 0.5) made by rotating the 1-D window, exactly as
MATLAB's ``fwind1``; it is not renormalised, so it sums to about 0.999.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

KERNEL_SIZE = 41
KAISER_BETA = 0.5


def _gaussian_2d(n: int, sigma: float) -> np.ndarray:
    t = np.arange(n, dtype=np.float64) - (n - 1) / 2
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return np.outer(g, g)


def _rotated_kaiser(n: int, beta: float) -> np.ndarray:
    # MATLAB fwind1: the 1-D window is sampled on [-1, 1] and rotated; outside
    # the unit circle the 2-D window is zero.
    t = np.linspace(-1.0, 1.0, n)
    r = np.hypot(*np.meshgrid(t, t))
    w = np.interp(r, t, np.kaiser(n, beta))
    w[r > 1.0] = 0.0
    return w


@lru_cache(maxsize=64)
def _kernel(gain: float, ratio: int, n: int) -> np.ndarray:
    fcut = 1.0 / ratio
    sigma = np.sqrt(((n - 1) * (fcut / 2)) ** 2 / (-2.0 * np.log(gain)))
    hd = _gaussian_2d(n, sigma)
    hd /= hd.max()
    # Frequency sampling (MATLAB fsamp2): the centred frequency response is
    # taken to the spatial domain by a centred inverse DFT.
    h = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(hd))).real
    h = np.rot90(h, 2)
    return np.ascontiguousarray(h * _rotated_kaiser(n, KAISER_BETA))


def mtf_kernels(gains: Sequence[float], ratio: int, n: int = KERNEL_SIZE) -> np.ndarray:
    """One n x n MTF-matched kernel per gain, shape (len(gains), n, n), float64."""
    return np.stack([_kernel(float(g), int(ratio), n) for g in gains])


def mtf_filter(x: torch.Tensor, gains: Sequence[float], ratio: int) -> torch.Tensor:
    """Low-pass each band with its MTF-matched kernel, replicate borders.

    Args:
        x: image(s), (C, H, W) or (B, C, H, W), any float dtype; C == len(gains).
        gains: MTF gain at Nyquist per band (a PAN filter passes one gain).
        ratio: resolution ratio the filter prepares a decimation by.
    """
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(0)
    if x.shape[1] != len(gains):
        raise ValueError(f"{x.shape[1]} bands but {len(gains)} MTF gains")
    k = torch.from_numpy(mtf_kernels(gains, ratio)).to(x.device, x.dtype).unsqueeze(1)
    pad = k.shape[-1] // 2
    xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    # imfilter is correlation; the kernels are symmetric, so it is also convolution.
    y = F.conv2d(xp, k, groups=x.shape[1])
    return y.squeeze(0) if squeeze else y
