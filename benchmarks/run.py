"""Run the benchmarks: ``python -m benchmarks.run [name ...]`` (default: all).

Every ``benchmarks/bench_<name>.py`` exposes ``run() -> list[str]``: it
measures the project against a naive baseline in the same run and returns
report lines (ratios), which are printed under a header per benchmark.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def available() -> list[str]:
    return sorted(p.stem[len("bench_"):] for p in Path(__file__).parent.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {available()}", file=sys.stderr)
        return 2
    for name in names:
        print(f"== {name} ==", flush=True)
        t0 = time.perf_counter()
        for line in importlib.import_module(f"benchmarks.bench_{name}").run():
            print(line, flush=True)
        print(f"({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
