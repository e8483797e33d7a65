"""Header checks of one discovered scene: a :class:`SceneInfo`, or a quarantine reason.

Only raster headers are read (CRS, geotransform, size, dtype, band count,
nodata) plus one probe block at the end of each file, which catches truncated
uploads that still have an intact header. Nothing about the grids is assumed:
the PAN -> MS pixel mapping comes from the two geotransforms, and the measured
pixel-size ratio is compared with the declared one.

Every failure raises :class:`QuarantineError` with a reason code from
``manifest.REASONS`` and a detail that says what to fix.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

from rasterio.errors import NotGeoreferencedWarning

from crossdiff.platform.archive.discovery import SceneRef
from crossdiff.platform.archive.filesystems import MissingCredentialsError, StorageOptions, open_raster
from crossdiff.platform.archive.manifest import QuarantineError

_DTYPE_BITS = {"uint8": 8, "int8": 7, "uint16": 16, "int16": 15, "uint32": 32, "int32": 31,
               "float32": 16, "float64": 16}


@dataclasses.dataclass(frozen=True)
class RasterHeader:
    """What a raster's header says (no pixels)."""

    uri: str
    count: int
    width: int
    height: int
    dtype: str
    crs: str | None
    transform: tuple[float, float, float, float, float, float]
    nodata: float | None
    overviews: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of an axis-aligned grid."""
        a, _, c, _, e, f = self.transform
        xs, ys = (c, c + a * self.width), (f, f + e * self.height)
        return min(xs), min(ys), max(xs), max(ys)


@dataclasses.dataclass(frozen=True)
class SceneInfo:
    """A scene whose headers passed every check, with the numbers tiling needs.

    ``pan_to_ms = (sx, sy, tx, ty)`` maps PAN pixel coordinates to MS pixel
    coordinates: ``x_ms = tx + sx * col_pan``, ``y_ms = ty + sy * row_pan``
    (corner convention, from the actual geotransforms).
    """

    ref: SceneRef
    sensor: str
    bands: tuple[str, ...]
    bits: int
    ratio: int
    dtype: str
    crs: str | None
    nodata: float | None
    pan: RasterHeader
    ms: RasterHeader
    ms_band_uris: tuple[str, ...]
    ms_band_indexes: tuple[int, ...]
    mask: RasterHeader | None
    ratio_x: float
    ratio_y: float
    pan_to_ms: tuple[float, float, float, float]
    overlap_fraction: float


def classify_error(exc: BaseException, uri: str, stage: str = "open") -> QuarantineError:
    """Turn a reading error into a quarantine reason (credentials, unreadable or corrupt)."""
    if isinstance(exc, QuarantineError):
        return exc
    # rasterio says "Read failed. See previous exception": the GDAL reason is down the chain.
    chain, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        chain.append(f"{type(cur).__name__}: {cur}")
        cur = cur.__cause__ or cur.__context__
    msg = " <- ".join(chain)
    low = msg.lower()
    if isinstance(exc, MissingCredentialsError) or "nocredentials" in low or "locate credentials" in low:
        return QuarantineError("credentials", str(exc), uri, stage)
    if any(s in low for s in ("http response code", "http error", "curl error", "access denied",
                              "timed out", "connection refused", "could not resolve host")):
        return QuarantineError("unreadable", f"cannot fetch {uri} ({msg}); check that it exists and that "
                               "the credentials may read it", uri, stage)
    if any(s in low for s in ("not recognized as being in a supported file format", "tiffread", "ireadblock",
                              "read error", "truncated", "not a tiff", "cannot read tiff header",
                              "tifffetchnormaltag", "decode", "deflate", "lzw")):
        return QuarantineError("corrupt", f"{uri} is not a readable raster ({msg}); re-upload or "
                               "re-export it", uri, stage)
    return QuarantineError("unreadable", f"cannot read {uri} ({msg}); check that it exists and that "
                           "the credentials may read it", uri, stage)


def read_header(uri: str, options: StorageOptions | None = None, probe: bool = True) -> RasterHeader:
    """Open a raster, read its header and (with ``probe``) its last block.

    The last block of the last band sits at the end of a GDAL-written GeoTIFF
    (and of a COG's full-resolution data), so reading it detects truncation for
    the price of one block.
    """
    from rasterio.windows import Window

    try:
        with warnings.catch_warnings():
            # A missing geotransform is reported by _check_grid with a fix, not as a warning.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with open_raster(uri, options) as src:
                header = RasterHeader(
                    uri=uri, count=src.count, width=src.width, height=src.height, dtype=src.dtypes[0],
                    crs=src.crs.to_string() if src.crs else None, transform=tuple(src.transform)[:6],
                    nodata=float(src.nodata) if src.nodata is not None else None,
                    overviews=len(src.overviews(1)))
                if probe:
                    bh, bw = src.block_shapes[-1]
                    row = (math.ceil(src.height / bh) - 1) * bh
                    col = (math.ceil(src.width / bw) - 1) * bw
                    src.read(src.count, window=Window(col, row, src.width - col, src.height - row))
                return header
    except Exception as exc:
        raise classify_error(exc, uri) from exc


def _resolve_sensor(ref: SceneRef, n_bands: int) -> tuple[Any, tuple[str, ...]]:
    """The sensor record and band names for ``n_bands`` MS bands, or a band_count/metadata error."""
    from crossdiff.models.sensors import get_sensor

    name = str(ref.metadata.get("sensor") or "")
    declared = ref.band_names
    if declared is not None and len(declared) != n_bands:
        raise QuarantineError("band_count", f"MS has {n_bands} band(s) but {ref.source_uri} declares "
                              f"{len(declared)} ({', '.join(declared)}); fix the band list or the MS file",
                              ref.ms_uris[0])
    try:
        sensor = get_sensor(name, n_bands=n_bands)
    except ValueError as exc:
        sensor = get_sensor(name)
        # Sensors with one MTF gain for every band (Landsat, generic) may be subset by band choice.
        if declared is None or len(set(sensor.mtf_ms)) != 1:
            raise QuarantineError("band_count", f"{exc}; give the MS bands the sensor expects "
                                  f"({', '.join(sensor.bands)})", ref.ms_uris[0]) from exc
        sensor = sensor.replace(bands=declared, mtf_ms=(sensor.mtf_ms[0],) * n_bands)
    except KeyError as exc:
        raise QuarantineError("metadata", str(exc), ref.source_uri) from exc
    return sensor, tuple(declared) if declared else tuple(sensor.bands)


def _check_grid(h: RasterHeader, what: str) -> None:
    a, b, _, d, e, _ = h.transform
    if b != 0 or d != 0:
        raise QuarantineError("transform", f"{what} {h.uri} has a rotated/sheared geotransform "
                              f"{h.transform}; warp it to a north-up grid first", h.uri)
    if (a, b, d, e) == (1.0, 0.0, 0.0, 1.0) and h.crs is None:
        raise QuarantineError("transform", f"{what} {h.uri} has no geotransform, so PAN/MS alignment "
                              "cannot be checked; write one (a local grid with MS pixel = ratio x PAN pixel "
                              "will do)", h.uri)
    if a <= 0 or e >= 0:
        raise QuarantineError("transform", f"{what} {h.uri} is not north-up (pixel size {a}, {e}); "
                              "flip it to a north-up grid", h.uri)


def _overlap(pan: RasterHeader, ms: RasterHeader) -> float:
    px0, py0, px1, py1 = pan.bounds
    mx0, my0, mx1, my1 = ms.bounds
    w, h = min(px1, mx1) - max(px0, mx0), min(py1, my1) - max(py0, my0)
    return max(w, 0.0) * max(h, 0.0) / ((px1 - px0) * (py1 - py0))


def inspect_scene(ref: SceneRef, options: StorageOptions | None = None, *, min_overlap: float = 0.9,
                  ratio_tolerance: float = 0.01) -> SceneInfo:
    """Read a scene's headers and check them against each other and its metadata.

    Args:
        ref: the discovered scene.
        options: object-store settings.
        min_overlap: smallest share of the PAN footprint that MS must cover.
        ratio_tolerance: allowed relative difference between the measured and the
            declared PAN/MS ratio (products resampled to round pixel sizes differ
            slightly, e.g. 2.0 m / 0.498 m).

    Raises:
        QuarantineError: with the first problem found.
    """
    pan = read_header(ref.pan_uri, options)
    ms_headers = [read_header(u, options) for u in ref.ms_uris]
    mask = read_header(ref.mask_uri, options) if ref.mask_uri else None
    if pan.count != 1:
        raise QuarantineError("band_count", f"PAN {pan.uri} has {pan.count} bands; expected 1", pan.uri)
    ms = ms_headers[0]
    if len(ms_headers) == 1:
        band_uris, band_idx = (ms.uri,) * ms.count, tuple(range(1, ms.count + 1))
    else:
        for h in ms_headers:
            if h.count != 1:
                raise QuarantineError("band_count", f"MS band file {h.uri} has {h.count} bands; one-file-per-"
                                      "band layouts need single-band files", h.uri)
            if h.crs != ms.crs:
                raise QuarantineError("crs_mismatch", f"MS band files disagree in CRS: {ms.uri} is {ms.crs}, "
                                      f"{h.uri} is {h.crs}", h.uri)
            if (h.transform, h.width, h.height, h.dtype) != (ms.transform, ms.width, ms.height, ms.dtype):
                raise QuarantineError("transform", f"MS band files are on different grids: {ms.uri} and "
                                      f"{h.uri}; every MS band must share size, transform and dtype", h.uri)
        band_uris, band_idx = tuple(h.uri for h in ms_headers), (1,) * len(ms_headers)
    sensor, bands = _resolve_sensor(ref, len(band_uris))

    meta = ref.metadata
    if pan.dtype != ms.dtype:
        raise QuarantineError("dtype", f"PAN is {pan.dtype} but MS is {ms.dtype}; convert them to one dtype",
                              ms.uri)
    if meta.get("dtype") and meta["dtype"] != pan.dtype:
        raise QuarantineError("dtype", f"files are {pan.dtype} but {ref.source_uri} declares {meta['dtype']}",
                              pan.uri)
    if pan.dtype not in _DTYPE_BITS:
        raise QuarantineError("dtype", f"unsupported dtype {pan.dtype}; use an integer or float32 raster",
                              pan.uri)
    bits = int(meta.get("bits") or sensor.bits)
    if not 1 <= bits <= _DTYPE_BITS[pan.dtype]:
        raise QuarantineError("bit_depth", f"{bits}-bit data cannot be stored as {pan.dtype}; fix 'bits' in "
                              f"{ref.source_uri}", ref.source_uri)

    if pan.crs != ms.crs:
        raise QuarantineError("crs_mismatch", f"PAN CRS {pan.crs} differs from MS CRS {ms.crs}; reproject "
                              "one onto the other's CRS", ms.uri)
    _check_grid(pan, "PAN")
    _check_grid(ms, "MS")
    ratio = int(meta.get("ratio") or sensor.ratio)
    rx, ry = ms.transform[0] / pan.transform[0], ms.transform[4] / pan.transform[4]
    if max(abs(rx / ratio - 1), abs(ry / ratio - 1)) > ratio_tolerance:
        raise QuarantineError("ratio", f"measured MS/PAN pixel ratio {rx:.3f} x {ry:.3f} but the scene "
                              f"declares {ratio}; fix 'ratio' or resample the files", ms.uri)
    overlap = _overlap(pan, ms)
    if overlap < min_overlap:
        raise QuarantineError("no_overlap", f"MS covers {overlap:.1%} of the PAN footprint (need "
                              f"{min_overlap:.0%}): PAN bounds {pan.bounds}, MS bounds {ms.bounds}", ms.uri)
    # The mask is read onto the MS grid: it must cover the MS footprint to within one MS pixel.
    if mask is not None and (mask.crs != ms.crs or max(
            abs(a - b) for a, b in zip(mask.bounds, ms.bounds, strict=True)) > abs(ms.transform[0])):
        raise QuarantineError("transform", f"cloud mask {mask.uri} is not on the MS footprint "
                              f"({mask.crs} {mask.bounds} vs {ms.crs} {ms.bounds})", mask.uri)

    pa_, _, pc, _, pe, pf = pan.transform
    ma, _, mc, _, me, mf = ms.transform
    # "+ 0.0" turns -0.0 into 0.0 so equal grids print and hash alike.
    pan_to_ms = (pa_ / ma, pe / me, (pc - mc) / ma + 0.0, (pf - mf) / me + 0.0)
    return SceneInfo(ref=ref, sensor=sensor.name, bands=bands, bits=bits, ratio=ratio, dtype=pan.dtype,
                     crs=pan.crs, nodata=ms.nodata if ms.nodata is not None else meta.get("nodata"),
                     pan=pan, ms=ms, ms_band_uris=band_uris, ms_band_indexes=band_idx, mask=mask,
                     ratio_x=rx, ratio_y=ry, pan_to_ms=pan_to_ms, overlap_fraction=overlap)
