"""The noise process: schedule, forward noising, the training loss and both samplers."""

from __future__ import annotations

import math

import pytest
import torch

from crossdiff.models.config import DiffusionConfig, UNetConfig
from crossdiff.models.diffusion import GaussianDiffusion, cosine_betas
from crossdiff.models.unet import ConditionalUNet


def test_cosine_schedule_matches_its_closed_form():
    T, s = 1000, 0.008
    betas = cosine_betas(T, s, 0.999)
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    alpha_bar = torch.cumprod(1 - betas, 0)
    # Unclipped steps reproduce alpha_bar(t) = f(t) / f(0) exactly.
    for t in (1, 50, 500, 990):
        assert alpha_bar[t - 1].item() == pytest.approx(f[t] / f[0], rel=1e-9)
    assert (betas > 0).all() and betas.max().item() == 0.999  # the last step would be 1: clipped
    assert (alpha_bar[1:] < alpha_bar[:-1]).all()


def test_one_based_timesteps_and_q_sample_formula():
    d = GaussianDiffusion(DiffusionConfig())
    assert d.alpha_bar[0] == 1.0 and d.num_timesteps == 1000
    x0 = torch.randn(3, 4, 8, 8)
    noise = torch.randn_like(x0)
    assert torch.equal(d.q_sample(x0, 0, noise), x0)  # t = 0 is the clean image
    t = torch.tensor([1, 50, 1000])
    ab = torch.cumprod(1 - cosine_betas(1000), 0)[t - 1].float().view(-1, 1, 1, 1)
    torch.testing.assert_close(d.q_sample(x0, t, noise), ab.sqrt() * x0 + (1 - ab).sqrt() * noise)
    with pytest.raises(ValueError, match="0..1000"):
        d.q_sample(x0, 1001, noise)


def test_sampled_timesteps_are_uniform_over_one_to_T():
    d = GaussianDiffusion(DiffusionConfig(timesteps=10))
    t = d.sample_timesteps(20000, generator=torch.Generator().manual_seed(0))
    assert t.min() == 1 and t.max() == 10
    counts = torch.bincount(t, minlength=11)[1:].float()
    assert (counts / 20000 - 0.1).abs().max() < 0.01


class _Recorder(torch.nn.Module):
    """Predicts zero noise and records the condition it was given."""

    def forward(self, x_t, cond, t):
        self.cond = cond
        return torch.zeros_like(x_t)


def test_training_loss_is_the_epsilon_mse():
    d = GaussianDiffusion(DiffusionConfig(cond_dropout=0.0))
    x0, cond = torch.randn(4, 1, 8, 8), torch.randn(4, 4, 8, 8)
    noise = torch.randn_like(x0)
    out = d.training_losses(_Recorder(), x0, cond, t=torch.tensor([1, 2, 3, 4]), noise=noise)
    # A zero prediction costs exactly mean(noise^2) per sample.
    torch.testing.assert_close(out["per_sample"], noise.square().flatten(1).mean(1))
    torch.testing.assert_close(out["loss"], noise.square().mean())


def test_condition_dropout_zeroes_whole_samples():
    d = GaussianDiffusion(DiffusionConfig(cond_dropout=0.5))
    model = _Recorder()
    x0, cond = torch.randn(64, 1, 4, 4), torch.randn(64, 4, 4, 4) + 3.0
    out = d.training_losses(model, x0, cond, generator=torch.Generator().manual_seed(1))
    zeroed = model.cond.flatten(1).abs().sum(1) == 0
    assert torch.equal(zeroed, out["dropped"])
    assert 10 < int(zeroed.sum()) < 54  # per sample, not one coin for the batch
    assert torch.equal(model.cond[~zeroed], cond[~zeroed])
    d.training_losses(model, x0, cond, cond_dropout=0.0)
    assert torch.equal(model.cond, cond)
    d.training_losses(model, x0, cond, cond_dropout=1.0)
    assert model.cond.abs().sum() == 0


