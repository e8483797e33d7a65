"""Reduced-resolution (Wald protocol) metrics of a fused image against its
ground truth, as the reference toolbox's ``indexes_evaluation.m`` computes them.

All functions take ``(fused, reference)`` and images in digital numbers,
(C, H, W) or (B, C, H, W); unbatched inputs give floats, batches (B,) tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from crossdiff.models.metrics._inputs import ImageLike, as_batch, check_dn_units, finish, same_shape
from crossdiff.models.metrics.q2n import q2n_blocks
from crossdiff.models.metrics.uiqi import uiqi_sliding

DIM_CUT = 21  # the toolbox's reduced-resolution demo; some PanCollection scripts use 30
BLOCK = 32


def _pair(fused: ImageLike, reference: ImageLike) -> tuple[torch.Tensor, torch.Tensor, bool]:
    f, batched = as_batch(fused, "fused")
    r, _ = as_batch(reference, "reference")
    same_shape(f, r, "fused and reference")
    return f, r, batched


def _sam(f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    prod_scal = (r * f).sum(dim=1).flatten(1)
    prod_norm = torch.sqrt((r * r).sum(dim=1) * (f * f).sum(dim=1)).flatten(1)
    valid = prod_norm != 0
    # MATLAB takes real(acos(.)): a cosine rounded past +-1 gives angle 0 or pi, as clamping does.
    cosine = (prod_scal / torch.where(valid, prod_norm, 1.0)).clamp(-1.0, 1.0)
    angles = torch.where(valid, torch.acos(cosine), 0.0)
    return angles.sum(dim=1) / valid.sum(dim=1) * (180.0 / math.pi)


def sam(fused: ImageLike, reference: ImageLike) -> torch.Tensor | float:
    """Spectral angle mapper in degrees, averaged over pixels where both spectra are non-zero.

    A pixel where either spectrum has zero norm is left out of the mean (the
    toolbox drops it); if every pixel is left out the result is NaN.
    """
    f, r, batched = _pair(fused, reference)
    return finish(_sam(f, r), batched)


def _ergas(f: torch.Tensor, r: torch.Tensor, ratio: float) -> torch.Tensor:
    mse = ((r - f) ** 2).mean(dim=(2, 3))
    rel = mse / r.mean(dim=(2, 3)) ** 2  # normalised by the reference's band mean
    return (100.0 / ratio) * torch.sqrt(rel.mean(dim=1))


def ergas(fused: ImageLike, reference: ImageLike, ratio: float) -> torch.Tensor | float:
    """ERGAS = 100/ratio * sqrt(mean_b(MSE_b / mean(reference_b)^2)); 0 is ideal."""
    if ratio <= 0:
        raise ValueError(f"ratio must be positive, got {ratio}")
    f, r, batched = _pair(fused, reference)
    return finish(_ergas(f, r, ratio), batched)


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of each band of (..., H, W), zero-padded ``imfilter``.

    ``fspecial('sobel')`` = [1 2 1; 0 0 0; -1 -2 -1] and its transpose, applied
    separably (smooth along one axis, difference along the other).
    """
    xp = F.pad(x, (1, 1, 1, 1))
    along_w = xp[..., :, :-2] + 2.0 * xp[..., :, 1:-1] + xp[..., :, 2:]
    along_h = xp[..., :-2, :] + 2.0 * xp[..., 1:-1, :] + xp[..., 2:, :]
    gy = along_w[..., :-2, :] - along_w[..., 2:, :]
    gx = along_h[..., :, :-2] - along_h[..., :, 2:]
    return torch.sqrt(gy * gy + gx * gx)


