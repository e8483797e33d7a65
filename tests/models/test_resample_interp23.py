"""The 23-tap interpolator: toolbox recipe, alignment, constants, sinusoids, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdiff.models.resample.interp23 import cdf23_taps, interp23tap
from crossdiff.models.resample.wald import decimate


def toolbox_recipe(img: np.ndarray, ratio: int) -> np.ndarray:
    """interp23tap.m literally: zero insertion at the toolbox phase, then the
    23-tap filter along each axis with circular borders, one x2 stage at a time."""
    c = np.array(cdf23_taps())
    first = True
    for _ in range(int(np.log2(ratio))):
        up = np.zeros((2 * img.shape[0], 2 * img.shape[1]))
        if first:
            up[1::2, 1::2] = img  # MATLAB I1LRU(2:2:end, 2:2:end)
            first = False
        else:
            up[0::2, 0::2] = img  # MATLAB I1LRU(1:2:end, 1:2:end)
        for axis in (0, 1):
            up = sum(c[k + 11] * np.roll(up, -k, axis=axis) for k in range(-11, 12))
        img = up
    return img


def test_taps_are_the_published_cdf23():
    taps = cdf23_taps()
    assert len(taps) == 23 and taps[11] == 1.0 and taps == taps[::-1]
    assert taps[12] == pytest.approx(2 * 0.305334091185) and taps[22] == pytest.approx(-2 * 0.000060081482)
    assert all(t == 0 for t in taps[13::2])
    # x2 gain compensates the zero insertion (the published 12-digit taps miss 2 by 4e-10)
    assert sum(taps) == pytest.approx(2.0, abs=1e-9)


@pytest.mark.parametrize("ratio", [2, 4, 8])
@pytest.mark.parametrize("shape", [(12, 16), (5, 7), (3, 3)])
def test_equals_the_toolbox_recipe(ratio, shape):
    x = np.random.default_rng(ratio).random(shape) * 2047
    ours = interp23tap(torch.from_numpy(x)[None], ratio)[0].numpy()
    np.testing.assert_allclose(ours, toolbox_recipe(x, ratio), rtol=0, atol=1e-10)


@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_constant_stays_constant(ratio):
    x = torch.full((2, 3, 9, 6), 1234.5, dtype=torch.float64)
    y = interp23tap(x, ratio)
    assert y.shape == (2, 3, 9 * ratio, 6 * ratio)
    # Exact up to the 4e-10 rounding of the published taps, per stage.
    torch.testing.assert_close(y, torch.full_like(y, 1234.5), rtol=2e-9, atol=0)


@pytest.mark.parametrize("ratio", [2, 4])
def test_band_limited_sinusoid_is_reproduced_and_aligned(ratio):
    """interp23tap(decimate(x)) == x when decimating with the toolbox phase (ratio//2::ratio)."""
    n = 32 * ratio
    per = 8 * ratio  # 8 MS pixels per period: 1/4 of the MS Nyquist frequency
    r, c = np.arange(n)[:, None], np.arange(n)[None, :]
    x = 1000 + 500 * np.cos(2 * np.pi * r / per + 0.3) * np.cos(2 * np.pi * c / per - 1.1)
    xt = torch.from_numpy(x)[None, None]
    y = interp23tap(decimate(xt, ratio).contiguous(), ratio)[0, 0].numpy()
    inner = slice(2 * ratio, -2 * ratio)
    assert np.abs(y - x)[inner, inner].max() < 0.01  # 2e-5 of the amplitude
    # Decimating at another phase shifts the result: the alignment is what is tested.
    wrong = interp23tap(xt[..., 0::ratio, 0::ratio].contiguous(), ratio)[0, 0].numpy()
    assert np.abs(wrong - x)[inner, inner].max() > 50


def test_batches_equal_per_image_results_and_dtypes():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 4, 10, 12, generator=g)
    batched = interp23tap(x, 4)
    for i in range(3):
        torch.testing.assert_close(batched[i], interp23tap(x[i], 4))
    assert batched.dtype == torch.float32
    assert interp23tap(torch.ones(1, 4, 4, dtype=torch.int16), 2).dtype == torch.float64


def test_unsupported_ratio_and_shape():
    with pytest.raises(ValueError, match="power-of-two"):
        interp23tap(torch.zeros(1, 4, 4), 3)
    with pytest.raises(ValueError, match="expected"):
        interp23tap(torch.zeros(4, 4), 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matrix_and_stage_paths_agree(monkeypatch, dtype):
    """Small images go through one matrix per axis, large ones through the stages: same numbers."""
    import crossdiff.models.resample.interp23 as mod

    x = torch.from_numpy(np.random.default_rng(3).random((2, 4, 24, 40)) * 2 - 1).to(dtype)
    by_matrix = interp23tap(x, 4)
    monkeypatch.setattr(mod, "MATRIX_MAX", 16)  # both sides above it: the stages
    by_stages = interp23tap(x, 4)
    assert by_matrix.dtype == by_stages.dtype == dtype and by_matrix.shape == (2, 4, 96, 160)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(by_matrix, by_stages, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_shift_folded_into_the_interpolation_equals_shifting_after(monkeypatch, dtype):
    import crossdiff.models.resample.interp23 as mod
    from crossdiff.models.resample import fourier_shift

    x = torch.from_numpy(np.random.default_rng(4).random((3, 20, 28))).to(dtype)
    after = fourier_shift(interp23tap(x, 2)[None], torch.tensor([0.5]), torch.tensor([-1.25]))[0]
    folded = interp23tap(x, 2, shift=(0.5, -1.25))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(folded, after, rtol=0, atol=tol)
    assert not torch.allclose(folded, interp23tap(x, 2), atol=1e-3)  # the shift did something
    monkeypatch.setattr(mod, "MATRIX_MAX", 8)  # the stage path shifts the same way
    torch.testing.assert_close(interp23tap(x, 2, shift=(0.5, -1.25)), after, rtol=0, atol=tol)


def test_out_receives_the_result_on_both_paths(monkeypatch):
    import crossdiff.models.resample.interp23 as mod

    x = torch.from_numpy(np.random.default_rng(5).random((2, 3, 12, 16))).float()
    expected = interp23tap(x, 4, shift=(0.5, 0.25))
    for matrix_max in (mod.MATRIX_MAX, 8):  # the matrix path, then the stages
        monkeypatch.setattr(mod, "MATRIX_MAX", matrix_max)
        out = torch.full((2, 3, 48, 64), float("nan"))
        got = interp23tap(x, 4, shift=(0.5, 0.25), out=out)
        assert got.data_ptr() == out.data_ptr()
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
