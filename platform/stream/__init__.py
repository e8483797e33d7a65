"""Streaming PAN/MS tiles from a manifest into Ray Data: windowed reads, normalisation, lms, Wald pairs.

Front door: :class:`TileStream` (``.dataset(epoch)``, ``.skipped()``) and the
shortcut :func:`tile_dataset`. See :mod:`.dataset` for the pipeline,
:mod:`.order` for each epoch's shuffle, :mod:`.samples` for shapes and
conventions, :mod:`.reader` for the per-worker reader and its retries,
:mod:`.skips` for the record of skipped reads.

Names are imported on first use: the skip-log actor's process imports
:mod:`.skips` alone and so stays free of torch (about 300 MB less).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "StreamConfig": "dataset", "TileStream": "dataset", "epoch_order": "order", "select_tiles": "dataset",
    "shuffle_regions": "order", "tile_dataset": "dataset", "ReaderSettings": "reader", "Source": "reader",
    "TileReader": "reader", "with_retries": "reader", "fourier_shift": "samples", "make_samples": "samples",
    "add_lms": "samples",
    "SKIP_SCHEMA": "skips", "SkippedRead": "skips",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__
