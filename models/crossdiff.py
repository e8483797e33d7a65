"""CrossDiff: the two cross-predictive diffusion UNets, their noise process and
the fusion head, behind one module built from one config.

Stage 1 trains both UNets with :meth:`CrossDiff.pretrain_losses`; stage 2
freezes them (:meth:`CrossDiff.freeze_encoders`) and trains the head on
:meth:`CrossDiff.fuse`. Samples are dicts of tensors scaled to [-1, 1]:
``pan`` (B, 1, H, W) and ``lms`` (B, bands, H, W), the MS upsampled to PAN
resolution; other keys are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from crossdiff.models.config import CrossDiffConfig
from crossdiff.models.diffusion import GaussianDiffusion
from crossdiff.models.features import encoder_features
from crossdiff.models.fusion_head import FusionHead
from crossdiff.models.unet import ConditionalUNet, check_bchw, check_same_grid

Features = dict[str, list[torch.Tensor]]

# Which sample entry each net denoises (x0) and which it is conditioned on.
ROLE_INPUTS: dict[str, tuple[str, str]] = {"p2m": ("lms", "pan"), "m2p": ("pan", "lms")}


class CrossDiff(nn.Module):
    """P2M and M2P UNets, a GaussianDiffusion and a FusionHead for one sensor.

    Build it with :meth:`from_config`.
    """

    def __init__(self, config: CrossDiffConfig) -> None:
        super().__init__()
        self.config = config
        self.p2m = ConditionalUNet(config.p2m)  # type: ignore[arg-type]
        self.m2p = ConditionalUNet(config.m2p)  # type: ignore[arg-type]
        self.head = FusionHead(config.head, config.bands)
        self.diffusion = GaussianDiffusion(config.diffusion)

    @classmethod
    def from_config(cls, config: CrossDiffConfig | Mapping[str, Any] | None = None) -> CrossDiff:
        """The one way to build a model: from a config object or its dict (strictly checked)."""
        if config is None:
            config = CrossDiffConfig()
        elif not isinstance(config, CrossDiffConfig):
            config = CrossDiffConfig.from_dict(dict(config))
        return cls(config)

    # -- inputs -------------------------------------------------------------------------

    def check_inputs(self, sample: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``pan`` and ``lms`` from a sample dict, checked against the config."""
        missing = [k for k in ("pan", "lms") if k not in sample]
        if missing:
            hint = (
                " (upsample 'ms' to PAN resolution first, e.g. with the 23-tap interpolator)"
                if "lms" in missing
                else ""
            )
            raise ValueError(f"sample lacks {missing}; CrossDiff needs 'pan' and 'lms'{hint}")
        pan, lms = sample["pan"], sample["lms"]
        bands = self.config.bands
        check_bchw(pan, 1, "sample['pan']")
        check_bchw(lms, bands, "sample['lms']",
                   f" for this {bands}-band model; build a model for the sensor's band count")
        check_same_grid(pan, lms, "sample['pan']", "sample['lms']")
        return pan, lms

    # -- stage 1 --------------------------------------------------------------------------

    def pretrain_losses(
        self,
        sample: Mapping[str, torch.Tensor],
        t: torch.Tensor | None = None,
        noise: Mapping[str, torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
        nets: Sequence[str] = ("p2m", "m2p"),
    ) -> dict[str, torch.Tensor]:
        """Diffusion losses of both nets: P2M denoises lms given PAN, M2P denoises PAN given lms.

        Args:
            sample: dict with ``pan`` and ``lms`` in [-1, 1].
            t: optional fixed timesteps (B,), shared by both nets; else uniform per sample and net.
            noise: optional fixed noise, ``{"p2m": like lms, "m2p": like pan}``.
            generator: optional RNG for timesteps, noise and condition dropout.
            nets: which nets to compute (a job may pretrain one net alone).

        Returns:
            the requested nets' scalar losses and their sum ``loss``.
        """
        pan, lms = self.check_inputs(sample)
        noise = noise or {}
        inputs = {"pan": pan, "lms": lms}
        losses: dict[str, torch.Tensor] = {}
        for role in nets:
            x0, cond = (inputs[k] for k in ROLE_INPUTS[role])
            net = getattr(self, role)
            losses[role] = self.diffusion.training_losses(
                net, x0, cond, t=t, noise=noise.get(role), generator=generator)["loss"]
        losses["loss"] = torch.stack([losses[r] for r in nets]).sum()
        return losses

    # -- stage 2 --------------------------------------------------------------------------

    def freeze_encoders(self) -> CrossDiff:
        """Freeze both UNets (stage 2 trains the head only) and put them in eval mode."""
        for net in (self.p2m, self.m2p):
            net.requires_grad_(False)
            net.eval()
        return self

    def features(
        self,
        sample: Mapping[str, torch.Tensor],
        t: int | None = None,
        seed: int | Sequence[int] | None = None,
    ) -> Features:
        """Encoder features of both nets, each noising its own x0 at ``t`` (default: the head's 50).

        Computed without gradients (the encoders are frozen in stage 2).
        ``seed=None`` draws fresh noise per call as the authors do; an int (or
        one int per sample) makes the features deterministic. The M2P noise
        uses ``seed + 1`` so the two nets never share a noise draw.

        Returns:
            ``{"p2m": [h1..h4], "m2p": [h1..h4]}``, finest first.
        """
        pan, lms = self.check_inputs(sample)
        t = self.config.head.feature_timestep if t is None else t
        if seed is None:
            seed_p2m = seed_m2p = None
        elif isinstance(seed, int):
            seed_p2m, seed_m2p = seed, seed + 1
        else:
            seed_p2m, seed_m2p = [int(s) for s in seed], [int(s) + 1 for s in seed]
        with torch.no_grad():
            return {
                "p2m": encoder_features(self.diffusion, self.p2m, lms, pan, t, seed_p2m),
                "m2p": encoder_features(self.diffusion, self.m2p, pan, lms, t, seed_m2p),
            }

    def fuse(
        self,
        sample: Mapping[str, torch.Tensor],
        seed: int | Sequence[int] | None = None,
        features: Features | None = None,
    ) -> torch.Tensor:
        """Fused MS at PAN resolution, ``lms + head(features)``, in the sample's scale.

        Args:
            sample: dict with ``pan`` and ``lms``.
            seed: feature noise mode, see :meth:`features`.
            features: precomputed (e.g. cached) features; skips the encoders.
        """
        _, lms = self.check_inputs(sample)
        feats = self.features(sample, seed=seed) if features is None else features
        return self.head(lms, feats["p2m"], feats["m2p"])

    def forward(
        self, sample: Mapping[str, torch.Tensor], seed: int | Sequence[int] | None = None
    ) -> torch.Tensor:
        """Same as :meth:`fuse`."""
        return self.fuse(sample, seed=seed)
