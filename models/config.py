"""Typed configuration of the CrossDiff model: the two UNets, the noise process
and the fusion head.

Configs are frozen dataclasses. ``from_dict`` is strict (an unknown key is an
error that names the allowed keys, a wrong type is an error naming the field),
``to_dict`` gives plain JSON-serialisable values, and the resolved dict is what
checkpoints and runs record, so a model can always be rebuilt from it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar

MIN_BANDS = 3
MAX_BANDS = 16

C = TypeVar("C", bound="StrictConfig")


class StrictConfig:
    """Strict dict round-trip shared by every config dataclass."""

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Build the config from a plain dict; unknown keys and wrong types are errors."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: expected a dict, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; allowed keys are {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        kwargs = {k: _coerce(cls.__name__, k, hints[k], v) for k, v in data.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples become lists) that ``from_dict`` accepts."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, StrictConfig):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def _coerce(owner: str, name: str, hint: Any, value: Any) -> Any:
    """Check one value against its field type; lists become tuples, nested dicts configs."""
    where = f"{owner}.{name}"
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(owner, name, inner, value)
    if isinstance(hint, type) and issubclass(hint, StrictConfig):
        return value if isinstance(value, hint) else hint.from_dict(value)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(_coerce(owner, name, args[0], v) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise ValueError(f"{where}: expected a string, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class UNetConfig(StrictConfig):
    """One conditional UNet of the paper (P2M or M2P).

    Attributes:
        bands: MS band count of the sensor (3..16).
        role: ``"p2m"`` predicts the noise on ``lms`` given PAN; ``"m2p"`` the
            noise on PAN given ``lms``.
        base_width: channels of the first (full-resolution) level.
        channel_mults: width multiplier per level; (1, 2, 4, 8) with base 32
            gives the paper's (32, 64, 128, 256). H and W must be divisible by
            2 ** (levels - 1).
        time_dim: size of the sinusoidal timestep code.
        embed_dim: size of the time embedding after Linear(time_dim, embed_dim).
        norm_groups: GroupNorm groups at every width but the first.
        norm_groups_finest: GroupNorm groups at the first width (4 in the
            authors' code). A group count that does not divide a width is
            reduced to their greatest common divisor.
    """

    bands: int = 4
    role: Literal["p2m", "m2p"] = "p2m"
    base_width: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 4, 8)
    time_dim: int = 32
    embed_dim: int = 256
    norm_groups: int = 32
    norm_groups_finest: int = 4

    def __post_init__(self) -> None:
        if not MIN_BANDS <= self.bands <= MAX_BANDS:
            raise ValueError(
                f"UNetConfig.bands={self.bands}: supported MS band counts are {MIN_BANDS}..{MAX_BANDS}"
            )
        if self.role not in ("p2m", "m2p"):
            raise ValueError(f"UNetConfig.role={self.role!r}: use 'p2m' or 'm2p'")
        if len(self.channel_mults) < 2 or any(m < 1 for m in self.channel_mults):
            raise ValueError(f"UNetConfig.channel_mults={self.channel_mults}: give >= 2 positive multipliers")
        for name in ("base_width", "time_dim", "embed_dim", "norm_groups", "norm_groups_finest"):
            if getattr(self, name) < 1:
                raise ValueError(f"UNetConfig.{name} must be positive, got {getattr(self, name)}")
        if self.time_dim % 2:
            raise ValueError(f"UNetConfig.time_dim={self.time_dim}: the sinusoidal code needs an even size")

    @property
    def widths(self) -> tuple[int, ...]:
        """Channels per level, finest first, e.g. (32, 64, 128, 256)."""
        return tuple(self.base_width * m for m in self.channel_mults)

    @property
    def x0_channels(self) -> int:
        """Channels of the image this net denoises (lms for P2M, PAN for M2P)."""
        return self.bands if self.role == "p2m" else 1

    @property
    def cond_channels(self) -> int:
        """Channels of the condition (PAN for P2M, lms for M2P)."""
        return 1 if self.role == "p2m" else self.bands

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (8 for four levels)."""
        return 2 ** (len(self.channel_mults) - 1)

    def groups(self, channels: int) -> int:
        """GroupNorm groups for a width: the authors' 4 at the first width, 32 elsewhere."""
        wanted = self.norm_groups_finest if channels == self.base_width else self.norm_groups
        return math.gcd(wanted, channels)


@dataclasses.dataclass(frozen=True)
class DiffusionConfig(StrictConfig):
    """The Gaussian noise process shared by both UNets.

    Timesteps are 1-based as in DDPM and the authors' code: t in 1..T, and
    t = 0 is the clean image.

    Attributes:
        timesteps: T.
        cosine_s: offset s of the cosine schedule (Nichol & Dhariwal 2021).
        max_beta: betas are clipped to this value (the last step would be 1).
        cond_dropout: probability that a training sample's condition is zeroed
            (classifier-free guidance training).
        guidance_scale: w in (1 + w) * eps(x, c) - w * eps(x, 0) at sampling
            (the authors sample with w = 3); 0 disables guidance.
        clip_denoised: clamp predicted x0 to [-1, 1] while sampling.
        loss: ``"mse"`` (epsilon MSE, the paper) or ``"l1"``.
    """

    timesteps: int = 1000
    cosine_s: float = 0.008
    max_beta: float = 0.999
    cond_dropout: float = 0.1
    guidance_scale: float = 3.0
    clip_denoised: bool = True
    loss: Literal["mse", "l1"] = "mse"

    def __post_init__(self) -> None:
        if self.timesteps < 1:
            raise ValueError(f"DiffusionConfig.timesteps must be >= 1, got {self.timesteps}")
        if not 0.0 < self.max_beta < 1.0:
            raise ValueError(f"DiffusionConfig.max_beta must be in (0, 1), got {self.max_beta}")
        if not 0.0 <= self.cond_dropout <= 1.0:
            raise ValueError(f"DiffusionConfig.cond_dropout must be in [0, 1], got {self.cond_dropout}")
        if self.cosine_s < 0 or self.guidance_scale < 0:
            raise ValueError("DiffusionConfig.cosine_s and guidance_scale must be >= 0")


@dataclasses.dataclass(frozen=True)
class HeadConfig(StrictConfig):
    """The attention-guided fusion head of stage 2.

    Attributes:
        levels: feature channels per level, coarse to fine; must be the UNet
            widths reversed.
        keep_finest: the released head computes the finest level (full
            resolution, concat of both nets' h1) and then discards it, feeding
            the output convs from the upsampled previous level. False (default)
            reproduces that result without building the unused block; True
            adds the finest level to the upsampled previous one and uses it.
        feature_timestep: t at which both frozen nets noise their x0 (50).
        inner_channels: width of the hidden output conv (64 -> 32 -> bands).
        se_reduction: channel reduction of the squeeze-excitation MLP.
        se_gate: gate of the scSE block: the released code uses LeakyReLU
            where Roy et al. use a sigmoid.
        negative_slope: LeakyReLU slope (PyTorch default, as released).
    """

    levels: tuple[int, ...] = (256, 128, 64, 32)
    keep_finest: bool = False
    feature_timestep: int = 50
    inner_channels: int = 32
    se_reduction: int = 2
    se_gate: Literal["leaky_relu", "sigmoid"] = "leaky_relu"
    negative_slope: float = 0.01

    def __post_init__(self) -> None:
        if len(self.levels) < 2 or any(c < 1 for c in self.levels):
            raise ValueError(f"HeadConfig.levels={self.levels}: give >= 2 positive widths, coarse to fine")
        if self.feature_timestep < 0:
            raise ValueError(f"HeadConfig.feature_timestep must be >= 0, got {self.feature_timestep}")
        if self.inner_channels < 1 or self.se_reduction < 1:
            raise ValueError("HeadConfig.inner_channels and se_reduction must be positive")
        if self.se_gate not in ("leaky_relu", "sigmoid"):
            raise ValueError(f"HeadConfig.se_gate={self.se_gate!r}: use 'leaky_relu' or 'sigmoid'")


@dataclasses.dataclass(frozen=True)
class CrossDiffConfig(StrictConfig):
    """Everything needed to build a CrossDiff model for one sensor.

    ``p2m`` and ``m2p`` default to the paper's UNet for ``bands``; when given
    as dicts without ``bands``/``role`` those are filled in from here.

    Attributes:
        bands: MS band count.
        ratio: PAN/MS resolution ratio (recorded for consumers; the networks
            work at PAN resolution on ``lms``).
        p2m: the PAN-to-MS UNet.
        m2p: the MS-to-PAN UNet.
        diffusion: the noise process.
        head: the fusion head.
    """

    bands: int = 4
    ratio: int = 4
    p2m: UNetConfig | None = None
    m2p: UNetConfig | None = None
    diffusion: DiffusionConfig = dataclasses.field(default_factory=DiffusionConfig)
    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)

    def __post_init__(self) -> None:
        if self.ratio < 1:
            raise ValueError(f"CrossDiffConfig.ratio must be >= 1, got {self.ratio}")
        for role in ("p2m", "m2p"):
            net = getattr(self, role)
            if net is None:
                net = UNetConfig(bands=self.bands, role=role)
                object.__setattr__(self, role, net)
            if net.role != role or net.bands != self.bands:
                raise ValueError(
                    f"CrossDiffConfig.{role}: got role={net.role!r}, bands={net.bands}; "
                    f"it must be role={role!r}, bands={self.bands}"
                )
        if self.p2m.widths != self.m2p.widths:  # type: ignore[union-attr]
            raise ValueError(f"p2m widths {self.p2m.widths} and m2p widths {self.m2p.widths} must match")  # type: ignore[union-attr]
        expected = tuple(reversed(self.p2m.widths))  # type: ignore[union-attr]
        if self.head.levels != expected:
            raise ValueError(
                f"HeadConfig.levels={self.head.levels} must be the UNet widths reversed: {expected}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CrossDiffConfig:
        """Strict build; nested UNet dicts may omit ``bands`` and ``role``, the head its ``levels``."""
        if isinstance(data, dict):
            data = dict(data)
            bands = data.get("bands", 4)
            for role in ("p2m", "m2p"):
                if isinstance(data.get(role), dict):
                    data[role] = {"bands": bands, "role": role, **data[role]}
            # A head without explicit levels follows the P2M widths.
            head = data.get("head", {})
            if isinstance(head, dict) and "levels" not in head and isinstance(data.get("p2m"), dict):
                widths = UNetConfig.from_dict(data["p2m"]).widths
                data["head"] = {**head, "levels": list(reversed(widths))}
        return super().from_dict(data)
