"""The universal image quality index (UIQI, Wang and Bovik 2002) in the two
forms the reference toolbox uses.

* Sliding window (``Q.m`` -> ``img_qi.m``): every 32x32 window position
  inside the image ("valid"), the index written with window sums exactly as
  ``img_qi`` does, including its special cases (flat windows score 1, or the
  mean term alone when only the variances vanish). The band value is the
  mean over windows; Q is the mean over bands.
* Distinct blocks (``uqi`` inside ``D_s.m``/``D_lambda.m``): each 32x32 block
  on its own grid, N-1 covariances (MATLAB ``cov``), no special cases: a
  block where both images are flat gives NaN there as in the toolbox.

Window sums use a doubling scheme (sums of 1, 2, 4, ... pixels combined by
the bits of the window size): a few array additions per pixel, and pairwise
summation keeps them as accurate as MATLAB's direct ``filter2`` sums, which
a cumulative-sum table over the whole image would not be.
"""

from __future__ import annotations

import torch

from crossdiff.models.metrics._inputs import ImageLike, as_batch, finish, same_shape

BLOCK = 32


def window_sum(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Sums of every k consecutive elements along ``dim`` ("valid": length n - k + 1)."""
    n = x.shape[dim]
    if not 1 <= k <= n:
        raise ValueError(f"window {k} does not fit in {n} px")
    out_len = n - k + 1
    result, offset, w, p = None, 0, 1, x
    while True:
        # p[i] = x[i] + ... + x[i + w - 1]; add it in where bit w of k is set.
        if k & w:
            part = p.narrow(dim, offset, out_len)
            result = part if result is None else result + part
            offset += w
        if 2 * w > k:
            return result
        m = p.shape[dim] - w
        p = p.narrow(dim, 0, m) + p.narrow(dim, w, m)
        w *= 2


def box_sum(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k sliding-window sums over the last two dims ("valid")."""
    return window_sum(window_sum(x, k, -2), k, -1)


def _img_qi_sum(x: torch.Tensor, y: torch.Tensor, block: int) -> torch.Tensor:
    """Sum of the ``img_qi`` quality map over all windows of (N, h, w) images: (N,)."""
    n = float(block * block)
    sums = box_sum(torch.stack([x, y, x * x, y * y, x * y]), block)
    s1, s2, s11, s22, s12 = sums.unbind(0)
    mul = s1 * s2
    sq_mul = s1 * s1 + s2 * s2
    numerator = 4.0 * (n * s12 - mul) * mul
    denominator1 = n * (s11 + s22) - sq_mul
    denominator = denominator1 * sq_mul
    q = torch.ones_like(s1)
    only_means = (denominator1 == 0) & (sq_mul != 0)
    q = torch.where(only_means, 2.0 * mul / torch.where(only_means, sq_mul, 1.0), q)
    full = denominator != 0
    q = torch.where(full, numerator / torch.where(full, denominator, 1.0), q)
    return q.sum(dim=(-2, -1))


def uiqi_sliding(a: torch.Tensor, b: torch.Tensor, block: int = BLOCK, strip: int = 64) -> torch.Tensor:
    """Per-band mean of the sliding-window UIQI map (``img_qi``) of float64 batches.

    Args:
        a, b: (B, C, H, W) float64 of the same shape.
        block: window side.
        strip: output rows computed together; strips of rows keep the working
            set in the cache, which matters more than anything else here.

    Returns:
        (B, C) the mean quality of each band over all window positions.
    """
    same_shape(a, b, "uiqi(a, b)")
    bsz, c, h, w = a.shape
    if block > min(h, w):
        raise ValueError(f"{block}x{block} window does not fit a {h}x{w} image; use a smaller block")
    x, y = a.reshape(bsz * c, h, w), b.reshape(bsz * c, h, w)
    out_h, out_w = h - block + 1, w - block + 1
    total = torch.zeros(bsz * c, dtype=torch.float64, device=a.device)
    for i in range(bsz * c):  # one band at a time, in strips of output rows
        for r0 in range(0, out_h, strip):
            rows = slice(r0, min(r0 + strip, out_h) + block - 1)
            total[i] += _img_qi_sum(x[i, rows], y[i, rows], block)
    return (total / (out_h * out_w)).reshape(bsz, c)


def q_index(fused: ImageLike, reference: ImageLike, block: int = BLOCK) -> torch.Tensor | float:
    """Q (Q_avg): the sliding-window UIQI of each band, averaged over bands; 1 is ideal.

    Args:
        fused, reference: (C, H, W) or (B, C, H, W), same shape.
        block: window side (toolbox: 32).
    """
    f, batched = as_batch(fused, "fused")
    r, _ = as_batch(reference, "reference")
    return finish(uiqi_sliding(r, f, block).mean(dim=1), batched)


def uiqi_blocks(a: torch.Tensor, b: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """UIQI of each distinct block with N-1 covariances, as the toolbox's ``uqi``.

    Args:
        a, b: (B, C, H, W) float64, H and W multiples of ``block``; ``b`` may
            have one band (a PAN) and is then compared with every band of ``a``.

    Returns:
        (B, C, H/block, W/block) block qualities (NaN where both blocks are flat).
    """
    bsz, c, h, w = a.shape
    if h % block or w % block:
        raise ValueError(f"image size {h}x{w} is not a multiple of the block size {block}")
    if b.shape[-2:] != a.shape[-2:] or b.shape[0] != bsz or b.shape[1] not in (1, c):
        raise ValueError(f"uiqi_blocks: shapes {tuple(a.shape)} and {tuple(b.shape)} do not match")
    grid = (h // block, block, w // block, block)
    xa = a.reshape(bsz, c, *grid)
    xb = b.reshape(bsz, b.shape[1], *grid)
    ma = xa.mean(dim=(3, 5), keepdim=True)
    mb = xb.mean(dim=(3, 5), keepdim=True)
    da, db = xa - ma, xb - mb
    dof = block * block - 1
    cov = (da * db).sum(dim=(3, 5)) / dof
    var_a = (da * da).sum(dim=(3, 5)) / dof
    var_b = (db * db).sum(dim=(3, 5)) / dof
    ma, mb = ma.squeeze(5).squeeze(3), mb.squeeze(5).squeeze(3)
    return 4.0 * cov * ma * mb / (var_a + var_b) / (ma * ma + mb * mb)


def uiqi_block_mean(a: ImageLike, b: ImageLike, block: int = BLOCK) -> torch.Tensor | float:
    """Mean block-wise UIQI over blocks and bands (what D_s averages), for convenience."""
    x, batched = as_batch(a, "a")
    y, _ = as_batch(b, "b")
    return finish(uiqi_blocks(x, y, block).mean(dim=(1, 2, 3)), batched)
