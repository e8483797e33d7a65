"""Cheap validity statistics of a scene: nodata and cloud from a decimated read.

The valid fraction is the one statistic the manifest needs from the pixels.
It is estimated on a decimated MS grid (every ``decimation``-th MS pixel in
each direction, GDAL nearest sampling), never from the PAN:

* when the file has overviews GDAL answers from the smallest one that is
  fine enough, so only a fraction of the bytes are fetched;
* without overviews GDAL still decodes every MS block once, which costs about
  ``bands / ratio**2`` of the PAN's bytes (half for WorldView-2), read band
  by band so memory stays at one decimated band.

A pixel is invalid when it is nodata (any band equal to the file's nodata
value, NaN, outside a per-dataset mask, or, with no nodata declared, zero in
every band: the fill convention of most products) or cloud (the scene's mask
raster decoded by :func:`landsat.invalid_from_qa`). The same decimated read
gives the largest DN, checked against the declared bit depth.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from crossdiff.platform.archive import landsat
from crossdiff.platform.archive.filesystems import StorageOptions, open_raster
from crossdiff.platform.archive.validate import SceneInfo, classify_error


@dataclasses.dataclass(frozen=True)
class ValidityGrid:
    """Per-pixel validity of the MS grid, decimated.

    Attributes:
        valid: boolean (h, w) grid; cell (i, j) stands for MS pixels
            ``[i * scale_y, (i + 1) * scale_y) x [j * scale_x, (j + 1) * scale_x)``.
        scale_x, scale_y: MS pixels per cell.
        nodata_fraction, cloud_fraction: shares of cells that are nodata, or
            cloud but not nodata.
        max_value: largest MS DN seen in the decimated read.
    """

    valid: np.ndarray
    scale_x: float
    scale_y: float
    nodata_fraction: float
    cloud_fraction: float
    max_value: float

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean()) if self.valid.size else 0.0

    def window_fraction(self, row: int, col: int, height: int, width: int) -> float:
        """Valid share of the MS window (row, col, height, width), from the cells it covers."""
        r0, r1 = math.floor(row / self.scale_y), math.ceil((row + height) / self.scale_y)
        c0, c1 = math.floor(col / self.scale_x), math.ceil((col + width) / self.scale_x)
        cells = self.valid[max(r0, 0):max(r1, r0 + 1), max(c0, 0):max(c1, c0 + 1)]
        return float(cells.mean()) if cells.size else 0.0


def decimated_shape(height: int, width: int, decimation: int) -> tuple[int, int]:
    if decimation < 1:
        raise ValueError(f"decimation must be >= 1, got {decimation}")
    return max(1, math.ceil(height / decimation)), max(1, math.ceil(width / decimation))


def read_validity(info: SceneInfo, options: StorageOptions | None = None, decimation: int = 4
                  ) -> ValidityGrid:
    """Decimated nodata/cloud mask of a checked scene's MS grid.

    Raises:
        QuarantineError: a file fails while reading (``corrupt`` / ``unreadable``).
    """
    shape = decimated_shape(info.ms.height, info.ms.width, decimation)
    nodata = np.zeros(shape, bool)
    all_zero = np.ones(shape, bool)
    max_value = -math.inf
    by_uri: dict[str, list[int]] = {}
    for uri, idx in zip(info.ms_band_uris, info.ms_band_indexes, strict=True):
        by_uri.setdefault(uri, []).append(idx)
    for uri, indexes in by_uri.items():
        try:
            with open_raster(uri, options) as src:
                from rasterio.enums import MaskFlags

                flags = src.mask_flag_enums[indexes[0] - 1]
                if MaskFlags.per_dataset in flags and MaskFlags.nodata not in flags:
                    nodata |= src.dataset_mask(out_shape=shape) == 0
                for idx in indexes:
                    band = src.read(idx, out_shape=shape)
                    if info.nodata is not None:
                        nodata |= band == info.nodata
                    if band.dtype.kind == "f":
                        nodata |= np.isnan(band)
                    all_zero &= band == 0
                    if band.size:
                        max_value = max(max_value, float(np.nanmax(band)) if band.dtype.kind == "f"
                                        else float(band.max()))
        except Exception as exc:
            raise classify_error(exc, uri, "stats") from exc
    if info.nodata is None:
        nodata |= all_zero
    cloud = np.zeros(shape, bool)
    if info.mask is not None:
        try:
            with open_raster(info.mask.uri, options) as src:
                qa = src.read(1, out_shape=shape)
            fill, cloud = landsat.invalid_from_qa(qa, info.ref.mask_kind or "binary")
        except Exception as exc:
            raise classify_error(exc, info.mask.uri, "stats") from exc
        nodata |= fill
        cloud &= ~nodata
    valid = ~(nodata | cloud)
    return ValidityGrid(valid=valid, scale_x=info.ms.width / shape[1], scale_y=info.ms.height / shape[0],
                        nodata_fraction=float(nodata.mean()), cloud_fraction=float(cloud.mean()),
                        max_value=max_value)
