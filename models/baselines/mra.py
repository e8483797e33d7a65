"""Multiresolution-analysis baselines of the MTF-GLP family.

All three take the PAN detail as PAN minus its MTF-GLP low-pass version: the
PAN filtered with each band's MTF-matched kernel, decimated with the toolbox
phase and brought back by the 23-tap interpolator (toolbox ``genMTF`` +
``imresize(., 'nearest')`` + ``interp23tap``). They differ in the injection:

* MTF-GLP-HPM: multiplicative (high-pass modulation) on a PAN equalised to
  each band (toolbox ``MTF_GLP_HPM``, Aiazzi et al. 2003/2006).
* MTF-GLP-HPM-R: HPM with a regression-based offset (Vivone et al. 2018,
  TGRS; toolbox ``MTF_GLP_HPM_R``), no equalisation.
* MTF-GLP-FS: additive, with full-scale regression gains (Vivone et al. 2018,
  TIP; toolbox ``MTF_GLP_FS``).

Every function takes ms (C, h, w) at MS scale and pan (1, H, W) in DN (or
batches of them, statistics per image) and returns the fused (C, H, W).
"""

from __future__ import annotations

import torch

from crossdiff.models.baselines.common import EPS, cov2, mean2, pan_lowpass_per_band, prepare, std2
from crossdiff.models.resample.interp23 import interp23tap
from crossdiff.models.resample.mtf import lpfilter_gauss
from crossdiff.models.sensors import Sensor


def mtf_glp_hpm(ms: torch.Tensor, pan: torch.Tensor, sensor: Sensor | str,
                ratio: int | None = None) -> torch.Tensor:
    """MTF-GLP-HPM: fused_b = MS_b * P_b / P_b,LP.

    P_b is the PAN equalised to band b: (PAN - mean PAN) * std(MS_b) /
    std(LPfilterGauss(PAN)) + mean(MS_b), as the toolbox does.
    """
    x = prepare(ms, pan, sensor, ratio)
    ms_up = interp23tap(x.ms, x.ratio)
    pan_eq = (x.pan - mean2(x.pan)) * (std2(ms_up) / std2(lpfilter_gauss(x.pan, x.ratio))) + mean2(ms_up)
    pan_lp = pan_lowpass_per_band(pan_eq, x.gains, x.ratio)
    return x.finish(ms_up * (pan_eq / (pan_lp + EPS)))


def mtf_glp_hpm_r(ms: torch.Tensor, pan: torch.Tensor, sensor: Sensor | str,
                  ratio: int | None = None) -> torch.Tensor:
    """MTF-GLP-HPM-R: fused_b = MS_b * (PAN + c_b) / (PAN_LP,b + c_b).

    g_b = cov(MS_b, PAN_LP,b) / var(PAN_LP,b) and c_b = mean(MS_b) / g_b - mean(PAN).
    """
    x = prepare(ms, pan, sensor, ratio)
    ms_up = interp23tap(x.ms, x.ratio)
    pan_c = x.pan.expand_as(ms_up)
    pan_lp = pan_lowpass_per_band(pan_c, x.gains, x.ratio)
    g = cov2(ms_up, pan_lp) / cov2(pan_lp, pan_lp)
    cb = mean2(ms_up) / g - mean2(x.pan)
    return x.finish(ms_up * (pan_c + cb) / (pan_lp + cb + EPS))


def mtf_glp_fs(ms: torch.Tensor, pan: torch.Tensor, sensor: Sensor | str,
               ratio: int | None = None) -> torch.Tensor:
    """MTF-GLP-FS: fused_b = MS_b + g_b (PAN - PAN_LP,b).

    The full-scale gain is g_b = cov(MS_b, PAN) / cov(PAN_LP,b, PAN).
    """
    x = prepare(ms, pan, sensor, ratio)
    ms_up = interp23tap(x.ms, x.ratio)
    pan_c = x.pan.expand_as(ms_up)
    pan_lp = pan_lowpass_per_band(pan_c, x.gains, x.ratio)
    g = cov2(ms_up, pan_c) / cov2(pan_lp, pan_c)
    return x.finish(ms_up + g * (pan_c - pan_lp))
