"""Quicklooks a person would look at: true-colour composites, PAN in gray, error
heat maps, and one PNG grid of titled panels.

Data stays in numpy (torch tensors are accepted and moved to numpy); PIL is
never used for multiband data. Images are (C, H, W) in any scale, DN or
[-1, 1]: the percentile stretch makes the scale irrelevant. Rendered images
are uint8, (H, W) gray or (H, W, 3) RGB.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_COLOUR_NAMES = {
    "red": ("red", "r"),
    "green": ("green", "g"),
    "blue": ("blue", "b"),
}


def _numpy(x: Any) -> np.ndarray:
    """A float64 numpy copy of an array or a (CPU or GPU) tensor."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _chw(x: Any, what: str) -> np.ndarray:
    a = _numpy(x)
    if a.ndim == 4 and a.shape[0] == 1:  # a batch of one
        a = a[0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{what}: expected (C, H, W) (or (1, C, H, W) / (H, W)), got {a.shape}")
    return a


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def rgb_indices(band_names: Sequence[str] | None, n_bands: int | None = None) -> tuple[int, int, int]:
    """Indices of the red, green and blue bands, found by name.

    Names match case- and punctuation-insensitively ("Red", "red", "R"; WV2's
    "red_edge" is not red). When any of the three is missing, the first three
    bands are used in file order; fewer than three bands repeat the last one.
    """
    names = [_norm(n) for n in band_names] if band_names is not None else []
    found = []
    for colour in ("red", "green", "blue"):
        idx = next((i for i, n in enumerate(names) if n in _COLOUR_NAMES[colour]), None)
        found.append(idx)
    if all(i is not None for i in found):
        return tuple(found)  # type: ignore[return-value]
    count = len(names) if band_names is not None else n_bands
    if not count:
        raise ValueError("rgb_indices needs band names or a band count")
    return tuple(min(i, count - 1) for i in range(3))  # type: ignore[return-value]


def stretch(
    image: Any,
    low: float = 2.0,
    high: float = 98.0,
    *,
    per_band: bool = True,
    nodata: float | None = None,
) -> np.ndarray:
    """Linear percentile stretch to uint8: the ``low`` percentile -> 0, the ``high`` one -> 255.

    Args:
        image: (C, H, W) or (H, W), any scale.
        low, high: percentiles (0..100) mapped to 0 and 255; values beyond clip.
        per_band: percentiles per band (balances colours) or shared over all
            bands (keeps the relative band brightness).
        nodata: a fill value excluded from the percentiles (e.g. 0 at scene
            edges); non-finite values are always excluded and render as 0.

    Returns:
        uint8 array of the input's shape.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    a = _numpy(image)
    squeeze = a.ndim == 2
    a = a[None] if squeeze else a
    if a.ndim != 3:
        raise ValueError(f"stretch expects (C, H, W) or (H, W), got {a.shape}")
    valid = np.isfinite(a)
    if nodata is not None:
        valid &= a != nodata
    groups = [[c] for c in range(a.shape[0])] if per_band else [list(range(a.shape[0]))]
    out = np.zeros(a.shape, dtype=np.uint8)
    for bands in groups:
        vals = a[bands][valid[bands]]
        if vals.size == 0:
            continue
        lo, hi = np.percentile(vals, [low, high])
        # A flat band renders mid gray rather than dividing by zero.
        scaled = np.full(a[bands].shape, 0.5) if hi <= lo else (a[bands] - lo) / (hi - lo)
        q = np.rint(np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
        out[bands] = np.where(valid[bands], q, 0)
    return out[0] if squeeze else out


def to_rgb8(
    image: Any,
    band_names: Sequence[str] | None = None,
    *,
    low: float = 2.0,
    high: float = 98.0,
    per_band: bool = True,
    nodata: float | None = None,
) -> np.ndarray:
    """True-colour composite (H, W, 3) uint8 of a (C, H, W) image, DN or [-1, 1].

    Red, green and blue are picked by ``band_names`` (see :func:`rgb_indices`),
    then stretched with :func:`stretch`.
    """
    a = _chw(image, "to_rgb8")
    if band_names is not None and len(band_names) != a.shape[0]:
        raise ValueError(f"{len(band_names)} band names for a {a.shape[0]}-band image; give one name per band")
    idx = list(rgb_indices(band_names, a.shape[0]))
    rgb = stretch(a[idx], low, high, per_band=per_band, nodata=nodata)
    return np.ascontiguousarray(rgb.transpose(1, 2, 0))


def gray8(pan: Any, *, low: float = 2.0, high: float = 98.0, nodata: float | None = None) -> np.ndarray:
    """A PAN image, (1, H, W) or (H, W), as stretched uint8 (H, W)."""
    a = _chw(pan, "gray8")
    if a.shape[0] != 1:
        raise ValueError(f"gray8 expects one band, got {a.shape[0]}; use to_rgb8 for multiband images")
    return stretch(a[0], low, high, nodata=nodata)


def error_magnitude(a: Any, b: Any) -> np.ndarray:
    """Per-pixel spectral error: the L2 norm over bands of ``a - b``, (H, W) float."""
    x, y = _chw(a, "error_map a"), _chw(b, "error_map b")
    if x.shape != y.shape:
        raise ValueError(f"error_map: shapes differ, {x.shape} vs {y.shape}")
    return np.sqrt(((x - y) ** 2).sum(axis=0))


def error_map(a: Any, b: Any, *, vmax: float | None = None, cmap: str = "inferno") -> np.ndarray:
    """Heat map (H, W, 3) uint8 of the per-pixel spectral error between two (C, H, W) images.

    Args:
        a, b: images in the same scale (e.g. fused and reference).
        vmax: error shown at full colour; default the 99th percentile of the
            error, so a few outliers do not wash the map out. Pass the same
            value to compare maps of several methods.
        cmap: a matplotlib colormap name.

    Zero error renders pure black, so identical regions stand out.
    """
    from matplotlib import colormaps

    err = error_magnitude(a, b)
    if vmax is None:
        finite = err[np.isfinite(err)]
        vmax = float(np.percentile(finite, 99)) if finite.size else 0.0
    scaled = np.clip(err / vmax, 0.0, 1.0) if vmax > 0 else np.zeros_like(err)
    rgb = colormaps[cmap](np.nan_to_num(scaled, nan=1.0))[..., :3]
    out = np.rint(rgb * 255.0).astype(np.uint8)
    out[err == 0] = 0
    return out


def _display(array: Any, title: str) -> tuple[np.ndarray, dict[str, Any]]:
    """An array ready for imshow, plus imshow keywords."""
    a = np.asarray(array.detach().cpu().numpy() if hasattr(array, "detach") else array)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        if a.dtype != np.uint8:
            a = stretch(a)
        return a, {"cmap": "gray", "vmin": 0, "vmax": 255}
    if a.ndim == 3 and a.shape[2] in (3, 4):
        if a.dtype != np.uint8 and (np.nanmin(a) < 0 or np.nanmax(a) > 1):
            raise ValueError(f"panel {title!r}: float RGB must lie in [0, 1]; render it with to_rgb8")
        return a, {}
    raise ValueError(
        f"panel {title!r}: expected (H, W) or (H, W, 3) display images, got {a.shape}; "
        "render multiband (C, H, W) data with to_rgb8 first"
    )


def save_panels(
    panels: Mapping[str, Any],
    path: str | os.PathLike,
    ncols: int | None = None,
    *,
    panel_inches: float = 3.2,
    dpi: int = 100,
    suptitle: str | None = None,
) -> Path:
    """Write titled panels as one PNG grid.

    Args:
        panels: title -> display image: uint8 (H, W, 3) from :func:`to_rgb8` or
            :func:`error_map`, (H, W) gray (uint8, or any float: stretched).
        path: PNG destination (parent folders are created).
        ncols: columns; default all panels in one row up to 4.
        panel_inches: width of one panel in inches.
        dpi: resolution.
        suptitle: optional title over the grid.

    Returns:
        The written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError("save_panels needs at least one panel")
    items = [(title, *_display(img, title)) for title, img in panels.items()]
    n = len(items)
    ncols = min(n, 4) if ncols is None else max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    aspect = max(img.shape[0] / img.shape[1] for _, img, _ in items)
    fig = Figure(figsize=(panel_inches * ncols, panel_inches * aspect * nrows + 0.4 * nrows), dpi=dpi)
    FigureCanvasAgg(fig)
    for i, (title, img, kwargs) in enumerate(items):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(img, interpolation="nearest", **kwargs)
        ax.set_title(title, fontsize="small")
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
