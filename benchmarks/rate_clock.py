"""Timing helpers of the stream benchmark: rates in the middle of a run and the CPU they cost."""

from __future__ import annotations

import contextlib
import time


class RateClock:
    """Tiles per second in the middle of a run: from the first fifth of the tiles to the last fifth.

    The start is left out (file opens, actor start, first blocks), and so is
    the end: the stream reads several blocks ahead, so tiles it delivers at
    the end were mostly read before, and a rate up to the last tile would
    credit it with that head start. Between the two marks the blocks it
    starts and the blocks it finishes balance.
    """

    def __init__(self, total: int, edge_share: float = 0.2) -> None:
        self.marks = (max(1, int(total * edge_share)), max(2, int(total * (1 - edge_share))))
        self.seen = self.delivered = 0
        self.t0 = time.perf_counter()
        self.t_start: float | None = None
        self.t_end: float | None = None
        self.startup = 0.0
        self.cpu: tuple[dict, dict] = ({}, {})  # CPU seconds by process of the whole tree at the two marks

    def add(self, seen: int, delivered: int) -> None:
        if self.seen == 0:
            self.startup = time.perf_counter() - self.t0
        self.seen += seen
        if self.t_start is None:
            if self.seen >= self.marks[0]:
                self.t_start, self.cpu = time.perf_counter(), (tree_cpu_seconds(), {})
            return
        if self.t_end is None:
            self.delivered += delivered
            if self.seen >= self.marks[1]:
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
