"""UIQI: sliding-window Q (toolbox img_qi) and block-wise UIQI (toolbox uqi)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdiff.models.metrics import q_index, uiqi_block_mean
from crossdiff.models.metrics.uiqi import uiqi_blocks, window_sum


def _img(bands: int = 2, h: int = 48, w: int = 56, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 500 + 1000 * torch.rand(bands, h, w, generator=g, dtype=torch.float64)


def test_window_sum_equals_direct_sums():
    x = torch.randn(3, 37, 41, dtype=torch.float64)
    for k in (1, 2, 3, 5, 7, 16, 21, 32, 37):
        direct = x.unfold(1, k, 1).sum(-1)
        torch.testing.assert_close(window_sum(x, k, 1), direct, rtol=1e-13, atol=1e-12)


def test_identical_images_score_one():
    x = _img()
    assert q_index(x, x) == pytest.approx(1.0, abs=1e-12)
    assert uiqi_block_mean(x[:, :32, :32], x[:, :32, :32]) == pytest.approx(1.0, abs=1e-12)


def test_gain_gives_closed_form_in_every_window():
    # y = k x: correlation 1, contrast term 2k/(1+k^2), mean term 2k/(1+k^2).
    x = _img()
    for k in (0.5, 1.3):
        expected = 4 * k * k / (1 + k * k) ** 2
        assert q_index(k * x, x) == pytest.approx(expected, rel=1e-10)
        assert uiqi_block_mean(k * x[:, :32, :32], x[:, :32, :32]) == pytest.approx(expected, rel=1e-10)


def test_single_window_matches_textbook_formula():
    # A 32x32 image has one window: Q = 4 s_xy m_x m_y / ((s_x^2 + s_y^2)(m_x^2 + m_y^2)).
    x = _img(1, 32, 32, seed=1)[0].numpy()
    y = x + np.random.default_rng(2).normal(30, 80, x.shape)
    mx, my = x.mean(), y.mean()
    c = np.cov(x.ravel(), y.ravel())
    expected = 4 * c[0, 1] * mx * my / ((c[0, 0] + c[1, 1]) * (mx**2 + my**2))
    assert q_index(y[None], x[None]) == pytest.approx(expected, rel=1e-10)
    # Offset only: correlation and contrast are 1, the mean term 2 m (m + d) / (m^2 + (m + d)^2).
    d = 100.0
    assert q_index(x[None] + d, x[None]) == pytest.approx(2 * mx * (mx + d) / (mx**2 + (mx + d) ** 2),
                                                          rel=1e-10)


def test_flat_windows_follow_img_qi_special_cases():
    flat_a = torch.full((1, 40, 40), 300.0, dtype=torch.float64)
    flat_b = torch.full((1, 40, 40), 100.0, dtype=torch.float64)
    assert q_index(flat_a, flat_a) == 1.0  # nothing to compare: quality 1
    assert q_index(flat_b, flat_a) == pytest.approx(2 * 300 * 100 / (300**2 + 100**2), rel=1e-14)
    assert q_index(torch.zeros(1, 40, 40), torch.zeros(1, 40, 40)) == 1.0


def test_q_is_the_band_mean_and_batches():
    x = _img(3, seed=3)
    y = x + 50 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    per_band = [q_index(y[b:b + 1], x[b:b + 1]) for b in range(3)]
    assert q_index(y, x) == pytest.approx(sum(per_band) / 3, rel=1e-13)
    batch = q_index(torch.stack([y, x]), torch.stack([x, x]))
    assert batch.shape == (2,) and batch[1] == pytest.approx(1.0, abs=1e-12)
    assert batch[0].item() == pytest.approx(q_index(y, x), rel=1e-13)


def test_blocks_use_n_minus_1_covariance_and_distinct_blocks():
    x = _img(1, 64, 32, seed=5)
    y = x + 70 * torch.randn(x.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    q = uiqi_blocks(y[None], x[None], 32)
    assert q.shape == (1, 1, 2, 1)
    for i in range(2):
        a, b = y[0, 32 * i:32 * i + 32].numpy().ravel(), x[0, 32 * i:32 * i + 32].numpy().ravel()
        c = np.cov(a, b)  # MATLAB cov: N-1
        expected = 4 * c[0, 1] * a.mean() * b.mean() / (c[0, 0] + c[1, 1]) / (a.mean() ** 2 + b.mean() ** 2)
        assert q[0, 0, i, 0].item() == pytest.approx(expected, rel=1e-12)
    # As in the toolbox, two flat blocks give NaN (0/0), not a silent value.
    flat = torch.full((1, 1, 32, 32), 5.0, dtype=torch.float64)
    assert torch.isnan(uiqi_blocks(flat, flat, 32)).all()
    with pytest.raises(ValueError, match="multiple of the block size"):
        uiqi_blocks(x[None, :, :40], x[None, :, :40], 32)
