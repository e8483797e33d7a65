"""Component-substitution baselines: BT-H, GSA and BDSD-PC.

Each follows the reference toolbox's 2019 implementation (Vivone et al., "A new
benchmarking framework", IEEE GRSM 2021): the MS is first brought to the PAN
grid with the 23-tap interpolator (EXP), an intensity is estimated from it by
regression against a low-passed PAN, and the PAN detail replaces it.

Every function takes ms (C, h, w) at MS scale and pan (1, H, W) in DN (or
batches of them, statistics per image) and returns the fused (C, H, W).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from crossdiff.models.baselines.common import (
    EPS,
    cov2,
    lp_filter_plus_dec,
    lstsq_global,
    matlab_prctile,
    mean2,
    nnls_gram,
    prepare,
    std2,
)
from crossdiff.models.resample.imresize import imresize
from crossdiff.models.resample.interp23 import interp23tap
from crossdiff.models.resample.mtf import lpfilter_gauss, mtf_filter
from crossdiff.models.resample.wald import decimate
from crossdiff.models.sensors import Sensor

# BroveyRegHazeMin: for 4-band (B, G, R, NIR) data the haze is a fraction of
# each band's 1st percentile (Lolli et al. 2017); otherwise the band minimum.
HAZE_FRACTIONS_4BAND = (0.95, 0.45, 0.40, 0.05)
HAZE_PERCENTILE = 1.0


def toolbox_haze(ms_up: torch.Tensor) -> torch.Tensor:
    """The toolbox's haze estimate per image and band, (B, C, 1, 1)."""
    if ms_up.shape[1] == 4:
        frac = torch.tensor(HAZE_FRACTIONS_4BAND, dtype=ms_up.dtype, device=ms_up.device).reshape(1, 4, 1, 1)
        return frac * matlab_prctile(ms_up, HAZE_PERCENTILE)
    return ms_up.amin(dim=(-2, -1), keepdim=True)


def bt_h(ms: torch.Tensor, pan: torch.Tensor, sensor: Sensor | str, ratio: int | None = None,
         haze: float | Sequence[float] | torch.Tensor | None = None) -> torch.Tensor:
    """BT-H: Brovey transform with haze correction (toolbox ``BroveyRegHazeMin``).

    The intensity I = sum_b alpha_b (MS_b - L_b) uses weights alpha from the
    global regression of the Gaussian-low-passed PAN (``LPfilterGauss``) on the
    interpolated MS; the PAN is matched to I in mean and std (statistics of the
    low-passed PAN); each band becomes max(MS_b - L_b, 0) * PAN / I + L_b.

    Args:
        haze: per-band haze L (DN); None uses the toolbox's estimate. With 0
            this is the regression-weighted Brovey transform.
    """
    x = prepare(ms, pan, sensor, ratio)
    ms_up = interp23tap(x.ms, x.ratio)
    if haze is None:
        lh = toolbox_haze(ms_up)
    else:
        lh = torch.as_tensor(haze, dtype=ms_up.dtype, device=ms_up.device)
        lh = lh.reshape(1, -1, 1, 1) if lh.dim() <= 1 else lh
    pan_lp = lpfilter_gauss(x.pan, x.ratio)
    alpha = lstsq_global(ms_up, pan_lp)[:, :, None, None]
    intensity = ((ms_up - lh) * alpha).sum(dim=1, keepdim=True)
    pan_eq = (x.pan - mean2(pan_lp)) * (std2(intensity) / std2(pan_lp)) + mean2(intensity)
    fused = (ms_up - lh).clamp_min(0) * (pan_eq / (intensity + EPS)) + lh
    return x.finish(fused)


def gsa(ms: torch.Tensor, pan: torch.Tensor, sensor: Sensor | str, ratio: int | None = None) -> torch.Tensor:
    """GSA: adaptive Gram-Schmidt (Aiazzi et al. 2007; toolbox ``GSA``).

    Intensity weights come from regressing the PAN, low-passed and decimated
    by ``LPfilterPlusDec``, on the original MS plus a constant (all mean-removed,
    at MS scale). Injection gains are cov(I, MS_b) / var(I) on the interpolated
    MS; the detail is PAN - I with both mean-removed (no PAN equalisation, as
    the 2019 toolbox); the band means of the interpolated MS are restored.
    """
    x = prepare(ms, pan, sensor, ratio)
    ms_up = interp23tap(x.ms, x.ratio)
    ms_up0 = ms_up - mean2(ms_up)
    ms_lr0 = x.ms - mean2(x.ms)
    pan0 = x.pan - mean2(x.pan)
    pan0_lr = lp_filter_plus_dec(pan0, x.ratio)
    ones_lr = torch.ones_like(ms_lr0[:, :1])
    alpha = lstsq_global(torch.cat([ms_lr0, ones_lr], dim=1), pan0_lr)[:, :, None, None]
    intensity = (ms_up0 * alpha[:, :-1]).sum(dim=1, keepdim=True) + alpha[:, -1:]
    i0 = intensity - mean2(intensity)
    g = cov2(i0.expand_as(ms_up0), ms_up0) / cov2(i0, i0)
    fused = ms_up0 + g * (pan0 - i0)
    fused = fused - mean2(fused) + mean2(ms_up)
    return x.finish(fused)


def bdsd_pc(ms: torch.Tensor, pan: torch.Tensor, sensor: Sensor | str,
            ratio: int | None = None) -> torch.Tensor:
    """BDSD-PC: band-dependent spatial detail with physical constraints (Vivone 2019).

    At reduced scale (toolbox ``BDSD_PC``): the interpolated MS is shrunk by
    bicubic ``imresize`` (the target), its MTF-filtered version and the
    PAN-MTF-filtered, decimated PAN form the regressors; per band, the
    coefficients solve min ||[P, M] gamma - (target - M_b)|| with gamma_PAN >= 0
    and gamma_MS <= 0 (MATLAB ``lsqlin``; here an exact active-set NNLS), then
    fused_b = MS_b + [PAN, MS] gamma_b at full scale.
    """
    x = prepare(ms, pan, sensor, ratio)
    if x.pan_gain is None:
        raise ValueError("BDSD-PC needs the PAN MTF gain: pass a Sensor or a sensor name, not bare gains")
    ms_up = interp23tap(x.ms, x.ratio)
    target = imresize(ms_up, 1.0 / x.ratio)
    ms_lp = mtf_filter(target, x.gains, x.ratio)
    pan_lr = decimate(mtf_filter(x.pan, (x.pan_gain,), x.ratio), x.ratio)
    regressors = torch.cat([pan_lr, ms_lp], dim=1)  # (B, C+1, h, w)
    gram = torch.einsum("bihw,bjhw->bij", regressors, regressors).cpu().numpy()
    rhs = torch.einsum("bihw,bchw->bci", regressors, target - ms_lp).cpu().numpy()
    n_bands = x.ms.shape[1]
    sign = np.ones(n_bands + 1)
    sign[1:] = -1.0  # z = sign * gamma >= 0 turns both constraints into z >= 0
    q_scale = np.outer(sign, sign)
    gamma = np.empty((x.ms.shape[0], n_bands, n_bands + 1))
    for i in range(x.ms.shape[0]):
        for b in range(n_bands):
            gamma[i, b] = sign * nnls_gram(gram[i] * q_scale, sign * rhs[i, b])
    gam = torch.from_numpy(gamma).to(ms_up.device, ms_up.dtype)
    full = torch.cat([x.pan, ms_up], dim=1)
    fused = ms_up + torch.einsum("bck,bkhw->bchw", gam, full)
    return x.finish(fused)
