"""The order of an epoch: seeded, windowed shuffles over square regions of scenes.

A stream shuffles its tiles before it reads a pixel (see :mod:`.dataset`).
Scenes are cut into square regions (:func:`shuffle_regions`; a small scene
is one region), the regions are put in a random order and cut into windows,
and tiles are shuffled within each window (:func:`epoch_order`). A reader
then touches one window's files and storage blocks at a time, so its
open-file cache and GDAL's block cache, sized to a window
(:func:`window_cache_mb`), keep hitting, while every batch still mixes the
window's regions. Orders are functions of ``(seed, epoch)`` through NumPy's
PCG64 and ``SeedSequence``: the same on every machine.
"""

from __future__ import annotations

import numpy as np


def shuffle_regions(src: np.ndarray, pan_row: np.ndarray, pan_col: np.ndarray, region: int | None) -> np.ndarray:
    """(N,) dense region index of each tile: its scene and its ``region``-px square (None: the scene)."""
    src = np.asarray(src, np.int64)
    if region is None:
        key = src
    else:
        cells_y, cells_x = np.asarray(pan_row) // region, np.asarray(pan_col) // region
        key = (src * (int(cells_y.max(initial=0)) + 1) + cells_y) * (int(cells_x.max(initial=0)) + 1) + cells_x
    return np.unique(key, return_inverse=True)[1].reshape(-1)


def window_cache_mb(window: int | None, region_px: int, ratio: int, n_bands: int, itemsize: int) -> int:
    """GDAL block cache (MB) a reader needs to decode each block of a shuffle window once.

    A window's tiles arrive in random order, so a block shared by several
    tiles (a 256-px MS block holds 16 MS windows of 64 px) is decoded again
    unless the cache holds every block the window has touched: its regions'
    decoded PAN and MS. Bounded by the window, never by the archive; clipped
    to 32-1024 MB (32 for a global shuffle, ``window`` None).
    """
    if window is None:  # a global shuffle: no window to hold, blocks are rarely met twice
        return 32
    pixels = window * region_px**2 * (1 + n_bands / ratio**2)
    # 10% for GDAL's per-block overhead, 16 MB for block indexes and headers.
    return int(np.clip(pixels * itemsize * 1.1 / 2**20 + 16, 32, 1024))


def epoch_order(group: np.ndarray, seed: int, epoch: int, window: int | None = None) -> np.ndarray:
    """The row order of one epoch, a permutation drawn from ``(seed, epoch)``.

    Args:
        group: (N,) shuffle-region (or scene) index of each row, 0..G-1.
        seed, epoch: what the order is a function of.
        window: groups per window: groups are permuted, cut into consecutive
            windows of this many, and rows are shuffled within each window.
            None (or a window larger than the archive) shuffles all rows.

    Returns:
        Row indices: windows one after the other, each a shuffle of its groups' rows.
    """
    group = np.asarray(group)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch)]))
    n_groups = int(group.max()) + 1 if group.size else 0
    rank = np.empty(n_groups, np.int64)
    rank[rng.permutation(n_groups)] = np.arange(n_groups)
    windows = rank[group] // window if window else np.zeros(group.size, np.int64)
    return np.lexsort((rng.random(group.size), windows))  # by window, randomly within it
