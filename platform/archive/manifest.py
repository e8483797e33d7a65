"""The Parquet tile manifest written by ``crossdiff ingest``, and its two side tables.

``crossdiff ingest ARCHIVE --out manifest.parquet`` writes three files:

``manifest.parquet`` (:data:`TILE_SCHEMA`): one row per training tile, i.e. a
PAN pixel window and the MS pixel window under it. Everything a reader needs
to fetch the pixels is in the row, so a Ray Data pipeline can shard rows
freely: for a row, read ``window(pan_col, pan_row, pan_width, pan_height)``
from band ``pan_band`` of ``pan_uri``, and for MS band ``i`` read band
``ms_band_indexes[i]`` of ``ms_uris[i]`` over
``window(ms_col, ms_row, ms_width, ms_height)`` (a multi-band MS file repeats
its URI; group equal URIs into one read). Open ``s3://`` URIs through
:mod:`crossdiff.platform.archive.filesystems` (GDAL ``/vsis3/``). Divide DNs by
``2**bits - 1``. ``pan_height == ratio * ms_height`` always.

Sub-pixel alignment: windows are integer pixel windows, but PAN and MS grids
need not share corners (Landsat-8's 15 m B8 grid is offset half a PAN pixel
from the 30 m grid). ``ms_shift_x/y`` is where the PAN window's top-left
corner falls inside the MS window, in MS pixels, measured from the MS window's
top-left corner through the files' actual geotransforms: ``(0, 0)`` for
corner-aligned products, ``(0.25, 0.25)`` for the Landsat-8 sample. In other
words the PAN tile's top-left corner sits at the fractional MS pixel position
``(ms_col + ms_shift_x, ms_row + ms_shift_y)`` (pixel-corner convention), so a
reader that wants MS exactly under the PAN tile samples MS at positions offset
by the shift (equivalently: moves the upsampled ``lms`` by ``-ratio * shift``
PAN pixels); one that ignores it is misregistered by that much. Readers that
need a margin for that resampling can widen the MS window by one pixel. The
per-scene offset of the PAN grid is in the scenes table (``pan_origin_ms_x/y``).

``valid_fraction`` is the share of the tile's MS footprint that is neither
nodata nor cloud, estimated from a decimated read (see
:mod:`crossdiff.platform.archive.masks`); tiles under the ingest's
``min_tile_valid`` are not written; filter further on this column.

``split`` is a deterministic function of ``scene_id`` (:func:`assign_split`):
every tile of a scene lands in the same split, whatever the archive order,
the storage (local or S3) or the number of workers.

``manifest.scenes.parquet`` (:data:`SCENE_SCHEMA`): one row per accepted scene,
with CRS, transforms, shapes, measured ratio, offsets and statistics; use it
for whole-scene jobs (inference, evaluation) and georeferenced outputs.

``manifest.quarantine.parquet`` (:data:`QUARANTINE_SCHEMA`): one row per
rejected scene (or unreadable archive) with a reason code from
:data:`REASONS` and a human-readable detail.

Rows are sorted (tiles by scene, row, column) so that identical inputs give
identical files; :func:`manifest_hash` fingerprints the content (optionally
ignoring where the files live) for lineage tags.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from crossdiff.platform.archive.filesystems import StorageOptions, get_filesystem, is_s3, normalize_uri

SCHEMA_VERSION = 1
METADATA_KEY = b"crossdiff.manifest"
SPLITS = ("train", "val", "test")

REASONS: dict[str, str] = {
    "credentials": "no credentials for the object store",
    "unreadable": "an object is missing or cannot be fetched (404, 403, network)",
    "corrupt": "a file is not a readable raster (garbage, truncated, bad blocks)",
    "metadata": "scene.json / STAC item / MTL missing, malformed or naming an unknown sensor",
    "crs_mismatch": "PAN and MS (or MS band files) disagree in CRS",
    "transform": "rotated, flipped or mutually inconsistent geotransforms",
    "no_overlap": "PAN and MS footprints do not (sufficiently) overlap",
    "ratio": "measured PAN/MS resolution ratio differs from the declared one",
    "band_count": "unexpected number of bands",
    "dtype": "data type unsupported or inconsistent between PAN and MS",
    "bit_depth": "declared bit depth impossible for the dtype or exceeded by the data",
    "nodata": "no (or too few) valid pixels: all nodata",
    "cloud": "too few valid pixels once the cloud mask is applied",
    "too_small": "no complete tile fits inside the PAN/MS overlap",
    "duplicate": "another scene already has this scene id",
    "internal": "unexpected error while ingesting (a bug: please report)",
}


def _f(name: str, type_: pa.DataType, doc: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


_STR_LIST = pa.list_(pa.string())
_TILE_FIELDS = [
    _f("tile_id", pa.string(), "unique tile key: '<scene_id>/r<pan_row>_c<pan_col>'"),
    _f("scene_id", pa.string(), "scene key, relative folder path or STAC item id"),
    _f("split", pa.string(), "train / val / test, a hash of scene_id (whole scenes per split)"),
    _f("sensor", pa.string(), "canonical sensor name from crossdiff.models.sensors"),
    _f("bands", _STR_LIST, "MS band names in channel order"),
    _f("bits", pa.int16(), "radiometric bit depth: normalise DNs by 2**bits - 1"),
    _f("dtype", pa.string(), "numpy dtype of PAN and MS pixels"),
    _f("ratio", pa.int16(), "PAN/MS resolution ratio; pan_height == ratio * ms_height"),
    _f("nodata", pa.float64(), "nodata value of the files, null when none is set", nullable=True),
    _f("pan_uri", pa.string(), "PAN raster: absolute path or s3:// URI"),
    _f("pan_band", pa.int16(), "1-based band index of PAN inside pan_uri"),
    _f("ms_uris", _STR_LIST, "one URI per MS band (a multi-band file repeats its URI)"),
    _f("ms_band_indexes", pa.list_(pa.int16()), "1-based band index inside the matching ms_uris entry"),
    _f("pan_row", pa.int32(), "PAN window top row (pixels)"),
    _f("pan_col", pa.int32(), "PAN window left column (pixels)"),
    _f("pan_height", pa.int32(), "PAN window height (pixels)"),
    _f("pan_width", pa.int32(), "PAN window width (pixels)"),
    _f("ms_row", pa.int32(), "MS window top row (MS pixels)"),
    _f("ms_col", pa.int32(), "MS window left column (MS pixels)"),
    _f("ms_height", pa.int32(), "MS window height (MS pixels)"),
    _f("ms_width", pa.int32(), "MS window width (MS pixels)"),
    _f("ms_shift_x", pa.float64(), "PAN window left edge minus MS window left edge, in MS pixels"),
    _f("ms_shift_y", pa.float64(), "PAN window top edge minus MS window top edge, in MS pixels"),
    _f("valid_fraction", pa.float32(), "share of the MS window neither nodata nor cloud "
       "(decimated estimate); null when statistics were off", nullable=True),
]
TILE_SCHEMA = pa.schema(_TILE_FIELDS, metadata={b"doc": b"CrossDiff tile manifest: one row per PAN window"})

_SCENE_FIELDS = [
    _f("scene_id", pa.string(), "scene key"),
    _f("split", pa.string(), "train / val / test"),
    _f("layout", pa.string(), "scene_folder, stac_item or band_files"),
    _f("source_uri", pa.string(), "scene.json, STAC item or MTL the scene was discovered from"),
    _f("sensor", pa.string(), "canonical sensor name"),
    _f("bands", _STR_LIST, "MS band names"),
    _f("bits", pa.int16(), "bit depth"),
    _f("dtype", pa.string(), "numpy dtype"),
    _f("ratio", pa.int16(), "declared PAN/MS ratio"),
    _f("ratio_x", pa.float64(), "measured MS/PAN pixel-size ratio along x"),
    _f("ratio_y", pa.float64(), "measured MS/PAN pixel-size ratio along y"),
    _f("crs", pa.string(), "CRS (EPSG code or WKT); null for a local grid without CRS", nullable=True),
    _f("nodata", pa.float64(), "nodata value, null when none", nullable=True),
    _f("pan_uri", pa.string(), "PAN raster"),
    _f("pan_band", pa.int16(), "1-based PAN band index"),
    _f("ms_uris", _STR_LIST, "one URI per MS band"),
    _f("ms_band_indexes", pa.list_(pa.int16()), "1-based band index per MS band"),
    _f("mask_uri", pa.string(), "cloud/quality mask raster, null when none", nullable=True),
    _f("mask_kind", pa.string(), "how the mask is decoded (see masks.py)", nullable=True),
    _f("pan_width", pa.int32(), "PAN raster width"),
    _f("pan_height", pa.int32(), "PAN raster height"),
    _f("ms_width", pa.int32(), "MS raster width"),
    _f("ms_height", pa.int32(), "MS raster height"),
    _f("pan_transform", pa.list_(pa.float64()), "PAN affine (a, b, c, d, e, f) as rasterio reports it"),
    _f("ms_transform", pa.list_(pa.float64()), "MS affine (a, b, c, d, e, f)"),
    _f("pan_origin_ms_x", pa.float64(), "PAN raster's top-left corner in MS pixel coordinates (x)"),
    _f("pan_origin_ms_y", pa.float64(), "PAN raster's top-left corner in MS pixel coordinates (y)"),
    _f("ms_shift_x", pa.float64(), "sub-MS-pixel shift of this scene's tiles (x)", nullable=True),
    _f("ms_shift_y", pa.float64(), "sub-MS-pixel shift of this scene's tiles (y)", nullable=True),
    _f("overlap_fraction", pa.float64(), "share of the PAN footprint covered by MS"),
    _f("valid_fraction", pa.float64(), "share of MS pixels valid (decimated)", nullable=True),
    _f("nodata_fraction", pa.float64(), "share of MS pixels nodata (decimated)", nullable=True),
    _f("cloud_fraction", pa.float64(), "share of MS pixels cloud-masked (decimated)", nullable=True),
    _f("n_tiles", pa.int32(), "tiles written for this scene"),
    _f("acquired", pa.string(), "acquisition date/time when known", nullable=True),
    _f("metadata_json", pa.string(), "the rest of the scene metadata (scene.json, STAC properties, MTL)"),
]
SCENE_SCHEMA = pa.schema(_SCENE_FIELDS, metadata={b"doc": b"CrossDiff scenes: one row per ingested scene"})

_QUARANTINE_FIELDS = [
    _f("scene_id", pa.string(), "scene key (the archive URI when the archive itself failed)"),
    _f("layout", pa.string(), "layout when known", nullable=True),
    _f("uri", pa.string(), "the file or object that failed, or the scene's source"),
    _f("stage", pa.string(), "discovery, open, validate or stats"),
    _f("reason", pa.string(), "reason code, see crossdiff.platform.archive.manifest.REASONS"),
    _f("detail", pa.string(), "what went wrong and how to fix it"),
]
QUARANTINE_SCHEMA = pa.schema(_QUARANTINE_FIELDS,
                              metadata={b"doc": b"CrossDiff quarantine: one row per rejected scene"})

# Columns that say where files live; dropped by manifest_hash(ignore_locations=True).
LOCATION_COLUMNS = ("pan_uri", "ms_uris", "mask_uri", "source_uri", "uri")


@dataclasses.dataclass(frozen=True)
class Quarantine:
    """Why one scene (or the archive) was rejected; one row of the quarantine table."""

    scene_id: str
    reason: str
    detail: str
    uri: str = ""
    stage: str = "validate"
    layout: str | None = None

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown quarantine reason {self.reason!r}; known: {sorted(REASONS)}")


class QuarantineError(Exception):
    """Raised inside scene checks; the ingest turns it into a :class:`Quarantine` row."""

    def __init__(self, reason: str, detail: str, uri: str = "", stage: str = "validate"):
        if reason not in REASONS:
            raise ValueError(f"unknown quarantine reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.uri, self.stage = reason, detail, uri, stage


def assign_split(scene_id: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 salt: str = "crossdiff") -> str:
    """Deterministic train/val/test split of a scene from a hash of its id.

    SHA-256 (not Python's salted ``hash``) so the answer is the same in every
    process, machine and run; change ``salt`` to draw a different split.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions {fractions} must be three non-negative numbers summing to 1")
    u = int(hashlib.sha256(f"{salt}:{scene_id}".encode()).hexdigest()[:16], 16) / 2.0**64
    edge = 0.0
    for name, frac in zip(SPLITS, fractions, strict=True):
        edge += frac
        if u < edge:
            return name
    return SPLITS[-1]


def build_table(rows: list[dict[str, Any]] | list[pa.Table], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) or per-scene tables -> one table of ``schema``, sorted into the canonical order."""
    if rows and isinstance(rows[0], pa.Table):
        table = pa.concat_tables(rows)
    else:
        table = pa.Table.from_pylist(rows, schema=schema)
    keys = {"pan_row", "pan_col"} <= set(schema.names)
    order = [("scene_id", "ascending")]
    if keys:
        order += [("pan_row", "ascending"), ("pan_col", "ascending")]
    if "uri" in schema.names:
        order.append(("uri", "ascending"))
    return table.sort_by(order) if table.num_rows else table


def quarantine_table(items: list[Quarantine]) -> pa.Table:
    return build_table([dataclasses.asdict(q) for q in items], QUARANTINE_SCHEMA)


def manifest_hash(table: pa.Table, ignore_locations: bool = False) -> str:
    """SHA-256 of a table's content (column names and values in row order).

    With ``ignore_locations`` the URI columns are left out, so the same archive
    ingested from a local copy and from S3 hashes the same.
    """
    h = hashlib.sha256()
    for name in table.column_names:
        if ignore_locations and name in LOCATION_COLUMNS:
            continue
        h.update(name.encode())
        h.update(json.dumps(table.column(name).to_pylist(), separators=(",", ":"), default=str).encode())
    return h.hexdigest()


def sidecar_paths(out: str) -> dict[str, str]:
    """The three files of one ingest: tiles at ``out``, scenes and quarantine beside it."""
    out = normalize_uri(out)
    stem = out[: -len(".parquet")] if out.endswith(".parquet") else out
    return {"tiles": out, "scenes": f"{stem}.scenes.parquet", "quarantine": f"{stem}.quarantine.parquet"}


def write_parquet(table: pa.Table, uri: str, options: StorageOptions | None = None,
                  info: dict[str, Any] | None = None) -> None:
    """Write a table to a local path or ``s3://`` URI, with ingest info in the file metadata."""
    meta = dict(table.schema.metadata or {})
    if info is not None:
        meta[METADATA_KEY] = json.dumps({"schema_version": SCHEMA_VERSION, **info}, sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    fs, path = get_filesystem(uri, options)
    if not is_s3(uri):
        fs.makedirs(fs._parent(path), exist_ok=True)
    with fs.open(path, "wb") as f:
        pq.write_table(table, f, compression="zstd")


def read_parquet(uri: str, options: StorageOptions | None = None) -> pa.Table:
    """Read one of the ingest's tables (local path or ``s3://``)."""
    fs, path = get_filesystem(uri, options)
    with fs.open(path, "rb") as f:
        return pq.read_table(f)


def read_manifest(uri: str, options: StorageOptions | None = None) -> pa.Table:
    """Read a tile manifest, checking it is one this code understands."""
    table = read_parquet(uri, options)
    info = manifest_info(table)
    if info.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{uri}: manifest schema version {info.get('schema_version')}, expected "
                         f"{SCHEMA_VERSION}; re-run `crossdiff ingest`")
    missing = set(TILE_SCHEMA.names) - set(table.column_names)
    if missing:
        raise ValueError(f"{uri}: not a tile manifest, missing columns {sorted(missing)}")
    return table


def manifest_info(table: pa.Table) -> dict[str, Any]:
    """The ingest settings and hash stored in a manifest's file metadata ({} if none)."""
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}
