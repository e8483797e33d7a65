"""Quicklook PNGs of an evaluation: what a person looks at before reading the table.

Per scene, three grids (drawn with :func:`crossdiff.platform.quicklook.save_panels`):

* ``inputs``: the MS in true colour, the PAN, and a zoom of both;
* ``reduced``: the reference (original MS) and every fused product in true
  colour, their zooms, the degraded PAN and the per-pixel spectral error of each
  product against the reference (L2 over bands, DN);
* ``full``: the PAN and every product fused from the original pair, with zooms.

All true-colour panels of a scene share one stretch, the 2-98 % percentiles of
the reference's red, green and blue bands, so a colour shift of a product is
visible rather than normalised away; all error maps share one colour scale
(the 99th percentile of every product's error) so that darker means better.
The zoom is the window with the most PAN detail, the same ground in every panel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from crossdiff.platform.quicklook import error_magnitude, error_map, gray8, rgb_indices, save_panels

PANEL_INCHES = 2.6  # single-line titles: save_panels leaves room for one title line
DPI = 110


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def rgb_limits(reference: np.ndarray, idx: tuple[int, int, int], low: float = 2.0, high: float = 98.0
               ) -> np.ndarray:
    """(3, 2) per-band [low, high] percentiles of the reference's true-colour bands."""
    lims = np.array([np.percentile(reference[i][np.isfinite(reference[i])], [low, high]) for i in idx])
    flat = lims[:, 1] <= lims[:, 0]
    lims[flat, 1] = lims[flat, 0] + 1.0  # a flat band renders dark instead of dividing by zero
    return lims


