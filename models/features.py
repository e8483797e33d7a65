"""Stage-2 encoder features: noise a net's own x0 at a chosen timestep and ask
the UNet's encoder contract (``forward_features``) for [h1..hN].

Two noise modes:

- fresh (``seed=None``): new noise from the global RNG on every call, as the
  authors do even at test time; features of one image vary between calls.
- seeded (``seed=int`` or one int per sample): the noise comes from a
  ``torch.Generator`` seeded on every call, drawn on the CPU so the same seed
  gives the same noise on any device. Calls with one seed are bit-identical
  (on one device), which lets features be cached. Per-sample seeds make a
  tile's features independent of what else is in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from crossdiff.models.diffusion import GaussianDiffusion
from crossdiff.models.unet import ConditionalUNet

DEFAULT_FEATURE_TIMESTEP = 50


def feature_noise(
    shape: torch.Size | tuple[int, ...],
    seed: int | Sequence[int] | None,
    like: torch.Tensor,
) -> torch.Tensor:
    """Noise for feature extraction: fresh when ``seed`` is None, else drawn from seeded CPU generators."""
    if seed is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    if isinstance(seed, int):
        gen = torch.Generator(device="cpu").manual_seed(seed)
        noise = torch.randn(shape, generator=gen, dtype=torch.float32)
    else:
        seeds = list(seed)
        if len(seeds) != shape[0]:
            raise ValueError(f"got {len(seeds)} per-sample seeds for a batch of {shape[0]}")
        noise = torch.stack(
            [
                torch.randn(shape[1:], generator=torch.Generator(device="cpu").manual_seed(int(s)))
                for s in seeds
            ]
        )
    return noise.to(device=like.device, dtype=like.dtype)


def encoder_features(
    diffusion: GaussianDiffusion,
    model: ConditionalUNet,
    x0: torch.Tensor,
    cond: torch.Tensor,
    t: int = DEFAULT_FEATURE_TIMESTEP,
    seed: int | Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """Encoder maps of ``model`` for its own clean image ``x0`` noised to timestep ``t``.

    Args:
        diffusion: the noise process the model was trained with.
        model: a P2M or M2P UNet.
        x0: the image the model denoises (lms for P2M, PAN for M2P), in [-1, 1].
        cond: its condition (PAN for P2M, lms for M2P), unchanged.
        t: 1-based timestep (50 in the paper); 0 gives features of the clean image.
        seed: None for fresh noise, an int (or one per sample) for deterministic noise.

    Returns:
        [h1, ..., hN], finest first.
    """
    if not 0 <= t <= diffusion.num_timesteps:
        raise ValueError(f"feature timestep must be in 0..{diffusion.num_timesteps}, got {t}")
    noise = feature_noise(x0.shape, seed, x0)
    x_t = diffusion.q_sample(x0, t, noise)
    return model.forward_features(x_t, cond, t)
