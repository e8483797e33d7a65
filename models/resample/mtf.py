"""MTF-matched Gaussian filters, as the reference toolbox builds them.

Each band gets a 41x41 FIR filter whose frequency response is a Gaussian that
equals the sensor's MTF gain at the Nyquist frequency of the coarse grid
(fcut = 1/ratio). The recipe is the toolbox's ``genMTF``/``MTF``:
``sigma = sqrt(((N-1)*(fcut/2))^2 / (-2 ln GNyq))``; ``fspecial('gaussian')``
normalised to a peak of 1 is the desired frequency response, designed by
frequency sampling (``fsamp2``) and windowed by the 1-D Kaiser window
(beta 0.5, MATLAB's ``kaiser(N)`` default) rotated into a circular 2-D window
(``fwind1``, Huang's method). The kernel is not renormalised: it sums to about
0.999. Filtering is MATLAB ``imfilter(..., 'replicate')``.

Because the frequency grid of ``fsamp2`` has spacing 1/N cycles/pixel, the
``(N-1)`` in the toolbox's sigma puts the gain exactly at (N-1)/(2*ratio*N)
cycles/pixel (0.1220 for ratio 4), 2.4 % below the true coarse Nyquist
1/(2*ratio); at 1/(2*ratio) the response is about GNyq**1.05. That is the
toolbox's convention and is kept.

``lpfilter_gauss`` is the toolbox's ``LPfilterGauss`` (gain 0.3 for every
band, and ``N`` instead of ``N-1`` in sigma), used by the BT-H and MTF-GLP-HPM
baselines to low-pass the PAN before regressions and equalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

KERNEL_SIZE = 41
KAISER_BETA = 0.5
LP_GAUSS_GAIN = 0.3
# From this many output pixels per band on, filtering uses an FFT product
# instead of a direct 41x41 convolution (same result to ~1e-12 relative in
# float64). On 2 CPU cores the FFT is already 2x (float32) to 50x (float64)
# faster at 32x32 and 10x / 500x at 512x512.
FFT_MIN_PIXELS = 32 * 32


def _fspecial_gaussian(n: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', n, sigma)``: unit sum, tiny tails zeroed."""
    t = np.arange(n, dtype=np.float64) - (n - 1) / 2
    h = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2.0 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0.0
    return h / h.sum()


def _rotated_kaiser(n: int, beta: float) -> np.ndarray:
    """The 2-D window ``fwind1`` builds from a 1-D one by rotation (Huang's method).

    The 1-D window is sampled on t in [-1, 1]; the 2-D window is the 1-D one
    linearly interpolated at radius sqrt(t1^2 + t2^2), zero outside the unit circle.
    """
    t = (np.arange(n, dtype=np.float64) - (n - 1) / 2) * (2.0 / (n - 1))
    r = np.sqrt(t[:, None] ** 2 + t[None, :] ** 2)
    w = np.interp(r, t, np.kaiser(n, beta))
    w[r > t[-1]] = 0.0
    return w


def _fsamp2(hd: np.ndarray) -> np.ndarray:
    """MATLAB ``fsamp2(Hd)``: centred inverse DFT of a centred frequency response."""
    h = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(hd)))
    return np.rot90(h.real, 2)


@lru_cache(maxsize=128)
def _design(gain: float, ratio: int, n: int, width: int) -> np.ndarray:
    if not 0.0 < gain < 1.0:
        raise ValueError(f"MTF gain {gain} must lie in (0, 1)")
    fcut = 1.0 / ratio
    sigma = np.sqrt((width * fcut / 2) ** 2 / (-2.0 * np.log(gain)))
    hd = _fspecial_gaussian(n, sigma)
    hd = hd / hd.max()
    h = _fsamp2(hd) * _rotated_kaiser(n, KAISER_BETA)
    h.setflags(write=False)
    return h


def _check_ratio(ratio: int) -> int:
    if int(ratio) != ratio or ratio < 2:
        raise ValueError(f"ratio must be an integer >= 2, got {ratio!r}")
    return int(ratio)


