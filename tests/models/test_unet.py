"""The conditional UNet: the paper's parameter counts, shapes, entry checks, gradients, init."""

from __future__ import annotations

import pytest
import torch

from crossdiff.models.config import UNetConfig
from crossdiff.models.unet import ConditionalUNet, timestep_embedding


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _inputs(cfg: UNetConfig, b: int = 2, h: int = 40, w: int = 56, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x_t = torch.randn(b, cfg.x0_channels, h, w, generator=g)
    cond = torch.randn(b, cfg.cond_channels, h, w, generator=g)
    t = torch.randint(1, 1001, (b,), generator=g)
    return x_t, cond, t


def test_paper_parameter_counts_for_four_bands():
    """The authors' nets: M2P 1,086,318 and P2M 1,087,320 parameters (they differ by the output conv)."""
    assert _n_params(ConditionalUNet(UNetConfig(bands=4, role="m2p"))) == 1_086_318
    assert _n_params(ConditionalUNet(UNetConfig(bands=4, role="p2m"))) == 1_087_320


def test_parameter_count_grows_with_bands_only_in_the_input_and_output_convs():
    # One more band: the stem gains an input channel (32 * 9 weights). The output conv reads
    # cat[h(32), x_t, cond] = 33 + bands channels; M2P writes 1 channel, P2M writes `bands`.
    m2p = [_n_params(ConditionalUNet(UNetConfig(bands=b, role="m2p"))) for b in (4, 5)]
    p2m = [_n_params(ConditionalUNet(UNetConfig(bands=b, role="p2m"))) for b in (4, 5)]
    assert m2p[1] - m2p[0] == 32 * 9 + 9
    assert p2m[1] - p2m[0] == 32 * 9 + (38 * 5 * 9 + 5) - (37 * 4 * 9 + 4)


@pytest.mark.parametrize("bands", [3, 4, 8])
@pytest.mark.parametrize("role", ["p2m", "m2p"])
def test_shapes_on_an_odd_size(bands, role):
    cfg = UNetConfig(bands=bands, role=role)
    net = ConditionalUNet(cfg)
    x_t, cond, t = _inputs(cfg, h=40, w=56)
    eps = net(x_t, cond, t)
    assert eps.shape == x_t.shape
    feats = net.forward_features(x_t, cond, t)
    assert [tuple(f.shape) for f in feats] == [
        (2, 32, 40, 56),
        (2, 64, 20, 28),
        (2, 128, 10, 14),
        (2, 256, 5, 7),
    ]
    assert torch.isfinite(eps).all()


def test_size_not_divisible_by_eight_is_a_clear_error():
    cfg = UNetConfig(bands=4, role="p2m")
    net = ConditionalUNet(cfg)
    x_t, cond, t = _inputs(cfg, h=36, w=36)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(x_t, cond, t)
    with pytest.raises(ValueError, match="divisible by 8"):
        net.forward_features(x_t, cond, t)


def test_wrong_channel_counts_are_clear_errors():
    net = ConditionalUNet(UNetConfig(bands=4, role="p2m"))
    with pytest.raises(ValueError, match=r"x_t must be \(B, 4, H, W\)"):
        net(torch.zeros(1, 8, 16, 16), torch.zeros(1, 1, 16, 16), 5)
    with pytest.raises(ValueError, match=r"cond must be \(B, 1, H, W\)"):
        net(torch.zeros(1, 4, 16, 16), torch.zeros(1, 4, 16, 16), 5)
    with pytest.raises(ValueError, match="share batch and H, W"):
        net(torch.zeros(1, 4, 16, 16), torch.zeros(1, 1, 24, 16), 5)
    with pytest.raises(ValueError, match="t must be"):
        net(torch.zeros(2, 4, 16, 16), torch.zeros(2, 1, 16, 16), torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("role", ["p2m", "m2p"])
def test_every_parameter_gets_a_gradient(role):
    cfg = UNetConfig(bands=4, role=role)
    net = ConditionalUNet(cfg)
    x_t, cond, t = _inputs(cfg, h=16, w=24)
    net(x_t, cond, t).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_the_timestep_changes_the_prediction():
    cfg = UNetConfig(bands=4, role="m2p")
    net = ConditionalUNet(cfg)
    x_t, cond, _ = _inputs(cfg, b=1, h=16, w=16)
    assert not torch.allclose(net(x_t, cond, 10), net(x_t, cond, 900))


def test_features_depend_on_the_encoder_only():
    """The encoder contract: changing decoder weights leaves forward_features untouched."""
    cfg = UNetConfig(bands=4, role="p2m")
    net = ConditionalUNet(cfg)
    x_t, cond, t = _inputs(cfg, h=16, w=16)
    before = net.forward_features(x_t, cond, t)
    eps_before = net(x_t, cond, t)
    with torch.no_grad():
        for module in (*net.up, net.fuse, net.out):
            for p in module.parameters():
                p.add_(1.0)
    after = net.forward_features(x_t, cond, t)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not torch.allclose(eps_before, net(x_t, cond, t))


def test_orthogonal_init_with_zero_biases():
    net = ConditionalUNet(UNetConfig(bands=4, role="p2m"))
    w = net.down[1].conv.weight.flatten(1)  # (128, 64 * 9): orthonormal rows
    torch.testing.assert_close(w @ w.T, torch.eye(w.shape[0]), atol=1e-5, rtol=0)
    lin = net.time_embed.weight  # (256, 32): orthonormal columns
    torch.testing.assert_close(lin.T @ lin, torch.eye(32), atol=1e-5, rtol=0)
    assert all(m.bias.abs().sum() == 0 for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def test_custom_widths_and_levels():
    """Three levels of (16, 32, 64): H, W need only be multiples of 4, GroupNorm groups stay valid."""
    cfg = UNetConfig(bands=5, role="p2m", base_width=16, channel_mults=(1, 2, 4))
    net = ConditionalUNet(cfg)
    x_t, cond, t = _inputs(cfg, h=12, w=20)
    assert net(x_t, cond, t).shape == x_t.shape
    assert [f.shape[1] for f in net.forward_features(x_t, cond, t)] == [16, 32, 64]
    assert net.down[0].pre.norm.num_groups == 4 and net.down[1].pre.norm.num_groups == 32


def test_timestep_embedding_hand_worked():
    # dim 4: frequencies 1 and 10000^-0.5 = 0.01; t = 0 gives cos 1, sin 0.
    emb = timestep_embedding(torch.tensor([0.0, 100.0]), 4)
    expected = torch.tensor(
        [
            [1.0, 1.0, 0.0, 0.0],
            [
                torch.cos(torch.tensor(100.0)),
                torch.cos(torch.tensor(1.0)),
                torch.sin(torch.tensor(100.0)),
                torch.sin(torch.tensor(1.0)),
            ],
        ]
    )
    torch.testing.assert_close(emb, expected)
