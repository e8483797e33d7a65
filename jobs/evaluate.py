"""Evaluate pansharpening at reduced resolution (Wald protocol) and full resolution (no reference).

Scenes: crossdiff evaluate SCENE [SCENE ...] --out DIR [--methods EXP,GSA,...] [--fused NAME=PATH]
runs the methods (default: every classical baseline) and any fused products on
each scene (a scene folder, a Landsat folder, a STAC item's folder or an
archive of them) and writes DIR/report.md, DIR/report.json and quicklook PNGs.

Files, for products fused elsewhere (GeoTIFF bands first, or .npy H x W x C, in DN):
  crossdiff evaluate --sensor S --gt GT.tif --fused F.tif [--fused F2.npy ...]     reduced resolution
  crossdiff evaluate --ms MS.tif --pan PAN.tif --fused F.tif [--sensor S]          full resolution
print the metrics as JSON on stdout (and write the report too with --out).
"""

from __future__ import annotations

import argparse
import json
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("scenes", nargs="*", metavar="SCENE",
                        help="scene folder(s) or archive(s), local or s3:// (scene mode)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated baselines (default all: EXP,BT-H,GSA,BDSD-PC,MTF-GLP-HPM,"
                             "MTF-GLP-HPM-R,MTF-GLP-FS); 'none' for products only")
    parser.add_argument("--fused", action="append", default=[], metavar="[NAME=]PATH",
                        help="a fused product (repeatable); in scene mode PATH may contain {scene}")
    parser.add_argument("--out", default=None, help="report folder (required with scenes)")
    files = parser.add_argument_group("file mode")
    files.add_argument("--gt", default=None, help="reference (original MS) for reduced-resolution scoring")
    files.add_argument("--ms", default=None, help="original MS for full-resolution scoring")
    files.add_argument("--pan", default=None, help="original PAN for full-resolution scoring")
    files.add_argument("--sensor", default=None,
                       help="sensor name (ratio, bit depth, MTF gains); unknown names use generic gains")
    files.add_argument("--ratio", type=int, default=None, help="override the sensor's PAN/MS ratio")
    files.add_argument("--bits", type=int, default=None, help="override the sensor's bit depth")
    conv = parser.add_argument_group("conventions")
    conv.add_argument("--dim-cut", type=int, default=21,
                      help="border cut of the reduced-resolution metrics (toolbox 21; some scripts use 30)")
    conv.add_argument("--block", type=int, default=32, help="block size of Q2n, Q and the full-resolution indices")
    conv.add_argument("--clip", action="store_true", help="clamp fused images to [0, 2**bits] first")
    parser.add_argument("--protocol", nargs="+", choices=("reduced", "full"), default=["reduced", "full"],
                        help="scene mode: protocols to run (default both)")
    parser.add_argument("--max-quicklooks", type=int, default=12,
                        help="scene mode: draw quicklooks for this many scenes (default 12; 0 for none)")
    parser.add_argument("--json", action="store_true", help="scene mode: print the report JSON on stdout")


class UsageError(ValueError):
    """A command line that mixes or misses modes."""


def _mode(args: argparse.Namespace) -> str:
    files = {"--gt": args.gt, "--ms": args.ms, "--pan": args.pan}
    given = [k for k, v in files.items() if v]
    if args.scenes:
        if given:
            raise UsageError(f"{', '.join(given)} belong to file mode; give either scenes or files, not both")
        if not args.out:
            raise UsageError("scene mode writes a report: give --out DIR")
        return "scenes"
    if args.methods:
        raise UsageError("--methods needs a scene to fuse; give SCENE, or score your products with --gt / --ms --pan")
    if args.gt:
        if args.ms or args.pan:
            raise UsageError("--gt (reduced resolution) and --ms/--pan (full resolution) are separate runs")
        if not args.sensor:
            raise UsageError("reduced resolution needs --sensor (ratio and bit depth), e.g. --sensor WV2 "
                             "or --sensor generic --ratio 4 --bits 11")
        mode = "reduced"
    elif args.ms or args.pan:
        if not (args.ms and args.pan):
            raise UsageError("full resolution needs both --ms and --pan")
        mode = "full"
    else:
        raise UsageError("nothing to evaluate: give SCENE ... --out DIR, or --sensor S --gt GT --fused F, "
                         "or --ms MS --pan PAN --fused F")
    if not args.fused:
        raise UsageError("give the fused product(s) to score with --fused PATH")
    return mode


def _print_summary(result, paths) -> None:
    from crossdiff.platform.evaluation.report import TITLES, table
    from crossdiff.platform.evaluation.runner import METRIC_KEYS

    for protocol, rows in result.summary().items():
        print(f"{TITLES[protocol]}\n")
        print("\n".join(table(rows, METRIC_KEYS[protocol])).replace("**", ""), end="\n\n")
    print(f"report: {paths['markdown']} and {paths['json']}")


def main(args: argparse.Namespace) -> int:
    from rasterio.errors import RasterioError

    try:
        mode = _mode(args)
        from crossdiff.platform.evaluation import files, report, runner

        fused = files.product_names(args.fused)
        qdir = f"{args.out}/quicklooks" if args.out else None
        if mode == "scenes":
            methods = [] if (args.methods or "").strip().lower() == "none" else args.methods
            result = runner.evaluate_scenes(
                args.scenes, methods, fused, dim_cut=args.dim_cut, block=args.block, clip=args.clip,
                protocols=args.protocol, quicklook_dir=qdir if args.max_quicklooks > 0 else None,
                max_quicklooks=args.max_quicklooks, progress=lambda m: print(m, file=sys.stderr))
        elif mode == "reduced":
            result = files.evaluate_reduced_files(
                args.gt, fused, args.sensor, ratio=args.ratio, bits=args.bits, dim_cut=args.dim_cut,
                block=args.block, clip=args.clip, quicklook_dir=qdir)
        else:
            result = files.evaluate_full_files(
                args.ms, args.pan, fused, args.sensor, ratio=args.ratio, bits=args.bits, block=args.block,
                clip=args.clip, quicklook_dir=qdir)
    except (UsageError, ValueError, KeyError, FileNotFoundError, RasterioError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"crossdiff evaluate: error: {message}", file=sys.stderr)
        return 2

    paths = report.write_report(result, args.out) if args.out else None
    if mode == "scenes":
        if args.json:
            print(json.dumps(report.to_dict(result), indent=2, allow_nan=False))
        else:
            _print_summary(result, paths)
        return 0
    scene = result.scenes[0]
    doc = {"protocol": mode, "sensor": scene.sensor, "ratio": scene.ratio, "bits": scene.bits,
           "dim_cut": args.dim_cut if mode == "reduced" else None, "block": args.block,
           "metrics": scene.metrics[mode], "notes": scene.notes, "conventions": result.conventions}
    if paths:
        doc["report"] = {k: str(v) for k, v in paths.items()}
    print(json.dumps(report.jsonable(doc), indent=2, allow_nan=False))
    return 0
