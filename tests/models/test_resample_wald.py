"""Wald-protocol reduced-resolution pairs (toolbox resize_images)."""

from __future__ import annotations

import pytest
import torch

from crossdiff.models.resample import decimate, imresize, interp23tap, mtf_filter, wald_pair
from crossdiff.models.resample.wald import decimation_start
from crossdiff.models.sensors import get_sensor


def _pair(c: int, h: int, ratio: int, batch: int | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    ms = torch.rand(*lead, c, h, h, generator=g, dtype=torch.float64) * 2047
    pan = torch.rand(*lead, 1, ratio * h, ratio * h, generator=g, dtype=torch.float64) * 2047
    return ms, pan


def test_decimation_phase_matches_matlab_nearest():
    """imresize(., 1/r, 'nearest') maps output j (1-based) to input j*r + (1-r)/2, ties up:
    ratio 4 -> 0-based 2, 6, 10, ...; ratio 2 -> 1, 3, 5, ..."""
    assert decimation_start(4) == 2 and decimation_start(2) == 1
    x = torch.arange(16.0).reshape(1, 1, 16).expand(1, 16, 16)
    assert decimate(x, 4)[0, 0].tolist() == [2.0, 6.0, 10.0, 14.0]
    assert decimate(x, 2)[0, 0].tolist() == [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]


@pytest.mark.parametrize(("sensor", "ratio", "c"), [("WV2", 4, 8), ("GE1", 4, 4), ("Landsat-8", 2, 4)])
def test_shapes_and_gt_is_the_original(sensor, ratio, c):
    ms, pan = _pair(c, 16, ratio)
    out = wald_pair(ms, pan, sensor)
    assert set(out) == {"ms", "pan", "lms", "gt"}
    assert out["ms"].shape == (c, 16 // ratio, 16 // ratio)
    assert out["pan"].shape == (1, 16, 16)
    assert out["lms"].shape == (c, 16, 16)
    assert out["gt"] is ms


def test_components_follow_the_toolbox():
    s = get_sensor("QB")
    ms, pan = _pair(4, 32, 4)
    out = wald_pair(ms, pan, s)
    torch.testing.assert_close(out["ms"], mtf_filter(ms, s.mtf_ms, 4)[:, 2::4, 2::4])
    torch.testing.assert_close(out["pan"], imresize(pan, 0.25))
    torch.testing.assert_close(out["lms"], interp23tap(out["ms"], 4))


def test_constant_scene_degrades_to_kernel_sum_and_constant_pan():
    s = get_sensor("WV2")
    ms = torch.full((8, 16, 16), 500.0, dtype=torch.float64)
    pan = torch.full((1, 64, 64), 300.0, dtype=torch.float64)
    out = wald_pair(ms, pan, s)
    from crossdiff.models.resample import mtf_kernels

    sums = torch.from_numpy(mtf_kernels(s.mtf_ms, 4).sum(axis=(1, 2)))
    torch.testing.assert_close(out["ms"], (500.0 * sums)[:, None, None].expand(8, 4, 4))
    torch.testing.assert_close(out["pan"], torch.full((1, 16, 16), 300.0, dtype=torch.float64))


def test_lms_is_aligned_with_gt():
    """Degrade + interpolate blurs (MTF) but must not shift: the best integer shift is 0."""
    n = 64
    r = torch.arange(n, dtype=torch.float64)
    base = 1000 + 300 * torch.cos(2 * torch.pi * r / 64 + 0.4)[:, None] * torch.cos(2 * torch.pi * r / 32 - 1)
    ms = torch.stack([base, 0.5 * base + 100])
    for ratio in (2, 4):
        pan = torch.zeros(1, n * ratio, n * ratio, dtype=torch.float64)
        lms = wald_pair(ms, pan, (0.3, 0.3), ratio)["lms"]
        for dim in (-1, -2):
            err = {s: (torch.roll(lms, s, dims=dim) - ms)[..., 8:-8, 8:-8].pow(2).mean().item()
                   for s in range(-2, 3)}
            assert min(err, key=err.get) == 0, (ratio, dim, err)


def test_batched_equals_per_image():
    ms, pan = _pair(4, 16, 4, batch=3)
    out = wald_pair(ms, pan, "GeoEye1")
    for i in range(3):
        one = wald_pair(ms[i], pan[i], "GeoEye1")
        for k in ("ms", "pan", "lms"):
            torch.testing.assert_close(out[k][i], one[k])


def test_bad_inputs_are_reported_with_the_fix():
    ms, pan = _pair(4, 16, 4)
    with pytest.raises(ValueError, match="pan must be"):
        wald_pair(ms, pan[..., :60, :64], "QB")
    with pytest.raises(ValueError, match="8 MS bands"):
        wald_pair(ms, pan, "WV2")
    with pytest.raises(ValueError, match="multiple of the ratio"):
        wald_pair(ms[..., :15, :15], pan[..., :60, :60], "QB")
    with pytest.raises(ValueError, match="ratio"):
        wald_pair(ms, pan, (0.3,) * 4)
    with pytest.raises(ValueError, match="one band"):
        wald_pair(ms, pan.expand(2, 64, 64), "QB")
