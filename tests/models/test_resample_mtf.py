"""MTF-matched kernels and filtering against the toolbox's genMTF/MTF recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdiff.models.resample.mtf import (
    KERNEL_SIZE,
    filter_replicate,
    lp_gauss_kernel,
    lpfilter_gauss,
    mtf_filter,
    mtf_kernels,
)
from crossdiff.models.sensors import get_sensor

GAINS = (0.11, 0.23, 0.3, 0.35, 0.27)


def response(kernel: np.ndarray, f: float) -> float:
    """|DTFT| of a centred kernel at horizontal frequency f (cycles per pixel)."""
    n = kernel.shape[-1]
    t = np.arange(n) - n // 2
    return float(abs((kernel * np.exp(-2j * np.pi * f * t)[None, :]).sum()))


@pytest.mark.parametrize("ratio", [2, 4])
def test_kernel_shape_symmetry_and_unnormalised_sum(ratio):
    k = mtf_kernels(GAINS, ratio)
    assert k.shape == (len(GAINS), KERNEL_SIZE, KERNEL_SIZE)
    for kk in k:
        np.testing.assert_allclose(kk, kk[::-1, :], atol=1e-18)
        np.testing.assert_allclose(kk, kk[:, ::-1], atol=1e-18)
        np.testing.assert_allclose(kk, kk.T, atol=1e-15)
        assert kk.argmax() == kk.size // 2  # peak at the centre
    sums = k.sum(axis=(1, 2))
    # The toolbox does not renormalise: the windowed kernel sums to ~0.999, not 1.
    assert np.all((sums > 0.995) & (sums < 0.99995)), sums


@pytest.mark.parametrize("ratio", [2, 4])
def test_response_matches_gain_at_the_toolbox_design_frequency(ratio):
    """The gain sits at (N-1)/(2 ratio N) cycles/px (the toolbox's N-1 convention)."""
    n = KERNEL_SIZE
    f_design = (n - 1) / (2 * ratio * n)
    f_nyq = 1 / (2 * ratio)
    for g, kk in zip(GAINS, mtf_kernels(GAINS, ratio), strict=True):
        assert response(kk, 0.0) == pytest.approx(kk.sum(), abs=1e-12)
        assert response(kk, f_design) == pytest.approx(g, abs=1e-3)
        # At the true coarse Nyquist the Gaussian is a little lower: ~g**1.05.
        assert g ** 1.1 < response(kk, f_nyq) < g


def test_lp_gauss_kernel_has_gain_03_at_the_coarse_nyquist():
    """LPfilterGauss uses N (not N-1) in sigma, which puts 0.3 exactly at 1/(2 ratio)."""
    for ratio in (2, 4):
        assert response(lp_gauss_kernel(ratio), 1 / (2 * ratio)) == pytest.approx(0.3, abs=1e-3)


def test_sensor_gains_drive_the_cutoff():
    s = get_sensor("WV2")
    k = mtf_kernels(s.mtf_ms, s.ratio)
    f = 40 / (2 * 4 * 41)
    assert response(k[0], f) == pytest.approx(0.35, abs=1e-3)
    assert response(k[7], f) == pytest.approx(0.27, abs=1e-3)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_constant_image_scales_by_the_kernel_sum_with_replicate_borders(method):
    x = torch.full((2, 3, 20, 27), 1000.0, dtype=torch.float64)
    gains = (0.3, 0.2, 0.35)
    y = mtf_filter(x, gains, 4, method=method)
    sums = torch.from_numpy(mtf_kernels(gains, 4).sum(axis=(1, 2)))
    torch.testing.assert_close(y, 1000.0 * sums.reshape(1, 3, 1, 1).expand_as(y), rtol=1e-12, atol=1e-9)


def test_fft_and_direct_agree_to_1e9():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 4, 53, 38, generator=g, dtype=torch.float64) * 2047
    gains = get_sensor("QB").mtf_ms
    a = mtf_filter(x, gains, 4, method="direct")
    b = mtf_filter(x, gains, 4, method="fft")
    assert (a - b).abs().max().item() < 1e-9
    # An impulse far from the borders reproduces the kernel itself.
    d = torch.zeros(1, 1, 61, 61, dtype=torch.float64)
    d[0, 0, 30, 30] = 1.0
    y = filter_replicate(d, mtf_kernels([0.3], 4), "fft")
    np.testing.assert_allclose(y[0, 0, 10:51, 10:51].numpy(), mtf_kernels([0.3], 4)[0], atol=1e-15)


def test_unbatched_and_integer_inputs():
    x = torch.randint(0, 2048, (4, 16, 16), dtype=torch.int32)
    y = mtf_filter(x, (0.3,) * 4, 4)
    assert y.shape == (4, 16, 16) and y.dtype == torch.float64
    torch.testing.assert_close(y, mtf_filter(x.double()[None], (0.3,) * 4, 4)[0])
    assert lpfilter_gauss(x[:1].double(), 4).shape == (1, 16, 16)


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match="MTF gains"):
        mtf_filter(torch.zeros(3, 8, 8), (0.3, 0.3), 4)
    with pytest.raises(ValueError, match="ratio"):
        mtf_kernels((0.3,), 1)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        mtf_kernels((1.2,), 4)
    with pytest.raises(ValueError, match="method"):
        mtf_filter(torch.zeros(1, 8, 8), (0.3,), 4, method="spline")
