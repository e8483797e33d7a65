"""Where a stream records the tiles it did not deliver, and why.

Readers run in Ray actors on any node, so a failed read cannot simply be
raised (that would end the epoch) nor only logged (the driver would never
see it). Each stream owns one small :class:`SkipLog` actor; readers send it
one synchronous call per batch that lost tiles (rare, so the round trip is
free in practice and nothing can arrive after the driver has finished
iterating). The driver fetches :func:`skipped_table` at any time.

Read failures are kept row by row (:data:`SKIP_SCHEMA`); tiles dropped by the
nodata/blank filter are only counted per scene and reason, so the log stays
small however many ocean or fill tiles an archive has.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pyarrow as pa

SKIP_SCHEMA = pa.schema([
    pa.field("tile_id", pa.string()),
    pa.field("scene_id", pa.string()),
    pa.field("epoch", pa.int32()),
    pa.field("uri", pa.string()),
    pa.field("error", pa.string()),
    pa.field("attempts", pa.int32()),
])


@dataclasses.dataclass(frozen=True)
class SkippedRead:
    """A tile whose read failed after every retry."""

    tile_id: str
    scene_id: str
    epoch: int
    uri: str
    error: str
    attempts: int


class SkipLog:
    """Collects skipped reads and filter counts for one stream (run as a Ray actor)."""

    def __init__(self) -> None:
        self._skipped: list[dict[str, Any]] = []
        self._filtered: Counter[tuple[str, str]] = Counter()

    def record(self, skipped: list[SkippedRead], filtered: dict[tuple[str, str], int]) -> None:
        self._skipped.extend(dataclasses.asdict(s) for s in skipped)
        self._filtered.update(filtered)

    def skipped(self) -> list[dict[str, Any]]:
        return list(self._skipped)

    def filtered(self) -> dict[tuple[str, str], int]:
        return dict(self._filtered)

    def clear(self) -> None:
        self._skipped.clear()
        self._filtered.clear()


def start_skip_log() -> Any:
    """A :class:`SkipLog` actor owned by the calling driver (it dies with its last handle).

    It asks for no CPU, so it never takes a slot from the readers.
    """
    import ray

    return ray.remote(num_cpus=0, max_restarts=0)(SkipLog).remote()


def skipped_table(log: Any) -> pa.Table:
    """The skipped reads recorded so far, as a table of :data:`SKIP_SCHEMA`."""
    import ray

    return pa.Table.from_pylist(ray.get(log.skipped.remote()), schema=SKIP_SCHEMA)
