"""Scenes to evaluate: any layout the archive discovery knows, read into memory on one aligned grid.

A scene folder (``pan.tif``, ``ms.tif``, ``scene.json``), a Landsat delivery
with one file per band, a STAC item, or an archive folder holding many of them
is found by :func:`crossdiff.platform.archive.discovery.discover` and checked
by :func:`crossdiff.platform.archive.validate.inspect_scene`; this module only
reads the pixels. Nothing here parses metadata a second time.

The evaluation needs an exact PAN/MS pair: PAN = ratio x MS on the same
corner, an MS size that is a multiple of the ratio (Wald degradation) and a
PAN size that is a multiple of the 32-px block of the full-resolution indices.
The largest such window is cut from the files, anchored at the first MS pixel
the PAN covers; any crop or sub-pixel grid offset is recorded in ``notes``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from crossdiff.models.sensors import Sensor, get_sensor
from crossdiff.platform.archive.discovery import SceneRef, discover
from crossdiff.platform.archive.filesystems import StorageOptions, open_raster, parent_uri, resolve_href
from crossdiff.platform.archive.validate import SceneInfo, inspect_scene

BLOCK = 32  # block of the full-resolution indices (toolbox): PAN sides must be multiples of it


@dataclasses.dataclass
class Scene:
    """One PAN/MS pair in digital numbers, cropped to an evaluable window.

    Attributes:
        scene_id: the discovery's id (folder name for a scene folder).
        sensor: the sensor record with the scene's bit depth, ratio and band names.
        ms: (C, h, w) float64 original MS.
        pan: (1, ratio*h, ratio*w) float64 original PAN.
        truth: (C, ratio*h, ratio*w) MS at PAN resolution when the scene has one
            (synthetic scenes written with ``save_truth``), else None.
        source: where the scene was found.
        file_shapes: ``{"ms": (C, H, W), "pan": (1, H, W)}`` of the files before cropping;
            fused products are checked against these.
        ms_window: (row, col, height, width) of the evaluated window in MS pixels of the file.
        pan_window: the same window in PAN pixels.
        notes: crops and grid offsets a reader of the report should know about.
    """

    scene_id: str
    sensor: Sensor
    ms: np.ndarray
    pan: np.ndarray
    truth: np.ndarray | None = None
    source: str = ""
    file_shapes: dict[str, tuple[int, int, int]] = dataclasses.field(default_factory=dict)
    ms_window: tuple[int, int, int, int] = (0, 0, 0, 0)
    pan_window: tuple[int, int, int, int] = (0, 0, 0, 0)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def ratio(self) -> int:
        return self.sensor.ratio

    @property
    def bits(self) -> int:
        return self.sensor.bits

    @property
    def band_names(self) -> tuple[str, ...]:
        return self.sensor.bands


def scene_sensor(info: SceneInfo) -> Sensor:
    """The sensor record for a checked scene: its bands, bit depth and ratio.

    A band subset of a sensor with one gain for every band (Landsat, generic)
    keeps that gain, as the archive validation allows.
    """
    sensor = get_sensor(info.sensor)
    n = len(info.bands)
    if sensor.n_bands != n or tuple(sensor.bands) != tuple(info.bands):
        gains = sensor.mtf_ms if sensor.n_bands == n else (sensor.mtf_ms[0],) * n
        sensor = sensor.replace(bands=tuple(info.bands), mtf_ms=tuple(gains))
    return sensor.replace(bits=int(info.bits), ratio=int(info.ratio))


def window_multiple(ratio: int, block: int = BLOCK) -> int:
    """MS side multiple that makes MS a multiple of the ratio and PAN one of the block."""
    return math.lcm(ratio, block // math.gcd(block, ratio))


def _axis(offset_ms: float, scale: float, n_ms: int, n_pan: int, ratio: int, multiple: int
          ) -> tuple[int, int, int, float]:
    """First MS pixel, first PAN pixel, MS length and residual offset (PAN px) along one axis.

    ``offset_ms`` is the MS coordinate of PAN pixel 0's corner and ``scale`` the
    MS pixels per PAN pixel (``pan_to_ms``).
    """
    m0 = max(0, math.ceil(offset_ms - 1e-6))
    p_exact = (m0 - offset_ms) / scale
    p0 = int(round(p_exact))
    length = min(n_ms - m0, (n_pan - p0) // ratio)
    return m0, p0, (length // multiple) * multiple, abs(p_exact - p0)


def find_scenes(uris: Iterable[str | Path], options: StorageOptions | None = None,
                skipped: list[tuple[str, str]] | None = None) -> list[SceneRef]:
    """Every scene under the given folders or ``s3://`` prefixes, in argument order.

    Args:
        uris: scene folders or archives.
        options: object-store settings.
        skipped: if given, receives (scene id, reason) of what discovery could not
            make a scene of in an archive that holds other scenes.

    Raises:
        ValueError: a location that holds no scene, with the discovery's reasons.
    """
    refs: list[SceneRef] = []
    for uri in uris:
        found = discover(str(uri), options)
        if not found.scenes:
            reasons = "; ".join(p.detail for p in found.problems) or "no scene.json, STAC item or Landsat MTL"
            raise ValueError(f"no PAN/MS scene found at {uri}: {reasons}")
        refs.extend(found.scenes)
        if skipped is not None:
            skipped.extend((p.scene_id, p.detail) for p in found.problems)
    return refs


def _read(uri: str, options: StorageOptions | None, window: Window, indexes: list[int] | None = None
          ) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # the real samples have local grids
        with open_raster(uri, options) as src:
            return src.read(indexes or list(range(1, src.count + 1)), window=window).astype(np.float64)


def load_scene(ref: SceneRef | str | Path, options: StorageOptions | None = None,
               block: int = BLOCK) -> Scene:
    """Read one discovered scene (or the single scene at a location) into memory.

    Raises:
        ValueError: the scene fails the archive checks, or no evaluable window remains.
    """
    if not isinstance(ref, SceneRef):
        refs = find_scenes([ref], options)
        if len(refs) != 1:
            raise ValueError(f"{ref} holds {len(refs)} scenes; load them one by one (find_scenes)")
        ref = refs[0]
    try:
        info = inspect_scene(ref, options)
    except Exception as exc:  # QuarantineError carries a reason and the fix
        raise ValueError(f"scene {ref.scene_id} cannot be evaluated: {exc}") from exc
    sensor = scene_sensor(info)
    r = sensor.ratio
    sx, sy, tx, ty = info.pan_to_ms
    mult = window_multiple(r, block)
    mc, pc, w, res_x = _axis(tx, sx, info.ms.width, info.pan.width, r, mult)
    mr, pr, h, res_y = _axis(ty, sy, info.ms.height, info.pan.height, r, mult)
    if h <= 0 or w <= 0:
        raise ValueError(f"scene {ref.scene_id}: PAN {info.pan.height}x{info.pan.width} and MS "
                         f"{info.ms.height}x{info.ms.width} leave no window of MS side a multiple of {mult} "
                         f"(ratio {r}, {block}-px blocks at PAN scale); evaluate a larger scene")
    ms_win, pan_win = Window(mc, mr, w, h), Window(pc, pr, w * r, h * r)
    groups: dict[str, list[int]] = {}
    for uri, idx in zip(info.ms_band_uris, info.ms_band_indexes, strict=True):
        groups.setdefault(uri, []).append(idx)
    ms = np.concatenate([_read(u, options, ms_win, idx) for u, idx in groups.items()], axis=0)
    pan = _read(ref.pan_uri, options, pan_win, [1])

    truth = None
    truth_href = (ref.metadata.get("extra") or {}).get("truth")
    if truth_href:
        truth = _read(resolve_href(str(truth_href), parent_uri(ref.source_uri)), options, pan_win)
        if truth.shape != (ms.shape[0], *pan.shape[1:]):
            raise ValueError(f"scene {ref.scene_id}: truth is {truth.shape[1:]} with {truth.shape[0]} bands, "
                             f"expected the PAN grid {pan.shape[1:]} with {ms.shape[0]} bands")

    notes = []
    if (mr, mc, h, w) != (0, 0, info.ms.height, info.ms.width) or (pr, pc) != (0, 0):
        notes.append(f"evaluated window: MS rows {mr}:{mr + h}, cols {mc}:{mc + w} of "
                     f"{info.ms.height}x{info.ms.width} (PAN rows {pr}:{pr + h * r}, cols {pc}:{pc + w * r}), "
                     f"so that sizes are multiples of the ratio and the {block}-px block")
    if max(res_x, res_y) > 0.01:
        notes.append(f"PAN and MS grids are offset by a sub-pixel amount ({res_x:.2f} x {res_y:.2f} PAN px); "
                     "evaluated as if aligned")
    return Scene(
        scene_id=ref.scene_id, sensor=sensor, ms=ms, pan=pan, truth=truth, source=ref.source_uri,
        file_shapes={"ms": (ms.shape[0], info.ms.height, info.ms.width),
                     "pan": (1, info.pan.height, info.pan.width)},
        ms_window=(mr, mc, h, w), pan_window=(pr, pc, h * r, w * r), notes=notes)