def _scc(f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    # SCC.m: trim one pixel, Sobel magnitude with zero padding, one global normalised product.
    fr = torch.zeros(f.shape[0], dtype=f.dtype, device=f.device)
    ff, rr = fr.clone(), fr.clone()
    for b in range(f.shape[1]):  # band by band bounds memory on large scenes
        gf = sobel_magnitude(f[:, b, 1:-1, 1:-1]).flatten(1)
        gr = sobel_magnitude(r[:, b, 1:-1, 1:-1]).flatten(1)
        fr += (gf * gr).sum(1)
        ff += (gf * gf).sum(1)
        rr += (gr * gr).sum(1)
    return fr / torch.sqrt(ff) / torch.sqrt(rr)


def scc(fused: ImageLike, reference: ImageLike) -> torch.Tensor | float:
    """Spatial correlation coefficient of Sobel gradient magnitudes (toolbox ``SCC.m``); 1 is ideal."""
    f, r, batched = _pair(fused, reference)
    if min(f.shape[-2:]) < 3:
        raise ValueError(f"SCC needs images of at least 3x3 px, got {tuple(f.shape[-2:])}")
    return finish(_scc(f, r), batched)


def _psnr(f: torch.Tensor, r: torch.Tensor, bits: int) -> torch.Tensor:
    peak = float(2**bits - 1)
    mse = ((r - f) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(peak * peak / mse)


def psnr(fused: ImageLike, reference: ImageLike, bits: int) -> torch.Tensor | float:
    """PSNR in dB with peak 2**bits - 1 and the MSE over all bands and pixels (inf if identical)."""
    if not 1 <= bits <= 16:
        raise ValueError(f"bit depth must lie in 1..16, got {bits}")
    f, r, batched = _pair(fused, reference)
    return finish(_psnr(f, r, bits), batched)


def cut_borders(x: torch.Tensor, dim_cut: int) -> torch.Tensor:
    """The toolbox's border cut ``I(dim_cut:end-dim_cut, dim_cut:end-dim_cut, :)``.

    MATLAB indexes from 1, so this drops ``dim_cut - 1`` rows/columns at the
    top/left and ``dim_cut`` at the bottom/right (256 px -> 215 px for 21).
    """
    if dim_cut <= 0:
        return x
    h, w = x.shape[-2:]
    if h - 2 * dim_cut + 1 < 1 or w - 2 * dim_cut + 1 < 1:
        raise ValueError(f"dim_cut={dim_cut} leaves nothing of a {h}x{w} image; lower dim_cut")
    return x[..., dim_cut - 1:h - dim_cut, dim_cut - 1:w - dim_cut]


def reduced_resolution_metrics(
    fused: ImageLike,
    gt: ImageLike,
    ratio: int,
    bits: int,
    dim_cut: int = DIM_CUT,
    block: int = BLOCK,
    clip: bool = False,
) -> dict[str, torch.Tensor | float]:
    """All reduced-resolution metrics of ``fused`` against ``gt`` after the border cut.

    Args:
        fused: fused image at the GT's scale, digital numbers, (C, H, W) or (B, C, H, W).
        gt: ground truth (the original MS under Wald's protocol), same shape.
        ratio: PAN/MS resolution ratio (ERGAS's 100/ratio).
        bits: radiometric bit depth (PSNR peak 2**bits - 1; the clip bound 2**bits).
        dim_cut: border cut, toolbox semantics (see :func:`cut_borders`); 0 disables it.
        block: Q2n block and Q window size.
        clip: the toolbox's ``th_values``: clamp fused to [0, 2**bits] first.

    Returns:
        {"Q2n", "Q", "SAM", "ERGAS", "SCC", "PSNR"}: floats, or (B,) tensors for batches.
    """
    if ratio <= 0 or not 1 <= bits <= 16:
        raise ValueError(f"need a positive ratio and a bit depth in 1..16, got ratio={ratio}, bits={bits}")
    f, r, batched = _pair(fused, gt)
    check_dn_units(r, "reduced_resolution_metrics")
    if clip:
        f = f.clamp(0.0, float(2**bits))
    f, r = cut_borders(f, dim_cut), cut_borders(r, dim_cut)
    values = {
        "Q2n": q2n_blocks(f, r, block).mean(dim=(-2, -1)),
        "Q": uiqi_sliding(r, f, block).mean(dim=1),
        "SAM": _sam(f, r),
        "ERGAS": _ergas(f, r, ratio),
        "SCC": _scc(f, r),
        "PSNR": _psnr(f, r, bits),
    }
    return {k: finish(v, batched) for k, v in values.items()}
