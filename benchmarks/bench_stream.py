"""Benchmark: the Ray Data tile stream against a plain single-process rasterio loop.

Throughput. Both sides read the same 256-px windows of the same synthetic
archive (tiled DEFLATE GeoTIFFs, WorldView-2, 8 bands) in the same seeded
order and do the same per-tile work: the NAIVE BASELINE is one process that
keeps every file open, reads PAN and MS windows with rasterio and calls the
same normalisation/lms code (:func:`crossdiff.platform.stream.make_samples`)
on batches of the same size (the stream reads blocks of its default size
and the consumer takes batches of that size from them). Three workloads
(``WORKLOADS``): ``read`` (windows, filter, normalisation; no lms), ``full``
(the readers add the 23-tap ``lms``) and ``feed`` (what stage-1 training
reads by default: the readers ship ``ms`` and its shifts, and the consumer
computes ``lms`` with :func:`~crossdiff.platform.stream.add_lms`, here on
the CPU of the same two cores; a GPU trainer does it on the GPU). The plain
loop computes ``lms`` for ``full`` and ``feed``. Each side reads every tile
of an archive once (the 8x archive below, 4096 tiles, from local files and
from S3), so no block is read twice, as in an archive larger than any cache. Rates are timed from
the first batch to the last, leaving out what was read before the first
batch (:class:`~benchmarks.rate_clock.RateClock`; the time to the stream's
first batch, actor start included, is logged apart). The plain loop and
the stream with 1 and 2 reader actors run in turn, twice (``ROUNDS``), and
the best run of each counts: this VM's speed drifts by a third within
minutes, and alternating lets a slow spell hit every side. "Per core"
divides the stream's rate by its number of readers. Local files and an S3
endpoint (a moto server on loopback, GDAL ``/vsis3/``) are measured in the
same run.

CPU a tile. Beside each rate the benchmark prints the CPU a delivered tile
cost between the same marks, summed over every process of the run (driver,
Ray's daemons, readers; the S3 server is reported apart). The per-core rate
on 2 cores mixes two things: the work the stream adds to each tile, and the
share of the two cores that the consumer and Ray's daemons take from the
readers. The plain loop's CPU a tile over the stream's is the first alone:
the share of the plain loop's rate each core can give on a machine whose
consumer has cores of its own. The part spent outside the consumer's process
(readers and Ray) is printed too: what a reader node pays a tile, whatever the
consumer does (with ``feed``, the consumer's lms runs on its GPU in training).

Large scenes. The synthetic scenes above hold 16 tiles each; real ones hold
thousands, and their 256-px MS blocks are shared by the 64-px MS windows of
16 tiles. A third local case reads 4096-px scenes (4x4 mosaics of the small
ones: the content repeats, the file layout is that of a real scene) with the
stream's defaults, and again with the previous defaults (whole scenes as
shuffle units, a 32 MB GDAL cache), each against the plain loop in the same
order. With whole-scene windows the plain loop decodes most blocks within
its first batches (one window spans the archive); both sides pay that
within the timed run.

Memory. One epoch of the ``full`` stream over a 1x archive and over an 8x
one (the 1x scenes copied 8 times under new names: 8x the files, tiles and
manifest rows). Peak memory is the sum of the proportional set size (PSS:
shared pages such as the object store's are split between the processes
that map them, so nothing is counted twice) of the driver and every process
under it (GCS, raylet with the object store, Ray workers), sampled every
50 ms by a thread; each measurement runs in a fresh process with its own Ray,
twice per archive, and the higher peak counts (one short epoch reaches its
plateau earlier or later from run to run). Most of it is fixed: Ray's own
processes, torch in each reader, and object store pages that stay mapped
once touched (a plateau after a few blocks).

Run: ``python -m benchmarks.bench_stream`` (about 16-18 minutes on 2 cores).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from benchmarks.rate_clock import RateClock, cpu_seconds, tiles_produced_by
from benchmarks.synthetic_archives import LARGE_GRID, SCENE_PX, SENSOR, TILE, build_archive, ingest, mosaic, replicate
from crossdiff.platform.stream.samples import LMS_SOURCES, add_lms

REPO = Path(__file__).resolve().parents[1]
BATCH = 32  # what the consumer (and the plain loop) takes at a time; the stream's blocks are its default size
# 1x: 512 tiles (8 blocks: enough for the stream to reach its steady memory);
# 8x: 4096 tiles, also the throughput archive (local and S3: runs long enough to time).
SCENES = 32
MEMORY_RUNS = 2
ROUNDS = 2  # each throughput measurement runs this many times, alternating; the best run counts
LARGE_SCENES = 16  # 4096 tiles, 64 shuffle regions of 2048 px


def log(msg: str) -> None:
    print(f"[bench_stream] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# NAIVE BASELINE: one process, rasterio windows, the same per-tile work.
# ---------------------------------------------------------------------------

def plain_loop(stream, epochs: int, with_lms: bool) -> tuple[float, float]:
    """(tiles/s, CPU ms a tile) of one process reading the stream's tiles, in its order, for ``epochs`` epochs."""
    import rasterio
    from rasterio.windows import Window

    from crossdiff.platform.archive.filesystems import gdal_path, raster_env
    from crossdiff.platform.stream import make_samples
    from crossdiff.platform.stream.samples import keep_mask

    rows = stream.order(range(epochs)).to_pylist()
    sources = stream.settings.sources
    (ph, pw), (mh, mw) = stream.pan_shape, stream.ms_shape
    clock = RateClock(len(rows))
    with raster_env(sources[0].pan_uri, stream.settings.storage):
        files: dict[str, rasterio.DatasetReader] = {}

        def f(uri: str):
            if uri not in files:
                files[uri] = rasterio.open(gdal_path(uri))
            return files[uri]

        for start in range(0, len(rows), BATCH):
            chunk = rows[start:start + BATCH]
            pans, mss = [], []
            for r in chunk:
                src = sources[r["src"]]
                pans.append(f(src.pan_uri).read(src.pan_band, window=Window(r["pan_col"], r["pan_row"], pw, ph))[None])
                ms = np.empty((stream.n_bands, mh, mw), src.dtype)
                for uri, bands, channels in src.ms_reads:
                    ms[list(channels)] = f(uri).read(list(bands), window=Window(r["ms_col"], r["ms_row"], mw, mh))
                mss.append(ms)
            pan, ms = np.stack(pans), np.stack(mss)
            srcs = [sources[r["src"]] for r in chunk]
            keep = keep_mask(pan, ms, [s.nodata for s in srcs], stream.config.min_valid)[0]
            out = make_samples(pan[keep], ms[keep], bits=np.array([s.bits for s in srcs])[keep], ratio=stream.ratio,
                               shift_x=np.array([r["shift_x"] for r in chunk])[keep],
                               shift_y=np.array([r["shift_y"] for r in chunk])[keep],
                               sensors=[s.sensor for s in srcs], with_lms=with_lms)
            clock.add(len(chunk), len(out["pan"]))
        for src in files.values():
            src.close()
    return clock.rate(), clock.cpu_ms()


