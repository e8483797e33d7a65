"""Timing helpers of the stream benchmark: rates in the middle of a run and the CPU they cost."""

from __future__ import annotations

import contextlib
import time

REFRESH_S = 0.25  # how often a clock refreshes each process's CPU between the marks (a few ms each time)


class RateClock:
    """Tiles per second from the first batch to the last, and the CPU they cost.

    The time to the first batch is left out (actor start, the first block)
    and reported apart as ``startup``; everything after it counts, the end
    included. A middle window (from a fifth of the tiles to four fifths, say)
    would credit a stream with the blocks it read ahead before the first mark
    and still holds at the second, which can be most of the tiles left. What
    was read before the first batch is left out as well: ``lead`` tiles, the
    first batch for a plain loop; for a stream, what its readers had produced
    by then (:func:`tiles_produced_by`). A guess of one block per reader
    flattered runs whose first block came late while the other reader went
    on (one S3 run: 2.0x the plain loop at less CPU a tile than the plain loop).
    """

    def __init__(self, total: int, lead: int | None = None) -> None:
        self.total, self.lead = total, lead
        self.seen = self.delivered = 0
        self.t0 = time.perf_counter()
        self.t_start: float | None = None
        self.t_end: float | None = None
        self.startup = 0.0
        self.cpu: tuple[dict, dict] = ({}, {})  # CPU seconds by process of the whole tree at the two marks
        self._seen_at = 0.0  # when the second mark's values were last refreshed

    def add(self, seen: int, delivered: int) -> None:
        """Count a batch: ``seen`` rows of the run, ``delivered`` of them kept (the rest filtered out)."""
        self.seen += seen
        self.delivered += delivered
        now = time.perf_counter()
        if self.t_start is None:
            self.t_start = self._seen_at = now
            self.startup = self.t_start - self.t0
            self.cpu = (tree_cpu_seconds(), {})
            self.lead = seen if self.lead is None else self.lead
        elif self.t_end is None:
            done = self.seen >= self.total
            # Refreshed every REFRESH_S, not only at the end: Ray Data stops the readers once their last
            # block is out, which can be long before a slow consumer's last batch; a process that has
            # exited keeps the CPU it had used when last seen, instead of dropping out of the sum.
            if done or now - self._seen_at >= REFRESH_S:
                self.cpu[1].update(tree_cpu_seconds())
                self._seen_at = now
            if done:
                self.t_end = now

    @property
    def timed_tiles(self) -> float:
        """Delivered tiles read after the first batch (the lead left out, in the share delivered)."""
        return max(self.delivered * (1 - self.lead / max(self.seen, 1)), 1.0)

    def rate(self) -> float:
        return self.timed_tiles / ((self.t_end or time.perf_counter()) - self.t_start)

    def cpu_ms(self, skip_pid: int | None = None) -> float:
        """CPU milliseconds a delivered tile cost between the marks, every process of the run counted
        (but ``skip_pid``: the consumer's own process, say, to see what the readers and Ray cost)."""
        start, end = self.cpu
        # By process: the sum over processes that exist at both marks would leave out those that came
        # or went between them.
        used = sum(t - start.get(pid, 0.0) for pid, t in end.items() if pid != skip_pid)
        return 1e3 * used / self.timed_tiles


def tiles_produced_by(ds, t: float) -> float | None:
    """Tiles a finished Ray Dataset's readers had produced by ``t`` (``time.perf_counter()`` on this machine).

    From Ray Data's execution times of each block (``BlockExecStats``, taken
    with the same monotonic clock in every process of a machine); a block in
    progress at ``t`` counts in proportion to its time elapsed. None when the
    stats are not there. ``Dataset._raw_stats`` is private: Ray Data has no
    public per-block times.
    """
    try:
        blocks = [b for op in ds._raw_stats().metadata.values() for b in op]
    except AttributeError:
        return None
    done, timed = 0.0, 0
    for b in blocks:
        s = b.exec_stats
        if s is None or s.start_time_s is None or s.end_time_s is None:
            continue
        timed += 1
        share = (t - s.start_time_s) / max(s.end_time_s - s.start_time_s, 1e-9)
        done += b.num_rows * min(max(share, 0.0), 1.0)
    return done if timed else None


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
