"""Full-resolution metrics: D_lambda_K, D_s, HQNR and the classic QNR."""

from __future__ import annotations

import pytest
import torch

from crossdiff.models.metrics import (
    d_lambda_khan,
    d_lambda_qnr,
    d_s,
    full_resolution_metrics,
    hqnr,
    q2n,
    resolve_gains,
)
from crossdiff.models.resample.imresize import imresize
from crossdiff.models.resample.interp23 import interp23tap
from crossdiff.models.resample.mtf import mtf_filter
from crossdiff.models.sensors import get_sensor

WV3 = get_sensor("WV3")


def _field(bands: int, size: int, seed: int, cells: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, bands, cells, cells, generator=g, dtype=torch.float64)
    smooth = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)[0]
    return 300 + 1200 * smooth + 15 * torch.rand(bands, size, size, generator=g, dtype=torch.float64)


def _uiqi_gain(r: float) -> float:
    """UIQI of r * x against x: 4 r^2 / (1 + r^2)^2 (correlation 1)."""
    return 4 * r * r / (1 + r * r) ** 2


def test_resolve_gains():
    assert resolve_gains(WV3, 8) == WV3.mtf_ms
    assert resolve_gains("WorldView-3", 8) == WV3.mtf_ms
    assert resolve_gains(0.3, 3) == (0.3, 0.3, 0.3)
    assert resolve_gains([0.2, 0.3], 2) == (0.2, 0.3)
    with pytest.raises(ValueError, match="one gain per band"):
        resolve_gains([0.2, 0.3], 4)


def test_d_lambda_khan_is_one_minus_q2n_of_the_mtf_filtered_fused():
    fused = _field(4, 64, 0)
    gains = (0.34, 0.32, 0.30, 0.22)
    low = mtf_filter(fused, gains, 4)
    assert d_lambda_khan(fused, low, gains, 4) == pytest.approx(0.0, abs=1e-12)
    lms = interp23tap(torch.nn.functional.avg_pool2d(fused[None], 4)[0], 4)
    value = d_lambda_khan(fused, lms, "QuickBird", 4)
    assert value == pytest.approx(1.0 - q2n(low, lms), rel=1e-12)
    assert 0.0 < value < 0.2
    assert d_lambda_khan(fused, lms, 0.1, 4) != pytest.approx(value, rel=1e-6)  # the gains matter
    # The older toolbox: decimate the filtered image (rows/cols 2::ratio) and compare with MS.
    fused128 = _field(4, 128, 1)
    ms = mtf_filter(fused128, gains, 4)[:, 2::4, 2::4]
    assert d_lambda_khan(fused128, ms, gains, 4, scale="ms") == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="multiple of the block size"):
        d_lambda_khan(fused[:, :48], lms[:, :48], gains, 4)


def test_d_s_hand_worked_with_proportional_bands():
    # F_b = a_b PAN, lms = F, PAN_LP = k PAN: D_s = mean_b |Q(a_b) - Q(a_b / k)|.
    pan = _field(1, 64, 2)
    a = torch.tensor([0.5, 0.8, 1.2]).view(3, 1, 1).double()
    k = 1.5
    fused = a * pan
    expected = sum(abs(_uiqi_gain(r) - _uiqi_gain(r / k)) for r in a.flatten().tolist()) / 3
    assert d_s(fused, fused, pan, 4, pan_lp=k * pan) == pytest.approx(expected, rel=1e-10)
    assert d_s(fused, fused, pan, 4, pan_lp=pan) == pytest.approx(0.0, abs=1e-12)
    # q = 2: the root mean square of the same differences.
    rms = (sum((_uiqi_gain(r) - _uiqi_gain(r / k)) ** 2 for r in a.flatten().tolist()) / 3) ** 0.5
    assert d_s(fused, fused, pan, 4, q=2.0, pan_lp=k * pan) == pytest.approx(rms, rel=1e-10)


