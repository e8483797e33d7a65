"""Stage 1: pretrain the P2M and M2P diffusion nets on a tile manifest with Ray Train.

Reads a YAML job file (sections data, model, optim, run, scale, tracking; see
infra/examples/pretrain.yaml), validates it before touching the cluster,
trains with DDP on as many workers as `scale` asks, checkpoints to
run.storage_path, and registers both nets in MLflow. Starting the same
run.name again resumes it from its newest valid checkpoint.

Submit to a cluster with:
  ray job submit --working-dir . -- crossdiff pretrain --config job.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _override(text: str) -> tuple[str, str, str]:
    key, sep, value = text.partition("=")
    section, dot, name = key.partition(".")
    if not sep or not dot:
        raise argparse.ArgumentTypeError(f"--set wants section.key=value, got {text!r}")
    return section, name, value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML job file")
    parser.add_argument("--set", type=_override, action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one setting, e.g. --set run.max_steps=200 (YAML value syntax)")
    parser.add_argument("--out", default="out/pretrain", help="reports and the local MLflow store (default)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster (default: RAY_ADDRESS, else local)")
    parser.add_argument("--no-track", action="store_true", help="no MLflow run, no registration")


def main(args: argparse.Namespace) -> int:
    import yaml

    from crossdiff.platform.train.config import load_pretrain_config

    overrides: dict[str, dict] = {}
    for section, name, value in args.set:
        overrides.setdefault(section, {})[name] = yaml.safe_load(value)
    try:
        cfg = load_pretrain_config(args.config, overrides)
    except (OSError, ValueError) as err:
        print(f"crossdiff pretrain: {err}", file=sys.stderr)
        return 2

    from crossdiff.platform.train.driver import run_pretraining

    result = run_pretraining(cfg, out_dir=Path(args.out), ray_address=args.ray_address, track=not args.no_track)
    print(f"stage 1 done: {result.steps} steps, checkpoint {result.checkpoint_path}")
    for name, path in result.artifacts.items():
        print(f"  {name}: {path}")
    if result.model_version is not None:
        print(f"  registered {result.model_version.name} version {result.model_version.version} "
              f"(MLflow {result.tracking_uri})")
    return 0
