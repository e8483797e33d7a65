"""Checkpoints: the resolved config, the weights and an optional extra dict in one file.

Written with ``torch.save`` and read with ``torch.load(weights_only=True)``,
so loading never unpickles arbitrary objects: the config is stored as its
plain dict, and ``extra`` (optimizer state, step counters, ...) may only hold
tensors, numbers, strings, lists, tuples and dicts of those.
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import IO, Any

import torch
from torch import nn

from crossdiff.models.config import CrossDiffConfig, UNetConfig
from crossdiff.models.crossdiff import CrossDiff
from crossdiff.models.unet import ConditionalUNet

FORMAT = "crossdiff-checkpoint"
VERSION = 1

# The module kinds a checkpoint can rebuild, with their config class.
_KINDS: dict[str, tuple[type[nn.Module], Any]] = {
    "CrossDiff": (CrossDiff, CrossDiffConfig),
    "ConditionalUNet": (ConditionalUNet, UNetConfig),
}

PathOrFile = str | os.PathLike | IO[bytes]


@dataclasses.dataclass
class Checkpoint:
    """What a checkpoint file holds.

    Attributes:
        kind: the module class name (``"CrossDiff"`` or ``"ConditionalUNet"``).
        config: the resolved config as a plain dict.
        state_dict: the module's weights.
        extra: anything else the writer stored (optimizer state, epoch, ...).
    """

    kind: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    extra: dict[str, Any]

    def build(self, map_location: str | torch.device | None = None) -> nn.Module:
        """Rebuild the module from the config and load the weights strictly."""
        cls, config_cls = _KINDS[self.kind]
        module = cls(config_cls.from_dict(self.config))
        module.load_state_dict(self.state_dict, strict=True)
        return module.to(map_location) if map_location is not None else module


def save_checkpoint(path: PathOrFile, model: nn.Module, extra: dict[str, Any] | None = None) -> None:
    """Write ``model``'s config and weights (and ``extra``) to a path or binary file object.

    Args:
        path: destination file path or a writable binary file object.
        model: a CrossDiff or ConditionalUNet (anything with a ``config`` of a known kind).
        extra: optional dict of plain data, e.g. ``{"optimizer": opt.state_dict(), "step": 10}``.
    """
    kind = type(model).__name__
    if kind not in _KINDS:
        raise ValueError(f"cannot checkpoint a {kind}; supported kinds are {sorted(_KINDS)}")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    if isinstance(path, str | os.PathLike):
        tmp = f"{os.fspath(path)}.tmp"
        torch.save(payload, tmp)
        os.replace(tmp, path)  # never leave a half-written checkpoint under the real name
    else:
        torch.save(payload, path)


def load_checkpoint(path: PathOrFile | bytes, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``); raises ValueError for foreign files."""
    if isinstance(path, bytes):
        path = io.BytesIO(path)
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} file (no matching 'format' entry)")
    if payload.get("version") != VERSION:
        raise ValueError(f"checkpoint version {payload.get('version')} is not supported (expected {VERSION})")
    if payload.get("kind") not in _KINDS:
        raise ValueError(
            f"checkpoint kind {payload.get('kind')!r} is unknown; expected one of {sorted(_KINDS)}"
        )
    return Checkpoint(payload["kind"], payload["config"], payload["state_dict"], payload.get("extra", {}))


def load_model(
    path: PathOrFile | bytes, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the module stored in a checkpoint; returns it and the checkpoint's ``extra``."""
    ckpt = load_checkpoint(path, map_location)
    return ckpt.build(map_location), ckpt.extra