def stream_rate(stream, epochs: int, consume=None) -> tuple[float, float, float, float]:
    """The stream over ``epochs`` epochs: tiles/s after warm-up, CPU ms a tile (every process, and
    every process but this one, the consumer's), seconds to the first batch.

    ``consume(batch)``: the consumer's own work on each batch (the ``feed`` workload's lms).
    """
    n = stream.n_tiles * epochs
    guess = stream.workers * stream.read_block_tiles(n)  # one block per reader, if the stats are missing
    clock = RateClock(n, lead=guess)
    ds = stream.dataset(range(epochs))
    for batch in ds.iter_batches(batch_size=BATCH, batch_format="numpy"):
        if consume is not None:
            consume(batch)
        clock.add(len(batch["pan"]), len(batch["pan"]))
    produced = tiles_produced_by(ds, clock.t_start)  # delivered tiles; the clock's lead counts rows read
    if produced is not None:
        clock.lead = produced * clock.seen / max(clock.delivered, 1)
    log(f"read before the first batch: {clock.lead:.0f} tiles (one block per reader: {guess})")
    return clock.rate(), clock.cpu_ms(), clock.cpu_ms(skip_pid=os.getpid()), clock.startup


# Workloads: (what the line says, the stream's config, the plain loop's with_lms, the consumer's work).
WORKLOADS = {
    "read": ("read (no lms)", {"with_lms": False}, False, None),
    "full": ("full (lms in the readers)", {"with_lms": True}, True, None),
    "feed": ("training feed (lms on the consumer)",
             {"with_lms": False, "columns": LMS_SOURCES}, True, add_lms),
}


def with_server_cpu(server, n_tiles: int, run):
    """``(run(), the server process's CPU ms a tile during it)``; None for the second without a server."""
    before = cpu_seconds(server) if server is not None else 0.0
    result = run()
    return result, (1e3 * (cpu_seconds(server) - before) / n_tiles if server is not None else None)


