"""The attention-guided fusion head: shapes, the keep_finest choice, gradients, checks."""

from __future__ import annotations

import pytest
import torch

from crossdiff.models.config import HeadConfig
from crossdiff.models.fusion_head import SCSE, FusionHead

LEVELS = (256, 128, 64, 32)


def _feats(b: int, h: int, w: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, c, h >> i, w >> i, generator=g) for i, c in enumerate(reversed(LEVELS))]


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("bands", [3, 4, 8])
def test_output_is_lms_plus_a_residual_of_the_same_shape(bands):
    head = FusionHead(HeadConfig(), bands)
    lms = torch.randn(2, bands, 16, 24)
    out = head(lms, _feats(2, 16, 24, 0), _feats(2, 16, 24, 1))
    assert out.shape == lms.shape and torch.isfinite(out).all()
    with torch.no_grad():  # a zeroed output conv leaves exactly lms
        head.out.weight.zero_()
        head.out.bias.zero_()
    assert torch.equal(head(lms, _feats(2, 16, 24, 0), _feats(2, 16, 24, 1)), lms)


def test_authors_variant_ignores_the_finest_features():
    """keep_finest=False (the released head) never uses h1; keep_finest=True does."""
    lms = torch.randn(1, 4, 16, 16)
    p2m, m2p = _feats(1, 16, 16, 0), _feats(1, 16, 16, 1)
    p2m_changed = [p2m[0] + 5.0, *p2m[1:]]
    authors = FusionHead(HeadConfig(keep_finest=False), 4)
    assert torch.equal(authors(lms, p2m, m2p), authors(lms, p2m_changed, m2p))
    finest = FusionHead(HeadConfig(keep_finest=True), 4)
    assert not torch.allclose(finest(lms, p2m, m2p), finest(lms, p2m_changed, m2p))
    # The only difference is the finest merge conv, 64 -> 64 channels, 3x3, with bias.
    assert _params(finest) - _params(authors) == 64 * 64 * 9 + 64


def test_coarser_levels_all_matter():
    head = FusionHead(HeadConfig(), 4)
    lms = torch.randn(1, 4, 16, 16)
    p2m, m2p = _feats(1, 16, 16, 0), _feats(1, 16, 16, 1)
    base = head(lms, p2m, m2p)
    for level in (1, 2, 3):
        changed = [f + 1.0 if i == level else f for i, f in enumerate(m2p)]
        assert not torch.allclose(head(lms, p2m, changed), base), level


@pytest.mark.parametrize("keep_finest", [False, True])
@pytest.mark.parametrize("gate", ["leaky_relu", "sigmoid"])
def test_every_parameter_gets_a_gradient(keep_finest, gate):
    head = FusionHead(HeadConfig(keep_finest=keep_finest, se_gate=gate), 4)
    lms = torch.randn(2, 4, 16, 16)
    head(lms, _feats(2, 16, 16, 0), _feats(2, 16, 16, 1)).abs().mean().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_scse_hand_worked_with_zeroed_layers():
    """With all weights and biases zero both gates see 0: sigmoid gives 0.5 + 0.5 = identity."""
    se = SCSE(8, reduction=2, gate="sigmoid")
    for p in se.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(se(x), x)
    leaky = SCSE(8, reduction=2, gate="leaky_relu")
    for p in leaky.parameters():
        torch.nn.init.zeros_(p)
    assert leaky(x).abs().sum() == 0  # LeakyReLU(0) = 0: the released gate can switch a map off


def test_bad_inputs_are_clear_errors():
    head = FusionHead(HeadConfig(), 4)
    lms = torch.randn(1, 4, 16, 16)
    with pytest.raises(ValueError, match=r"lms must be \(B, 4, H, W\)"):
        head(torch.randn(1, 3, 16, 16), _feats(1, 16, 16, 0), _feats(1, 16, 16, 1))
    with pytest.raises(ValueError, match="M2P gave 3 feature maps"):
        head(lms, _feats(1, 16, 16, 0), _feats(1, 16, 16, 1)[:3])
    bad = _feats(1, 16, 16, 1)
    bad[2] = torch.randn(1, 100, 4, 4)
    with pytest.raises(ValueError, match="M2P h3 has shape"):
        head(lms, _feats(1, 16, 16, 0), bad)
