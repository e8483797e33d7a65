"""The evaluation report: ``report.md`` for people, ``report.json`` for programs.

The Markdown has one table per protocol (mean ± std over scenes, the best
value of each column in bold, arrows saying which way is better), the
conventions the numbers follow, notes on cropped or offset scenes, per-scene
tables when there are several scenes, and the quicklooks. The JSON holds the
same numbers unrounded. Non-finite values (PSNR of an exact copy is +inf)
are written as the strings "inf", "-inf" and "nan" so the file stays strict JSON.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from crossdiff.platform.evaluation.runner import METRIC_KEYS, EvaluationResult

HIGHER_IS_BETTER = {"Q2n": True, "Q": True, "SAM": False, "ERGAS": False, "SCC": True, "PSNR": True,
                    "D_lambda_K": False, "D_s": False, "HQNR": True, "D_lambda": False, "QNR": True}
IDEAL = {"Q2n": "1", "Q": "1", "SAM": "0", "ERGAS": "0", "SCC": "1", "PSNR": "+inf",
         "D_lambda_K": "0", "D_s": "0", "HQNR": "1", "D_lambda": "0", "QNR": "1"}
DIGITS = {"SAM": 3, "ERGAS": 3, "PSNR": 2}
TITLES = {
    "reduced": "Reduced resolution (Wald protocol: fused from the degraded pair, scored against the original MS)",
    "full": "Full resolution (fused from the original pair, no reference)",
    "truth": "Full resolution against the synthetic truth (synthetic scenes only)",
}


def jsonable(x: Any) -> Any:
    """Python/numpy values with non-finite floats as strings, ready for strict JSON."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def fmt(value: float | None, key: str) -> str:
    """A metric value at the table's precision (3 decimals, 4 for the [0, 1] indices)."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return f"{value:.{DIGITS.get(key, 4)}f}"


def _best(values: dict[str, float], key: str) -> set[str]:
    """Names whose displayed value is the best of the column (ties all win)."""
    finite = {k: v for k, v in values.items() if not math.isnan(v)}
    if not finite:
        return set()
    pick = max if HIGHER_IS_BETTER[key] else min
    best = fmt(pick(finite.values()), key)
    return {k for k, v in finite.items() if fmt(v, key) == best}


def table(rows: dict[str, dict[str, dict[str, Any]]], keys: tuple[str, ...]) -> list[str]:
    """Markdown table lines: one row per method, "mean ± std" cells, best per column in bold."""
    arrow = {True: "\u2191", False: "\u2193"}
    lines = ["| Method | " + " | ".join(f"{k} {arrow[HIGHER_IS_BETTER[k]]}" for k in keys) + " | n |",
             "|---|" + "---:|" * (len(keys) + 1)]
    best = {k: _best({m: r[k]["mean"] for m, r in rows.items()}, k) for k in keys}
    for name, r in rows.items():
        cells = []
        for k in keys:
            cell = fmt(r[k]["mean"], k) + (f" ± {fmt(r[k]['std'], k)}" if r[k]["std"] is not None else "")
            cells.append(f"**{cell}**" if name in best[k] else cell)
        n = max(r[k]["n"] for k in keys)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {n} |")
    return lines


def _per_scene(result: EvaluationResult, protocol: str) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    return {s.scene_id: {m: {k: {"mean": v, "std": None, "n": 1} for k, v in vals.items()}
                         for m, vals in s.metrics[protocol].items()}
            for s in result.scenes if protocol in s.metrics}


def markdown(result: EvaluationResult, out_dir: str | Path | None = None) -> str:
    """The report as Markdown; quicklook links are made relative to ``out_dir``."""
    summary = result.summary()
    scenes = result.scenes
    sensors = sorted({f"{s.sensor} ({s.bits}-bit, ratio {s.ratio})" for s in scenes})
    lines = ["# Pansharpening evaluation", "",
             f"{len(scenes)} scene(s): {', '.join(s.scene_id for s in scenes)}. Sensor(s): {', '.join(sensors)}.",
             "Mean ± sample standard deviation over scenes (no ± for a single scene); best value of each "
             "column in **bold**; arrows give the better direction.", ""]
    for protocol, rows in summary.items():
        keys = METRIC_KEYS[protocol]
        lines += [f"## {TITLES[protocol]}", "", *table(rows, keys), "",
                  "Ideal values: " + ", ".join(f"{k} = {IDEAL[k]}" for k in keys) + ".", ""]
    c = result.conventions
    lines += ["## Conventions", "",
              f"- Reduced resolution: border cut dim_cut = {c['dim_cut']} ({c['dim_cut_semantics']}); "
              f"block size {c['block']}.",
              "- Bit depth and ratio per scene: " + "; ".join(
                  f"{s.scene_id}: {s.bits}-bit, ratio {s.ratio}" for s in scenes) + ".",
              *(f"- {k}: {c[k]}" for k in ("toolbox", "units", "wald", "exp_interpolator", "q2n", "q", "sam",
                                              "ergas", "psnr", "d_lambda_k", "d_s", "hqnr", "qnr", "clip",
                                              "aggregate") if k in c), ""]
    notes = [(s.scene_id, n) for s in scenes for n in s.notes]
    notes += [(sid, f"skipped, not evaluated: {reason}") for sid, reason in result.skipped]
    if notes:
        lines += ["## Notes", "", *(f"- {sid}: {n}" for sid, n in notes), ""]
    if len(scenes) > 1:
        lines += ["## Per scene", ""]
        for protocol in summary:
            lines += [f"### {protocol}", ""]
            for sid, rows in _per_scene(result, protocol).items():
                lines += [f"{sid}:", "", *table(rows, METRIC_KEYS[protocol]), ""]
    looks = [(s.scene_id, k, p) for s in scenes for k, p in s.quicklooks.items()]
    if looks:
        lines += ["## Quicklooks", ""]
        for sid, kind, path in looks:
            rel = os.path.relpath(path, out_dir) if out_dir is not None else path
            lines += [f"### {sid}: {kind}", "", f"![{sid} {kind}]({Path(rel).as_posix()})", ""]
    return "\n".join(lines).rstrip() + "\n"


def to_dict(result: EvaluationResult) -> dict[str, Any]:
    """Everything in the report as plain data (floats unrounded)."""
    return jsonable({
        "conventions": result.conventions,
        "summary": result.summary(),
        "scenes": [{"scene_id": s.scene_id, "sensor": s.sensor, "bits": s.bits, "ratio": s.ratio,
                    "bands": list(s.bands), "source": s.source, "ms_shape": list(s.ms_shape),
                    "pan_shape": list(s.pan_shape), "notes": s.notes, "metrics": s.metrics,
                    "fusion_seconds": s.seconds, "quicklooks": s.quicklooks} for s in result.scenes],
        "skipped": [{"scene_id": sid, "reason": reason} for sid, reason in result.skipped],
    })


def write_report(result: EvaluationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md`` and ``report.json`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "report.md", out / "report.json"
    md.write_text(markdown(result, out))
    js.write_text(json.dumps(to_dict(result), indent=2, allow_nan=False) + "\n")
    return {"markdown": md, "json": js}
