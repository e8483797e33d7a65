"""The `crossdiff` command: one subcommand per job.

Each job module exposes ``configure(parser)`` and ``main(args) -> int`` and
keeps its heavy imports (torch, Ray, MLflow) inside ``main`` so that
``crossdiff --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module under crossdiff.jobs, one-line help)
JOBS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "run the main job end to end on a built-in synthetic archive"),
    "synth": ("synth", "write a synthetic PAN/MS GeoTIFF archive (labelled synthetic)"),
    "ingest": ("ingest", "scan a PAN/MS archive (folder or s3://) into a Parquet tile manifest"),
    "pretrain": ("pretrain", "stage 1: pretrain the P2M and M2P diffusion nets on Ray Train"),
    "evaluate": ("evaluate", "score methods and fused products (reduced/full resolution), write a report"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crossdiff", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in JOBS.items():
        job = importlib.import_module(f"crossdiff.jobs.{module}")
        p = sub.add_parser(name, help=help_text, description=job.__doc__)
        job.configure(p)
        p.set_defaults(_job=job)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._job.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
