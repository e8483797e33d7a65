"""Classical pansharpening baselines of the reference toolbox (Vivone et al. 2021).

``BASELINES`` maps the toolbox's names to functions
``fn(ms, pan, sensor, ratio=None) -> fused``: ms (C, h, w) at MS scale, pan
(1, H, W), both in DN (or batched with a leading B), any band count; the
result is (C, H, W) at PAN scale. ``get_baseline(name)`` is the one front door.
"""

from __future__ import annotations

import torch

from crossdiff.models.baselines.common import Baseline, prepare
from crossdiff.models.baselines.cs import bdsd_pc, bt_h, gsa
from crossdiff.models.baselines.mra import mtf_glp_fs, mtf_glp_hpm, mtf_glp_hpm_r
from crossdiff.models.resample.interp23 import interp23tap
from crossdiff.models.sensors import Sensor


def exp(ms: torch.Tensor, pan: torch.Tensor, sensor: Sensor | str, ratio: int | None = None) -> torch.Tensor:
    """EXP: the MS interpolated by the 23-tap filter; the PAN only fixes the shape check."""
    x = prepare(ms, pan, sensor, ratio)
    return x.finish(interp23tap(x.ms, x.ratio))


BASELINES: dict[str, Baseline] = {
    "EXP": exp,
    "BT-H": bt_h,
    "GSA": gsa,
    "BDSD-PC": bdsd_pc,
    "MTF-GLP-HPM": mtf_glp_hpm,
    "MTF-GLP-HPM-R": mtf_glp_hpm_r,
    "MTF-GLP-FS": mtf_glp_fs,
}


def get_baseline(name: str) -> Baseline:
    """Look a baseline up by its toolbox name (case- and '_'/'-'-insensitive)."""
    key = name.strip().upper().replace("_", "-")
    if key not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    return BASELINES[key]


__all__ = ["BASELINES", "bdsd_pc", "bt_h", "exp", "get_baseline", "gsa", "mtf_glp_fs", "mtf_glp_hpm",
           "mtf_glp_hpm_r"]
