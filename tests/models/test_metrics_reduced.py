"""Reduced-resolution metrics: hand-worked SAM, ERGAS, SCC, PSNR and the border cut."""

from __future__ import annotations

import math

import pytest
import torch

from crossdiff.models.metrics import cut_borders, ergas, psnr, reduced_resolution_metrics, sam, scc
from crossdiff.models.metrics.reduced import sobel_magnitude


def _scene(bands: int = 4, h: int = 96, w: int = 96, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, bands, h // 8, w // 8, generator=g, dtype=torch.float64)
    smooth = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0]
    return torch.round(200 + 1500 * smooth + 20 * torch.rand(bands, h, w, generator=g, dtype=torch.float64))


def _rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate each pixel's 2-band spectrum by a fixed angle."""
    t = math.radians(degrees)
    return torch.stack([math.cos(t) * x[0] - math.sin(t) * x[1], math.sin(t) * x[0] + math.cos(t) * x[1]])


def test_identical_images_are_ideal():
    gt = _scene()
    m = reduced_resolution_metrics(gt, gt, ratio=4, bits=11)
    assert m["Q2n"] == pytest.approx(1.0, abs=1e-12)
    assert m["Q"] == pytest.approx(1.0, abs=1e-12)
    assert m["SAM"] == 0.0 and m["ERGAS"] == 0.0 and m["PSNR"] == math.inf
    assert m["SCC"] == pytest.approx(1.0, abs=1e-12)


def test_sam_of_a_known_spectral_rotation():
    gt = _scene(2, 24, 24)
    assert sam(_rotate(gt, 10.0), gt) == pytest.approx(10.0, rel=1e-9)
    # Half the pixels turned by 10 degrees, half by 30: the mean is 20.
    mixed = torch.cat([_rotate(gt[:, :12], 10.0), _rotate(gt[:, 12:], 30.0)], dim=1)
    assert sam(mixed, gt) == pytest.approx(20.0, rel=1e-9)


def test_sam_ignores_zero_norm_pixels():
    gt = _scene(2, 24, 24)
    fused = _rotate(gt, 10.0)
    fused[:, :5, :] = 0.0  # fused spectrum of zero norm
    gt_holes = gt.clone()
    gt_holes[:, -3:, :] = 0.0  # reference spectrum of zero norm
    assert sam(fused, gt_holes) == pytest.approx(10.0, rel=1e-9)
    assert math.isnan(sam(torch.zeros(2, 4, 4), gt[:, :4, :4]))  # nothing left to average