def test_guidance_combines_conditional_and_unconditional_predictions():
    d = GaussianDiffusion(DiffusionConfig())

    def model(x_t, cond, t):  # eps = cond mean per sample, so eps(x, 0) = 0
        return cond.mean(1, keepdim=True).expand_as(x_t) + 1.0

    x, cond, t = torch.zeros(2, 1, 4, 4), torch.full((2, 3, 4, 4), 2.0), torch.tensor([5, 5])
    # (1 + w) * (2 + 1) - w * (0 + 1) with w = 3
    torch.testing.assert_close(d.guided_eps(model, x, cond, t, 3.0), torch.full_like(x, 4 * 3.0 - 3 * 1.0))
    torch.testing.assert_close(d.guided_eps(model, x, cond, t, 0.0), torch.full_like(x, 3.0))


def _oracle(d: GaussianDiffusion, target: torch.Tensor):
    """The exact noise predictor for data that is a point mass at ``target``."""

    def model(x_t, cond, t):
        ab = d.alpha_bar[t.cpu()].float().view(-1, 1, 1, 1)
        x0 = target.repeat(x_t.shape[0] // target.shape[0], 1, 1, 1)  # guidance doubles the batch
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    return model


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_recover_a_point_mass(sampler):
    """With the exact score of a point mass, both samplers must land on it."""
    d = GaussianDiffusion(DiffusionConfig(timesteps=50))
    target = torch.rand(2, 3, 8, 8) * 1.6 - 0.8
    cond = torch.randn(2, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    if sampler == "ddpm":
        out = d.p_sample_loop(_oracle(d, target), cond, tuple(target.shape), generator=g)
    else:
        out = d.ddim_sample_loop(_oracle(d, target), cond, tuple(target.shape), steps=10, generator=g)
    torch.testing.assert_close(out, target, atol=1e-4, rtol=0)


def test_ddim_with_a_seed_is_deterministic_and_samplers_give_the_right_shape():
    d = GaussianDiffusion(DiffusionConfig(timesteps=20))
    net = ConditionalUNet(UNetConfig(bands=4, role="p2m"))
    cond = torch.randn(1, 1, 16, 16)
    shape = (1, 4, 16, 16)

    def run(seed):
        return d.ddim_sample_loop(net, cond, shape, steps=5, generator=torch.Generator().manual_seed(seed))

    a, b, c = run(7), run(7), run(8)
    assert a.shape == shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1.0 + 1e-5  # the final step returns the clipped x0 estimate
    ddpm = d.p_sample_loop(net, cond, shape, generator=torch.Generator().manual_seed(0))
    assert ddpm.shape == shape and torch.isfinite(ddpm).all()


def test_ddim_timesteps_span_T_to_one():
    d = GaussianDiffusion(DiffusionConfig())
    ts = d.ddim_timesteps(50)
    assert ts[0] == 1000 and ts[-1] == 1 and len(ts) == 50 and ts == sorted(ts, reverse=True)
    with pytest.raises(ValueError):
        d.ddim_timesteps(0)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_reproduce_a_gaussian_data_distribution(sampler):
    """Data N(0, 0.5^2): with its exact noise predictor, samples must have std 0.5 (checks the
    posterior coefficients and the injected noise scale, not just the last step)."""
    d = GaussianDiffusion(DiffusionConfig(timesteps=1000, clip_denoised=False))
    var = 0.25

    def model(x_t, cond, t):  # E[eps | x_t] for Gaussian data
        ab = d.alpha_bar[t.cpu()].float().view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * x_t / (ab * var + 1 - ab)

    shape, cond = (4, 1, 64, 64), torch.zeros(4, 1, 64, 64)
    g = torch.Generator().manual_seed(3)
    if sampler == "ddpm":
        out = d.p_sample_loop(model, cond, shape, guidance_scale=0.0, generator=g)
    else:
        out = d.ddim_sample_loop(model, cond, shape, steps=50, guidance_scale=0.0, generator=g)
    assert out.std().item() == pytest.approx(0.5, rel=0.03)
    assert abs(out.mean().item()) < 0.02
