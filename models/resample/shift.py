"""Band-limited sub-pixel shifts of images (Fourier phase ramps, circular borders).

Used to put an MS interpolation onto a PAN grid that is offset by a fraction
of a pixel (the Landsat-8 B8 grid is half a PAN pixel off its MS grid), and
the degraded PAN onto the MS grid in Wald pairs. Both images it moves are
smooth, and circular borders match the 23-tap interpolator's.
"""

from __future__ import annotations

import torch


def shift_along_last(t: torch.Tensor, d: torch.Tensor | float) -> torch.Tensor:
    """Resample ``t`` at ``j + d`` along its last axis (float64; ``d`` broadcasts over the leading axes)."""
    n = t.shape[-1]
    f = torch.fft.rfftfreq(n, dtype=torch.float64, device=t.device)
    d = torch.as_tensor(d, dtype=torch.float64, device=t.device)
    phase = torch.exp(2j * torch.pi * d[..., None] * f)
    # irfft takes the real part of the Nyquist bin: the usual real-signal shift.
    return torch.fft.irfft(torch.fft.rfft(t.to(torch.float64), dim=-1) * phase, n=n, dim=-1)


def fourier_shift(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Resample each image at ``(row + dy, col + dx)``, band-limited, circular borders.

    Args:
        x: (B, C, H, W) float images.
        dx, dy: (B,) shifts in pixels (any real value; integers are exact rolls).

    Returns:
        ``y`` with ``y[b, c, i, j] = x[b, c, i + dy[b], j + dx[b]]`` (interpolated).
    """
    if not bool(torch.any(dx != 0) or torch.any(dy != 0)):
        return x
    y = shift_along_last(x, dx.view(-1, 1, 1))
    y = shift_along_last(y.transpose(-1, -2), dy.view(-1, 1, 1)).transpose(-1, -2)
    return y.to(x.dtype).contiguous()
