"""MATLAB imresize (bicubic) against hand-computed weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdiff.models.resample.imresize import contributions, cubic, imresize

# Keys' cubic (a = -0.5) at the distances that occur below, worked by hand:
# cubic(0.25) = 1.5/64 - 2.5/16 + 1 = 0.8671875      cubic(0.75) = 0.2265625
# cubic(1.25) = -0.0703125                           cubic(1.75) = -0.0234375
# cubic(0.5)  = 0.5625                               cubic(1.5)  = -0.0625
HAND = {0.25: 0.8671875, 0.75: 0.2265625, 1.25: -0.0703125, 1.75: -0.0234375, 0.5: 0.5625, 1.5: -0.0625}


def test_cubic_kernel_values():
    for d, v in HAND.items():
        assert cubic(np.array([d, -d])) == pytest.approx([v, v], abs=1e-15)
    assert cubic(np.array([0.0, 1.0, 2.0, 2.5])) == pytest.approx([1.0, 0.0, 0.0, 0.0])


def test_ramp_8_to_4_with_antialias_matches_hand_computation():
    """Halving with antialias: kernel 0.5*cubic(0.5 d), width 8, half-point mirrored borders.

    Output 1 sits at input u = 1.5 (1-based) and weighs inputs -3..6 by
    [0, -.0234375, -.0703125, .2265625, .8671875, .8671875, .2265625, -.0703125,
    -.0234375, 0] / 2; the mirror maps inputs 0, -1, -2 to 1, 2, 3, so the ramp
    x_k = k gives (-.0703125 - .140625 + .2265625 + .8671875 + 1.734375 + .6796875
    - .28125 - .1171875) / 2 = 1.44921875. Output 2 (u = 3.5) only sees input 0
    mirrored to 1 instead of 0: 3.5 - .0234375 / 2 = 3.48828125. The last two
    follow by the symmetry k -> 9 - k.
    """
    ramp = torch.arange(1, 9, dtype=torch.float64).reshape(1, 1, 8).expand(1, 8, 8)
    expected = torch.tensor([1.44921875, 3.48828125, 5.51171875, 7.55078125], dtype=torch.float64)
    out = imresize(ramp, 0.5)
    assert out.shape == (1, 4, 4)
    torch.testing.assert_close(out[0], expected.expand(4, 4), rtol=0, atol=1e-12)
    out_t = imresize(ramp.transpose(-1, -2), 0.5)
    torch.testing.assert_close(out_t[0], expected[:, None].expand(4, 4), rtol=0, atol=1e-12)


def test_ramp_8_to_4_without_antialias():
    """Plain bicubic: u = 1.5 weighs inputs 0..3 by [-.0625, .5625, .5625, -.0625];
    input 0 mirrors to 1: -.0625 + .5625 + 1.125 - .1875 = 1.4375; symmetrically the
    last output is 9 - 1.4375 = 7.5625; the middle two see no border."""
    ramp = torch.arange(1, 9, dtype=torch.float64).reshape(1, 1, 8).expand(1, 8, 8)
    out = imresize(ramp, 0.5, antialias=False)
    torch.testing.assert_close(out[0, 0], torch.tensor([1.4375, 3.5, 5.5, 7.5625], dtype=torch.float64))


def test_ramp_interior_lands_on_block_centres_at_ratio_4():
    """Away from borders a linear ramp maps to its value at u = 4j - 1.5 (1-based)."""
    n = 64
    ramp = torch.arange(1, n + 1, dtype=torch.float64).reshape(1, 1, n).expand(2, n, n)
    out = imresize(ramp, 0.25)[0, 0]
    j = torch.arange(1, n // 4 + 1, dtype=torch.float64)
    torch.testing.assert_close(out[3:-3], (4 * j - 1.5)[3:-3], rtol=0, atol=1e-10)


@pytest.mark.parametrize("scale", [0.25, 0.5, 2.0, 1 / 3])
def test_constant_stays_constant_and_sizes(scale):
    x = torch.full((1, 2, 30, 24), 777.0, dtype=torch.float64)
    y = imresize(x, scale)
    assert y.shape[-2:] == (int(np.ceil(30 * scale - 1e-9)), int(np.ceil(24 * scale - 1e-9)))
    torch.testing.assert_close(y, torch.full_like(y, 777.0), rtol=1e-14, atol=0)


def test_weights_sum_to_one_and_indices_stay_inside():
    idx, w = contributions(10, 3, 1 / 3, True)
    assert np.allclose(w.sum(axis=1), 1.0) and idx.min() >= 0 and idx.max() <= 9


def test_batches_equal_per_image_and_float32():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 32, 20, generator=g)
    y = imresize(x, 0.25)
    assert y.dtype == torch.float32 and y.shape == (3, 2, 8, 5)
    for i in range(3):
        torch.testing.assert_close(y[i], imresize(x[i], 0.25))


def test_bad_input():
    with pytest.raises(ValueError, match="expected"):
        imresize(torch.zeros(8, 8), 0.5)
    with pytest.raises(ValueError, match="positive"):
        imresize(torch.zeros(1, 8, 8), 0.0)
