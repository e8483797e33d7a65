"""Helpers shared by the stream tests: a small ingested synthetic archive and direct reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from crossdiff.platform.archive.ingest import IngestConfig, ingest_archive
from crossdiff.platform.archive.manifest import read_manifest
from crossdiff.platform.synthetic import write_synthetic_archive

TILE = 128  # PAN tile of the test manifests (MS 32 px at ratio 4)
SCENE_SIZE = 512  # 16 tiles per scene


def punch_tiles(scene: Path) -> dict[str, str]:
    """Make two tiles of a synthetic WV2 scene unusable; returns ``{tile_id suffix: reason}``.

    ``r0_c128``: its top half is 0 in PAN and in every MS band (fill, valid 0.5:
    kept by the ingest, dropped by the stream's ``min_valid``).
    ``r128_c0``: PAN and MS constant (blank).
    """
    with rasterio.open(scene / "pan.tif", "r+") as pan:
        pan.write(np.zeros((1, 64, 128), pan.dtypes[0]), window=Window(128, 0, 128, 64))
        pan.write(np.full((1, 128, 128), 700, pan.dtypes[0]), window=Window(0, 128, 128, 128))
    with rasterio.open(scene / "ms.tif", "r+") as ms:
        ms.write(np.zeros((ms.count, 16, 32), ms.dtypes[0]), window=Window(32, 0, 32, 16))
        ms.write(np.full((ms.count, 32, 32), 400, ms.dtypes[0]), window=Window(0, 32, 32, 32))
    return {"r0_c128": "nodata", "r128_c0": "blank"}


def make_archive(root: Path, sensors=("WorldView-2", "QuickBird", "WorldView-2"), seed: int = 7,
                 punch: bool = True) -> dict:
    """Three synthetic scenes (two 8-band WV2, one 4-band QB), ingested with 128-px tiles.

    Returns ``manifest`` (path), ``table`` and ``punched`` (tile_id -> reason).
    """
    scenes = write_synthetic_archive(root / "archive", len(sensors), seed=seed, sensors=sensors,
                                     pan_size=SCENE_SIZE)
    punched = {}
    if punch:
        for suffix, reason in punch_tiles(scenes[0]).items():
            punched[f"{scenes[0].name}/{suffix}"] = reason
    manifest = root / "manifest.parquet"
    ingest_archive(str(root / "archive"), str(manifest), IngestConfig(tile=TILE), workers=0, progress=False)
    return {"manifest": str(manifest), "table": read_manifest(str(manifest)), "punched": punched,
            "scenes": scenes}


def direct_read(row: dict) -> tuple[np.ndarray, np.ndarray]:
    """PAN (1, H, W) and MS (C, h, w) digital numbers of a manifest row, read plainly with rasterio."""
    with rasterio.open(row["pan_uri"]) as src:
        pan = src.read(row["pan_band"], window=Window(row["pan_col"], row["pan_row"], row["pan_width"],
                                                      row["pan_height"]))
    bands = []
    for uri, band in zip(row["ms_uris"], row["ms_band_indexes"], strict=True):
        with rasterio.open(uri) as src:
            bands.append(src.read(band, window=Window(row["ms_col"], row["ms_row"], row["ms_width"],
                                                      row["ms_height"])))
    return pan[None], np.stack(bands)


def by_tile(table) -> dict[str, dict]:
    """Manifest rows keyed by tile_id."""
    return {r["tile_id"]: r for r in table.to_pylist()}


def collect(ds) -> dict[str, np.ndarray]:
    """Every row of a dataset, concatenated per column, in stream order."""
    parts: dict[str, list] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for k, v in batch.items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def rows_as_batch(rows) -> dict[str, np.ndarray]:
    """A slim-rows table (``TileStream.order``) as the numpy batch a reader receives."""
    return {k: np.array(v, dtype=object if k == "tile_id" else None) for k, v in rows.to_pydict().items()}
