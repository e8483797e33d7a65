"""The toolbox's 23-tap polynomial interpolator (``interp23tap``), the EXP baseline.

The reference toolbox upsamples MS to the PAN grid with a 23-tap symmetric
half-band filter (Aiazzi et al. 2002, "CDF23"), applied in dyadic x2 stages:
each stage inserts zeros, then filters rows and columns with the taps, with
circular borders. The zero insertion is what fixes the sub-pixel alignment:

* first stage: the input sample i goes to 0-based position 2i + 1 (MATLAB
  ``I1LRU(2:2:end, 2:2:end) = I``);
* later stages: sample i goes to 2i (MATLAB ``I1LRU(1:2:end, 1:2:end) = I``).

So for ratio 4, MS pixel i lands on PAN pixel 4i + 2, and for ratio 2 on
2i + 1: the MS pixel is centred under its ratio x ratio PAN block (the block
centre is at 4i + 1.5, resp. 2i + 0.5, and the toolbox rounds it up). The
Wald decimation in ``wald.py`` keeps rows/columns ``ratio // 2 :: ratio`` for
the same reason, so ``interp23tap(decimate(x))`` is aligned with ``x``.

We run the stages in polyphase form, which is equal to zero insertion followed
by the 23-tap circular filter: the taps at even offsets are 0 except the
centre tap 1, so samples at the inserted phase are copied and the new samples
in between are a 12-tap filter of the input. That does a quarter of the work.

All stages along one axis together are a linear map of that axis (circular
borders included): for images up to ``MATRIX_MAX`` pixels a side we apply it
as one matrix per axis, ``M_h^T @ x @ M_w``, built once per size by running
the stages on the identity. Two matrix products beat the one-channel
convolutions by 5x on a 64 x 64 MS tile and 3.5x at 512 (one thread); the
results agree to float rounding. A sub-pixel ``shift`` of the result (a
Fourier shift, see ``shift.py``) is linear along each axis too, so it is
folded into the same matrices: a shifted interpolation costs no more than an
unshifted one (the Landsat-8 PAN grid is offset from its MS grid).

Ratios 2, 4 and 8 are supported (log2(ratio) stages; the toolbox's own loop
``for z = 1 : ratio/2`` would run 4 stages, i.e. x16, for ratio 8).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from crossdiff.models.resample.shift import fourier_shift, shift_along_last

# Half of the symmetric 23-tap filter, offsets 0..11 (Aiazzi et al. 2002).
CDF23_HALF = tuple(
    2.0 * c
    for c in (0.5, 0.305334091185, 0.0, -0.072698593239, 0.0, 0.021809577942, 0.0,
              -0.005192756653, 0.0, 0.000807762146, 0.0, -0.000060081482)
)


def cdf23_taps() -> list[float]:
    """The full symmetric 23-tap filter, offsets -11..11."""
    return list(reversed(CDF23_HALF[1:])) + list(CDF23_HALF)


# Polyphase taps for the in-between samples: the value halfway between input
# samples i and i+1 is sum_{j=-5..6} c[|1 - 2j|] * x[i + j].
_ODD_TAPS = tuple(CDF23_HALF[abs(1 - 2 * j)] for j in range(-5, 7))


def _check_ratio(ratio: int) -> int:
    if ratio not in (2, 4, 8):
        raise ValueError(
            f"interp23tap needs a power-of-two ratio (2, 4 or 8), got {ratio!r}; "
            "resample other ratios with a general interpolator"
        )
    return int(ratio)


def _stage_1d(x: torch.Tensor, first: bool) -> torch.Tensor:
    """One x2 stage along the last dimension of a (N, 1, A, L) tensor, circular borders."""
    n = x.shape[-1]
    taps = torch.tensor(_ODD_TAPS, dtype=x.dtype, device=x.device).reshape(1, 1, 1, -1)
    xp = F.pad(x, (5, 6, 0, 0), mode="circular") if n >= 6 else _circular_pad_small(x, 5, 6)
    mid = F.conv2d(xp, taps)  # mid[i] = value halfway between x[i] and x[i+1 mod n]
    # First stage: y[2k+1] = x[k] and y[2k] = mid[k-1 mod n] (the sample before x[k]);
    # later stages: y[2k] = x[k] and y[2k+1] = mid[k].
    pair = (torch.roll(mid, 1, dims=-1), x) if first else (x, mid)
    return torch.stack(pair, dim=-1).reshape(*x.shape[:-1], 2 * n)


def _circular_pad_small(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Circular padding that may wrap several times (images narrower than the filter)."""
    n = x.shape[-1]
    idx = torch.arange(-left, n + right, device=x.device) % n
    return x.index_select(-1, idx)


