"""Q2n (Q4, Q8): the hypercomplex quality index of Garzelli and Nencini (2009),
reproducing the reference toolbox's ``q2n.m`` / ``onions_quality.m`` exactly.

Each pixel's spectrum is a hypercomplex number with 2^n components. On each
distinct block the index combines the modulus of the hypercomplex correlation,
a contrast term and a mean-bias term; the image value is the mean over blocks
of the modulus of the block's quality. The reference's particulars are kept:

* both images are cast to uint16 first (rounded half away from zero, negatives
  and NaN become 0, values over 65535 saturate), so they must be digital
  numbers;
* images are mirror-padded ("symmetric", the edge pixel repeated) at the
  bottom and right to a multiple of the block size;
* the band count is zero-padded to the next power of two (3 -> 4, 5 -> 8);
* each block is normalised with the *reference* block's per-band mean and
  N-1 standard deviation (a band that is all zero in the reference block is
  only shifted, not divided; a flat one divides by ``eps``), and covariances
  use N/(N-1);
* products follow the toolbox's own Cayley-Dickson recursion (``onion_mult``);
  a block whose variances sum to zero scores its mean-bias term alone.

Blocks are processed a row of blocks at a time, all blocks of a row at once.
Because the product is bilinear, the mean product over a block's pixels is
computed from the band cross-moment matrix (one batched matrix product)
contracted with the product's structure constants, which is the toolbox's
``mean2(onion_mult2D(...))`` up to the order of floating-point additions.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from crossdiff.models.metrics._inputs import ImageLike, as_batch, finish, same_shape

BLOCK = 32
_EPS = 2.220446049250313e-16  # MATLAB eps, what norm_blocco divides a flat block by


def to_uint16_grid(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``uint16(x)`` kept in float64: round half away from zero, saturate to [0, 65535]."""
    x = torch.nan_to_num(x, nan=0.0).clamp(0.0, 65535.0)
    f = torch.floor(x)
    # x - floor(x) is exact, so no value just under one half rounds up (x + 0.5 would).
    return f + (x - f >= 0.5).to(x.dtype)


def _mirror_index(n: int, block: int, device: torch.device) -> torch.Tensor:
    """Indices 0..n-1 followed by the mirrored tail up to a multiple of ``block``.

    The toolbox mirrors the last rows/columns including the edge one
    (``ia(:, N2+1:N2+est) = ia(:, N2:-1:N2-est+1)``).
    """
    pad = -n % block
    if pad > n:
        raise ValueError(f"an image side of {n} px is too small for {block}-px blocks: the toolbox's mirror "
                         f"padding needs at least {pad} px; use a smaller block size")
    return torch.cat([torch.arange(n), torch.arange(n - 1, n - 1 - pad, -1)]).to(device)


def pad_bands_pow2(x: torch.Tensor) -> torch.Tensor:
    """Zero bands appended along dim 1 up to the next power of two, as q2n.m does."""
    c = x.shape[1]
    target = 1 << math.ceil(math.log2(c)) if c > 1 else 1
    if target == c:
        return x
    zeros = x.new_zeros(x.shape[0], target - c, *x.shape[2:])
    return torch.cat([x, zeros], dim=1)


def _conj(v: torch.Tensor) -> torch.Tensor:
    """Hypercomplex conjugate along the last dim: keep the real part, negate the rest."""
    return torch.cat([v[..., :1], -v[..., 1:]], dim=-1)


def onion_mult(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The toolbox's hypercomplex product (``onion_mult``/``onion_mult2D``) over the last dim.

    The last dim holds 2^n components; every other dim is broadcast, so one
    call multiplies all pixels of all blocks at once. The recursion is the
    toolbox's, sign conventions included (its 4-component product equals the
    Hamilton product up to the sign of the last component, which leaves every
    modulus unchanged).
    """
    n = x.shape[-1]
    if n == 1:
        return x * y
    half = n // 2
    a, b = x[..., :half], _conj(x[..., half:])
    c, d = y[..., :half], _conj(y[..., half:])
    if n == 2:
        return torch.cat([a * c - d * b, a * d + c * b], dim=-1)
    r1 = onion_mult(a, c)
    r2 = onion_mult(d, _conj(b))
    r3 = onion_mult(_conj(a), d)
    r4 = onion_mult(c, b)
    return torch.cat([r1 - r2, r3 + r4], dim=-1)


@lru_cache(maxsize=8)
def _structure(n: int) -> torch.Tensor:
    """The product's structure constants T (n, n, n): onion_mult(x, y)_k = sum_ij x_i y_j T_ijk."""
    eye = torch.eye(n, dtype=torch.float64)
    return onion_mult(eye.unsqueeze(1), eye.unsqueeze(0))


