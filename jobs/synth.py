"""Write a seeded synthetic PAN/MS GeoTIFF archive, every scene labelled synthetic.

Each scene folder holds pan.tif, ms.tif and scene.json laid out like the real
sample scenes (tiled DEFLATE GeoTIFF, projected CRS, MS pixel = ratio x PAN
pixel), optionally truth.tif (the MS at PAN resolution) and a COG layout.
The same --seed always writes the same pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="archive folder (created); one sub-folder per scene")
    parser.add_argument("--scenes", type=int, default=4, help="number of scenes (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="archive seed (default 0)")
    parser.add_argument("--sensor", nargs="+", default=["WorldView-2"], metavar="NAME",
                        help="sensor name(s) from the sensor table, cycled over scenes "
                             "(default WorldView-2; e.g. GeoEye-1 Landsat-7 generic)")
    parser.add_argument("--pan-size", type=int, default=512,
                        help="PAN side in pixels, a multiple of the ratio (default 512)")
    parser.add_argument("--bands", type=int, default=None,
                        help="band count for the generic sensor (e.g. --sensor generic --bands 5)")
    parser.add_argument("--truth", action="store_true", help="also write truth.tif (MS at PAN resolution)")
    parser.add_argument("--cog", action="store_true", help="Cloud-Optimised GeoTIFF layout with overviews")


def main(args: argparse.Namespace) -> int:
    from crossdiff.platform.synthetic import write_synthetic_archive

    try:
        paths = write_synthetic_archive(
            args.out, args.scenes, seed=args.seed, sensors=args.sensor, pan_size=args.pan_size,
            cog=args.cog, save_truth=args.truth, n_bands=args.bands,
        )
    except (KeyError, ValueError, FileExistsError) as err:
        print(f"crossdiff synth: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    counts = Counter(json.loads((p / "scene.json").read_text())["sensor"] for p in paths)
    print(f"wrote {len(paths)} synthetic scenes to {args.out}")
    print(f"sensors: {', '.join(f'{k} x{v}' for k, v in counts.items())}; PAN {args.pan_size} px; "
          f"seed {args.seed}; truth: {'yes' if args.truth else 'no'}; COG: {'yes' if args.cog else 'no'}")
    return 0
