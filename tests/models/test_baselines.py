"""Classical baselines on synthetic scenes: shapes, invariants, and beating EXP
when the MS is exactly the Wald-degraded version of a known truth."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch

from crossdiff.models.baselines import BASELINES, bt_h, get_baseline
from crossdiff.models.baselines.common import lp_filter_plus_dec, lstsq_global, matlab_prctile, nnls_gram
from crossdiff.models.resample import interp23tap, lpfilter_gauss, mtf_filter
from crossdiff.models.resample.wald import decimate
from crossdiff.models.sensors import get_sensor


def synthetic_truth(c: int, n: int, seed: int) -> torch.Tensor:
    """A (c, n, n) DN scene: shared piecewise-constant structure (edges the PAN
    carries) scaled per band, plus a smooth band-specific field."""
    rng = np.random.default_rng(seed)
    struct = np.zeros((n, n))
    for _ in range(40):
        y, x = rng.integers(0, n - 4, 2)
        h, w = rng.integers(3, n // 3, 2)
        struct[y:y + h, x:x + w] += rng.normal(0, 1)
    yy, xx = np.mgrid[0:n, 0:n] / n
    bands = []
    for b in range(c):
        fy, fx, phase = rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5), rng.uniform(0, 6)
        smooth = np.sin(2 * np.pi * (yy * fy + xx * fx) + phase)
        bands.append(600 + 40 * b + rng.uniform(80, 160) * struct + 60 * smooth)
    return torch.from_numpy(np.stack(bands)).clamp_min(50.0)


@functools.cache
def degraded_case(sensor_name: str, n: int = 128, seed: int = 0):
    """(sensor, ms, pan, truth) with ms exactly the Wald-degraded truth; cached, do not modify."""
    s = get_sensor(sensor_name)
    truth = synthetic_truth(s.n_bands, n, seed)
    pan = truth.mean(dim=0, keepdim=True)  # a PAN that sees every band
    ms = decimate(mtf_filter(truth, s.mtf_ms, s.ratio), s.ratio).contiguous()
    return s, ms, pan, truth


def rmse(a: torch.Tensor, b: torch.Tensor, cut: int = 8) -> float:
    return (a - b)[..., cut:-cut, cut:-cut].pow(2).mean().sqrt().item()


def test_registry_and_front_door():
    assert list(BASELINES) == ["EXP", "BT-H", "GSA", "BDSD-PC", "MTF-GLP-HPM", "MTF-GLP-HPM-R", "MTF-GLP-FS"]
    assert get_baseline("mtf_glp_hpm_r") is BASELINES["MTF-GLP-HPM-R"]
    assert get_baseline(" bt-h ") is BASELINES["BT-H"]
    with pytest.raises(KeyError, match="known"):
        get_baseline("PCA")


@pytest.mark.parametrize(("sensor", "c", "ratio"), [("generic", 3, 4), ("GE1", 4, 4), ("Landsat-7", 6, 2),
                                                    ("WV3", 8, 4)])
def test_every_baseline_is_finite_with_the_right_shape(sensor, c, ratio):
    s = get_sensor(sensor, c)
    truth = synthetic_truth(c, 16 * ratio, seed=c)
    ms = decimate(mtf_filter(truth, s.mtf_ms, ratio), ratio).contiguous()
    pan = truth.mean(dim=0, keepdim=True)
    for name, fn in BASELINES.items():
        out = fn(ms, pan, s)
        assert out.shape == (c, 16 * ratio, 16 * ratio), name
        assert torch.isfinite(out).all(), name
        assert out.dtype == torch.float64


@pytest.mark.parametrize("sensor", ["QB", "WV2"])
def test_every_baseline_beats_exp_on_an_exactly_degraded_scene(sensor):
    s, ms, pan, truth = degraded_case(sensor)
    errors = {name: rmse(fn(ms, pan, s), truth) for name, fn in BASELINES.items()}
    for name, err in errors.items():
        if name != "EXP":
            assert err < 0.5 * errors["EXP"], (name, errors)


def test_exp_is_the_23_tap_interpolation():
    s, ms, pan, _ = degraded_case("GE1", n=64)
    torch.testing.assert_close(BASELINES["EXP"](ms, pan, s), interp23tap(ms, 4))


def test_batch_equals_per_image_for_every_baseline():
    s = get_sensor("GE1")
    cases = [degraded_case("GE1", n=64, seed=k)[1:3] for k in range(2)]
    ms = torch.stack([c[0] for c in cases])
    pan = torch.stack([c[1] for c in cases])
    for name, fn in BASELINES.items():
        out = fn(ms, pan, s)
        for i in range(2):
            torch.testing.assert_close(out[i], fn(ms[i], pan[i], s), msg=name)


def test_float32_in_float32_out():
    s, ms, pan, _ = degraded_case("GE1", n=64)
    out = BASELINES["GSA"](ms.float(), pan.float(), s)
    assert out.dtype == torch.float32


def test_bt_h_without_haze_is_the_brovey_transform():
    """Brovey: every band is scaled by the same PAN/intensity ratio (spectral angle
    of the interpolated MS kept), and the fused intensity is the PAN matched to I."""
    s, ms, pan, _ = degraded_case("GE1", n=64)
    fused = bt_h(ms, pan, s, haze=0.0)
    ms_up = interp23tap(ms, 4)
    ratio = fused / ms_up
    torch.testing.assert_close(ratio, ratio[:1].expand_as(ratio), rtol=1e-10, atol=0)
    # Independent pieces: regression weights by numpy, std with N-1.
    pan_lp = lpfilter_gauss(pan, 4)
    a = np.linalg.lstsq(ms_up.reshape(4, -1).T.numpy(), pan_lp.reshape(-1).numpy(), rcond=None)[0]
    weights = torch.from_numpy(a)[:, None, None]
    inten = (weights * ms_up).sum(0)
    pan_eq = (pan[0] - pan_lp.mean()) * inten.std() / pan_lp.std() + inten.mean()
    torch.testing.assert_close((weights * fused).sum(0), pan_eq, rtol=1e-9, atol=1e-6)


def test_bt_h_default_haze_differs_from_zero_haze_and_explicit_haze_is_used():
    s, ms, pan, _ = degraded_case("GE1", n=64)
    zero = bt_h(ms, pan, s, haze=0.0)
    assert (bt_h(ms, pan, s) - zero).abs().max() > 1e-3
    torch.testing.assert_close(bt_h(ms, pan, s, haze=[0.0] * 4), zero)


def test_matlab_prctile_hand_values():
    """MATLAB puts the k-th of n sorted values at 100(k - 0.5)/n and clamps outside."""
    x = torch.arange(10, 0, -1, dtype=torch.float64).reshape(1, 1, 2, 5)  # 1..10 shuffled order
    assert matlab_prctile(x, 1).item() == 1.0  # below 5 % -> minimum
    assert matlab_prctile(x, 50).item() == pytest.approx(5.5)
    assert matlab_prctile(x, 25).item() == pytest.approx(3.0)  # rank 10*0.25 + 0.5 = 3
    assert matlab_prctile(x, 33).item() == pytest.approx(3.8)
    assert matlab_prctile(x, 99).item() == 10.0


def test_nnls_matches_brute_force_active_sets():
    rng = np.random.default_rng(3)
    for _ in range(20):
        h = rng.normal(size=(40, 5)) + rng.normal(size=(1, 5))
        y = rng.normal(size=40) * 3
        q, c = h.T @ h, h.T @ y
        z = nnls_gram(q, c)
        best, best_obj = None, np.inf
        for r in range(6):
            for subset in itertools.combinations(range(5), r):
                cand = np.zeros(5)
                if subset:
                    cand[list(subset)] = np.linalg.solve(q[np.ix_(subset, subset)], c[list(subset)])
                if cand.min() >= -1e-12:
                    obj = 0.5 * cand @ q @ cand - c @ cand
                    if obj < best_obj:
                        best, best_obj = cand, obj
        np.testing.assert_allclose(z, best, atol=1e-9)


def test_global_regression_recovers_known_weights():
    g = torch.Generator().manual_seed(0)
    cols = torch.rand(2, 3, 20, 20, generator=g, dtype=torch.float64) * 1000
    w = torch.tensor([[0.2, 0.5, 0.3], [1.0, -0.5, 0.25]], dtype=torch.float64)
    target = (cols * w[:, :, None, None]).sum(1, keepdim=True)
    torch.testing.assert_close(lstsq_global(cols, target), w, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("ratio", "taps"), [(2, 9), (4, 17)])
def test_lp_filter_plus_dec_is_the_repeated_b3_spline_in_the_interior(ratio, taps):
    """ndwt2/indwt2 with details zeroed = the 5-tap B3 kernel applied 2*levels times."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 48, 48, generator=g, dtype=torch.float64)
    b = np.array([1, 4, 6, 4, 1]) / 16
    k = b
    for _ in range(2 * int(np.log2(ratio)) - 1):
        k = np.convolve(k, b)
    assert k.size == taps
    ref = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 0, x[0, 0].numpy())
    ref = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 1, ref)
    ours = lp_filter_plus_dec(x, ratio)[0, 0].numpy()
    s, m = ratio // 2, taps
    np.testing.assert_allclose(ours[m // ratio + 1:-(m // ratio + 1), m // ratio + 1:-(m // ratio + 1)],
                               ref[s::ratio, s::ratio][m // ratio + 1:-(m // ratio + 1),
                                                       m // ratio + 1:-(m // ratio + 1)], atol=1e-12)
    const = lp_filter_plus_dec(torch.full((1, 1, 16, 16), 5.0, dtype=torch.float64), ratio)
    torch.testing.assert_close(const, torch.full_like(const, 5.0))


def test_bad_inputs_are_reported():
    s, ms, pan, _ = degraded_case("GE1", n=64)
    with pytest.raises(ValueError, match="pan must be"):
        BASELINES["GSA"](ms, pan[..., :60, :], s)
    with pytest.raises(ValueError, match="8 MS bands"):
        BASELINES["GSA"](ms, pan, "WV2")
    with pytest.raises(ValueError, match="PAN MTF gain"):
        BASELINES["BDSD-PC"](ms, pan, (0.3,) * 4, 4)
    with pytest.raises(ValueError, match="ratio must be 2, 4 or 8"):
        BASELINES["EXP"](ms[..., :10, :10], pan[..., :30, :30], s, 3)
