"""The conditional UNet of CrossDiff, used for both P2M and M2P.

Layout (the authors' released ``ms_pan_v2`` / ``pan_ms_v2``; four levels of
widths (32, 64, 128, 256) in the paper):

- input ``cat[x_t, cond]`` at PAN resolution -> 3x3 conv -> h1 (width 0, H);
- down step i: ``h + Linear(emb)`` -> GroupNorm -> SiLU -> 3x3 stride-2 conv,
  giving h2 (H/2), h3 (H/4), h4 (H/8). No attention, no residual blocks;
- decoder: each step adds the time projection, normalises and activates the
  running map ``h`` (never the skip), concatenates the skip of the same
  resolution, and applies a 3x3 stride-2 transposed conv (the coarsest step
  has no skip); at full resolution a 3x3 conv over ``cat[h, h1]``; a last
  time/norm/SiLU and a 3x3 conv over ``cat[h, x_t, cond]`` give epsilon.

Time: sinusoidal code of t (cos half first, max period 10000) ->
Linear(32, 256) -> SiLU. Weights are initialised orthogonally with zero biases
(the authors' ``init_type: orthogonal``). With 4 bands this gives exactly
1,087,320 parameters for P2M and 1,086,318 for M2P.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from crossdiff.models.config import UNetConfig


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal code of (possibly fractional) timesteps, shape (B, dim), cos half first."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def check_bchw(x: torch.Tensor, channels: int, what: str, hint: str = "") -> None:
    """Raise a ValueError naming ``what`` unless ``x`` is (B, channels, H, W); ``hint`` says how to fix it."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{what} must be (B, {channels}, H, W), got shape {tuple(x.shape)}{hint}")


def check_same_grid(a: torch.Tensor, b: torch.Tensor, what_a: str, what_b: str) -> None:
    """Raise unless two (B, C, H, W) maps share batch size and H, W (both on the PAN grid)."""
    if a.shape[0] != b.shape[0] or a.shape[2:] != b.shape[2:]:
        raise ValueError(f"{what_a} {tuple(a.shape)} and {what_b} {tuple(b.shape)} must share batch and H, W "
                         f"(both at PAN resolution)")


