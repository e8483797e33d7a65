"""Shared set-up of the stage-1 integration tests: a real-scene manifest and small jobs."""

from __future__ import annotations

from pathlib import Path

from crossdiff.platform.archive.ingest import IngestConfig, ingest_archive
from crossdiff.platform.train.config import PretrainConfig

TINY_MODEL = {"bands": 4, "p2m": {"base_width": 8}, "m2p": {"base_width": 8}}


def real_manifest(scene: Path, out: Path) -> Path:
    """Tile manifest (64-px tiles) of one real scene, read in place from ../shared."""
    manifest = out / "manifest.parquet"
    result = ingest_archive(str(scene), str(manifest), IngestConfig(tile=64), workers=0, progress=False)
    assert result.tiles > 0, "the real scene gave no tiles"
    return manifest


def job(manifest: Path, storage: Path, *, name: str, steps: int, every: int, workers: int = 1,
        cpus: float = 1.0, tracking_uri: str | None = None, **run) -> PretrainConfig:
    return PretrainConfig.from_dict({
        "data": {"manifest": str(manifest), "split": None, "batch_size": 4 * workers,
                 "readers": 1, "reader_cpus": 0.25},
        "model": TINY_MODEL,
        "optim": {"lr": 1e-3},
        "run": {"name": name, "storage_path": str(storage), "max_steps": steps, "checkpoint_every": every,
                "log_every": 1, **run},
        "scale": {"num_workers": workers, "cpus_per_worker": cpus,
                  "placement": "STRICT_SPREAD" if workers > 1 else "PACK"},
        "tracking": {"tracking_uri": tracking_uri, "experiment": "tests", "register_as": f"test-{name}",
                     "alias": "candidate"},
    })