def render_rgb(image: np.ndarray, idx: tuple[int, int, int], limits: np.ndarray) -> np.ndarray:
    """True-colour uint8 (H, W, 3) of a (C, H, W) image with fixed per-band limits."""
    rgb = image[list(idx)]
    scaled = (rgb - limits[:, :1, None]) / (limits[:, 1:, None] - limits[:, :1, None])
    out = np.rint(np.clip(np.nan_to_num(scaled), 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(out.transpose(1, 2, 0))


def zoom_window(pan: np.ndarray, shape: tuple[int, int], margin: int = 0, fraction: float = 0.25
                ) -> tuple[int, int, int]:
    """(row, col, side) at the scale of ``shape`` of the square with the most PAN detail.

    Detail is the PAN gradient magnitude summed over the window (searched on a
    grid of half-window steps), ``margin`` pixels from the border when possible.
    """
    h, w = shape
    side = max(8, int(min(h, w) * fraction))
    p = _np(pan)[0]
    scale = p.shape[0] / h
    gy, gx = np.gradient(p)
    energy = np.hypot(gy, gx)
    margin = margin if min(h, w) - 2 * margin > side else 0
    best, where = -1.0, (max(0, (h - side) // 2), max(0, (w - side) // 2))
    step = max(1, side // 2)
    for r in range(margin, max(margin, h - margin - side) + 1, step):
        for c in range(margin, max(margin, w - margin - side) + 1, step):
            r0, c0, s = int(r * scale), int(c * scale), int(side * scale)
            e = float(energy[r0:r0 + s, c0:c0 + s].sum())
            if e > best:
                best, where = e, (r, c)
    return where[0], where[1], side


def _crop(img: np.ndarray, win: tuple[int, int, int], scale: int = 1) -> np.ndarray:
    r, c, s = (v * scale for v in win)
    return img[r:r + s, c:c + s]


def _mark(img: np.ndarray, win: tuple[int, int, int], scale: int = 1, colour=(0, 255, 255)) -> np.ndarray:
    """A copy of a display image with the zoom window outlined (gray images become RGB)."""
    out = np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img.copy()
    r, c, s = (v * scale for v in win)
    t = math.ceil(out.shape[0] / (PANEL_INCHES * DPI))  # about one panel pixel: survives the downsampling
    r1, c1 = min(r + s, out.shape[0]), min(c + s, out.shape[1])
    for rows, cols in ((slice(r, r + t), slice(c, c1)), (slice(r1 - t, r1), slice(c, c1)),
                       (slice(r, r1), slice(c, c + t)), (slice(r, r1), slice(c1 - t, c1))):
        out[rows, cols] = colour
    return out


def _title(name: str, values: Mapping[str, float] | None, keys: tuple[tuple[str, str], ...]) -> str:
    if not values:
        return name
    parts = [f"{k} {values[k]:{fmt}}" for k, fmt in keys if k in values and np.isfinite(values[k])]
    return "  ".join([name, *parts])


def inputs_figure(path: str | Path, ms: np.ndarray, pan: np.ndarray, band_names: tuple[str, ...],
                  lms: np.ndarray | None = None, title: str | None = None,
                  window: tuple[int, int, int] | None = None) -> Path:
    """MS true colour, PAN, and their zooms (the MS shown at its own pixel size).

    ``window`` (row, col, side) in MS pixels; default the most detailed one.
    """
    ms, pan = _np(ms), _np(pan)
    idx = rgb_indices(band_names, ms.shape[0])
    lim = rgb_limits(ms, idx)
    ratio = pan.shape[-1] // ms.shape[-1]
    win = window or zoom_window(pan, ms.shape[-2:])
    rgb, gray = render_rgb(ms, idx, lim), gray8(pan)
    panels = {"MS (true colour)": _mark(rgb, win), "PAN": _mark(gray, win, ratio), "MS, zoom": _crop(rgb, win),
              "PAN, zoom": _crop(gray, win, ratio)}
    if lms is not None:
        panels["MS 23-tap to PAN scale, zoom"] = _crop(render_rgb(_np(lms), idx, lim), win, ratio)
    return save_panels(panels, path, ncols=len(panels), panel_inches=PANEL_INCHES * 1.3, dpi=DPI,
                       suptitle=(title + "\n" if title else "") + "cyan box: zoom window")


def reduced_figure(path: str | Path, gt: np.ndarray, fused: Mapping[str, Any], band_names: tuple[str, ...],
                   pan: np.ndarray, metrics: Mapping[str, Mapping[str, float]] | None = None,
                   margin: int = 0, title: str | None = None, pan_title: str = "degraded PAN",
                   window: tuple[int, int, int] | None = None) -> Path:
    """Reduced resolution: reference and products, zooms, degraded PAN and error maps.

    Args:
        path: PNG to write.
        gt: the reference (original MS), (C, h, w) DN.
        fused: product name -> (C, h, w) fused from the degraded pair.
        band_names: MS band names (picks red, green, blue).
        pan: the degraded PAN (1, h, w), shown beside the error maps (any detail image will do).
        metrics: product name -> its reduced-resolution metrics (titles show Q2n and ERGAS).
        margin: keep the zoom this far from the border (the metrics' dim_cut).
        title: figure title.
        pan_title: the title of the ``pan`` panel.
        window: zoom (row, col, side) in ``gt`` pixels; default the most detailed one.
    """
    gt = _np(gt)
    images = {k: _np(v) for k, v in fused.items()}
    idx = rgb_indices(band_names, gt.shape[0])
    lim = rgb_limits(gt, idx)
    win = window or zoom_window(pan, gt.shape[-2:], margin)
    errors = {k: error_magnitude(v, gt) for k, v in images.items()}
    pooled = np.concatenate([e.ravel() for e in errors.values()]) if errors else np.zeros(1)
    vmax = float(np.percentile(pooled, 99)) or 1.0
    keys = (("Q2n", ".3f"), ("ERGAS", ".2f"))
    ref_rgb = render_rgb(gt, idx, lim)
    row_rgb = {"reference (original MS)": _mark(ref_rgb, win)}
    row_zoom = {"reference zoom": _crop(ref_rgb, win)}
    row_err = {pan_title: gray8(pan)}
    for k, v in images.items():
        rgb = render_rgb(v, idx, lim)
        row_rgb[_title(k, (metrics or {}).get(k), keys)] = rgb
        row_zoom[f"{k} zoom"] = _crop(rgb, win)
        row_err[f"{k} |error|"] = error_map(v, gt, vmax=vmax)
    panels = {**row_rgb, **row_zoom, **row_err}
    legend = f"cyan box: zoom window; error maps: black = exact, yellow >= {vmax:.0f} DN (L2 over bands)"
    sup = (title + "\n" if title else "") + legend
    return save_panels(panels, path, ncols=len(row_rgb), panel_inches=PANEL_INCHES, dpi=DPI, suptitle=sup)


def full_figure(path: str | Path, pan: np.ndarray, fused: Mapping[str, Any], band_names: tuple[str, ...],
                metrics: Mapping[str, Mapping[str, float]] | None = None, reference: np.ndarray | None = None,
                title: str | None = None, window: tuple[int, int, int] | None = None) -> Path:
    """Full resolution: PAN and every product, with zooms on the most detailed window.

    Args:
        path: PNG to write.
        pan: the original PAN (1, H, W).
        fused: product name -> (C, H, W) fused from the original pair, or only its
            red, green, blue bands (3, H, W) when ``band_names`` is None.
        band_names: MS band names, or None for images already reduced to RGB.
        metrics: product name -> full-resolution metrics (titles show HQNR).
        reference: image whose percentiles set the colour stretch (the MS); default the first product.
        title: figure title.
        window: zoom (row, col, side) in PAN pixels; default the most detailed one.
    """
    pan = _np(pan)
    images = {k: _np(v) for k, v in fused.items()}
    first = next(iter(images.values()))
    idx = rgb_indices(band_names, first.shape[0]) if band_names is not None else (0, 1, 2)
    lim = rgb_limits(_np(reference) if reference is not None else first, idx)
    h, w = pan.shape[-2:]
    win = window or zoom_window(pan, (h, w))
    keys = (("HQNR", ".3f"),)
    gray = gray8(pan)
    row_rgb: dict[str, np.ndarray] = {"PAN (cyan box: zoom window)": _mark(gray, win)}
    row_zoom: dict[str, np.ndarray] = {"PAN zoom": _crop(gray, win)}
    for k, v in images.items():
        rgb = render_rgb(v, idx, lim)
        row_rgb[_title(k, (metrics or {}).get(k), keys)] = rgb
        row_zoom[f"{k} zoom"] = _crop(rgb, win)
    return save_panels({**row_rgb, **row_zoom}, path, ncols=len(row_rgb), panel_inches=PANEL_INCHES,
                       dpi=DPI, suptitle=title)
