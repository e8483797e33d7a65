"""PAN tiles and the MS windows under them, from the scene's actual geotransforms.

A tile is a ``tile x tile`` PAN window on a regular grid of step ``stride``.
Its MS window is found by mapping the PAN window's top-left corner through
``pan_to_ms`` (see :class:`validate.SceneInfo`), rounding to the nearest MS
pixel and keeping the remainder as ``shift``:

    x_ms = tx + sx * pan_col          (exact, fractional)
    ms_col = round(x_ms)              (integer window)
    shift_x = x_ms - ms_col           (in [-0.5, 0.5], MS pixels)

Worked case, the Landsat-8 sample: PAN pixels are 15 m, MS 30 m, and the PAN
grid starts 7.5 m (half a PAN pixel) west of and north of the MS grid, so
``sx = 0.5`` and ``tx = -7.5 / 30 = -0.25``. PAN column 0 lies a quarter MS
pixel outside the MS raster, so the first tile starts at PAN column 1, whose
corner is at ``x_ms = 0.25``: MS column 0 with ``shift_x = +0.25``. With a
stride that is a multiple of the ratio every later tile has the same shift
(column 257 -> 128.25 -> MS column 128, shift 0.25), which is the per-scene
sub-pixel offset a reader uses to align MS with PAN.

Only tiles whose PAN footprint lies inside both rasters are kept; a partial
last row/column of the PAN is not padded (that keeps every tile's shift on
the same regular pattern).
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class TileWindow:
    """One PAN window and the MS window under it (pixels; shift in MS pixels)."""

    pan_row: int
    pan_col: int
    pan_height: int
    pan_width: int
    ms_row: int
    ms_col: int
    ms_height: int
    ms_width: int
    shift_x: float
    shift_y: float


def check_tiling(tile: int, stride: int, ratio: int) -> None:
    """Tile and stride must be whole numbers of MS pixels.

    Raises:
        ValueError: with the nearest valid sizes.
    """
    if tile <= 0 or stride <= 0:
        raise ValueError(f"tile ({tile}) and stride ({stride}) must be positive")
    for name, value in (("tile", tile), ("stride", stride)):
        if value % ratio:
            lo = max(ratio, value - value % ratio)
            raise ValueError(f"{name} {value} is not a multiple of the PAN/MS ratio {ratio}; "
                             f"use {lo} or {lo + ratio}")


def _axis(n_pan: int, n_ms: int, scale: float, offset: float, tile: int, stride: int, ms_size: int,
          eps: float) -> list[tuple[int, int, float]]:
    """(pan_start, ms_start, shift) along one axis for every tile that fits in both rasters."""
    first = max(0, math.ceil((-eps - offset) / scale))
    out = []
    for start in range(first, n_pan - tile + 1, stride):
        x = offset + scale * start
        if x + scale * tile > n_ms + eps:
            break
        ms_start = min(math.floor(x + 0.5), n_ms - ms_size)
        if ms_start < 0:
            continue
        out.append((start, ms_start, x - ms_start))
    return out


def plan_windows(pan_shape: tuple[int, int], ms_shape: tuple[int, int],
                 pan_to_ms: tuple[float, float, float, float], ratio: int, tile: int = 256,
                 stride: int | None = None, eps: float = 1e-3) -> list[TileWindow]:
    """Every tile of a scene, row-major.

    Args:
        pan_shape, ms_shape: (height, width) of the PAN and MS rasters.
        pan_to_ms: ``(sx, sy, tx, ty)``: PAN pixel (col, row) -> MS pixel
            ``(tx + sx * col, ty + sy * row)``, from the geotransforms.
        ratio: declared PAN/MS ratio; the MS window is ``tile // ratio`` pixels.
        tile: PAN tile size in pixels.
        stride: step between tiles (default ``tile``: no overlap).
        eps: tolerance, in MS pixels, for footprints touching a raster edge.
    """
    stride = stride or tile
    check_tiling(tile, stride, ratio)
    sx, sy, tx, ty = pan_to_ms
    ms_size = tile // ratio
    cols = _axis(pan_shape[1], ms_shape[1], sx, tx, tile, stride, ms_size, eps)
    rows = _axis(pan_shape[0], ms_shape[0], sy, ty, tile, stride, ms_size, eps)
    return [TileWindow(pr, pc, tile, tile, mr, mc, ms_size, ms_size, shx, shy)
            for pr, mr, shy in rows for pc, mc, shx in cols]
