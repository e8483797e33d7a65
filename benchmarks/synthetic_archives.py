"""Synthetic archives of the stream benchmark: small scenes, copies of them, and large mosaics.

Every archive is written by :func:`crossdiff.platform.synthetic.write_synthetic_archive`
(labelled SYNTHETIC in each scene's metadata) and ingested like a user's,
so the benchmark streams what ``crossdiff ingest`` writes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SENSOR = "WorldView-2"
SCENE_PX = 1024  # 16 tiles of 256 px per scene
TILE = 256
LARGE_GRID = 4  # large scenes: 4x4 mosaics of the small ones, 4096 px, 256 tiles each


def build_archive(root: Path, n_scenes: int, seed: int = 11) -> Path:
    """Synthetic scenes under ``root/archive`` and their manifest; returns the manifest path."""
    from crossdiff.platform.synthetic import write_synthetic_archive

    write_synthetic_archive(root / "archive", n_scenes, seed=seed, sensors=(SENSOR,), pan_size=SCENE_PX)
    return ingest(root)


def ingest(root: Path, archive: str | None = None, options=None) -> Path:
    from crossdiff.platform.archive.ingest import IngestConfig, ingest_archive

    out = root / "manifest.parquet"
    ingest_archive(archive or str(root / "archive"), str(out), IngestConfig(tile=TILE), options, workers=0,
                   progress=False)
    return out


def mosaic(src_root: Path, dst_root: Path, n_scenes: int, grid: int = LARGE_GRID) -> Path:
    """An archive of large scenes: each a ``grid`` x ``grid`` mosaic of the 1x archive's scenes.

    Content repeats across mosaics; what this case measures is the layout of
    real scenes: thousands of tiles per file and 256-px MS blocks that 16
    tiles' 64-px MS windows share (as in the WorldView-2 sample).
    """
    import json

    import rasterio
    from rasterio.windows import Window

    parts = sorted((src_root / "archive").iterdir())
    for k in range(n_scenes):
        tiles = [parts[(k * grid * grid + i) % len(parts)] for i in range(grid * grid)]
        out = dst_root / "archive" / f"mosaic_{k:03d}"
        out.mkdir(parents=True)
        for name in ("pan.tif", "ms.tif"):
            with rasterio.open(tiles[0] / name) as first:
                profile, h, w = first.profile, first.height, first.width
                tags, names = first.tags(), first.descriptions
            profile.update(height=h * grid, width=w * grid, blockxsize=256, blockysize=256)
            with rasterio.open(out / name, "w", **profile) as dst:
                for i, part in enumerate(tiles):
                    with rasterio.open(part / name) as src:
                        dst.write(src.read(), window=Window((i % grid) * w, (i // grid) * h, w, h))
                dst.update_tags(**tags)
                for band, desc in enumerate(names, start=1):
                    dst.set_band_description(band, desc)
        meta = json.loads((tiles[0] / "scene.json").read_text())
        meta["pan_shape"] = [s * grid for s in meta["pan_shape"]]
        meta["ms_shape"] = [meta["ms_shape"][0], *(s * grid for s in meta["ms_shape"][1:])]
        meta["note"] = f"SYNTHETIC benchmark mosaic of {grid}x{grid} synthetic scenes: " + meta["note"]
        (out / "scene.json").write_text(json.dumps(meta, indent=2) + "\n")
    return ingest(dst_root)


def replicate(src_root: Path, dst_root: Path, copies: int) -> Path:
    """An archive ``copies`` times larger: every scene folder copied under new names."""
    for k in range(copies):
        for scene in sorted((src_root / "archive").iterdir()):
            shutil.copytree(scene, dst_root / "archive" / f"{scene.name}_copy{k}")
    return ingest(dst_root)
