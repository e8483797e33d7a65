"""The attention-guided fusion head of CrossDiff stage 2.

Coarse to fine over the levels (256, 128, 64, 32 channels), with ``c`` the
feature width of a level:

1. ``y = LeakyReLU(conv3x3(cat[f_p2m, f_m2p]))``: 2c -> 2c;
2. from the second level on, ``y = y + x`` (x: the upsampled previous level);
3. except at the finest level: ``conv3x3`` 2c -> 2c' (c' the next level's
   width, so 2c' = c for halving widths) + LeakyReLU + concurrent channel and
   spatial squeeze-excitation (scSE), then a 2x nearest upsample gives ``x``
   (the released code upsamples with ``F.interpolate(mode="area")``, which for
   an integer up-factor is exactly nearest);
4. output: ``conv3x3`` 2c_finest -> 32 + LeakyReLU, ``conv3x3`` 32 -> bands;
   the result is ``lms + residual``.

The released head runs step 1-2 at the finest level and then discards the
result: its output convs read ``x``, the upsampled third level.
``HeadConfig.keep_finest=False`` (default) reproduces that output without
building the dead block; ``True`` feeds the output convs from the finest
level instead (a documented variant, not the paper's weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from crossdiff.models.config import HeadConfig
from crossdiff.models.unet import check_bchw, orthogonal_init_


class SCSE(nn.Module):
    """Concurrent spatial and channel squeeze-excitation (Roy et al. 2018): x * g_c + x * g_s.

    ``gate="leaky_relu"`` follows the released code, whose "sigmoid" layers are
    LeakyReLUs; ``"sigmoid"`` is the paper formulation.
    """

    def __init__(
        self, channels: int, reduction: int = 2, gate: str = "leaky_relu", slope: float = 0.01
    ) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.spatial = nn.Conv2d(channels, 1, 1)
        self.gate = nn.Sigmoid() if gate == "sigmoid" else nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel_gate = self.gate(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))
        spatial_gate = self.gate(self.spatial(x))
        return x * channel_gate[:, :, None, None] + x * spatial_gate


class FusionHead(nn.Module):
    """Fuses P2M and M2P encoder features into a residual added to ``lms``.

    Args:
        config: head settings (levels coarse to fine, ``keep_finest``, ...).
        bands: MS band count of the output.
    """

    def __init__(self, config: HeadConfig, bands: int) -> None:
        super().__init__()
        self.config = config
        self.bands = bands
        lv = config.levels
        slope = config.negative_slope
        n_blocks = len(lv) if config.keep_finest else len(lv) - 1
        self.merge = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.LeakyReLU(slope)) for c in lv[:n_blocks]
        )
        self.attend = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(2 * c, 2 * c_next, 3, padding=1),
                nn.LeakyReLU(slope),
                SCSE(2 * c_next, config.se_reduction, config.se_gate, slope),
            )
            for c, c_next in zip(lv[:-1], lv[1:], strict=True)
        )
        self.out_hidden = nn.Conv2d(2 * lv[-1], config.inner_channels, 3, padding=1)
        self.out = nn.Conv2d(config.inner_channels, bands, 3, padding=1)
        self.act = nn.LeakyReLU(slope)
        orthogonal_init_(self)

    def _check(self, lms: torch.Tensor, feats_p2m: Sequence[torch.Tensor], feats_m2p: Sequence[torch.Tensor]):
        lv = self.config.levels
        check_bchw(lms, self.bands, "fusion head: lms")
        for name, feats in (("P2M", feats_p2m), ("M2P", feats_m2p)):
            if len(feats) != len(lv):
                raise ValueError(f"fusion head: {name} gave {len(feats)} feature maps, expected {len(lv)}")
            for i, (f, c) in enumerate(zip(feats, reversed(lv), strict=True)):
                size = (lms.shape[2] >> i, lms.shape[3] >> i)
                if f.shape[0] != lms.shape[0] or f.shape[1] != c or tuple(f.shape[2:]) != size:
                    raise ValueError(
                        f"fusion head: {name} h{i + 1} has shape {tuple(f.shape)}, expected "
                        f"({lms.shape[0]}, {c}, {size[0]}, {size[1]}) for lms {tuple(lms.shape)}"
                    )

    def forward(
        self, lms: torch.Tensor, feats_p2m: Sequence[torch.Tensor], feats_m2p: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Fused MS at PAN resolution.

        Args:
            lms: upsampled MS, (B, bands, H, W), in the same scale as training.
            feats_p2m: P2M encoder maps [h1..hN], finest first.
            feats_m2p: M2P encoder maps [h1..hN], finest first.
        """
        self._check(lms, feats_p2m, feats_m2p)
        n = len(self.config.levels)
        x = None
        for k, merge in enumerate(self.merge):
            i = n - 1 - k  # coarse to fine: index into the finest-first lists
            y = merge(torch.cat([feats_p2m[i], feats_m2p[i]], dim=1))
            if x is not None:
                y = y + x
            if k < len(self.attend):  # noqa: SIM108 (the comment below needs the else branch)
                x = F.interpolate(self.attend[k](y), scale_factor=2, mode="nearest")
            else:
                x = y  # keep_finest: the finest level feeds the output convs
        residual = self.out(self.act(self.out_hidden(x)))
        return lms + residual