def mtf_kernels(gains: Sequence[float], ratio: int, n: int = KERNEL_SIZE) -> np.ndarray:
    """One n x n MTF-matched kernel per gain, shape (len(gains), n, n), float64."""
    ratio = _check_ratio(ratio)
    return np.stack([_design(float(g), ratio, n, n - 1) for g in gains])


def lp_gauss_kernel(ratio: int, n: int = KERNEL_SIZE) -> np.ndarray:
    """The toolbox's ``LPfilterGauss`` kernel (gain 0.3, sigma with N not N-1), (n, n)."""
    return np.array(_design(LP_GAUSS_GAIN, _check_ratio(ratio), n, n))


def _good_fft_size(n: int) -> int:
    """Smallest 2,3,5-smooth integer >= n (fast sizes for pocketfft/cuFFT)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def filter_replicate(x: torch.Tensor, kernels: np.ndarray | torch.Tensor,
                     method: str = "auto") -> torch.Tensor:
    """Correlate each band with its own odd-sized kernel, replicate borders (``imfilter``).

    Args:
        x: (B, C, H, W) floating image(s).
        kernels: (C, k, k) kernels, k odd.
        method: "direct" (conv2d), "fft" (FFT product) or "auto" (FFT above
            ``FFT_MIN_PIXELS`` output pixels per band).
    """
    k = torch.as_tensor(np.array(kernels, dtype=np.float64)).to(x.device, x.dtype)
    c, kh, kw = k.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernels must have odd sizes, got {kh}x{kw}")
    if x.shape[1] != c:
        raise ValueError(f"{x.shape[1]} bands but {c} kernels")
    ph, pw = kh // 2, kw // 2
    h, w = x.shape[-2:]
    if method == "auto":
        method = "fft" if h * w >= FFT_MIN_PIXELS else "direct"
    xp = F.pad(x, (pw, pw, ph, ph), mode="replicate")
    if method == "direct":
        return F.conv2d(xp, k.unsqueeze(1), groups=c)
    if method != "fft":
        raise ValueError(f"method must be 'auto', 'direct' or 'fft', got {method!r}")
    # Circular convolution of the padded image with the flipped kernel equals
    # the correlation on the valid region [kh-1:, kw-1:] (no wrap-around reaches it).
    sh, sw = _good_fft_size(xp.shape[-2]), _good_fft_size(xp.shape[-1])
    fx = torch.fft.rfft2(xp, s=(sh, sw))
    fk = torch.fft.rfft2(torch.flip(k, dims=(-2, -1)), s=(sh, sw))
    y = torch.fft.irfft2(fx * fk, s=(sh, sw))
    return y[..., kh - 1:kh - 1 + h, kw - 1:kw - 1 + w].contiguous()


def _batched(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if x.dim() not in (3, 4):
        raise ValueError(f"expected a (C, H, W) or (B, C, H, W) image, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    return (x.unsqueeze(0), True) if x.dim() == 3 else (x, False)


def mtf_filter(x: torch.Tensor, gains: Sequence[float], ratio: int, method: str = "auto") -> torch.Tensor:
    """Low-pass each band with its MTF-matched kernel, replicate borders.

    Args:
        x: image(s), (C, H, W) or (B, C, H, W); integer input is promoted to float64.
        gains: MTF gain at Nyquist per band (a PAN filter passes one gain).
        ratio: resolution ratio the filter prepares a decimation by.
        method: see ``filter_replicate``.
    """
    xb, squeeze = _batched(x)
    if xb.shape[1] != len(gains):
        raise ValueError(f"{xb.shape[1]} bands but {len(gains)} MTF gains; give one gain per band")
    y = filter_replicate(xb, mtf_kernels(gains, ratio), method)
    return y.squeeze(0) if squeeze else y


def lpfilter_gauss(x: torch.Tensor, ratio: int, method: str = "auto") -> torch.Tensor:
    """The toolbox's ``LPfilterGauss``: every band low-passed with the gain-0.3 kernel."""
    xb, squeeze = _batched(x)
    k = np.broadcast_to(lp_gauss_kernel(ratio), (xb.shape[1], KERNEL_SIZE, KERNEL_SIZE))
    y = filter_replicate(xb, k, method)
    return y.squeeze(0) if squeeze else y