def orthogonal_init_(module: nn.Module) -> None:
    """Orthogonal weights (gain 1) and zero biases for every conv and linear layer."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.orthogonal_(m.weight, gain=1.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class TimeNormAct(nn.Module):
    """``SiLU(GroupNorm(h + Linear(emb)))``: how every block injects the timestep."""

    def __init__(self, channels: int, embed_dim: int, groups: int) -> None:
        super().__init__()
        self.proj = nn.Linear(embed_dim, channels)
        self.norm = nn.GroupNorm(groups, channels)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return F.silu(self.norm(h + self.proj(emb)[:, :, None, None]))


class DownStep(nn.Module):
    """Time/norm/SiLU then a 3x3 stride-2 conv: halves H and W."""

    def __init__(self, c_in: int, c_out: int, embed_dim: int, groups: int) -> None:
        super().__init__()
        self.pre = TimeNormAct(c_in, embed_dim, groups)
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pre(h, emb))


class UpStep(nn.Module):
    """Time/norm/SiLU on ``h``, concat an optional skip, then a 3x3 stride-2 transposed conv."""

    def __init__(self, c_h: int, c_skip: int, c_out: int, embed_dim: int, groups: int) -> None:
        super().__init__()
        self.pre = TimeNormAct(c_h, embed_dim, groups)
        self.conv = nn.ConvTranspose2d(c_h + c_skip, c_out, 3, stride=2, padding=1, output_padding=1)

    def forward(self, h: torch.Tensor, emb: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        h = self.pre(h, emb)
        if skip is not None:
            h = torch.cat([h, skip], dim=1)
        return self.conv(h)


class ConditionalUNet(nn.Module):
    """Epsilon-prediction UNet on ``cat[x_t, cond]`` for one direction (P2M or M2P).

    The encoder contract is :meth:`forward_features`: it returns the encoder
    maps [h1, ..., hN] (finest first) that the fusion head consumes.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        e = config.embed_dim
        in_ch = config.x0_channels + config.cond_channels

        self.time_embed = nn.Linear(config.time_dim, e)
        self.stem = nn.Conv2d(in_ch, w[0], 3, padding=1)
        self.down = nn.ModuleList(DownStep(w[i], w[i + 1], e, config.groups(w[i])) for i in range(len(w) - 1))

        # Decoder, coarse to fine: the coarsest step has no skip; then skips h_{N-1}..h_2.
        ups = [UpStep(w[-1], 0, w[-2], e, config.groups(w[-1]))]
        ups += [UpStep(w[i], w[i], w[i - 1], e, config.groups(w[i])) for i in range(len(w) - 2, 0, -1)]
        self.up = nn.ModuleList(ups)
        self.fuse_pre = TimeNormAct(w[0], e, config.groups(w[0]))
        self.fuse = nn.Conv2d(2 * w[0], w[0], 3, padding=1)
        self.out_pre = TimeNormAct(w[0], e, config.groups(w[0]))
        self.out = nn.Conv2d(w[0] + in_ch, config.x0_channels, 3, padding=1)

        orthogonal_init_(self)

    # -- entry checks ---------------------------------------------------------------

    def _check(self, x_t: torch.Tensor, cond: torch.Tensor, t: torch.Tensor | int | float) -> torch.Tensor:
        """Validate inputs where they enter; return t as a float tensor of shape (B,)."""
        cfg = self.config
        name = cfg.role.upper()
        hint = f" ({cfg.bands}-band UNet: build it with the sensor's band count)"
        check_bchw(x_t, cfg.x0_channels, f"{name} UNet: x_t", hint)
        check_bchw(cond, cfg.cond_channels, f"{name} UNet: cond", hint)
        check_same_grid(x_t, cond, f"{name} UNet: x_t", "cond")
        h, w = x_t.shape[2:]
        m = cfg.size_multiple
        if h % m or w % m:
            raise ValueError(
                f"{name} UNet: H and W must be divisible by {m} ({len(cfg.widths) - 1} stride-2 levels), "
                f"got {h}x{w}; crop or pad to e.g. {h - h % m or m}x{w - w % m or m}"
            )
        b = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(b)
        if t.shape != (b,):
            raise ValueError(f"{name} UNet: t must be a scalar or shape ({b},), got {tuple(t.shape)}")
        return t

    # -- network ---------------------------------------------------------------------

    def embed_time(self, t: torch.Tensor) -> torch.Tensor:
        """Time embedding ``SiLU(Linear(sinusoid(t)))`` of shape (B, embed_dim)."""
        code = timestep_embedding(t, self.config.time_dim).to(self.time_embed.weight.dtype)
        return F.silu(self.time_embed(code))

    def _join_inputs(self, x_t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``cat[x_t, cond]`` in the memory format of the convolution weights.

        A one-channel map (PAN) has identical NCHW and channels-last layouts, and
        ``torch.cat`` then falls back to NCHW; in a channels-last net that would
        make oneDNN reorder this input, and every concat built on it, at each
        convolution (forward and backward). Converting the small joined input
        once keeps the whole net in one layout.
        """
        x_in = torch.cat([x_t, cond], dim=1)
        w = self.stem.weight
        if w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous():
            x_in = x_in.contiguous(memory_format=torch.channels_last)
        return x_in

    def _encode(self, x_in: torch.Tensor, emb: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x_in)]
        for step in self.down:
            feats.append(step(feats[-1], emb))
        return feats

    def forward_features(
        self, x_t: torch.Tensor, cond: torch.Tensor, t: torch.Tensor | int | float
    ) -> list[torch.Tensor]:
        """Encoder maps [h1, ..., hN], finest first: (32, H), (64, H/2), (128, H/4), (256, H/8)."""
        t = self._check(x_t, cond, t)
        return self._encode(self._join_inputs(x_t, cond), self.embed_time(t))

    def forward(self, x_t: torch.Tensor, cond: torch.Tensor, t: torch.Tensor | int | float) -> torch.Tensor:
        """Predicted noise, with the channels of x_t."""
        t = self._check(x_t, cond, t)
        emb = self.embed_time(t)
        x_in = self._join_inputs(x_t, cond)
        feats = self._encode(x_in, emb)
        h = self.up[0](feats[-1], emb)
        for step, skip in zip(self.up[1:], reversed(feats[1:-1]), strict=True):
            h = step(h, emb, skip)
        h = self.fuse(torch.cat([self.fuse_pre(h, emb), feats[0]], dim=1))
        # cat[h, x_t, cond] reuses the stem's input x_in = cat[x_t, cond] (same channels, same order).
        return self.out(torch.cat([self.out_pre(h, emb), x_in], dim=1))