def compare(manifest: str, storage, label: str, lines: list[str], workloads: tuple[str, ...] = ("read", "full"),
            server=None, **config) -> None:
    """Plain loop vs the stream with 1 and 2 readers, for each workload (names in ``WORKLOADS``).

    ``server``: the S3 endpoint's process (psutil), whose CPU per tile is reported beside the rates.
    """
    from crossdiff.platform.stream import StreamConfig, TileStream

    epochs = 1  # every tile read once: no help from caches that a real archive would overflow
    for name in workloads:
        work, stream_config, plain_lms, consume = WORKLOADS[name]
        # (tiles/s, CPU ms a tile, of which outside the consumer's process) by side
        runs: dict[str | int, list[tuple[float, float, float]]] = {"plain": [], 1: [], 2: []}
        server_ms = {}  # the endpoint's CPU per tile, by run (the last round's)
        for _ in range(ROUNDS):  # alternating, so that a slow spell of the machine hits every side
            for side, workers in (("plain", 1), (1, 1), (2, 2)):
                cfg = StreamConfig(split=None, workers=workers, seed=1, **stream_config, **config)
                stream = TileStream(manifest, cfg, storage)
                if side == "plain":
                    run, server_ms["plain loop"] = with_server_cpu(
                        server, epochs * stream.n_tiles, functools.partial(plain_loop, stream, epochs, plain_lms))
                    run = (*run, 0.0)  # one process: the consumer's
                    log(f"{label} {work}: plain loop {run[0]:.1f} tiles/s, {run[1]:.2f} CPU ms a tile")
                else:
                    (rate, ms, outside, startup), server_ms[f"{workers} readers"] = with_server_cpu(
                        server, epochs * stream.n_tiles, functools.partial(stream_rate, stream, epochs, consume))
                    run = (rate, ms, outside)
                    log(f"{label} {work}: {workers} reader(s) {rate:.1f} tiles/s, {ms:.2f} CPU ms a tile, "
                        f"{outside:.2f} outside the consumer (first batch after {startup:.1f} s)")
                runs[side].append(run)
        best = {k: max(v, key=lambda run: run[0]) for k, v in runs.items()}  # the fastest run of each side
        plain, plain_cpu, _ = best["plain"]
        rates, cpu, outside = ({w: best[w][i] for w in (1, 2)} for i in range(3))
        line = (f"stream {label}, {work}, {epochs * stream.n_tiles} tiles (blocks of {stream.block_tiles}): "
                f"plain loop {plain:.1f} tiles/s; "
                f"stream 1 reader {rates[1]:.1f} tiles/s ({rates[1] / plain:.2f}x), 2 readers {rates[2]:.1f} tiles/s "
                f"({rates[2] / plain:.2f}x = {rates[2] / 2 / plain:.2f}x per core, target >= 0.8); "
                f"2 vs 1 reader {rates[2] / rates[1]:.2f}x; CPU a tile, every process counted: plain loop "
                f"{plain_cpu:.2f} ms, stream 1 reader {cpu[1]:.2f} ms ({plain_cpu / cpu[1]:.2f}x the plain loop's "
                f"work per CPU second), 2 readers {cpu[2]:.2f} ms ({plain_cpu / cpu[2]:.2f}x); of which outside "
                f"the consumer's process (readers, Ray): 1 reader {outside[1]:.2f} ms, 2 readers {outside[2]:.2f} ms")
        if server is not None:
            line += ("; the S3 server's CPU a tile, on the same cores: "
                     + ", ".join(f"{k} {v:.1f} ms" for k, v in server_ms.items()))
        lines.append(line)


