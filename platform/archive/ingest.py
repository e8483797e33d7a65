"""``crossdiff ingest``: discover an archive, check every scene, write the tile manifest.

Three levels, as elsewhere on the platform: :func:`process_scene` checks and
tiles one scene and never raises (a bad scene becomes a quarantine row);
:func:`run_scenes` maps it over the scenes in-process or as Ray tasks with a
progress bar; :func:`ingest_archive` is the driver that discovers, runs,
writes the three Parquet tables and prints a summary.

Ray is used for archives of more than ``IngestConfig.ray_min_scenes`` scenes
(or when ``workers`` asks for it), connected through the platform's one front
door (``crossdiff.platform.ray_runtime.ensure_ray``): the cluster named by
``ray_address`` / ``RAY_ADDRESS`` is joined, otherwise a private local one is
started with ``workers`` CPUs and stopped afterwards. Each task reads only headers,
one probe block per file and a decimated MS (see :mod:`.masks`), so tasks are
short and I/O bound; results are a few hundred small rows per scene.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from crossdiff.platform.archive import masks, tiling
from crossdiff.platform.archive.discovery import SceneRef, discover
from crossdiff.platform.archive.filesystems import StorageOptions
from crossdiff.platform.archive.manifest import (
    QUARANTINE_SCHEMA,
    SCENE_SCHEMA,
    TILE_SCHEMA,
    Quarantine,
    QuarantineError,
    assign_split,
    build_table,
    manifest_hash,
    quarantine_table,
    sidecar_paths,
    write_parquet,
)
from crossdiff.platform.archive.validate import SceneInfo, inspect_scene


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    """Settings of one ingest (saved in the manifest's file metadata).

    Attributes:
        tile: PAN tile size (pixels); a multiple of every scene's ratio.
        stride: step between tiles (default: ``tile``).
        stats: compute valid fractions from a decimated MS read; off reads headers only.
        decimation: MS decimation of that read.
        min_tile_valid: tiles with a smaller valid fraction are not written.
        min_scene_valid: scenes with a smaller valid fraction are quarantined (nodata / cloud).
        min_overlap: smallest share of the PAN footprint MS must cover.
        ratio_tolerance: relative tolerance of the measured PAN/MS ratio.
        splits: train/val/test fractions of scenes.
        split_salt: changes the (deterministic) split draw.
        landsat_bands: MS band numbers for Landsat folders found by their MTL.
        ray_min_scenes: with ``workers=None``, archives up to this size run in-process.
    """

    tile: int = 256
    stride: int | None = None
    stats: bool = True
    decimation: int = 4
    min_tile_valid: float = 0.01
    min_scene_valid: float = 0.05
    min_overlap: float = 0.9
    ratio_tolerance: float = 0.01
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_salt: str = "crossdiff"
    landsat_bands: tuple[int, ...] | None = None
    ray_min_scenes: int = 64

    def __post_init__(self) -> None:
        if self.tile <= 0 or (self.stride is not None and self.stride <= 0):
            raise ValueError(f"tile {self.tile} and stride {self.stride} must be positive")
        if self.tile % 2 or (self.stride or self.tile) % 2:
            raise ValueError(f"tile {self.tile} / stride {self.stride} must be even (PAN/MS ratios are >= 2)")
        if not 0 <= self.min_tile_valid <= 1 or not 0 <= self.min_scene_valid <= 1:
            raise ValueError("min_tile_valid and min_scene_valid are fractions in [0, 1]")
        if self.decimation < 1:
            raise ValueError(f"decimation must be >= 1, got {self.decimation}")
        assign_split("check", self.splits)  # validates the fractions


@dataclasses.dataclass
class SceneResult:
    """What one scene contributes: its tiles (an Arrow table, compact to ship back from a Ray
    worker) and a scene row, or one quarantine row."""

    scene_id: str
    tiles: pa.Table | None = None
    scene: dict[str, Any] | None = None
    quarantine: Quarantine | None = None
    tiles_dropped: int = 0


@dataclasses.dataclass
class IngestResult:
    """Where the tables went and what they hold."""

    paths: dict[str, str]
    scenes_found: int
    scenes_ok: int
    tiles: int
    tiles_dropped: int
    tiles_per_split: dict[str, int]
    quarantined: dict[str, int]
    manifest_hash: str
    content_hash: str
    mode: str
    stats: str
    seconds: float


def _tile_rows(info: SceneInfo, windows: list[tiling.TileWindow], split: str,
               grid: masks.ValidityGrid | None, min_valid: float) -> tuple[list[dict], int]:
    rows, dropped = [], 0
    ref = info.ref
    for w in windows:
        frac = grid.window_fraction(w.ms_row, w.ms_col, w.ms_height, w.ms_width) if grid else None
        if frac is not None and frac < min_valid:
            dropped += 1
            continue
        rows.append({
            "tile_id": f"{ref.scene_id}/r{w.pan_row}_c{w.pan_col}", "scene_id": ref.scene_id, "split": split,
            "sensor": info.sensor, "bands": list(info.bands), "bits": info.bits, "dtype": info.dtype,
            "ratio": info.ratio, "nodata": info.nodata, "pan_uri": info.pan.uri, "pan_band": 1,
            "ms_uris": list(info.ms_band_uris), "ms_band_indexes": list(info.ms_band_indexes),
            "pan_row": w.pan_row, "pan_col": w.pan_col, "pan_height": w.pan_height, "pan_width": w.pan_width,
            "ms_row": w.ms_row, "ms_col": w.ms_col, "ms_height": w.ms_height, "ms_width": w.ms_width,
            "ms_shift_x": w.shift_x, "ms_shift_y": w.shift_y, "valid_fraction": frac,
        })
    return rows, dropped


def _scene_row(info: SceneInfo, split: str, windows: list[tiling.TileWindow], grid: masks.ValidityGrid | None,
               n_tiles: int) -> dict[str, Any]:
    ref, meta = info.ref, info.ref.metadata
    sx, sy, tx, ty = info.pan_to_ms
    return {
        "scene_id": ref.scene_id, "split": split, "layout": ref.layout, "source_uri": ref.source_uri,
        "sensor": info.sensor, "bands": list(info.bands), "bits": info.bits, "dtype": info.dtype,
        "ratio": info.ratio, "ratio_x": info.ratio_x, "ratio_y": info.ratio_y, "crs": info.crs,
        "nodata": info.nodata, "pan_uri": info.pan.uri, "pan_band": 1, "ms_uris": list(info.ms_band_uris),
        "ms_band_indexes": list(info.ms_band_indexes), "mask_uri": ref.mask_uri, "mask_kind": ref.mask_kind,
        "pan_width": info.pan.width, "pan_height": info.pan.height, "ms_width": info.ms.width,
        "ms_height": info.ms.height, "pan_transform": list(info.pan.transform),
        "ms_transform": list(info.ms.transform), "pan_origin_ms_x": tx, "pan_origin_ms_y": ty,
        "ms_shift_x": windows[0].shift_x if windows else None,
        "ms_shift_y": windows[0].shift_y if windows else None,
        "overlap_fraction": info.overlap_fraction,
        "valid_fraction": grid.valid_fraction if grid else None,
        "nodata_fraction": grid.nodata_fraction if grid else None,
        "cloud_fraction": grid.cloud_fraction if grid else None,
        "n_tiles": n_tiles, "acquired": str(meta["acquired"]) if meta.get("acquired") else None,
        "metadata_json": json.dumps(meta, sort_keys=True, default=str),
    }


def _check_statistics(info: SceneInfo, grid: masks.ValidityGrid, config: IngestConfig) -> None:
    if grid.valid_fraction < config.min_scene_valid:
        usable = 1.0 - grid.nodata_fraction
        if usable < config.min_scene_valid:
            raise QuarantineError("nodata", f"{grid.nodata_fraction:.1%} of the MS is nodata (valid "
                                  f"{grid.valid_fraction:.1%} < {config.min_scene_valid:.0%})", info.ms.uri,
                                  "stats")
        raise QuarantineError("cloud", f"{grid.cloud_fraction:.1%} of the MS is cloud-masked by "
                              f"{info.ref.mask_uri} (valid {grid.valid_fraction:.1%} < "
                              f"{config.min_scene_valid:.0%})", info.ref.mask_uri or "", "stats")
    limit = 2.0**info.bits - 1
    if grid.max_value > limit:
        raise QuarantineError("bit_depth", f"MS values reach {grid.max_value:.0f} but {info.bits}-bit data "
                              f"stops at {limit:.0f}; fix 'bits' in {info.ref.source_uri}", info.ms.uri,
                              "stats")


def process_scene(ref: SceneRef, config: IngestConfig, options: StorageOptions | None = None) -> SceneResult:
    """Check, measure and tile one scene; any failure becomes a quarantine row."""
    try:
        info = inspect_scene(ref, options, min_overlap=config.min_overlap,
                             ratio_tolerance=config.ratio_tolerance)
        try:
            windows = tiling.plan_windows((info.pan.height, info.pan.width), (info.ms.height, info.ms.width),
                                          info.pan_to_ms, info.ratio, config.tile, config.stride)
        except ValueError as exc:
            raise QuarantineError("ratio", f"this scene's ratio {info.ratio} does not fit the tiling: {exc}",
                                  ref.pan_uri) from exc
        if not windows:
            raise QuarantineError("too_small", f"no {config.tile}-pixel PAN tile fits inside the PAN/MS "
                                  f"overlap ({info.pan.width}x{info.pan.height} PAN); use a smaller --tile",
                                  ref.pan_uri)
        grid = masks.read_validity(info, options, config.decimation) if config.stats else None
        if grid is not None:
            _check_statistics(info, grid, config)
        split = assign_split(ref.scene_id, config.splits, config.split_salt)
        tiles, dropped = _tile_rows(info, windows, split, grid, config.min_tile_valid)
        return SceneResult(ref.scene_id, pa.Table.from_pylist(tiles, schema=TILE_SCHEMA),
                           _scene_row(info, split, windows, grid, len(tiles)),
                           tiles_dropped=dropped)
    except QuarantineError as exc:
        q = Quarantine(ref.scene_id, exc.reason, exc.detail, exc.uri or ref.source_uri, exc.stage, ref.layout)
    except Exception as exc:  # a bug, not bad data: still one row, never an aborted archive
        q = Quarantine(ref.scene_id, "internal", f"{type(exc).__name__}: {exc}", ref.source_uri, "validate",
                       ref.layout)
    return SceneResult(ref.scene_id, quarantine=q)


def run_scenes(refs: list[SceneRef], config: IngestConfig, options: StorageOptions | None, *, use_ray: bool,
               workers: int | None = None, ray_address: str | None = None,
               on_result: Callable[[SceneResult], None] | None = None) -> list[SceneResult]:
    """Process every scene, in-process or as Ray tasks (bounded number in flight)."""
    results: list[SceneResult] = []

    def done(r: SceneResult) -> None:
        results.append(r)
        if on_result:
            on_result(r)

    if not use_ray:
        for ref in refs:
            done(process_scene(ref, config, options))
        return results
    import ray

    from crossdiff.platform.ray_runtime import ensure_ray

    started = ensure_ray(ray_address, num_cpus=workers or None, log_to_driver=False)
    try:
        # Half a CPU per task: a task mostly waits on header/probe reads, and clusters
        # with fractional-CPU nodes (see DESIGN.md) can still schedule it.
        task = ray.remote(num_cpus=0.5, max_retries=2)(process_scene)
        window = 8 * max(1, int(ray.cluster_resources().get("CPU", 1)))
        pending: dict[Any, SceneRef] = {}
        todo = iter(refs)
        for ref in todo:
            pending[task.remote(ref, config, options)] = ref
            if len(pending) >= window:
                break
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for obj in ready:
                ref = pending.pop(obj)
                try:
                    done(ray.get(obj))
                except Exception as exc:  # the worker died: quarantine, keep going
                    done(SceneResult(ref.scene_id, quarantine=Quarantine(
                        ref.scene_id, "internal", f"Ray task failed: {type(exc).__name__}: {exc}",
                        ref.source_uri, "validate", ref.layout)))
                nxt = next(todo, None)
                if nxt is not None:
                    pending[task.remote(nxt, config, options)] = nxt
    finally:
        if started:
            ray.shutdown()
    return results


def _dedupe(refs: Iterable[SceneRef]) -> tuple[list[SceneRef], list[Quarantine]]:
    seen: dict[str, SceneRef] = {}
    dups = []
    for ref in sorted(refs, key=lambda r: (r.scene_id, r.source_uri)):
        if ref.scene_id in seen:
            detail = f"{ref.source_uri} reuses the id of {seen[ref.scene_id].source_uri}; rename one"
            dups.append(Quarantine(ref.scene_id, "duplicate", detail, ref.source_uri, "discovery",
                                   ref.layout))
        else:
            seen[ref.scene_id] = ref
    return list(seen.values()), dups


def ingest_archive(archive: str, out: str, config: IngestConfig | None = None,
                   options: StorageOptions | None = None, *, workers: int | None = None,
                   ray_address: str | None = None, progress: bool = True, console: Any = None
                   ) -> IngestResult:
    """Discover, check and tile an archive; write manifest, scenes and quarantine tables.

    Args:
        archive: local folder or ``s3://bucket/prefix``.
        out: manifest path (local or ``s3://``); the side tables go beside it.
        config: ingest settings.
        options: object-store settings for reading the archive and writing ``out``.
        workers: 0 runs in-process; N uses Ray (a local cluster gets N CPUs);
            None picks Ray only for archives above ``config.ray_min_scenes``.
        ray_address: Ray cluster to join (default ``RAY_ADDRESS``, else a new local instance).
        progress: show a progress bar and the summary.
        console: a ``rich.console.Console`` to print to (default: stderr).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from crossdiff.platform.archive.report import print_summary

    config = config or IngestConfig()
    console = console or Console(stderr=True)
    t0 = time.monotonic()
    found = discover(archive, options, config.landsat_bands)
    refs, dups = _dedupe(found.scenes)
    use_ray = workers != 0 and (workers is not None or len(refs) > config.ray_min_scenes)
    with Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, disable=not progress,
                  transient=True) as bar:
        task = bar.add_task("", total=len(refs))

        def advance(r: SceneResult) -> None:
            bar.update(task, advance=1, description=r.scene_id if r.quarantine is None
                       else f"{r.scene_id}: {r.quarantine.reason}")

        results = run_scenes(refs, config, options, use_ray=use_ray, workers=workers, ray_address=ray_address,
                             on_result=advance)

    quarantined = found.problems + dups + [r.quarantine for r in results if r.quarantine]
    tiles = build_table([r.tiles for r in results if r.tiles is not None], TILE_SCHEMA)
    scenes = build_table([r.scene for r in results if r.scene], SCENE_SCHEMA)
    qtable = quarantine_table(quarantined)
    assert qtable.schema.equals(QUARANTINE_SCHEMA, check_metadata=False)
    digest = manifest_hash(tiles)
    info = {"archive": found.root, "config": dataclasses.asdict(config), "manifest_hash": digest,
            "content_hash": manifest_hash(tiles, ignore_locations=True),
            "stats": f"decimated MS read (every {config.decimation}-th MS pixel; overviews when present)"
            if config.stats else "none (headers only)"}
    paths = sidecar_paths(out)
    write_parquet(tiles, paths["tiles"], options, info)
    write_parquet(scenes, paths["scenes"], options, info)
    write_parquet(qtable, paths["quarantine"], options, info)
    result = IngestResult(
        paths=paths, scenes_found=len(found.scenes), scenes_ok=scenes.num_rows,
        tiles=tiles.num_rows, tiles_dropped=sum(r.tiles_dropped for r in results),
        tiles_per_split=dict(Counter(tiles.column("split").to_pylist())),
        quarantined=dict(Counter(q.reason for q in quarantined)), manifest_hash=digest,
        content_hash=info["content_hash"], mode="ray" if use_ray else "in-process", stats=info["stats"],
        seconds=time.monotonic() - t0)
    if progress:
        print_summary(result, quarantined, console)
    return result