def test_d_s_low_pass_pan_is_imresize_then_interp23():
    pan = _field(1, 64, 3)
    fused = _field(4, 64, 4)
    lms = interp23tap(torch.nn.functional.avg_pool2d(fused[None], 4)[0], 4)
    lp = interp23tap(imresize(pan, 0.25), 4)
    value = d_s(fused, lms, pan[0], 4)  # PAN as (H, W) is accepted
    assert value == pytest.approx(d_s(fused, lms, pan, 4, pan_lp=lp), rel=1e-13)
    assert 0.0 < value < 1.0


def test_classic_d_lambda_hand_worked():
    x = _field(1, 64, 5)[0]
    k = 1.4
    lms = torch.stack([x, x])
    fused = torch.stack([x, k * x])
    assert d_lambda_qnr(fused, lms) == pytest.approx(1 - _uiqi_gain(k), rel=1e-10)
    # Three bands, three pairs: (x, kx) twice off by the same amount, (x, x) intact.
    fused3 = torch.stack([x, k * x, x])
    expected = 2 * (1 - _uiqi_gain(k)) / 3
    assert d_lambda_qnr(fused3, torch.stack([x, x, x])) == pytest.approx(expected, rel=1e-10)
    assert d_lambda_qnr(fused3, fused3) == 0.0


def test_full_resolution_metrics_combine_and_batch():
    ms = _field(4, 16, 6, cells=4)
    lms = interp23tap(ms, 4)
    pan = lms.mean(0, keepdim=True) + 8 * torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(7),
                                                      dtype=torch.float64)
    fused = lms + 0.3 * (pan - interp23tap(imresize(pan, 0.25), 4))
    m = full_resolution_metrics(fused, ms, pan, "QuickBird", 4, 11)
    assert set(m) == {"D_lambda_K", "D_s", "HQNR", "D_lambda", "QNR"}
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in m.values())
    assert m["HQNR"] == pytest.approx((1 - m["D_lambda_K"]) * (1 - m["D_s"]), rel=1e-14)
    assert m["QNR"] == pytest.approx((1 - m["D_lambda"]) * (1 - m["D_s"]), rel=1e-14)
    assert m["D_lambda_K"] == pytest.approx(d_lambda_khan(fused, lms, "QuickBird", 4), rel=1e-14)
    assert m["D_s"] == pytest.approx(d_s(fused, lms, pan, 4), rel=1e-14)
    assert m["HQNR"] == pytest.approx(hqnr(fused, lms, pan, "QuickBird", 4), rel=1e-14)
    assert full_resolution_metrics(fused, ms, pan, "QuickBird", 4, 11, lms=lms) == m
    # EXP (fused = lms) has no classic spectral distortion.
    assert full_resolution_metrics(lms, ms, pan, "QuickBird", 4, 11)["D_lambda"] == 0.0
    batch = full_resolution_metrics(torch.stack([fused, lms]), torch.stack([ms, ms]),
                                    torch.stack([pan, pan]), "QuickBird", 4, 11)
    for key, value in batch.items():
        assert value.shape == (2,) and value[0].item() == pytest.approx(m[key], rel=1e-12)


def test_full_resolution_errors():
    ms = _field(4, 16, 8, cells=4)
    lms = interp23tap(ms, 4)
    pan = lms[:1]
    with pytest.raises(ValueError, match="PAN scale"):
        full_resolution_metrics(lms[:, :32, :32], ms, pan[:, :32, :32], "QuickBird", 4, 11)
    with pytest.raises(ValueError, match="digital numbers"):
        full_resolution_metrics(lms / 2047, ms / 2047, pan / 2047, "QuickBird", 4, 11)
    with pytest.raises(ValueError, match="one band"):
        d_s(lms, lms, lms, 4)
    with pytest.raises(ValueError, match="has 4 MS bands"):
        full_resolution_metrics(lms[:3], ms[:3], pan, "QuickBird", 4, 11)
