"""Classical baselines on the real sample scenes at reduced resolution (Wald's
protocol): each must beat EXP against the original MS. Skips without the scenes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scenes import real_scene

from crossdiff.models.baselines import BASELINES
from crossdiff.models.resample import wald_pair
from crossdiff.models.sensors import get_sensor

rasterio = pytest.importorskip("rasterio")

DIM_CUT = 21


def reduced_resolution_run(name: str):
    """Wald pair of one scene, every baseline's output and the scene's metadata."""
    root = real_scene(name)
    meta = json.loads((root / "scene.json").read_text())
    with rasterio.open(root / "ms.tif") as f:
        ms = torch.from_numpy(f.read().astype(np.float64))
    with rasterio.open(root / "pan.tif") as f:
        pan = torch.from_numpy(f.read().astype(np.float64))
    sensor = get_sensor(meta["sensor"], ms.shape[0])
    pair = wald_pair(ms, pan, sensor)
    fused = {k: fn(pair["ms"], pair["pan"], sensor) for k, fn in BASELINES.items()}
    return pair["gt"], fused, meta


def band_rmse(f: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    c = DIM_CUT
    return (f - gt)[..., c:-c, c:-c].pow(2).mean(dim=(-2, -1)).sqrt()


@pytest.fixture(scope="module")
def wv2():
    return reduced_resolution_run("wv2_sample")


@pytest.fixture(scope="module")
def ge1():
    return reduced_resolution_run("ge1_sample")


def test_wv2_every_baseline_beats_exp_in_rmse(wv2):
    gt, fused, _ = wv2
    total = {k: band_rmse(f, gt).pow(2).mean().sqrt().item() for k, f in fused.items()}
    for k, v in total.items():
        assert torch.isfinite(fused[k]).all(), k
        if k != "EXP":
            assert v < 0.8 * total["EXP"], total  # measured: 73-86 DN against 126 DN


def test_ge1_every_baseline_beats_exp_on_the_visible_bands(ge1):
    """GE1 sample: in B, G, R every baseline beats EXP. Its NIR band correlates
    only 0.18 with the degraded PAN, so detail injection there can lose to EXP
    (MTF-GLP-HPM: 11.2 DN against 7.6; BT-H ties in overall RMSE); that is the
    scene, not the method, and the overall figures are not asserted."""
    gt, fused, _ = ge1
    exp = band_rmse(fused["EXP"], gt)[:3]
    for k, f in fused.items():
        if k != "EXP":
            assert torch.all(band_rmse(f, gt)[:3] < exp), (k, band_rmse(f, gt).tolist(), exp.tolist())


def _metrics():
    return pytest.importorskip("crossdiff.models.metrics")


def test_wv2_every_baseline_beats_exp_in_q2n_and_ergas(wv2):
    m = _metrics()
    gt, fused, meta = wv2
    scores = {k: m.reduced_resolution_metrics(f, gt, 4, meta["bits"], dim_cut=DIM_CUT)
              for k, f in fused.items()}
    for k, s in scores.items():
        if k != "EXP":
            assert s["Q2n"] > scores["EXP"]["Q2n"] + 0.1, (k, s, scores["EXP"])  # measured 0.89-0.90 vs 0.67
            assert s["ERGAS"] < scores["EXP"]["ERGAS"] - 1.0, (k, s, scores["EXP"])  # 4.2-4.7 vs 7.6


def test_ge1_every_baseline_beats_exp_in_q4_and_visible_ergas(ge1):
    m = _metrics()
    gt, fused, meta = ge1
    exp_q4 = m.q2n(m.cut_borders(fused["EXP"], DIM_CUT), m.cut_borders(gt, DIM_CUT))
    exp_ergas = m.ergas(m.cut_borders(fused["EXP"][:3], DIM_CUT), m.cut_borders(gt[:3], DIM_CUT), 4)
    for k, f in fused.items():
        if k != "EXP":
            q4 = m.q2n(m.cut_borders(f, DIM_CUT), m.cut_borders(gt, DIM_CUT))
            assert q4 > exp_q4, (k, q4, exp_q4)  # measured 0.87-0.92 vs 0.81
            vis = m.ergas(m.cut_borders(f[:3], DIM_CUT), m.cut_borders(gt[:3], DIM_CUT), 4)
            assert vis < exp_ergas, (k, vis, exp_ergas)
