"""The embedded default: the whole pipeline, as far as it is built, on a
synthetic archive with a local Ray and a local MLflow store.

Everything lands under one folder: the synthetic archive (labelled synthetic
in every scene.json), the tile manifest, stage-1 checkpoints, the MLflow
store with the registered nets, and the pictures a person looks at first.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml
from rich.console import Console

from crossdiff.platform.archive.ingest import IngestConfig, ingest_archive
from crossdiff.platform.evaluation.report import write_report
from crossdiff.platform.evaluation.runner import evaluate_scenes
from crossdiff.platform.synthetic import write_synthetic_archive
from crossdiff.platform.train.config import PretrainConfig


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo; the defaults finish in a few minutes on 2 CPU cores."""

    scenes: int = 6
    sensor: str = "GeoEye-1"
    pan_size: int = 512
    tile: int = 64
    steps: int = 40
    batch_size: int = 8
    seed: int = 0


def demo_pretrain_config(out: Path, manifest: Path, s: DemoSettings) -> PretrainConfig:
    """The stage-1 job of the demo: the paper's nets, a short run, local storage and MLflow."""
    return PretrainConfig.from_dict({
        "data": {"manifest": str(manifest), "split": None, "batch_size": s.batch_size,
                 "shuffle_seed": s.seed, "readers": 1, "reader_cpus": 0.5},
        "model": {"bands": 4, "ratio": 4},
        "optim": {"lr": 3e-4, "warmup_steps": 5, "grad_clip": 1.0},
        "run": {"name": "demo-pretrain", "storage_path": str(out / "checkpoints"), "max_steps": s.steps,
                "checkpoint_every": max(1, s.steps // 2), "log_every": 2, "seed": s.seed},
        "scale": {"num_workers": 1, "cpus_per_worker": 1.0},
        "tracking": {"experiment": "crossdiff-demo", "register_as": "crossdiff-demo-encoders",
                     "alias": "demo"},
    })


def run_demo(out: Path, settings: DemoSettings | None = None, console: Console | None = None) -> dict:
    """Synthetic archive -> manifest -> stage 1 on Ray Train -> registered nets -> baseline evaluation."""
    from crossdiff.platform.ray_runtime import ensure_ray
    from crossdiff.platform.train.driver import run_pretraining

    s = settings or DemoSettings()
    console = console or Console(stderr=True)
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    console.rule("[bold]1/4 synthetic archive (SYNTHETIC data, seeded)")
    scenes = write_synthetic_archive(out / "archive", s.scenes, seed=s.seed, sensors=(s.sensor,),
                                     pan_size=s.pan_size, save_truth=True)
    console.print(f"{len(scenes)} synthetic {s.sensor} scenes in {out / 'archive'}")

    console.rule("[bold]2/4 ingest: tile manifest")
    ensure_ray(num_cpus=2)
    manifest = out / "manifest.parquet"
    ingest = ingest_archive(str(out / "archive"), str(manifest), IngestConfig(tile=s.tile), workers=0,
                            console=console)

    console.rule("[bold]3/4 stage 1: cross-predictive pretraining on Ray Train")
    cfg = demo_pretrain_config(out, manifest, s)
    (out / "pretrain.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    result = run_pretraining(cfg, out_dir=out / "pretrain")

    console.rule("[bold]4/4 evaluation: classical baselines, reduced and full resolution")
    evaluation = evaluate_scenes(scenes[:2], quicklook_dir=out / "evaluation" / "quicklooks", max_quicklooks=2,
                                 progress=console.print)
    report = write_report(evaluation, out / "evaluation")
    console.print(f"evaluation report: {report['markdown']}")

    summary = {
        "synthetic": True,
        "scenes": [str(p) for p in scenes],
        "manifest": str(manifest), "tiles": ingest.tiles,
        "pretrain": {"steps": result.steps, "checkpoint": result.checkpoint_path, "run_id": result.run_id,
                     "tracking_uri": result.tracking_uri,
                     "registered": (f"models:/{cfg.tracking.register_as}@{cfg.tracking.alias}"
                                    if result.model_version is not None else None),
                     **{k: str(v) for k, v in result.artifacts.items()}},
        "evaluation": {k: str(v) for k, v in report.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    console.rule("[bold green]demo done")
    console.print_json(data=summary)
    return summary
