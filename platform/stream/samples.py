"""Raw PAN/MS windows in digital numbers -> training samples in [-1, 1].

Everything here works on whole batches of equally sized tiles (numpy in,
numpy out, torch in between) and knows nothing of files or Ray, so it can be
tested by hand and reused by any reader.

Conventions, in order of application:

* **Validity**, as the ingest's statistics define it (:mod:`..archive.masks`):
  an MS pixel is fill when *any* band equals the declared nodata value or,
  with none declared, when *every* band is 0 (the fill of most products); a
  PAN pixel when it equals the nodata value (or 0). ``valid = 1 -
  max(PAN fill share, MS fill share)``; tiles under ``min_valid`` are
  dropped. A tile is *blank* (dropped too) when PAN is constant or every MS
  band is constant: nothing to learn from it.
* **Normalisation.** ``x01 = DN / (2**bits - 1)`` clipped to [0, 1], with the
  row's bit depth (the sensor's, or what the scene declares); samples are
  ``2 * x01 - 1``. Reduced mode resamples ``x01`` and maps the result at the
  end, so it equals the reference toolbox run on DNs and scaled afterwards
  (the MTF kernels sum to about 0.999, so an offset would not commute).
  Original mode interpolates the signed MS directly: the 23-tap kernel and
  the Fourier shift keep constants (to 1e-9), so the offset commutes, and
  ``lms`` is written straight into its output array.
* **Original mode** (stage 1): ``pan`` (B, 1, H, W), ``ms`` (B, C, H/r, W/r),
  ``lms`` (B, C, H, W) = ``interp23tap(ms, r)``, resampled onto the PAN grid by
  the manifest's ``ms_shift`` (see below).
* **Reduced mode** (stage 2, Wald's protocol via
  :func:`crossdiff.models.resample.wald_pair`): ``pan`` (B, 1, H/r, W/r) is the
  PAN degraded by ``imresize(1/r)``, ``ms`` (B, C, H/r², W/r²) the MS filtered
  with the sensor's MTF and decimated, ``lms`` (B, C, H/r, W/r) its 23-tap
  interpolation, and ``gt`` (B, C, H/r, W/r) the original MS window, untouched.

Sub-pixel alignment (``ms_shift``, in MS pixels: where the PAN window's corner
falls inside the MS window). Each mode aligns its inputs with the grid of its
target and never resamples the target itself:

* original mode: PAN pixel ``p`` lies where the aligned-product PAN pixel
  ``p + r * shift`` would, so ``lms`` is resampled at ``p + r * shift``;
* reduced mode: degraded-PAN pixel ``j`` lies ``shift`` MS pixels past MS pixel
  ``j``, so the degraded PAN is resampled at ``j - shift`` onto the MS grid of
  ``gt``; ``gt`` stays the unresampled original.

The resampling is a Fourier (band-limited, circular) shift: both images it
moves are smooth (``lms`` is an interpolation, the degraded PAN is
antialiased) and circular borders match the 23-tap interpolator's. Note that
``lms`` may overshoot [-1, 1] by a little where the 23-tap kernel rings at
sharp edges; it is not clipped, so it stays the toolbox's EXP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from crossdiff.models.resample import fourier_shift, interp23tap, wald_pair
from crossdiff.models.sensors import get_sensor

MODES = ("original", "reduced")
# The stream columns add_lms computes lms from (a consumer of a stream without lms reads these).
LMS_SOURCES = ("pan", "ms", "ms_shift_x", "ms_shift_y")
# Tiles interpolated at once. One at a time is fastest: a tile's intermediates
# (a few MB) stay in the CPU caches; 256-px 8-band tiles with lms took 1.27 ms
# a tile one at a time, 1.31 ms in chunks of 4 and 1.41 ms in chunks of 32
# (one thread, writing into the output array).
CHUNK = 1


def sample_shapes(mode: str, pan_shape: tuple[int, int], ms_shape: tuple[int, int], bands: int, ratio: int,
                  with_lms: bool = True) -> dict[str, tuple[int, ...]]:
    """Per-tile shapes of the float32 arrays :func:`make_samples` returns (see the module docstring)."""
    (ph, pw), (mh, mw), c, r = pan_shape, ms_shape, bands, ratio
    if mode == "original":
        shapes = {"pan": (1, ph, pw), "ms": (c, mh, mw)}
        if with_lms:
            shapes["lms"] = (c, ph, pw)
        return shapes
    if mode == "reduced":
        return {"pan": (1, mh, mw), "ms": (c, mh // r, mw // r), "lms": (c, mh, mw), "gt": (c, mh, mw)}
    raise ValueError(f"mode {mode!r} is not one of {MODES}")


def valid_fraction(pan: np.ndarray, ms: np.ndarray, nodata: Sequence[float | None]) -> np.ndarray:
    """Share of each tile that is not fill, (B,): ``1 - max(PAN fill share, MS fill share)``."""
    declared = np.array([v is not None and not np.isnan(v) for v in nodata])
    fill = _fill_like(np.array([float(v) if d else 0.0 for v, d in zip(nodata, declared, strict=True)]), pan.dtype)
    pan_fill = np.count_nonzero(pan == fill, axis=(1, 2, 3)) / np.prod(pan.shape[1:])
    ms_eq = ms == fill
    ms_fill = np.count_nonzero(np.where(declared[:, None, None], ms_eq.any(axis=1), ms_eq.all(axis=1)),
                               axis=(1, 2)) / np.prod(ms.shape[2:])
    return 1.0 - np.maximum(pan_fill, ms_fill)


def _fill_like(fill: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Fill values (B,) shaped (B, 1, 1, 1), in the pixels' dtype when each is exact there.

    Comparing uint16 pixels with float64 fill values would first cast every
    pixel to float64 (a fifth of a reader's filter time); a value the dtype
    cannot hold (a fractional or out-of-range nodata) keeps float64, where
    it simply never matches.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        same = fill.astype(dtype)
    exact = np.array_equal(same.astype(np.float64), fill)
    return (same if exact else fill).reshape(-1, 1, 1, 1)


def is_blank(pan: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """True where PAN is constant or every MS band is constant, (B,)."""
    pan_flat = pan.reshape(pan.shape[0], -1)
    ms_flat = ms.reshape(*ms.shape[:2], -1)
    pan_const = pan_flat.max(axis=1) == pan_flat.min(axis=1)
    ms_const = (ms_flat.max(axis=2) == ms_flat.min(axis=2)).all(axis=1)
    return pan_const | ms_const


def keep_mask(pan: np.ndarray, ms: np.ndarray, nodata: Sequence[float | None], min_valid: float,
              drop_blank: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which tiles to keep, and the two reasons to drop one.

    Returns:
        ``keep``, ``blank``, ``low_valid`` boolean arrays (B,); a blank tile is
        only reported as blank, not also as low-valid.
    """
    blank = is_blank(pan, ms) if drop_blank else np.zeros(pan.shape[0], dtype=bool)
    low = (valid_fraction(pan, ms, nodata) < min_valid) & ~blank
    return ~(blank | low), blank, low