def test_ergas_of_a_constant_gain_and_offset():
    # Band-constant images: a gain k gives 100/ratio * |k - 1| exactly.
    gt = torch.tensor([300.0, 700.0, 1100.0]).view(3, 1, 1).expand(3, 16, 16).clone()
    for k, ratio in ((1.1, 4), (0.8, 2)):
        assert ergas(k * gt, gt, ratio) == pytest.approx(100 / ratio * abs(k - 1), rel=1e-12)
    # Offsets of 10 and 30 DN on band means 100 and 200: 25 * sqrt((0.1^2 + 0.15^2) / 2).
    gt2 = _scene(2, 16, 16) * 0.0 + torch.tensor([100.0, 200.0]).view(2, 1, 1)
    noise = torch.randn(2, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    gt2 = gt2 + noise - noise.mean(dim=(1, 2), keepdim=True)  # keep the band means exactly
    off = gt2 + torch.tensor([10.0, 30.0]).view(2, 1, 1)
    assert ergas(off, gt2, 4) == pytest.approx(25 * math.sqrt((0.1**2 + 0.15**2) / 2), rel=1e-12)


def test_sobel_magnitude_of_an_impulse():
    x = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    x[0, 0, 2, 2] = 1.0
    g = sobel_magnitude(x)[0, 0]
    s2 = math.sqrt(2.0)
    expected = torch.tensor([[0, 0, 0, 0, 0], [0, s2, 2, s2, 0], [0, 2, 0, 2, 0], [0, s2, 2, s2, 0],
                             [0, 0, 0, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(g, expected)


def test_scc_trims_the_border_and_pads_with_zeros():
    gt = _scene(3, 40, 40)
    assert scc(3.0 * gt, gt) == pytest.approx(1.0, abs=1e-12)  # gains cancel in the normalised product
    # An offset would cancel too with replicate borders; zero padding turns it into edge gradients.
    assert 0.99 < scc(gt + 50.0, gt) < 1.0 - 1e-6
    ring = gt.clone()
    ring[:, 0, :] += 400.0
    ring[:, :, -1] -= 300.0  # changes only the outermost ring, which SCC trims
    assert scc(ring, gt) == pytest.approx(1.0, abs=1e-12)
    inner = gt.clone()
    inner[:, 1, :] += 400.0
    assert scc(inner, gt) < 0.999
    # Flat images still have gradients at the zero-padded edge, so SCC is defined (1).
    assert scc(torch.full((1, 8, 8), 5.0), torch.full((1, 8, 8), 9.0)) == pytest.approx(1.0, abs=1e-12)


def test_psnr_peak_is_2_to_bits_minus_1():
    gt = _scene(2, 16, 16)
    assert psnr(gt + 1.0, gt, bits=11) == pytest.approx(20 * math.log10(2047), rel=1e-12)
    assert psnr(gt + 2.0, gt, bits=8) == pytest.approx(10 * math.log10(255**2 / 4), rel=1e-12)


def test_border_cut_follows_matlab_indexing():
    gt = _scene(4, 96, 96)
    assert cut_borders(gt, 21).shape == (4, 55, 55)  # rows 21..75 (1-based) of 96
    assert cut_borders(torch.zeros(1, 256, 256), 21).shape == (1, 215, 215)
    outside = gt.clone()
    outside[:, :20] += 300.0  # the 20 top rows and the 21 bottom rows are cut
    outside[:, -21:] -= 150.0
    outside[:, :, :20] *= 1.3
    m = reduced_resolution_metrics(outside, gt, ratio=4, bits=11)
    assert m["SAM"] == 0.0 and m["ERGAS"] == 0.0 and m["Q2n"] == pytest.approx(1.0, abs=1e-12)
    kept = gt.clone()
    kept[:, 20] += 300.0  # 0-based row 20 is MATLAB row 21: kept
    assert reduced_resolution_metrics(kept, gt, ratio=4, bits=11)["ERGAS"] > 0
    assert reduced_resolution_metrics(kept, gt, ratio=4, bits=11, dim_cut=22)["ERGAS"] == 0.0


def test_batches_numpy_clip_and_errors():
    gt = _scene(4, 64, 64, seed=1)
    fused = gt + 30 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    single = reduced_resolution_metrics(fused.numpy(), gt.numpy(), 4, 11, dim_cut=0)
    batch = reduced_resolution_metrics(torch.stack([fused, gt]), torch.stack([gt, gt]), 4, 11, dim_cut=0)
    assert set(single) == {"Q2n", "Q", "SAM", "ERGAS", "SCC", "PSNR"}
    for k, v in batch.items():
        assert v.shape == (2,)
        assert v[0].item() == pytest.approx(single[k], rel=1e-12)
    assert single["Q2n"] < 1.0 and single["SAM"] > 0.0
    over = gt.clone()
    over[:, 30:40, 30:40] = 5000.0
    clipped = reduced_resolution_metrics(over, gt, 4, 11, dim_cut=0, clip=True)["ERGAS"]
    manual = reduced_resolution_metrics(over.clamp(0, 2048), gt, 4, 11, dim_cut=0)["ERGAS"]
    assert clipped == manual < reduced_resolution_metrics(over, gt, 4, 11, dim_cut=0)["ERGAS"]
    with pytest.raises(ValueError, match="digital numbers"):
        reduced_resolution_metrics(fused / 2047, gt / 2047, 4, 11)
    with pytest.raises(ValueError, match="shapes differ"):
        reduced_resolution_metrics(fused[:3], gt, 4, 11)
    assert all(isinstance(v, float) for v in single.values())
