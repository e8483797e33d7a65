"""Pieces the classical baselines share: input checks, per-image statistics,
the toolbox's global regressions, MATLAB ``prctile``, bounded least squares
and the toolbox's ``LPfilterPlusDec`` (starlet low-pass + decimation).

Every statistic is taken per image (over the two spatial dimensions), so a
batch (B, C, H, W) gives the same result as its images one by one. Work is
done in float64, as MATLAB does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from crossdiff.models.resample.interp23 import interp23tap
from crossdiff.models.resample.mtf import mtf_filter
from crossdiff.models.resample.wald import check_pair, decimate, resolve_gains
from crossdiff.models.sensors import Sensor

EPS = float(np.finfo(np.float64).eps)  # MATLAB's eps, added to ratio denominators

Baseline = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Inputs:
    """Checked, batched float64 inputs of a baseline and how to return its result."""

    ms: torch.Tensor  # (B, C, h, w)
    pan: torch.Tensor  # (B, 1, H, W)
    gains: tuple[float, ...]
    pan_gain: float | None
    ratio: int
    squeeze: bool
    dtype: torch.dtype

    def finish(self, fused: torch.Tensor) -> torch.Tensor:
        fused = fused.to(self.dtype)
        return fused.squeeze(0) if self.squeeze else fused


def prepare(ms: torch.Tensor, pan: torch.Tensor, sensor: Sensor | str, ratio: int | None) -> Inputs:
    """Validate (ms, pan, sensor, ratio) at the point of entry and batch them."""
    if not isinstance(ms, torch.Tensor) or not isinstance(pan, torch.Tensor):
        raise TypeError("ms and pan must be torch tensors")
    if ms.dim() not in (3, 4):
        raise ValueError(f"ms must be (C, h, w) or (B, C, h, w), got shape {tuple(ms.shape)}")
    gains, pan_gain, ratio = resolve_gains(sensor, ms.shape[-3], ratio)
    check_pair(ms, pan, ratio)
    if ratio not in (2, 4, 8):
        raise ValueError(f"the baselines interpolate with the 23-tap filter: ratio must be 2, 4 or 8, "
                         f"got {ratio}")
    dtype = ms.dtype if ms.is_floating_point() else torch.float64
    squeeze = ms.dim() == 3
    ms64, pan64 = ms.to(torch.float64), pan.to(torch.float64)
    if squeeze:
        ms64, pan64 = ms64.unsqueeze(0), pan64.unsqueeze(0)
    return Inputs(ms64, pan64, gains, pan_gain, ratio, squeeze, dtype)


# ---------------------------------------------------------------- statistics


def mean2(x: torch.Tensor) -> torch.Tensor:
    """Per-image, per-band mean, kept as (B, C, 1, 1)."""
    return x.mean(dim=(-2, -1), keepdim=True)


def std2(x: torch.Tensor) -> torch.Tensor:
    """Per-image, per-band standard deviation (N-1, as MATLAB ``std2``)."""
    return x.flatten(-2).std(dim=-1, keepdim=True).unsqueeze(-1)


def cov2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image, per-band covariance (N-1, as MATLAB ``cov``), (B, C, 1, 1)."""
    n = a.shape[-1] * a.shape[-2]
    return ((a - mean2(a)) * (b - mean2(b))).sum(dim=(-2, -1), keepdim=True) / (n - 1)


