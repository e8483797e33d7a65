"""Scan a PAN/MS archive (folder or s3://bucket/prefix), check every scene and write a Parquet
tile manifest, with the rejected scenes in a quarantine table beside it.

Writes OUT (one row per PAN tile and its MS window), OUT's .scenes.parquet and
.quarantine.parquet siblings, and prints a summary. Credentials for s3:// come
from the standard AWS environment or profile.
"""

from __future__ import annotations

import argparse
import sys


def _fractions(text: str) -> tuple[float, float, float]:
    parts = [float(p) for p in text.split(",")]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"--split wants three fractions like 0.8,0.1,0.1, got {text!r}")
    return parts[0], parts[1], parts[2]


def _bands(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(b.strip().upper().lstrip("B")) for b in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--landsat-bands wants band numbers like 2,3,4,5, got {text!r}") from err


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("archive", help="archive folder or s3://bucket/prefix")
    parser.add_argument("--out", required=True, help="manifest path (.parquet, local or s3://)")
    parser.add_argument("--tile", type=int, default=256, help="PAN tile size in pixels (default 256)")
    parser.add_argument("--stride", type=int, default=None, help="step between tiles (default: --tile)")
    parser.add_argument("--workers", type=int, default=None,
                        help="0: in-process; N: Ray with N CPUs for a local cluster "
                             "(default: Ray only for archives of more than 64 scenes)")
    parser.add_argument("--ray-address", default=None,
                        help="Ray cluster to join (default: RAY_ADDRESS, else a new local instance)")
    parser.add_argument("--endpoint-url", default=None,
                        help="S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL)")
    parser.add_argument("--profile", default=None, help="AWS profile (default: AWS_PROFILE / default)")
    parser.add_argument("--anon", action="store_true", help="unsigned S3 requests (public buckets)")
    parser.add_argument("--no-stats", action="store_true",
                        help="read headers only: no valid fractions, no nodata/cloud checks")
    parser.add_argument("--decimation", type=int, default=4, help="MS decimation of the statistics read")
    parser.add_argument("--min-tile-valid", type=float, default=0.01,
                        help="drop tiles with a smaller valid fraction (default 0.01)")
    parser.add_argument("--min-scene-valid", type=float, default=0.05,
                        help="quarantine scenes with a smaller valid fraction (default 0.05)")
    parser.add_argument("--split", type=_fractions, default=(0.8, 0.1, 0.1), help="train,val,test fractions")
    parser.add_argument("--landsat-bands", type=_bands, default=None,
                        help="MS bands for Landsat folders found by their MTL, e.g. 2,3,4,5")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def main(args: argparse.Namespace) -> int:
    from crossdiff.platform.archive.filesystems import StorageOptions
    from crossdiff.platform.archive.ingest import IngestConfig, ingest_archive

    try:
        config = IngestConfig(tile=args.tile, stride=args.stride, stats=not args.no_stats,
                              decimation=args.decimation, min_tile_valid=args.min_tile_valid,
                              min_scene_valid=args.min_scene_valid, splits=args.split,
                              landsat_bands=args.landsat_bands)
    except ValueError as err:
        print(f"crossdiff ingest: {err}", file=sys.stderr)
        return 2
    options = StorageOptions(endpoint_url=args.endpoint_url, profile=args.profile, anon=args.anon)
    result = ingest_archive(args.archive, args.out, config, options, workers=args.workers,
                            ray_address=args.ray_address, progress=not args.quiet)
    # Non-zero only when nothing at all could be ingested: partial archives are normal.
    return 0 if result.tiles else 1
