"""The per-worker tile reader: a Ray Data ``map_batches`` callable class.

One :class:`TileReader` lives in each actor of the stream's pool. It turns a
batch of slim manifest rows (source index, windows, shift, epoch; see
:mod:`.dataset`) into samples:

1. windowed reads through GDAL of the PAN band and the MS bands (bands of one
   multi-band file in a single read; one read per file for band-per-file
   products such as Landsat), with rasterio datasets kept open in a bounded
   LRU cache so a file's header (and, on S3, its first range requests) is
   paid once per worker, not once per tile;
2. a failed tile read is retried with exponential backoff after reopening the
   files it touches (a dropped S3 connection or a file being rewritten often
   recovers); after the last attempt the tile is skipped and recorded in the
   stream's :class:`~.skips.SkipLog`, and the rest of the batch goes on;
3. nodata/blank filtering and normalisation, lms and Wald pairs
   (:mod:`.samples`).

Memory: GDAL's block cache defaults to 5% of the machine's RAM per process
and would fill with blocks of scenes the stream has left, growing with the
archive up to that cap; readers set it to ``gdal_cache_mb``, which the stream
sizes to one shuffle window's decoded pixels (:func:`.order.window_cache_mb`:
a block several tiles share is decoded once, and the cache stays bounded by
the window, not the archive). Open datasets cost memory too (block index,
GDAL's per-file state, curl buffers on S3): ``max_open_files`` (64) covers the
files of two shuffle windows (:mod:`.order`).

Object-store access: every open goes through
:func:`crossdiff.platform.archive.filesystems.raster_env`, the same GDAL
environment the ingest uses (``/vsis3/``, endpoint, path-style requests).
Workers may run on other machines, so the driver resolves the credentials
once and hands them to each reader, which exports them to its own process
(actors are dedicated processes) before any open.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from crossdiff.models.performance import keep_freed_memory
from crossdiff.platform.archive.filesystems import StorageOptions, gdal_path, raster_env
from crossdiff.platform.stream import samples
from crossdiff.platform.stream.skips import SkippedRead

T = TypeVar("T")

# Credential variables a reader exports; anything else stays as the worker has it.
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")


@dataclasses.dataclass(frozen=True)
class Source:
    """Where one scene's pixels are: what every tile row of the scene shares.

    Attributes:
        scene_id: the manifest's scene key.
        sensor: canonical sensor name.
        bits: bit depth used for normalisation.
        nodata: the files' nodata value, None when unset.
        dtype: numpy dtype of the scene's pixels (scenes of one stream may differ).
        pan_uri, pan_band: PAN file and 1-based band.
        ms_reads: one ``(uri, band_indexes, channels)`` per distinct MS file:
            read those 1-based bands of ``uri`` into those output channels.
    """

    scene_id: str
    sensor: str
    bits: int
    nodata: float | None
    dtype: str
    pan_uri: str
    pan_band: int
    ms_reads: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Source:
        groups: dict[str, tuple[list[int], list[int]]] = {}
        for channel, (uri, band) in enumerate(zip(row["ms_uris"], row["ms_band_indexes"], strict=True)):
            bands, channels = groups.setdefault(uri, ([], []))
            bands.append(int(band))
            channels.append(channel)
        return cls(row["scene_id"], row["sensor"], int(row["bits"]), row["nodata"], row["dtype"], row["pan_uri"],
                   int(row["pan_band"]), tuple((u, tuple(b), tuple(c)) for u, (b, c) in groups.items()))

    @property
    def uris(self) -> tuple[str, ...]:
        return (self.pan_uri, *(u for u, _, _ in self.ms_reads))


@dataclasses.dataclass(frozen=True)
class ReaderSettings:
    """What every reader of one stream shares (built by the driver, see :mod:`.dataset`)."""

    sources: tuple[Source, ...]
    pan_shape: tuple[int, int]
    ms_shape: tuple[int, int]
    n_bands: int
    ratio: int
    mode: str = "original"
    with_lms: bool = True
    min_valid: float = 0.95
    drop_blank: bool = True
    columns: tuple[str, ...] | None = None
    retries: int = 2
    backoff_s: float = 0.2
    max_open_files: int = 64
    gdal_cache_mb: int | None = 32
    storage: StorageOptions = dataclasses.field(default_factory=StorageOptions)
    credentials: dict[str, str] | None = None


def with_retries(fn: Callable[[], T], retries: int, backoff_s: float,
                 on_error: Callable[[int, Exception], None] | None = None) -> T:
    """Call ``fn`` up to ``retries + 1`` times, sleeping ``backoff_s * 2**k`` between tries.

    ``on_error(attempt, exc)`` runs after each failure (e.g. to reopen files).
    The last exception propagates, with the number of attempts in ``exc.attempts``.
    """
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:
            if on_error is not None:
                on_error(attempt, exc)
            if attempt == retries:
                exc.attempts = attempt + 1  # type: ignore[attr-defined]
                raise
            time.sleep(backoff_s * 2**attempt)  # backoff before a retry, not a synchronisation
    raise AssertionError("unreachable")


class HandleCache:
    """Open rasterio datasets by URI, least recently used closed beyond ``max_open``."""

    def __init__(self, max_open: int) -> None:
        if max_open < 1:
            raise ValueError(f"max_open_files must be at least 1, got {max_open}")
        self.max_open = max_open
        self._open: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self.opens = 0

    def get(self, uri: str) -> Any:
        import rasterio

        src = self._open.get(uri)
        if src is not None:
            self._open.move_to_end(uri)
            return src
        src = rasterio.open(gdal_path(uri))
        self.opens += 1
        self._open[uri] = src
        while len(self._open) > self.max_open:
            _, old = self._open.popitem(last=False)
            old.close()
        return src

    def evict(self, uris: tuple[str, ...]) -> None:
        for uri in uris:
            src = self._open.pop(uri, None)
            if src is not None:
                src.close()

    def close(self) -> None:
        self.evict(tuple(self._open))

    def __len__(self) -> int:
        return len(self._open)


def settle_reader_process() -> None:
    """Process settings that cut a reader actor's per-block overhead (a reader owns its process).

    * Block-sized arrays are freed and allocated again for every block. In a
      Ray worker glibc served them with fresh ``mmap``s that the kernel
      zero-filled page by page (perf, 64-tile blocks: a quarter of a reader's
      CPU in ``clear_page``); fixed mmap and trim thresholds keep them in the
      heap for reuse (:func:`~crossdiff.models.performance.keep_freed_memory`).
      Arrays over glibc's 32 MB ceiling still come from ``mmap`` (a 256-tile
      PAN block is 64 MB of float32).
    * The cyclic garbage collector runs every few thousand allocations (a
      block makes tens of thousands of small objects: windows, row dicts) and
      its full passes walk every object the worker holds, Ray's and torch's
      modules included; freezing what exists at start-up leaves those walks
      the objects made since.
    """
    keep_freed_memory()
    gc.freeze()


def _in_ray_actor() -> bool:
    import ray

    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


class TileReader:
    """``map_batches`` callable: slim manifest rows -> sample rows (see :mod:`.samples`).

    Args:
        settings: the stream's shared settings.
        log: the stream's :class:`~.skips.SkipLog` actor handle, or None to
            keep the records in :attr:`skipped` / :attr:`filtered` instead
            (in-process use); with a log they are sent there after each batch.
    """

    def __init__(self, settings: ReaderSettings, log: Any = None) -> None:
        self.settings = settings
        self.log = log
        self.cache = HandleCache(settings.max_open_files)
        self.skipped: list[SkippedRead] = []
        self.filtered: Counter[tuple[str, str]] = Counter()
        for key, value in (settings.credentials or {}).items():
            os.environ[key] = value
        if _in_ray_actor():  # in-process users keep their own process settings
            settle_reader_process()
        if settings.gdal_cache_mb is not None:
            # Read once per process, at GDAL's first block read: set it before any.
            os.environ["GDAL_CACHEMAX"] = str(int(settings.gdal_cache_mb))
        uris = [u for s in settings.sources for u in s.uris]
        # One environment serves every file: pick an s3:// URI when there is one.
        self._env_uri = next((u for u in uris if u.startswith("s3://")), uris[0] if uris else "")

    def read_tile(self, src: Source, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """PAN (1, H, W) and MS (C, h, w) digital numbers of one tile."""
        from rasterio.windows import Window

        s = self.settings
        (ph, pw), (mh, mw) = s.pan_shape, s.ms_shape
        pan = self._read(src.pan_uri, src.pan_band, Window(row["pan_col"], row["pan_row"], pw, ph))
        ms = np.empty((s.n_bands, mh, mw), dtype=src.dtype)
        ms_window = Window(row["ms_col"], row["ms_row"], mw, mh)
        for uri, bands, channels in src.ms_reads:
            ms[list(channels)] = self._read(uri, list(bands), ms_window)
        if pan.shape != (ph, pw) or ms.shape[1:] != (mh, mw):
            raise OSError(f"short read: PAN {pan.shape}, MS {ms.shape} for a {ph}x{pw} tile")
        return pan[None], ms

    def _read(self, uri: str, bands: int | list[int], window: Any) -> np.ndarray:
        """One windowed read; a failure carries the URI that failed (``exc.uri``)."""
        try:
            return self.cache.get(uri).read(bands, window=window)
        except Exception as exc:
            exc.uri = uri  # type: ignore[attr-defined]
            raise

    def _read_or_skip(self, src: Source, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
        s = self.settings
        try:
            return with_retries(lambda: self.read_tile(src, row), s.retries, s.backoff_s,
                                on_error=lambda _attempt, _exc: self.cache.evict(src.uris))
        except Exception as exc:
            uri = getattr(exc, "uri", None) or " ".join(dict.fromkeys(src.uris))
            self.skipped.append(SkippedRead(str(row["tile_id"]), src.scene_id, int(row["epoch"]), str(uri),
                                            f"{type(exc).__name__}: {exc}", getattr(exc, "attempts", 1)))
            return None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        s = self.settings
        n = len(batch["src"])
        n_skipped = len(self.skipped)
        rows = [{k: batch[k][i] for k in batch} for i in range(n)]
        pans, mss, ok = [], [], []
        with raster_env(self._env_uri, s.storage):
            for i, row in enumerate(rows):
                got = self._read_or_skip(s.sources[int(row["src"])], row)
                if got is not None:
                    pans.append(got[0])
                    mss.append(got[1])
                    ok.append(i)
        out = self._assemble([rows[i] for i in ok], pans, mss)
        self._report(self.skipped[n_skipped:])
        return out if s.columns is None else {k: out[k] for k in s.columns}

    def _assemble(self, rows: list[dict[str, Any]], pans: list[np.ndarray],
                  mss: list[np.ndarray]) -> dict[str, np.ndarray]:
        s = self.settings
        if rows:
            pan, ms = np.stack(pans), np.stack(mss)
            srcs = [s.sources[int(r["src"])] for r in rows]
            keep, blank, low = samples.keep_mask(pan, ms, [x.nodata for x in srcs], s.min_valid, s.drop_blank)
            self._count_filtered(srcs, blank, low)
            rows = [r for r, k in zip(rows, keep, strict=True) if k]
            pan, ms, srcs = pan[keep], ms[keep], [x for x, k in zip(srcs, keep, strict=True) if k]
        if not rows:
            return self._empty()
        out = samples.make_samples(
            pan, ms, bits=np.array([x.bits for x in srcs]), ratio=s.ratio,
            shift_x=np.array([r["shift_x"] for r in rows]), shift_y=np.array([r["shift_y"] for r in rows]),
            sensors=[x.sensor for x in srcs], mode=s.mode, with_lms=s.with_lms)
        out["tile_id"] = np.array([str(r["tile_id"]) for r in rows], dtype=object)
        out["sensor"] = np.array([x.sensor for x in srcs], dtype=object)
        out["epoch"] = np.array([r["epoch"] for r in rows], dtype=np.int32)
        out["ms_shift_x"] = np.array([r["shift_x"] for r in rows], dtype=np.float64)  # for samples.add_lms
        out["ms_shift_y"] = np.array([r["shift_y"] for r in rows], dtype=np.float64)
        return out

    def _count_filtered(self, srcs: list[Source], blank: np.ndarray, low: np.ndarray) -> None:
        for src, b, lo in zip(srcs, blank, low, strict=True):
            if b or lo:
                self.filtered[(src.scene_id, "blank" if b else "nodata")] += 1

    def _report(self, skipped: list[SkippedRead]) -> None:
        """Send this batch's skipped reads and the filter counts so far to the log actor."""
        if self.log is None or not (skipped or self.filtered):
            return
        import ray

        ray.get(self.log.record.remote(skipped, dict(self.filtered)))
        self.filtered.clear()
        self.skipped.clear()  # the log has them now

    def _empty(self) -> dict[str, np.ndarray]:
        """A zero-row batch with the right columns and shapes (every tile was dropped)."""
        s = self.settings
        shapes = samples.sample_shapes(s.mode, s.pan_shape, s.ms_shape, s.n_bands, s.ratio, s.with_lms)
        out = {k: np.zeros((0, *v), np.float32) for k, v in shapes.items()}
        out.update(tile_id=np.array([], dtype=object), sensor=np.array([], dtype=object),
                   epoch=np.array([], dtype=np.int32), ms_shift_x=np.array([], dtype=np.float64),
                   ms_shift_y=np.array([], dtype=np.float64))
        return out

    def __del__(self) -> None:
        cache = getattr(self, "cache", None)
        if cache is not None:
            cache.close()
