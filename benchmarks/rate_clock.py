"""Timing helpers of the stream benchmark: rates in the middle of a run and the CPU they cost."""

from __future__ import annotations

import contextlib
import time


class RateClock:
    """Tiles per second from the first batch to the last, and the CPU they cost.

    The time to the first batch is left out (actor start, the first block)
    and reported apart as ``startup``. Everything after it counts, the end
    included: a middle window (say from a fifth of the tiles to four fifths)
    would credit a stream with the blocks it read ahead before the first mark
    and still holds at the second, and a stream that queues several blocks
    per reader can hold most of the tiles left by then. From the first batch
    on, the only head start is what the readers did while the first batch
    was on its way: one block each, a few percent of a run of 4,096 tiles.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.delivered = 0
        self.t0 = time.perf_counter()
        self.t_start: float | None = None
        self.t_end: float | None = None
        self.startup = 0.0
        self.cpu: tuple[dict, dict] = ({}, {})  # CPU seconds by process of the whole tree at the two marks

    def add(self, seen: int, delivered: int) -> None:
        """Count a batch: ``seen`` rows of the run, ``delivered`` of them kept (the rest filtered out)."""
        if self.t_start is None:
            self.t_start = time.perf_counter()
            self.startup = self.t_start - self.t0
            self.cpu = (tree_cpu_seconds(), {})
            self.seen = seen
            return
        self.seen += seen
        self.delivered += delivered
        if self.seen >= self.total and self.t_end is None:
            self.t_end, self.cpu = time.perf_counter(), (self.cpu[0], tree_cpu_seconds())

    def rate(self) -> float:
        return self.delivered / ((self.t_end or time.perf_counter()) - self.t_start)

    def cpu_ms(self) -> float:
        """CPU milliseconds a delivered tile cost between the marks, every process of the run counted."""
        start, end = self.cpu
        # By process: one that exits between the marks would otherwise take its whole CPU time off the sum.
        return 1e3 * sum(t - start.get(pid, 0.0) for pid, t in end.items()) / max(self.delivered, 1)


def tree_cpu_seconds() -> dict[int, float]:
    """CPU seconds used so far by this process and every live process under it (Ray's, not the S3 server's)."""
    import psutil

    me = psutil.Process()
    used = {}
    for p in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            if "moto" not in " ".join(p.cmdline()):  # the S3 server is reported apart
                used[p.pid] = cpu_seconds(p)
    return used


def cpu_seconds(proc) -> float:
    times = proc.cpu_times()
    return times.user + times.system
