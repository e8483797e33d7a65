"""The end-of-ingest summary: what was written, what was quarantined and why."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from crossdiff.platform.archive.manifest import REASONS, Quarantine


def print_summary(result: Any, quarantined: list[Quarantine], console: Any) -> None:
    """Print an ingest's outcome: counts, splits, outputs and one line per quarantine reason.

    Args:
        result: the :class:`ingest.IngestResult`.
        quarantined: every quarantine row, for the per-reason examples.
        console: a ``rich.console.Console``.
    """
    from rich.table import Table

    splits = ", ".join(f"{k} {v}" for k, v in sorted(result.tiles_per_split.items())) or "none"
    console.print(
        f"[bold]ingest[/bold] {result.scenes_ok} of {result.scenes_found} scenes -> {result.tiles} tiles "
        f"({splits}); {result.tiles_dropped} tiles below the valid-fraction floor; "
        f"{len(quarantined)} quarantined; {result.seconds:.1f} s ({result.mode})")
    for kind, path in result.paths.items():
        console.print(f"  {kind:<10} {path}")
    console.print(f"  valid fractions: {result.stats}")
    console.print(f"  manifest hash {result.manifest_hash[:16]} (content {result.content_hash[:16]})")
    if not quarantined:
        return
    by_reason: dict[str, list[Quarantine]] = defaultdict(list)
    for q in quarantined:
        by_reason[q.reason].append(q)
    table = Table(title="quarantine", show_lines=False)
    table.add_column("reason")
    table.add_column("scenes", justify="right")
    table.add_column("meaning")
    table.add_column("first example", overflow="fold")
    for reason, items in sorted(by_reason.items()):
        first = items[0]
        table.add_row(reason, str(len(items)), REASONS[reason], f"{first.scene_id}: {first.detail}")
    console.print(table)