# Above this many pixels a side the dense per-axis matrices (n x ratio*n) cost
# more memory and work than the stages.
MATRIX_MAX = 1024


@functools.lru_cache(maxsize=64)
def _axis_matrix(n: int, ratio: int, shift: float, dtype: torch.dtype, device: str) -> torch.Tensor:
    """(n, ratio*n): row i is the interpolation of an impulse at sample i, resampled at ``j + shift``.

    Built in float64 (the stages on the identity, then the Fourier shift) and cast once.
    """
    y = torch.eye(n, dtype=torch.float64, device=device).reshape(n, 1, 1, n)
    for stage in range(ratio.bit_length() - 1):
        y = _stage_1d(y, first=stage == 0)
    y = y.reshape(n, ratio * n)
    if shift:
        y = shift_along_last(y, shift)
    return y.to(dtype)


def _interp_stages(y: torch.Tensor, ratio: int) -> torch.Tensor:
    """The dyadic stages on (N, 1, h, w): columns, then rows, each stage."""
    first = True
    for _ in range(ratio.bit_length() - 1):
        y = _stage_1d(y, first)  # columns
        y = _stage_1d(y.transpose(-1, -2), first).transpose(-1, -2)  # rows
        first = False
    return y


def interp23tap(x: torch.Tensor, ratio: int, shift: tuple[float, float] = (0.0, 0.0),
               out: torch.Tensor | None = None) -> torch.Tensor:
    """Upsample by ``ratio`` with the toolbox's 23-tap interpolator (circular borders).

    Args:
        x: (C, h, w) or (B, C, h, w) image(s) at MS scale; integer input is
            promoted to float64.
        ratio: 2, 4 or 8.
        shift: ``(dx, dy)`` in output pixels: the result is resampled at
            ``(row + dy, col + dx)`` (band-limited, circular), i.e.
            ``fourier_shift(interp23tap(x, ratio), dx, dy)`` in one pass.
        out: a contiguous tensor of the result's shape and dtype to write into
            (saves a copy when the caller assembles many tiles in one array).

    Returns:
        (C, ratio*h, ratio*w) or (B, C, ratio*h, ratio*w), aligned as the toolbox
        (``out`` itself when given).
    """
    ratio = _check_ratio(ratio)
    if x.dim() not in (3, 4):
        raise ValueError(f"expected a (C, h, w) or (B, C, h, w) image, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    h, w = x.shape[-2:]
    dx, dy = (float(v) for v in shift)
    if max(h, w) <= MATRIX_MAX:
        device = str(x.device)
        rows = _axis_matrix(h, ratio, dy, x.dtype, device)
        cols = _axis_matrix(w, ratio, dx, x.dtype, device)
        if out is not None:
            return torch.matmul(rows.T @ x, cols, out=out)
        return (rows.T @ x @ cols).contiguous()
    y = _interp_stages(x.reshape(-1, 1, h, w), ratio)
    y = fourier_shift(y, torch.tensor([dx]), torch.tensor([dy]))
    y = y.reshape(*x.shape[:-2], *y.shape[-2:])
    return out.copy_(y) if out is not None else y.contiguous()