@contextlib.contextmanager
def fresh_ray(cpus: int = 2) -> Iterator[None]:
    import ray

    from crossdiff.platform.ray_runtime import ensure_ray

    ensure_ray(num_cpus=cpus, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


class PeakMemory:
    """Samples the PSS of this process and all its descendants in a thread; keeps the peak."""

    def __init__(self, interval_s: float = 0.05) -> None:
        import psutil
        import ray  # noqa: F401  (puts Ray's vendored psutil on sys.path)

        self._psutil, self.interval_s = psutil, interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        me = self._psutil.Process()
        total = 0
        for p in [me, *me.children(recursive=True)]:
            with contextlib.suppress(self._psutil.Error):
                total += p.memory_full_info().pss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _memory_child(manifest: str, out) -> None:
    torch.set_num_threads(1)
    from crossdiff.platform.stream import StreamConfig, TileStream

    with fresh_ray():
        stream = TileStream(manifest, StreamConfig(split=None, workers=2, seed=1))
        with PeakMemory() as mem:
            idle = mem.sample()
            n = sum(len(b["pan"]) for b in stream.dataset(0).iter_batches(batch_size=BATCH))
    out.put((mem.peak / 2**20, idle / 2**20, n))


def memory_peak(manifest: str) -> tuple[float, float, int]:
    """(peak MiB, idle MiB before the stream, tiles) for one epoch of the full stream.

    It runs in a fresh process, so the driver holds nothing but the stream
    (this process has written archives and run the other measurements).
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_memory_child, args=(manifest, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def s3_section(root: Path, lines: list[str]) -> None:
    """Upload the throughput archive to a moto server, ingest it from there, compare."""
    import boto3
    import psutil

    from crossdiff.platform.archive.filesystems import StorageOptions

    sys.path.insert(0, str(REPO / "tests"))
    from services import s3_server  # the test suite's real moto server launcher

    with s3_server(root / "moto") as env:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
            client.create_bucket(Bucket="bench")
            for f in sorted((root / "archive").rglob("*")):
                if f.is_file():
                    client.upload_file(str(f), "bench", f"archive/{f.relative_to(root / 'archive')}")
            storage = StorageOptions(endpoint_url=env["AWS_ENDPOINT_URL"])
            (root / "s3").mkdir()
            manifest = ingest(root / "s3", "s3://bench/archive", storage)
            with fresh_ray():
                server = next(p for p in psutil.Process().children(recursive=True)
                              if "moto" in " ".join(p.cmdline()))
                compare(str(manifest), storage, "S3 (moto on loopback)", lines, server=server)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def run() -> list[str]:
    """Measure everything; return the report lines."""
    # One intra-op thread everywhere: Ray readers get OMP_NUM_THREADS=1 from Ray,
    # and the plain loop must not use a second core the stream's readers share.
    torch.set_num_threads(1)
    from crossdiff.platform.stream import StreamConfig

    lines = [f"stream benchmark: {SENSOR} synthetic scenes {SCENE_PX} px, tiles {TILE} px, batches of {BATCH} "
             f"({StreamConfig().tasks_in_flight} read tasks queued per reader), 2 CPUs for Ray, 1 torch thread "
             "per process"]
    with tempfile.TemporaryDirectory(prefix="bench_stream_") as tmp:
        tmp = Path(tmp)
        log("writing the synthetic archives")
        base = build_archive(tmp / "x1", SCENES)
        big = replicate(tmp / "x1", tmp / "x8", 8)
        large = mosaic(tmp / "x1", tmp / "large", LARGE_SCENES)
        with fresh_ray():
            compare(str(big), None, "local files", lines, ("read", "full", "feed"))
            compare(str(large), None, f"local large scenes ({LARGE_GRID * SCENE_PX} px)", lines, ("read",))
            compare(str(large), None, "local large scenes, previous defaults (whole-scene shuffle windows, "
                    "32 MB GDAL cache)", lines, ("read",), shuffle_region=None, gdal_cache_mb=32)
        try:
            s3_section(tmp / "x8", lines)
        except (ImportError, FileNotFoundError, TimeoutError, RuntimeError) as err:
            lines.append(f"stream S3: skipped ({type(err).__name__}: {err}); install the dev extras (moto)")
        (peak1, idle1, n1), (peak8, idle8, n8) = (
            max(memory_peak(str(m)) for _ in range(MEMORY_RUNS)) for m in (base, big))
        log(f"memory: 1x {peak1:.0f} MiB ({n1} tiles), 8x {peak8:.0f} MiB ({n8} tiles)")
        lines.append(
            f"stream memory, full epoch: 1x archive ({n1} tiles) peak {peak1:.0f} MiB, 8x archive ({n8} tiles) "
            f"peak {peak8:.0f} MiB -> 8x/1x {peak8 / peak1:.2f} (target <= 1.3); above idle Ray "
            f"({idle1:.0f} / {idle8:.0f} MiB): {peak1 - idle1:.0f} vs {peak8 - idle8:.0f} MiB -> "
            f"{(peak8 - idle8) / max(peak1 - idle1, 1.0):.2f}")
    return lines


if __name__ == "__main__":
    for line in run():
        print(line)
