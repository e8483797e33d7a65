"""A tile manifest -> a Ray Dataset of ``{pan, ms, lms, (gt)}`` samples, one epoch at a time.

The driver does the cheap work on the manifest (a table of small rows):

1. **select** rows by split, sensor, band count or names, tile size and the
   ingest's ``valid_fraction``; tiles of different band counts, tile sizes or
   ratios cannot share a batch, so a selection that mixes them is an error
   that names the filters that fix it;
2. **shuffle** *before* any pixel is read, so reading stays a bounded
   stream: a windowed shuffle of square scene regions drawn from
   ``(seed, epoch)`` (:mod:`.order`). A global shuffle over an archive of
   more files than the open-file cache holds reopens a file for almost every
   tile (measured: half the speed on 128 local files with 64 kept open, and
   worse on S3, where an open costs several requests); whole scenes as the
   shuffle unit fail the same way on large scenes, whose windows are
   gigabytes of decoded blocks (each 64-px MS window would decode a 256-px
   MS block that 15 other tiles share: 0.3x the speed in
   :mod:`benchmarks.bench_stream`, "large scenes"). Several
   epochs can be chained in
   one Dataset (rows carry their ``epoch``): a Ray Train run passes
   ``stream.dataset(range(first_epoch, epochs))`` as its dataset and its
   workers iterate their shard once, reading epoch boundaries from the
   ``epoch`` column (a resumed run starts at its checkpoint's epoch);
3. **slim** the rows to what a reader needs per tile (a source index, the two
   window corners, the shift, the epoch, the tile id): the per-scene part
   (URIs, bands, bits, nodata) goes once to each reader as a
   :class:`~.reader.Source` table. The rows that sit in the object store are
   then under 100 bytes a tile (tens of MB for a million tiles).

Ray Data then runs :class:`~.reader.TileReader` over blocks of
:attr:`TileStream.block_tiles` rows on a fixed pool of actors
(``ActorPoolStrategy``, a few read tasks queued on each) with streaming
execution: backpressure keeps at most a few blocks per operator in flight and
``object_store_bytes`` caps what the stream may hold in the object store, so
memory does not grow with the archive. No full scene is read, nothing is
materialised. Order: with ``deterministic`` (default), Ray Data preserves
block order, so the same ``(seed, epoch)`` yields the same sample order,
whatever the number of workers; turn it off for a little more throughput.

Skipped reads (files gone or corrupt after ingest) are kept by the stream's
:class:`~.skips.SkipLog` actor: :meth:`TileStream.skipped` returns them as a
table, :meth:`TileStream.filtered` counts tiles dropped as blank or nodata.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossdiff.models.sensors import get_sensor
from crossdiff.platform.archive.filesystems import StorageOptions, is_s3, resolve_credentials
from crossdiff.platform.archive.manifest import read_manifest
from crossdiff.platform.stream import samples
from crossdiff.platform.stream.order import epoch_order, shuffle_regions, window_cache_mb
from crossdiff.platform.stream.reader import CREDENTIAL_ENV, ReaderSettings, Source, TileReader
from crossdiff.platform.stream.skips import skipped_table, start_skip_log

# Tiles per read block when the config leaves it open. Every block costs the
# stream a task, an object and the executor's and consumer's handling of it,
# whatever its size, and one reader decodes the storage blocks its tiles
# share (a 256-px MS block holds the MS windows of 16 tiles) where two
# readers of neighbouring blocks decode them twice; so blocks are as large
# as BLOCK_BYTES allows, up to 256 tiles (a shuffle window of small scenes).
# Measured on 2 cores, 2 readers, 256-px tiles without lms (1,024 tiles read
# 4 times, or 4,096 tiles of 4096-px scenes): 64-tile blocks 1,120-1,330
# tiles/s, 128 1,320-1,400, 256 1,500-1,600 (large scenes: 1,110-1,330 against
# 1,580-2,010); CPU a tile, every process counted, 1.43-1.69 ms against
# 0.98-1.28. Large tiles are capped by bytes: a reader holds its block in a
# few copies while it builds and stores it, and blocks land in object-store
# pages that stay resident once touched. With lms (2.5 MB a tile) blocks of 64
# tiles made an 8x archive's peak memory 1.23-1.37 times the 1x one's, blocks
# of 32 1.18 times. Block sizes are powers of two, so power-of-two batches
# never straddle two blocks; a short stream gets smaller blocks, two for
# every reader.
MAX_BLOCK_TILES = 256
BLOCK_BYTES = 96 << 20
# The columns beside the sample arrays; the shifts let a consumer compute lms itself (samples.add_lms).
META_COLUMNS = ("tile_id", "sensor", "epoch", "ms_shift_x", "ms_shift_y")


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """What to stream and how (unknown keys are errors: it is a dataclass).

    Attributes:
        split: "train", "val", "test", or None for every split.
        sensors: keep these sensors (any spelling ``get_sensor`` knows); None keeps all.
        bands: keep tiles with this many MS bands (int) or exactly these band names.
        tile: keep tiles of this PAN size (pixels); None requires one size.
        mode: "original" (stage 1) or "reduced" (Wald pairs for stage 2).
        seed: shuffle seed; the order of epoch ``e`` is a function of ``(seed, e)``.
        shuffle: False streams in manifest order (evaluation).
        shuffle_window: regions per shuffle window; None shuffles all tiles globally.
        shuffle_region: side of a shuffle region in PAN pixels (scenes are cut
            into squares of this size, aligned to the scene's first pixel);
            None makes every scene one region.
        min_manifest_valid: drop rows whose ingest ``valid_fraction`` is lower (nulls kept).
        min_valid: drop tiles whose read pixels are less valid than this (see samples).
        drop_blank: drop tiles with a constant PAN or constant MS.
        columns: output only these columns (None: all); a consumer that needs
            a few drops the rest in the readers, without another Ray Data step.
        with_lms: compute ``lms`` in original mode (reduced mode always does);
            False leaves it to the consumer, on its own device (:func:`.samples.add_lms`).
        batch_size: tiles per read task and output block (consumers re-batch
            freely); None: ``MAX_BLOCK_TILES``, or the largest power of two
            whose samples fit in ``BLOCK_BYTES``.
        workers: reader actors; None uses every CPU of the cluster.
        tasks_in_flight: read tasks queued on each reader, so one is ready
            the moment the last finishes (Ray Data's default is 2).
        cpus_per_worker: CPUs each reader reserves (fractions share cores).
        retries: extra attempts of a failed tile read before it is skipped.
        backoff_s: first retry delay, doubled at each retry.
        max_open_files: open rasterio datasets kept per reader (LRU).
        gdal_cache_mb: GDAL block cache per reader; None sizes it to hold a
            shuffle window's decoded pixels (:func:`window_cache_mb`).
        deterministic: preserve block order (reproducible sample order).
        object_store_bytes: cap on the object store memory the stream uses; None
            lets Ray Data pick its default share.
    """

    split: str | None = "train"
    sensors: Sequence[str] | None = None
    bands: int | Sequence[str] | None = None
    tile: int | None = None
    mode: str = "original"
    seed: int = 0
    shuffle: bool = True
    shuffle_window: int | None = 16
    shuffle_region: int | None = 2048
    min_manifest_valid: float = 0.0
    min_valid: float = 0.95
    drop_blank: bool = True
    columns: Sequence[str] | None = None
    with_lms: bool = True
    batch_size: int | None = None
    workers: int | None = None
    tasks_in_flight: int = 4
    cpus_per_worker: float = 1.0
    retries: int = 2
    backoff_s: float = 0.2
    max_open_files: int = 64
    gdal_cache_mb: int | None = None
    deterministic: bool = True
    object_store_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in samples.MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {samples.MODES}")
        positive = (self.batch_size, self.tasks_in_flight, self.workers)
        if any(v is not None and v < 1 for v in positive):
            raise ValueError(f"batch_size ({self.batch_size}), tasks_in_flight ({self.tasks_in_flight}) and "
                             f"workers ({self.workers}) must be positive")
        if not 0.0 <= self.min_valid <= 1.0 or not 0.0 <= self.min_manifest_valid <= 1.0:
            raise ValueError("min_valid and min_manifest_valid are fractions in [0, 1]")
        if self.shuffle_window is not None and self.shuffle_window < 1:
            raise ValueError(f"shuffle_window must be a positive number of regions or None, got {self.shuffle_window}")
        if self.shuffle_region is not None and self.shuffle_region < 1:
            raise ValueError(f"shuffle_region must be a positive PAN pixel count or None, got {self.shuffle_region}")
        if self.gdal_cache_mb is not None and self.gdal_cache_mb < 1:
            raise ValueError(f"gdal_cache_mb must be a positive number of MB or None, got {self.gdal_cache_mb}")
        if self.retries < 0 or self.backoff_s < 0 or self.cpus_per_worker <= 0:
            raise ValueError("retries and backoff_s must be >= 0 and cpus_per_worker > 0")
        if isinstance(self.sensors, str):
            object.__setattr__(self, "sensors", (self.sensors,))
        if self.columns is not None:
            have = {*samples.sample_shapes(self.mode, (1, 1), (1, 1), 1, 1, self.with_lms), *META_COLUMNS}
            unknown = [c for c in self.columns if c not in have]
            if unknown or not self.columns:
                raise ValueError(f"columns {list(self.columns)}: this stream has only {sorted(have)}")
            object.__setattr__(self, "columns", tuple(self.columns))


def _power_of_two_below(n: int) -> int:
    """The largest power of two <= ``n``, and 1 for ``n`` < 1."""
    return 1 << (max(n, 1).bit_length() - 1)


def _sensor_name(name: str) -> str:
    try:
        return get_sensor(name).name
    except KeyError:
        return name


def select_tiles(table: pa.Table, config: StreamConfig) -> pa.Table:
    """The manifest rows a stream reads, checked to fit in one batch shape.

    Raises:
        ValueError: nothing matches, or the rows mix band counts, tile sizes or
            ratios (with the filter values that would fix it).
    """
    t = table
    if config.split is not None:
        t = t.filter(pc.equal(t["split"], config.split))
    if config.sensors is not None:
        t = t.filter(pc.is_in(t["sensor"], pa.array(sorted({_sensor_name(s) for s in config.sensors}))))
    if config.min_manifest_valid > 0:
        valid = pc.fill_null(t["valid_fraction"], 1.0)
        t = t.filter(pc.greater_equal(valid, config.min_manifest_valid))
    if config.tile is not None:
        t = t.filter(pc.and_(pc.equal(t["pan_height"], config.tile), pc.equal(t["pan_width"], config.tile)))
    if isinstance(config.bands, int):
        t = t.filter(pc.equal(pc.list_value_length(t["bands"]), config.bands))
    elif config.bands is not None:
        want = list(config.bands)
        t = t.filter(pa.array([b == want for b in t["bands"].to_pylist()], pa.bool_()))
    if t.num_rows == 0:
        have = Counter(zip(table["split"].to_pylist(), table["sensor"].to_pylist(), strict=True))
        raise ValueError(f"no tiles match split={config.split!r} sensors={config.sensors} bands={config.bands} "
                         f"tile={config.tile}; the manifest has (split, sensor): tiles {dict(have)}")
    shapes = Counter(zip(pc.list_value_length(t["bands"]).to_pylist(), t["pan_height"].to_pylist(),
                         t["pan_width"].to_pylist(), t["ratio"].to_pylist(), strict=True))
    if len(shapes) > 1:
        by_sensor = Counter(zip(t["sensor"].to_pylist(), pc.list_value_length(t["bands"]).to_pylist(),
                                t["pan_height"].to_pylist(), t["ratio"].to_pylist(), strict=True))
        listing = ", ".join(f"{s}: {c} bands, tile {h}, ratio {r} ({n} tiles)" for (s, c, h, r), n in by_sensor.items())
        raise ValueError(f"the selected tiles cannot share a batch: {listing}. Pass bands=<count> or "
                         "sensors=[...] (and tile=<size> if sizes differ) to stream one kind at a time")
    return t


@contextlib.contextmanager
def _data_context(config: StreamConfig) -> Iterator[None]:
    """Make Datasets created inside carry the stream's execution options."""
    from ray.data import DataContext
    from ray.data._internal.execution.interfaces import ExecutionResources

    ctx = copy.deepcopy(DataContext.get_current())  # .copy() trips deprecated setters
    ctx.execution_options.preserve_order = config.deterministic
    if config.object_store_bytes is not None:
        ctx.execution_options.resource_limits = ExecutionResources(object_store_memory=config.object_store_bytes)
    previous = DataContext._set_current(ctx)
    try:
        yield
    finally:
        DataContext._set_current(previous)


class TileStream:
    """Samples of a tile manifest as Ray Datasets, with a record of what was skipped.

    Args:
        manifest: a manifest URI (local or ``s3://``) or a table of ``TILE_SCHEMA``.
        config: selection and streaming settings.
        storage: object-store endpoint/profile for the manifest and the rasters.

    Ray must be up (:func:`crossdiff.platform.ray_runtime.ensure_ray`).
    """

    def __init__(self, manifest: str | os.PathLike | pa.Table, config: StreamConfig | None = None,
                 storage: StorageOptions | None = None) -> None:
        self.config = config or StreamConfig()
        self.storage = storage or StorageOptions()
        table = manifest if isinstance(manifest, pa.Table) else read_manifest(os.fspath(manifest), self.storage)
        self.tiles = select_tiles(table, self.config)
        first = self.tiles.slice(0, 1).to_pylist()[0]
        self.n_bands, self.ratio = len(first["bands"]), int(first["ratio"])
        self.pan_shape = (int(first["pan_height"]), int(first["pan_width"]))
        self.ms_shape = (int(first["ms_height"]), int(first["ms_width"]))
        self._rows, sources = self._slim_rows(self.tiles)
        self._regions = shuffle_regions(self._rows["src"].to_numpy(), self._rows["pan_row"].to_numpy(),
                                        self._rows["pan_col"].to_numpy(), self.config.shuffle_region)
        self.settings = self._settings(tuple(sources))
        self._log = None

    @property
    def block_tiles(self) -> int:
        """Tiles per read task and output block (``config.batch_size``, or the default rule above).

        Without ``batch_size`` a short stream uses smaller blocks: two for every reader (:meth:`read_block_tiles`).
        """
        if self.config.batch_size is not None:
            return self.config.batch_size
        shapes = samples.sample_shapes(self.config.mode, self.pan_shape, self.ms_shape, self.n_bands, self.ratio,
                                       self.config.with_lms)
        tile_bytes = 4 * sum(int(np.prod(s)) for s in shapes.values())
        return _power_of_two_below(min(MAX_BLOCK_TILES, BLOCK_BYTES // tile_bytes))

    @property
    def workers(self) -> int:
        """Reader actors of the stream's pool (``config.workers``, or every CPU of the cluster)."""
        import ray

        c = self.config
        return c.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // c.cpus_per_worker))

    def read_block_tiles(self, n_rows: int) -> int:
        """Tiles per block of a stream of ``n_rows`` rows: :attr:`block_tiles`, smaller for a short stream."""
        if self.config.batch_size is not None:
            return self.config.batch_size
        return min(self.block_tiles, _power_of_two_below(n_rows // (2 * self.workers)))  # two blocks a reader

    @property
    def n_tiles(self) -> int:
        return self.tiles.num_rows

    @property
    def sensors(self) -> list[str]:
        return sorted(set(self.tiles["sensor"].to_pylist()))

    def _slim_rows(self, tiles: pa.Table) -> tuple[pa.Table, list[Source]]:
        meta = ["scene_id", "sensor", "bits", "nodata", "dtype", "pan_uri", "pan_band", "ms_uris", "ms_band_indexes"]
        index: dict[str, int] = {}
        sources: list[Source] = []
        for row in tiles.select(meta).to_pylist():
            if row["scene_id"] not in index:
                index[row["scene_id"]] = len(sources)
                sources.append(Source.from_row(row))
        src = pa.array([index[s] for s in tiles["scene_id"].to_pylist()], pa.int32())
        rows = pa.table({"src": src, "tile_id": tiles["tile_id"], "pan_row": tiles["pan_row"],
                         "pan_col": tiles["pan_col"], "ms_row": tiles["ms_row"], "ms_col": tiles["ms_col"],
                         "shift_x": tiles["ms_shift_x"], "shift_y": tiles["ms_shift_y"]})
        return rows, sources

    def _settings(self, sources: tuple[Source, ...]) -> ReaderSettings:
        c = self.config
        creds = None
        if any(is_s3(u) for s in sources for u in s.uris):
            creds = self._worker_credentials(next(u for s in sources for u in s.uris if is_s3(u)))
        storage = dataclasses.replace(self.storage, endpoint_url=self.storage.resolved_endpoint(), profile=None)
        return ReaderSettings(sources=sources, pan_shape=self.pan_shape, ms_shape=self.ms_shape,
                              n_bands=self.n_bands, ratio=self.ratio, mode=c.mode,
                              with_lms=c.with_lms, min_valid=c.min_valid, drop_blank=c.drop_blank,
                              columns=c.columns,
                              retries=c.retries, backoff_s=c.backoff_s, max_open_files=c.max_open_files,
                              gdal_cache_mb=c.gdal_cache_mb or self._cache_mb(sources), storage=storage,
                              credentials=creds)

    def _cache_mb(self, sources: tuple[Source, ...]) -> int:
        """The auto-sized GDAL cache: a shuffle window of the largest region these scenes have."""
        t = self.tiles
        extent = max(pc.max(pc.add(t["pan_row"], t["pan_height"])).as_py(),
                     pc.max(pc.add(t["pan_col"], t["pan_width"])).as_py())
        region = min(extent, self.config.shuffle_region or extent)
        itemsize = max(np.dtype(s.dtype).itemsize for s in sources)
        return window_cache_mb(self.config.shuffle_window, region, self.ratio, self.n_bands, itemsize)

    def _worker_credentials(self, uri: str) -> dict[str, str] | None:
        """Credentials resolved here (profile, role, environment), as variables for the workers."""
        creds = resolve_credentials(self.storage, uri)
        if creds is None:  # anonymous access: nothing to hand over
            return None
        env = dict(zip(CREDENTIAL_ENV, (creds["key"], creds["secret"], creds.get("token", ""), creds["region"]),
                       strict=True))
        return {k: v for k, v in env.items() if v}

    def _ensure_log(self) -> Any:
        if self._log is None:
            self._log = start_skip_log()
        return self._log

    def order(self, epochs: int | Sequence[int]) -> pa.Table:
        """The slim rows of the given epochs, each in its own seeded order, with an ``epoch`` column."""
        epochs = [epochs] if isinstance(epochs, (int, np.integer)) else list(epochs)
        if not epochs:
            raise ValueError("give at least one epoch")
        parts = []
        for e in epochs:
            idx = np.arange(self._rows.num_rows) if not self.config.shuffle else epoch_order(
                self._regions, self.config.seed, e, self.config.shuffle_window)
            part = self._rows.take(pa.array(idx))
            parts.append(part.append_column("epoch", pa.array(np.full(part.num_rows, e, np.int32))))
        return pa.concat_tables(parts)

    def dataset(self, epochs: int | Sequence[int] = 0) -> Any:
        """A streaming ``ray.data.Dataset`` of samples for one epoch or a run of epochs.

        Columns: ``pan``, ``ms``, ``lms`` (and ``gt`` in reduced mode) float32 in
        [-1, 1] with the shapes of :mod:`.samples`; ``tile_id``, ``sensor``, ``epoch``,
        and the manifest's ``ms_shift_x``/``ms_shift_y``, with which a consumer of a
        stream without ``lms`` computes it on its own device (:func:`.samples.add_lms`).
        """
        import ray
        import ray.data

        c = self.config
        rows = self.order(epochs)
        size = self.read_block_tiles(rows.num_rows)
        blocks = [rows.slice(i, size) for i in range(0, rows.num_rows, size)]
        with _data_context(c):
            ds = ray.data.from_arrow(blocks)
            return ds.map_batches(
                TileReader, batch_size=size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=self.workers, max_tasks_in_flight_per_actor=c.tasks_in_flight),
                num_cpus=c.cpus_per_worker,
                fn_constructor_kwargs={"settings": self.settings, "log": self._ensure_log()})

    def skipped(self) -> pa.Table:
        """Tiles whose read failed after every retry, so far (see :data:`~.skips.SKIP_SCHEMA`)."""
        return skipped_table(self._ensure_log())

    def filtered(self) -> dict[tuple[str, str], int]:
        """Tiles dropped by the pixel filter so far, by ``(scene_id, "blank" | "nodata")``."""
        import ray

        return ray.get(self._ensure_log().filtered.remote())


def tile_dataset(manifest: str | os.PathLike | pa.Table, *, epoch: int | Sequence[int] = 0,
                 storage: StorageOptions | None = None, **config: Any) -> Any:
    """Shortcut: ``TileStream(manifest, StreamConfig(**config), storage).dataset(epoch)``.

    Use :class:`TileStream` when you want the record of skipped reads.
    """
    return TileStream(manifest, StreamConfig(**config), storage).dataset(epoch)
