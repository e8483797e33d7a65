"""Run the main job end to end on the embedded default: a seeded SYNTHETIC
archive, a local Ray and a local MLflow store; results under --out."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--scenes", type=int, default=6, help="synthetic scenes (default 6)")
    parser.add_argument("--steps", type=int, default=40, help="stage-1 optimizer steps (default 40)")
    parser.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from crossdiff.platform.demo import DemoSettings, run_demo

    run_demo(Path(args.out), DemoSettings(scenes=args.scenes, steps=args.steps, seed=args.seed))
    return 0
