"""Input handling shared by the metrics: one place that turns what callers
pass (numpy or torch, with or without a batch dimension) into float64 batches.

Every metric computes in float64 because the reference toolbox computes in
MATLAB doubles and the Q-type indices subtract nearly equal sums.
"""

from __future__ import annotations

import numpy as np
import torch

ImageLike = torch.Tensor | np.ndarray


def as_batch(x: ImageLike, name: str, *, single_band: bool = False) -> tuple[torch.Tensor, bool]:
    """A float64 (B, C, H, W) view of ``x`` and whether ``x`` had a batch dimension.

    Args:
        x: (C, H, W) or (B, C, H, W); a single-band image (PAN) may also be (H, W).
        name: the argument's name, for error messages.
        single_band: require exactly one band (PAN).
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch tensor or numpy array, got {type(x).__name__}")
    if single_band and x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() not in (3, 4):
        raise ValueError(f"{name}: expected (C, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    batched = x.dim() == 4
    x = x if batched else x.unsqueeze(0)
    if single_band and x.shape[1] != 1:
        raise ValueError(f"{name}: expected one band (a PAN image), got {x.shape[1]} bands")
    if x.is_complex():
        raise TypeError(f"{name}: complex images are not supported")
    return x.to(torch.float64), batched


def same_shape(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    """Raise a clear error unless two batches have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{names}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}; "
                         "compare images of the same size and band count")


def finish(values: torch.Tensor, batched: bool) -> torch.Tensor | float:
    """Per-image values (B,) for batched input, a python float otherwise."""
    return values if batched else float(values[0])


def check_block_multiple(h: int, w: int, block: int, what: str) -> None:
    """The toolbox's full-resolution indices refuse sizes that are not whole blocks."""
    if h % block or w % block:
        raise ValueError(f"{what}: image size {h}x{w} is not a multiple of the block size {block}; "
                         f"crop it to {h - h % block}x{w - w % block} (the reference toolbox refuses it too)")


def check_dn_units(reference: torch.Tensor, what: str) -> None:
    """Refuse images scaled to [0, 1]: the toolbox metrics work on digital numbers.

    Q2n casts to 16-bit integers first, so a [0, 1] image would collapse to
    zeros and ones and give a meaningless value.
    """
    if reference.numel() and float(reference.max()) <= 1.0:
        raise ValueError(f"{what}: the reference image peaks at {float(reference.max()):.3g}; the metrics "
                         "expect digital numbers as the reference toolbox does: multiply normalised images "
                         "by 2**bits - 1 first")
