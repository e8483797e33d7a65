"""Stage-2 feature extraction: timestep, shapes, fresh versus seeded noise."""

from __future__ import annotations

import pytest
import torch

from crossdiff.models.config import DiffusionConfig, UNetConfig
from crossdiff.models.diffusion import GaussianDiffusion
from crossdiff.models.features import encoder_features, feature_noise
from crossdiff.models.unet import ConditionalUNet


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = ConditionalUNet(UNetConfig(bands=4, role="m2p")).eval()
    g = torch.Generator().manual_seed(1)
    pan = torch.rand(3, 1, 16, 24, generator=g) * 2 - 1
    lms = torch.rand(3, 4, 16, 24, generator=g) * 2 - 1
    return GaussianDiffusion(DiffusionConfig()), net, pan, lms


def _equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_shapes_and_timestep(setup):
    d, net, pan, lms = setup
    feats = encoder_features(d, net, pan, lms, t=50, seed=5)
    assert [tuple(f.shape) for f in feats] == [
        (3, 32, 16, 24),
        (3, 64, 8, 12),
        (3, 128, 4, 6),
        (3, 256, 2, 3),
    ]
    # The same thing by hand: noise x0 to t = 50 with the seed's noise and call the encoder contract.
    noise = torch.randn(pan.shape, generator=torch.Generator().manual_seed(5))
    by_hand = net.forward_features(d.q_sample(pan, 50, noise), lms, 50)
    assert _equal(feats, by_hand)


def test_seeded_mode_is_bit_identical_and_seed_dependent(setup):
    d, net, pan, lms = setup
    a = encoder_features(d, net, pan, lms, seed=11)
    torch.randn(10)  # global RNG use in between must not matter
    b = encoder_features(d, net, pan, lms, seed=11)
    c = encoder_features(d, net, pan, lms, seed=12)
    assert _equal(a, b)
    assert not torch.equal(a[0], c[0])


def test_fresh_mode_differs_between_calls(setup):
    d, net, pan, lms = setup
    a = encoder_features(d, net, pan, lms, seed=None)
    b = encoder_features(d, net, pan, lms, seed=None)
    seeded = encoder_features(d, net, pan, lms, seed=11)
    assert not torch.equal(a[0], b[0])
    assert not torch.equal(a[0], seeded[0])


def test_per_sample_seeds_do_not_depend_on_the_batch(setup):
    """With one seed per sample a tile's features are the same alone or in a batch (cacheable per tile)."""
    d, net, pan, lms = setup
    batch = encoder_features(d, net, pan, lms, seed=[7, 8, 9])
    alone = encoder_features(d, net, pan[1:2], lms[1:2], seed=[8])
    for f_batch, f_alone in zip(batch, alone, strict=True):
        torch.testing.assert_close(f_batch[1:2], f_alone, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="3 per-sample seeds for a batch of 2"):
        feature_noise((2, 1, 4, 4), [1, 2, 3], pan)


def test_timestep_zero_gives_clean_features_and_bounds_are_checked(setup):
    d, net, pan, lms = setup
    clean = encoder_features(d, net, pan, lms, t=0, seed=3)
    assert _equal(clean, net.forward_features(pan, lms, 0))
    with pytest.raises(ValueError, match="0..1000"):
        encoder_features(d, net, pan, lms, t=1001)