def _row_scale(bits: np.ndarray, top: float) -> torch.Tensor:
    """``top / (2**bits - 1)`` per row, float32, shaped to broadcast over (B, C, H, W)."""
    scale = (top / (np.power(2.0, bits.astype(np.float64)) - 1.0)).astype(np.float32)
    return torch.from_numpy(scale).view(-1, 1, 1, 1)


def to_unit(dn: np.ndarray, bits: np.ndarray) -> torch.Tensor:
    """DN -> [0, 1] by ``2**bits - 1`` per row (bits (B,)), float32, clipped."""
    x = torch.from_numpy(np.ascontiguousarray(dn, dtype=np.float32))
    return (x * _row_scale(bits, 1.0)).clamp_(0.0, 1.0)


def to_signed(dn: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """DN -> [-1, 1] by ``2 * DN / (2**bits - 1) - 1`` per row (bits (B,)), float32, clipped; a new array."""
    x = torch.from_numpy(dn.astype(np.float32))  # a copy: the in-place steps below never touch ``dn``
    return x.mul_(_row_scale(bits, 2.0)).sub_(1.0).clamp_(-1.0, 1.0).numpy()


def _lms(ms: np.ndarray, ratio: int, sx: torch.Tensor, sy: torch.Tensor, chunk: int) -> np.ndarray:
    """:func:`lms_tensor` of a NumPy batch, into one new float32 array."""
    b, c, h, w = ms.shape
    lms = np.empty((b, c, h * ratio, w * ratio), np.float32)
    lms_tensor(torch.from_numpy(ms), ratio, sx, sy, chunk, out=torch.from_numpy(lms))
    return lms


def lms_tensor(ms: torch.Tensor, ratio: int, shift_x: Any, shift_y: Any, chunk: int | None = CHUNK,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """The 23-tap interpolation of signed MS (B, C, h, w) onto the PAN grid, on the MS's own device.

    ``shift_x``/``shift_y`` (B,) are the manifest's ``ms_shift`` in MS pixels
    (see the module docstring). ``chunk`` tiles are resampled at a time (None:
    the whole batch, best on a GPU); results agree for any value, to float
    rounding where a chunk mixes shifts (one shift is folded into the
    interpolation, mixed ones take a Fourier shift).
    """
    b, c, h, w = ms.shape
    sx = torch.as_tensor(shift_x).detach().to("cpu", torch.float64).reshape(-1)
    sy = torch.as_tensor(shift_y).detach().to("cpu", torch.float64).reshape(-1)
    if out is None:
        out = torch.empty((b, c, h * ratio, w * ratio), dtype=ms.dtype, device=ms.device)
    step = chunk or max(b, 1)
    for start in range(0, b, step):
        part = slice(start, start + step)
        shared = _shared_shift(sx[part], sy[part])
        if shared is not None:  # one shift for every tile of the chunk: folded into the interpolation
            interp23tap(ms[part], ratio, shift=(ratio * shared[0], ratio * shared[1]), out=out[part])
        else:
            shifts = (ratio * sx[part]).to(ms.device), (ratio * sy[part]).to(ms.device)
            out[part] = fourier_shift(interp23tap(ms[part], ratio), *shifts)
    return out


def add_lms(batch: dict[str, Any], chunk: int | None = None) -> dict[str, Any]:
    """A streamed batch read without ``lms`` (``with_lms=False``), with ``lms`` added from its own columns.

    The consumer computes ``lms`` where the model runs: ``ms`` (B, C, h, w) and
    the ``ms_shift_x``/``ms_shift_y`` columns every stream carries, as torch
    tensors on any device (or NumPy arrays); the ratio is the PAN size over
    the MS size. A tile's ``lms`` is 16 times its ``ms`` at ratio 4 (2 MB for
    256-px 8-band tiles): readers that ship ``ms`` instead spend a third to
    a quarter of the CPU a tile and move a sixth of the bytes through the
    object store and onto the GPU. Equal to the readers' ``lms`` (the same
    code, see :func:`lms_tensor`). ``chunk``: None resamples the whole batch
    at once on an accelerator and :data:`CHUNK` tiles at a time on the CPU.

    Returns:
        A new dict: the batch's entries and ``lms`` (of the same kind as ``ms``).
    """
    missing = [k for k in LMS_SOURCES if k not in batch]
    if missing:
        raise KeyError(f"add_lms needs the columns {list(LMS_SOURCES)}; missing {missing}")
    ms, pan = batch["ms"], batch["pan"]
    ratio = pan.shape[-1] // ms.shape[-1]
    if pan.shape[-2:] != (ms.shape[-2] * ratio, ms.shape[-1] * ratio):
        raise ValueError(f"PAN {tuple(pan.shape)} is not an integer multiple of MS {tuple(ms.shape)}")
    was_numpy = isinstance(ms, np.ndarray)
    ms_t = torch.from_numpy(np.ascontiguousarray(ms, np.float32)) if was_numpy else ms
    if chunk is None and ms_t.device.type == "cpu":
        chunk = CHUNK
    lms = lms_tensor(ms_t, ratio, batch["ms_shift_x"], batch["ms_shift_y"], chunk)
    return {**batch, "lms": lms.numpy() if was_numpy else lms}


def _shared_shift(sx: torch.Tensor, sy: torch.Tensor) -> tuple[float, float] | None:
    """The ``(dx, dy)`` every tile of a non-empty chunk shares, or None."""
    if bool((sx == sx[0]).all() and (sy == sy[0]).all()):
        return float(sx[0]), float(sy[0])
    return None


def _signed(x: torch.Tensor) -> np.ndarray:
    """[0, 1] -> [-1, 1] as a contiguous float32 array."""
    return np.ascontiguousarray((x * 2.0 - 1.0).numpy(), dtype=np.float32)


def make_samples(pan_dn: np.ndarray, ms_dn: np.ndarray, *, bits: np.ndarray, ratio: int,
                 shift_x: np.ndarray, shift_y: np.ndarray, sensors: Sequence[str], mode: str = "original",
                 with_lms: bool = True, chunk: int = CHUNK) -> dict[str, np.ndarray]:
    """Normalise, interpolate and (in reduced mode) degrade one batch of kept tiles.

    Args:
        pan_dn: (B, 1, H, W) PAN digital numbers.
        ms_dn: (B, C, H/r, W/r) MS digital numbers.
        bits: (B,) bit depth per tile.
        ratio: PAN/MS ratio shared by the batch.
        shift_x, shift_y: (B,) the manifest's ``ms_shift_x/y`` (MS pixels).
        sensors: (B,) sensor names (reduced mode picks each one's MTF gains).
        mode: "original" or "reduced" (see the module docstring for shapes).
        with_lms: compute ``lms`` (original mode); reduced mode always does.
        chunk: tiles resampled at a time; the results are the same for any
            value, small chunks only keep the working set in the CPU caches.

    Returns:
        float32 arrays ``pan``, ``ms``, ``lms`` (and ``gt`` in reduced mode) in [-1, 1].
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    sensors = list(sensors)
    n = len(pan_dn)
    sx = torch.as_tensor(np.asarray(shift_x, dtype=np.float64))
    sy = torch.as_tensor(np.asarray(shift_y, dtype=np.float64))
    if mode == "original":
        out = {"pan": to_signed(pan_dn, bits), "ms": to_signed(ms_dn, bits)}
        if with_lms:
            out["lms"] = _lms(out["ms"], ratio, sx, sy, chunk)
        return out
    if n > chunk:
        pairs: dict[str, np.ndarray] = {}
        for start in range(0, n, chunk):
            part = slice(start, start + chunk)
            got = make_samples(pan_dn[part], ms_dn[part], bits=bits[part], ratio=ratio, shift_x=shift_x[part],
                               shift_y=shift_y[part], sensors=sensors[part], mode=mode, chunk=chunk)
            for key, value in got.items():
                if key not in pairs:
                    pairs[key] = np.empty((n, *value.shape[1:]), value.dtype)
                pairs[key][part] = value
        return pairs
    return _reduced(to_unit(pan_dn, bits), to_unit(ms_dn, bits), ratio, sx, sy, sensors)


def _reduced(pan: torch.Tensor, ms: torch.Tensor, ratio: int, sx: torch.Tensor, sy: torch.Tensor,
             sensors: Sequence[str]) -> dict[str, np.ndarray]:
    """Wald pairs, one sensor group at a time (each has its own MTF gains)."""
    b, c, h, w = ms.shape
    if h % ratio or w % ratio:
        raise ValueError(f"reduced mode needs MS tiles divisible by the ratio {ratio}, got {h}x{w}; "
                         f"ingest with a tile that is a multiple of {ratio * ratio} PAN pixels")
    out = {"pan": np.empty((b, 1, h, w), np.float32), "ms": np.empty((b, c, h // ratio, w // ratio), np.float32),
           "lms": np.empty((b, c, h, w), np.float32), "gt": np.empty((b, c, h, w), np.float32)}
    names = np.asarray(sensors, dtype=object)
    for name in dict.fromkeys(names.tolist()):
        idx = np.flatnonzero(names == name)
        t = torch.from_numpy(idx)
        pair = wald_pair(ms[t], pan[t], get_sensor(name, c), ratio)
        pair["pan"] = fourier_shift(pair["pan"], -sx[t], -sy[t])
        for key in out:
            out[key][idx] = _signed(pair[key])
    return out
