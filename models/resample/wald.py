"""Wald-protocol reduced-resolution pairs, as the reference toolbox builds them.

The toolbox's ``resize_images`` makes the reduced-resolution input from an
original (MS, PAN) pair:

* MS: filtered band by band with the sensor's MTF-matched kernel (replicate
  borders), then ``imresize(., 1/ratio, 'nearest')``. MATLAB's nearest
  rule maps output pixel j (1-based) to input j*ratio + (1 - ratio)/2, rounded
  up at ties, i.e. 0-based input ``ratio // 2 + ratio * i``: rows/columns
  ``2::4`` for ratio 4 and ``1::2`` for ratio 2. That is also the phase at
  which ``interp23tap`` puts MS samples back (4i + 2, resp. 2i + 1), so the
  degraded-then-interpolated MS (``lms``) is aligned with the reference.
  For ratio 2 we therefore keep ``1::2``, not ``2::2``, which would shift
  the pair by one PAN pixel.
* PAN: no MTF filter; MATLAB ``imresize(PAN, 1/ratio)``, bicubic with
  antialiasing.
* The original MS becomes the reference (``gt``); ``lms`` is the 23-tap
  interpolation of the degraded MS, the EXP baseline and the network input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from crossdiff.models.resample.imresize import imresize
from crossdiff.models.resample.interp23 import interp23tap
from crossdiff.models.resample.mtf import mtf_filter
from crossdiff.models.sensors import Sensor, get_sensor


def decimation_start(ratio: int) -> int:
    """First kept 0-based row/column of MATLAB's ``imresize(., 1/ratio, 'nearest')``."""
    return int(ratio) // 2


def decimate(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """Nearest-neighbour decimation with the toolbox's phase (rows/cols ``ratio//2::ratio``)."""
    s = decimation_start(ratio)
    return x[..., s::ratio, s::ratio]


def resolve_gains(sensor_or_gains: Sensor | str | Sequence[float], n_bands: int,
                  ratio: int | None) -> tuple[tuple[float, ...], float | None, int]:
    """MS gains, PAN gain (None when only gains were given) and ratio from any accepted form."""
    if isinstance(sensor_or_gains, str):
        sensor_or_gains = get_sensor(sensor_or_gains, n_bands)
    if isinstance(sensor_or_gains, Sensor):
        sensor = sensor_or_gains
        if sensor.n_bands != n_bands:
            raise ValueError(f"sensor {sensor.name} has {sensor.n_bands} MS bands, the data has {n_bands}; "
                             "pass the matching sensor or one MTF gain per band")
        return tuple(sensor.mtf_ms), sensor.mtf_pan, int(ratio or sensor.ratio)
    gains = tuple(float(g) for g in sensor_or_gains)
    if len(gains) != n_bands:
        raise ValueError(f"{len(gains)} MTF gains for {n_bands} MS bands; give one gain per band")
    if ratio is None:
        raise ValueError("give the PAN/MS ratio when passing MTF gains instead of a sensor")
    return gains, None, int(ratio)


def check_pair(ms: torch.Tensor, pan: torch.Tensor, ratio: int) -> None:
    """Raise a clear error unless ms (.., C, h, w) and pan (.., 1, ratio*h, ratio*w) match."""
    if ms.dim() not in (3, 4) or pan.dim() != ms.dim():
        raise ValueError(f"ms and pan must both be (C, H, W) or both (B, C, H, W); got ms {tuple(ms.shape)}, "
                         f"pan {tuple(pan.shape)}")
    if ms.dim() == 4 and ms.shape[0] != pan.shape[0]:
        raise ValueError(f"batch sizes differ: ms {ms.shape[0]}, pan {pan.shape[0]}")
    if pan.shape[-3] != 1:
        raise ValueError(f"pan must have one band, got {pan.shape[-3]}")
    h, w = ms.shape[-2:]
    if tuple(pan.shape[-2:]) != (ratio * h, ratio * w):
        raise ValueError(f"pan is {tuple(pan.shape[-2:])} but ms is {(h, w)} at ratio {ratio}: "
                         f"pan must be {(ratio * h, ratio * w)}; crop both to matching windows")


def wald_pair(ms: torch.Tensor, pan: torch.Tensor, sensor_or_gains: Sensor | str | Sequence[float],
              ratio: int | None = None) -> dict[str, torch.Tensor]:
    """Reduced-resolution training/evaluation sample by Wald's protocol.

    Args:
        ms: original MS, (C, h, w) or (B, C, h, w); h and w multiples of ``ratio``.
        pan: original PAN, (1, ratio*h, ratio*w) or (B, 1, ratio*h, ratio*w).
        sensor_or_gains: a ``Sensor``, a sensor name, or one MTF gain per MS band.
        ratio: PAN/MS ratio (2, 4 or 8); defaults to the sensor's.

    Returns:
        ``ms`` (C, h/r, w/r) degraded MS, ``pan`` (1, h, w) degraded PAN,
        ``lms`` (C, h, w) the 23-tap interpolation of the degraded MS, and
        ``gt`` (C, h, w) the original MS (the same tensor, not a copy).
    """
    gains, _, ratio = resolve_gains(sensor_or_gains, ms.shape[-3], ratio)
    check_pair(ms, pan, ratio)
    h, w = ms.shape[-2:]
    if h % ratio or w % ratio:
        raise ValueError(f"ms is {h}x{w}, not a multiple of the ratio {ratio}; "
                         "crop it (and pan) to a multiple")
    ms_lr = decimate(mtf_filter(ms, gains, ratio), ratio).contiguous()
    pan_lr = imresize(pan, 1.0 / ratio)
    return {"ms": ms_lr, "pan": pan_lr, "lms": interp23tap(ms_lr, ratio), "gt": ms}