def lstsq_global(columns: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Global least squares ``columns \\ target`` per image (the toolbox's ``estimation_alpha``).

    Args:
        columns: (B, K, H, W), one regressor per channel.
        target: (B, 1, H, W).

    Returns:
        (B, K) coefficients, solved through the equilibrated Gram matrix
        (minimum-norm when the regressors are degenerate).
    """
    # The K x K system is solved on the CPU: the rank-revealing driver exists only there.
    gram = torch.einsum("bihw,bjhw->bij", columns, columns).cpu()
    rhs = torch.einsum("bihw,bhw->bi", columns, target[:, 0]).cpu()
    d = torch.sqrt(torch.diagonal(gram, dim1=-2, dim2=-1)).clamp_min(1e-300)
    gram_n = gram / (d[:, :, None] * d[:, None, :])
    sol = torch.linalg.lstsq(gram_n, (rhs / d).unsqueeze(-1), driver="gelsd").solution[..., 0]
    return (sol / d).to(columns.device)


def matlab_prctile(x: torch.Tensor, p: float) -> torch.Tensor:
    """MATLAB ``prctile(x(:), p)`` per image and band, (B, C, 1, 1).

    MATLAB places the k-th smallest of n values at percentile 100 (k - 0.5) / n,
    interpolates linearly in between and clamps outside.
    """
    flat = x.flatten(-2)
    n = flat.shape[-1]
    pos = min(max(n * p / 100.0 + 0.5, 1.0), float(n))  # 1-based fractional rank
    lo = int(np.floor(pos))
    frac = pos - lo
    v_lo = torch.kthvalue(flat, lo, dim=-1).values
    v = v_lo if frac == 0 or lo >= n else v_lo + frac * (torch.kthvalue(flat, lo + 1, dim=-1).values - v_lo)
    return v[..., None, None]


def nnls_gram(q: np.ndarray, c: np.ndarray, max_iter: int = 500) -> np.ndarray:
    """min 0.5 z'Qz - c'z subject to z >= 0 (Lawson-Hanson active set on the Gram matrix).

    Equal to ``lsqlin`` with non-negativity constraints when Q = H'H is
    positive definite (the optimum is then unique).
    """
    n = q.shape[0]
    z = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    tol = 10 * EPS * max(1.0, np.abs(q).sum(axis=0).max()) * n
    w = c - q @ z
    for _ in range(max_iter):
        if passive.all() or w[~passive].max() <= tol:
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        while True:
            s = np.zeros(n)
            idx = np.flatnonzero(passive)
            s[idx] = np.linalg.lstsq(q[np.ix_(idx, idx)], c[idx], rcond=None)[0]
            if s[idx].min() > 0:
                break
            neg = idx[s[idx] <= 0]
            alpha = np.min(z[neg] / (z[neg] - s[neg]))
            z = z + alpha * (s - z)
            passive &= z > tol
            z[~passive] = 0.0
            if not passive.any():
                s = z
                break
        z = s
        w = c - q @ z
    return z


# ------------------------------------------------------------------ filters


def pan_lowpass_per_band(pan: torch.Tensor, gains: tuple[float, ...], ratio: int) -> torch.Tensor:
    """The MTF-GLP low-pass PAN: per band MTF filter, decimate, 23-tap interpolate.

    Args:
        pan: (B, C, H, W) PAN, one copy (possibly equalised) per MS band.
    """
    return interp23tap(decimate(mtf_filter(pan, gains, ratio), ratio).contiguous(), ratio)


def _pad_symmetric(x: torch.Tensor, p: int) -> torch.Tensor:
    """Half-point symmetric padding of the last two dims (the border pixel repeats)."""
    h, w = x.shape[-2:]
    ih = torch.cat([torch.arange(p - 1, -1, -1), torch.arange(h), torch.arange(h - 1, h - 1 - p, -1)])
    iw = torch.cat([torch.arange(p - 1, -1, -1), torch.arange(w), torch.arange(w - 1, w - 1 - p, -1)])
    return x.index_select(-2, ih.to(x.device)).index_select(-1, iw.to(x.device))


_B3 = (1.0, 4.0, 6.0, 4.0, 1.0)


def lp_filter_plus_dec(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """The toolbox's ``LPfilterPlusDec`` (used by GSA): starlet low-pass, then decimation.

    The toolbox runs MATLAB's (obsolete) ``ndwt2`` with the B3-spline pair
    h = h~ = sqrt(2)[1 4 6 4 1]/16 for ceil(log2 ratio) levels, zeroes every
    detail band and inverts with ``indwt2``. As that code is written, each
    level filters the *undilated* 5-tap kernel over a half-point symmetric
    extension of 4 pixels and keeps a result 4 pixels larger (2 per side);
    the inverse applies the 5-tap kernel again with "valid" support, shrinking
    back, and the sqrt(2) factors cancel with its division by 4. The result is
    then decimated with MATLAB's nearest rule (rows/cols ``ratio//2::ratio``).

    Args:
        x: (B, 1, H, W).
    """
    levels = int(np.ceil(np.log2(ratio)))
    b = torch.tensor(_B3, dtype=x.dtype, device=x.device) / 16.0
    kr, kc = b.reshape(1, 1, 5, 1), b.reshape(1, 1, 1, 5)
    y = x
    for _ in range(levels):  # analysis: grow by 2 pixels per side
        y = F.conv2d(F.conv2d(_pad_symmetric(y, 4), kr), kc)
    for _ in range(levels):  # synthesis of the approximation alone: shrink back
        y = F.conv2d(F.conv2d(y, kr), kc)
    return decimate(y, ratio).contiguous()
