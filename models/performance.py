"""Accelerator-friendly execution options that assume no particular device.

- :func:`to_channels_last` converts a module (and optionally sample tensors)
  to NHWC memory format, which cuDNN and oneDNN convolutions prefer.
- :func:`autocast` is a bfloat16 autocast context for whatever device the
  tensors live on (``"cuda"``, ``"cpu"``, ``"mps"``, ...); bfloat16 needs no
  loss scaling, and CPU autocast supports it too. The diffusion loss is
  computed in float32 regardless.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def device_of(obj: nn.Module | torch.Tensor | torch.device | str) -> torch.device:
    """The device of a module (its first parameter or buffer), tensor, or device spec."""
    if isinstance(obj, nn.Module):
        for t in (*obj.parameters(), *obj.buffers()):
            return t.device
        return torch.device("cpu")
    if isinstance(obj, torch.Tensor):
        return obj.device
    return torch.device(obj)


def to_channels_last(module: M) -> M:
    """Convert ``module``'s 4-D weights to channels-last memory format in place; returns it."""
    return module.to(memory_format=torch.channels_last)


def sample_channels_last(sample: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of a sample dict with every 4-D tensor in channels-last memory format."""
    return {
        k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for k, v in sample.items()
    }


@contextlib.contextmanager
def autocast(
    where: nn.Module | torch.Tensor | torch.device | str = "cpu",
    enabled: bool = True,
    dtype: torch.dtype = torch.bfloat16,
) -> Iterator[None]:
    """bfloat16 autocast for the device of ``where``; a no-op when ``enabled`` is False.

    Args:
        where: a module, tensor, device or device string that names the device type.
        enabled: turn mixed precision on or off without changing the calling code.
        dtype: the low-precision type (bfloat16 unless the device lacks it).
    """
    device_type = device_of(where).type
    with torch.autocast(device_type=device_type, dtype=dtype, enabled=enabled):
        yield
