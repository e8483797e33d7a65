"""The Gaussian noise process, kept apart from the network (guided-diffusion style).

The network is passed in to every method: ``model(x_t, cond, t) -> eps``.
Timesteps are 1-based as in DDPM and the authors' code: t in 1..T, with
``alpha_bar[0] = 1`` standing for the clean image, so ``alpha_bar[t]`` is
the product of (1 - beta_s) for s = 1..t. The network sees t itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from crossdiff.models.config import DiffusionConfig

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Betas of the cosine schedule (Nichol & Dhariwal 2021), float64, shape (T,).

    ``alpha_bar(u) = cos^2((u + s) / (1 + s) * pi / 2)`` on u in [0, 1];
    ``beta_t = min(1 - alpha_bar(t/T) / alpha_bar((t-1)/T), max_beta)``.
    """

    def alpha_bar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [
        min(1 - alpha_bar((i + 1) / timesteps) / alpha_bar(i / timesteps), max_beta) for i in range(timesteps)
    ]
    return torch.tensor(betas, dtype=torch.float64)


def _randn(shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise; drawn on the generator's device, then moved to ``like``'s."""
    if generator is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    noise = torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)
    return noise.to(device=like.device, dtype=like.dtype)


class GaussianDiffusion:
    """Forward noising, the epsilon training loss and two samplers (DDPM, DDIM).

    Args:
        config: the noise process settings.
    """

    def __init__(self, config: DiffusionConfig | None = None) -> None:
        self.config = config or DiffusionConfig()
        c = self.config
        self.num_timesteps = c.timesteps
        betas = cosine_betas(c.timesteps, c.cosine_s, c.max_beta)
        alphas = 1.0 - betas
        # Index 0 is the clean image; all tables are float64 and indexed by 1-based t.
        self.betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas])
        self.alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(alphas, 0)])
        ab, ab_prev = self.alpha_bar[1:], self.alpha_bar[:-1]
        zero = torch.zeros(1, dtype=torch.float64)
        # Posterior q(x_{t-1} | x_t, x_0), DDPM eq. 6-7.
        self.posterior_variance = torch.cat([zero, betas * (1 - ab_prev) / (1 - ab)])
        self.posterior_mean_coef1 = torch.cat([zero, betas * ab_prev.sqrt() / (1 - ab)])
        self.posterior_mean_coef2 = torch.cat([zero, (1 - ab_prev) * alphas.sqrt() / (1 - ab)])
        self._device_tables: dict[tuple[int, torch.device], torch.Tensor] = {}

    # -- small pieces -----------------------------------------------------------------

    def _take(self, table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """table[t] shaped (B, 1, 1, 1) on ``like``'s device and dtype, without a host sync."""
        key = (id(table), like.device)
        cached = self._device_tables.get(key)
        if cached is None:  # one float32 copy per table and device
            cached = self._device_tables[key] = table.to(device=like.device, dtype=torch.float32)
        return cached[t.to(like.device).long()].reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)

    def _as_t(self, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device).long()
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or shape ({x.shape[0]},), got {tuple(t.shape)}")
        if int(t.min()) < 0 or int(t.max()) > self.num_timesteps:
            raise ValueError(f"t must lie in 0..{self.num_timesteps} (1-based, 0 = clean), got {t.tolist()}")
        return t

    def sample_timesteps(
        self, batch: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """t uniform in 1..T, one per sample."""
        gen_device = generator.device if generator is not None else device
        t = torch.randint(1, self.num_timesteps + 1, (batch,), generator=generator, device=gen_device)
        return t.to(device)

    def q_sample(
        self,
        x0: torch.Tensor,
        t: torch.Tensor | int,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise."""
        t = self._as_t(t, x0)
        if noise is None:
            noise = _randn(x0.shape, x0, generator)
        return self._q_sample(x0, t, noise)

    def _q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        ab = self._take(self.alpha_bar, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x0 implied by a noise prediction."""
        ab = self._take(self.alpha_bar, t, x_t)
        return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()

    def guided_eps(
        self, model: Denoiser, x_t: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, scale: float
    ) -> torch.Tensor:
        """Classifier-free guidance: (1 + w) eps(x, c) - w eps(x, 0); one batched call when w > 0."""
        if scale == 0:
            return model(x_t, cond, t)
        both = model(torch.cat([x_t, x_t]), torch.cat([cond, torch.zeros_like(cond)]), torch.cat([t, t]))
        eps_c, eps_u = both.chunk(2)
        return (1 + scale) * eps_c - scale * eps_u

    # -- training -----------------------------------------------------------------------

    def training_losses(
        self,
        model: Denoiser,
        x0: torch.Tensor,
        cond: torch.Tensor,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        cond_dropout: float | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Epsilon-prediction loss with classifier-free condition dropout.

        Each sample's condition is zeroed with probability ``cond_dropout``
        (config default 0.1). The authors drop the whole batch's condition
        with one coin; per sample is the usual recipe and gives the same
        expected rate with lower variance.

        Returns:
            ``loss`` (scalar mean), ``per_sample`` (B,), ``t`` (B,) and ``dropped`` (B,) bool.
        """
        b = x0.shape[0]
        t = self.sample_timesteps(b, x0.device, generator) if t is None else self._as_t(t, x0)
        if noise is None:
            noise = _randn(x0.shape, x0, generator)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} must equal x0 shape {tuple(x0.shape)}")
        p = self.config.cond_dropout if cond_dropout is None else cond_dropout
        gen_device = generator.device if generator is not None else x0.device
        dropped = (torch.rand(b, generator=generator, device=gen_device) < p).to(x0.device)
        cond = torch.where(dropped[:, None, None, None], torch.zeros_like(cond), cond)
        eps = model(self._q_sample(x0, t, noise), cond, t)
        diff = eps.float() - noise.float()
        err = diff.abs() if self.config.loss == "l1" else diff.square()
        per_sample = err.flatten(1).mean(1)
        return {"loss": per_sample.mean(), "per_sample": per_sample, "t": t, "dropped": dropped}

    # -- sampling -----------------------------------------------------------------------

    def _start(self, shape: tuple[int, ...], cond: torch.Tensor, guidance_scale: float | None,
               generator: torch.Generator | None, x_T: torch.Tensor | None) -> tuple[float, torch.Tensor]:
        """A sampling loop's guidance weight and starting noise ``x_T``."""
        w = self.config.guidance_scale if guidance_scale is None else guidance_scale
        return w, (_randn(torch.Size(shape), cond, generator) if x_T is None else x_T)

    def _predict(self, model: Denoiser, x: torch.Tensor, cond: torch.Tensor, step: int,
                 w: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(t, eps, x0)`` at timestep ``step``: guided noise and the clean image it implies (clipped if set)."""
        t = torch.full((x.shape[0],), step, device=x.device, dtype=torch.long)
        eps = self.guided_eps(model, x, cond, t, w)
        x0 = self.predict_x0(x, t, eps)
        if self.config.clip_denoised:
            x0 = x0.clamp(-1, 1)
        return t, eps, x0

    @torch.no_grad()
    def p_sample_loop(
        self,
        model: Denoiser,
        cond: torch.Tensor,
        shape: tuple[int, ...],
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        x_T: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Ancestral DDPM sampling over all T steps with classifier-free guidance."""
        w, x = self._start(shape, cond, guidance_scale, generator, x_T)
        for step in range(self.num_timesteps, 0, -1):
            t, _, x0 = self._predict(model, x, cond, step, w)
            mean = (
                self._take(self.posterior_mean_coef1, t, x) * x0
                + self._take(self.posterior_mean_coef2, t, x) * x
            )
            if step > 1:
                x = mean + self._take(self.posterior_variance, t, x).sqrt() * _randn(x.shape, x, generator)
            else:
                x = mean
        return x

    def ddim_timesteps(self, steps: int) -> list[int]:
        """``steps`` timesteps evenly spaced from T down to 1."""
        if not 1 <= steps <= self.num_timesteps:
            raise ValueError(f"DDIM steps must be in 1..{self.num_timesteps}, got {steps}")
        ts = torch.linspace(self.num_timesteps, 1, steps).round().long().tolist()
        return sorted(set(ts), reverse=True)

    @torch.no_grad()
    def ddim_sample_loop(
        self,
        model: Denoiser,
        cond: torch.Tensor,
        shape: tuple[int, ...],
        steps: int = 50,
        eta: float = 0.0,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        x_T: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """DDIM sampling (Song et al. 2021); eta = 0 is deterministic given x_T (or the generator)."""
        w, x = self._start(shape, cond, guidance_scale, generator, x_T)
        ts = self.ddim_timesteps(steps)
        for cur, nxt in zip(ts, [*ts[1:], 0], strict=True):
            t, eps, x0 = self._predict(model, x, cond, cur, w)
            ab = self._take(self.alpha_bar, t, x)
            ab_next = self._take(self.alpha_bar, torch.full_like(t, nxt), x)
            if self.config.clip_denoised:
                eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # keep eps consistent with the clipped x0
            sigma = eta * ((1 - ab_next) / (1 - ab) * (1 - ab / ab_next)).sqrt()
            x = ab_next.sqrt() * x0 + (1 - ab_next - sigma**2).clamp(min=0).sqrt() * eps
            if eta > 0 and nxt > 0:
                x = x + sigma * _randn(x.shape, x, generator)
        return x