def onions_quality(ref: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
    """Modulus of the hypercomplex quality of many blocks at once (``onions_quality.m``).

    Args:
        ref, fused: (..., C, P) float64: C = 2^n bands of the P pixels of each
            block (integer-valued, as after the uint16 cast).

    Returns:
        (...,) the modulus ``|q|`` of each block's quality.
    """
    c, p = ref.shape[-2:]
    k = p / (p - 1)  # the toolbox's N/(N-1) covariance factor
    s = ref.mean(dim=-1, keepdim=True)
    d = ref - s
    t = torch.sqrt((d * d).sum(dim=-1, keepdim=True) / (p - 1))  # std2: N-1, two-pass
    t = torch.where(t == 0, torch.full_like(t, _EPS), t)
    dat1 = d / t + 1.0
    # The fused block is normalised with the reference block's statistics; an
    # all-zero reference band (mean 0) is only shifted, not divided (norm_blocco quirk).
    f_norm = torch.where(s == 0, fused - s + 1.0, (fused - s) / t + 1.0)
    sign = torch.ones(c, 1, dtype=ref.dtype, device=ref.device)
    sign[1:] = -1.0
    dat2 = f_norm * sign  # hypercomplex conjugate

    m1 = dat1.mean(dim=-1)
    m2 = dat2.mean(dim=-1)
    mod_q1m2 = (m1 * m1).sum(-1)
    mod_q2m2 = (m2 * m2).sum(-1)
    int1 = k * (dat1 * dat1).sum(-2).mean(-1)
    int2 = k * (dat2 * dat2).sum(-2).mean(-1)
    termine3 = int1 + int2 - k * (mod_q1m2 + mod_q2m2)
    mean_bias = 2.0 * torch.sqrt(mod_q1m2) * torch.sqrt(mod_q2m2) / (mod_q1m2 + mod_q2m2)

    # mean_p(dat1_p * dat2_p) with the bilinear product: the band cross-moments
    # (one batched matrix product) contracted with the structure constants.
    cross = dat1 @ dat2.transpose(-1, -2) / p
    qv = k * torch.einsum("...ij,ijk->...k", cross, _structure(c).to(cross.device))
    qm = onion_mult(m1, m2)
    q = (qv - k * qm) * (mean_bias * 2.0 / termine3).unsqueeze(-1)
    modulus = torch.linalg.vector_norm(q, dim=-1)
    # Both blocks flat: the toolbox sets q = [0, ..., 0, mean_bias].
    return torch.where(termine3 == 0, mean_bias.abs(), modulus)


def _blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    """(B, C, block, W) strip, W a multiple of block -> (B, W/block, C, block*block)."""
    b, c, _, w = x.shape
    x = x.reshape(b, c, block, w // block, block)
    return x.permute(0, 3, 1, 2, 4).reshape(b, w // block, c, block * block)


def q2n_blocks(f: torch.Tensor, r: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """Per-block Q2n of float64 batches (B, C, H, W): (B, ceil(H/block), ceil(W/block))."""
    same_shape(f, r, "q2n(fused, reference)")
    if block < 2:
        raise ValueError(f"block size must be at least 2, got {block}")
    h, w = r.shape[-2:]
    rows = _mirror_index(h, block, r.device)
    pad_w = _mirror_index(w, block, r.device).numel() - w

    def strip(x: torch.Tensor, i: int) -> torch.Tensor:
        x = x[..., i:i + block, :] if i + block <= h else x.index_select(-2, rows[i:i + block])
        if pad_w:
            x = torch.cat([x, x[..., w - pad_w:].flip(-1)], dim=-1)
        return _blocks(pad_bands_pow2(to_uint16_grid(x)), block)

    # One row of blocks at a time (padding, cast and all): every block of the
    # row is vectorised, and the working set stays small on large scenes.
    out = [onions_quality(strip(r, i), strip(f, i)) for i in range(0, rows.numel(), block)]
    return torch.stack(out, dim=1)


def q2n(fused: ImageLike, reference: ImageLike, block: int = BLOCK) -> torch.Tensor | float:
    """Q2n of ``fused`` against ``reference`` (Q4 for 4 bands, Q8 for 8); 1 is ideal.

    Args:
        fused: (C, H, W) or (B, C, H, W) in digital numbers (it is cast to uint16).
        reference: same shape; its block statistics normalise both images.
        block: side of the distinct square blocks (toolbox: 32).

    Returns:
        A float for an unbatched input, a (B,) tensor for a batch.
    """
    f, batched = as_batch(fused, "fused")
    r, _ = as_batch(reference, "reference")
    return finish(q2n_blocks(f, r, block).mean(dim=(-2, -1)), batched)
