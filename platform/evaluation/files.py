"""Evaluate fused products given directly as files (GeoTIFF or ``.npy``, in DN).

For people who fuse elsewhere:

* reduced resolution: the products are fused from a Wald-degraded pair and
  scored against the reference ``gt`` (the original MS), same shape as ``gt``;
* full resolution: the products are fused from the original ``ms`` and ``pan``
  and scored without a reference; they lie on the PAN grid.

Both return an :class:`~crossdiff.platform.evaluation.runner.EvaluationResult`
with one entry (so the same report writer applies) and accept paths or arrays.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crossdiff.models.metrics import full_resolution_metrics, reduced_resolution_metrics
from crossdiff.models.sensors import Sensor, generic_sensor, get_sensor
from crossdiff.platform.evaluation import figures
from crossdiff.platform.evaluation.inputs import as_image, load_product
from crossdiff.platform.evaluation.runner import (
    BLOCK,
    DIM_CUT,
    EvaluationResult,
    SceneResult,
    conventions,
)


def product_names(specs: list[str]) -> dict[str, str]:
    """``["NAME=PATH" or "PATH", ...]`` -> {name: path}; a bare path is named by its file stem."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or os.path.exists(spec):
            name, path = Path(spec).stem, spec
        base, i = name, 2
        while name in out:
            name, i = f"{base}_{i}", i + 1
        out[name] = path
    return out


def resolve_sensor(sensor: str | Sensor | None, n_bands: int, ratio: int | None, bits: int | None
                   ) -> tuple[Sensor, list[str]]:
    """The sensor record for ``n_bands`` bands with optional ratio/bit-depth overrides, and notes.

    An unknown name or no name gives the toolbox's generic gains (0.3 per band,
    PAN 0.15), which the notes say.
    """
    if isinstance(sensor, Sensor):
        sen = sensor
    else:
        sen = generic_sensor(n_bands) if sensor is None else get_sensor(sensor, n_bands=n_bands)
    changes = {k: int(v) for k, v in (("ratio", ratio), ("bits", bits)) if v is not None}
    sen = sen.replace(**changes) if changes else sen
    notes = []
    if sen.bands == generic_sensor(n_bands).bands and set(sen.mtf_ms) == {0.3}:
        notes.append(f"sensor {sensor or '(none given)'}: not in the sensor table, so the toolbox's generic "
                     f"MTF gains (0.3 per band, PAN 0.15), {sen.bits}-bit, ratio {sen.ratio}; give --sensor, "
                     "--bits and --ratio to change them")
    return sen, notes


def _label(src: Any, what: str) -> str:
    return f"{what} ({os.fspath(src)})" if isinstance(src, (str, os.PathLike)) else what


def evaluate_reduced_files(
    gt: Any, fused: Mapping[str, Any], sensor: str | Sensor, *, ratio: int | None = None, bits: int | None = None,
    dim_cut: int = DIM_CUT, block: int = BLOCK, clip: bool = False, quicklook_dir: str | Path | None = None,
) -> EvaluationResult:
    """Score products against a reference at reduced resolution.

    Args:
        gt: the reference (original MS), path or (C, H, W) array, DN.
        fused: name -> product of the same shape as ``gt``.
        sensor: sensor name (ratio, bit depth and band names); unknown names use generic values.
        ratio, bits: override the sensor's ratio (ERGAS) and bit depth (PSNR).
        dim_cut, block, clip: see :func:`crossdiff.models.metrics.reduced_resolution_metrics`.
        quicklook_dir: also draw the reduced-resolution quicklook there.
    """
    if not fused:
        raise ValueError("give at least one fused product (--fused)")
    ref = as_image(gt, _label(gt, "GT"))
    sen, notes = resolve_sensor(sensor, ref.shape[0], ratio, bits)
    images = {n: load_product(p, ref.shape, f"fused product {n}", _label(gt, "the GT"), ref)
              for n, p in fused.items()}
    metrics = {n: {k: float(v) for k, v in reduced_resolution_metrics(
        f, ref, sen.ratio, sen.bits, dim_cut=dim_cut, block=block, clip=clip).items()}
        for n, f in images.items()}
    res = SceneResult(scene_id=_scene_name(gt, "reduced"), sensor=sen.name, bits=sen.bits, ratio=sen.ratio,
                      bands=tuple(sen.bands), source=_source(gt), ms_shape=ref.shape, notes=notes,
                      metrics={"reduced": metrics})
    if quicklook_dir is not None:
        detail = ref.mean(axis=0, keepdims=True)  # no PAN here: the band mean shows where detail is
        res.quicklooks["reduced"] = str(figures.reduced_figure(
            Path(quicklook_dir) / f"{res.scene_id}_reduced.png", ref, images, sen.bands, detail, metrics,
            margin=dim_cut, title=f"{res.scene_id}: reduced resolution", pan_title="reference, band mean"))
    return EvaluationResult([res], conventions(dim_cut, block, clip))


def evaluate_full_files(
    ms: Any, pan: Any, fused: Mapping[str, Any], sensor: str | Sensor | None = None, *,
    ratio: int | None = None, bits: int | None = None, block: int = BLOCK, clip: bool = False,
    quicklook_dir: str | Path | None = None,
) -> EvaluationResult:
    """Score products without a reference at full resolution.

    Args:
        ms: the original MS, path or (C, h, w) array, DN.
        pan: the original PAN, path or (1, H, W) array; H = ratio * h.
        fused: name -> product on the PAN grid, (C, H, W).
        sensor: sensor name for the MTF gains of D_lambda_K; None uses the generic gains.
        ratio: defaults to the sensor's, or to PAN size / MS size without a sensor.
        bits: overrides the sensor's bit depth (the clip bound).
        block, clip: see :func:`crossdiff.models.metrics.full_resolution_metrics`.
        quicklook_dir: also draw the full-resolution quicklook there.
    """
    if not fused:
        raise ValueError("give at least one fused product (--fused)")
    m = as_image(ms, _label(ms, "MS"))
    p = as_image(pan, _label(pan, "PAN"))
    if p.shape[0] != 1:
        raise ValueError(f"{_label(pan, 'PAN')} has {p.shape[0]} bands; give the single-band PAN image")
    measured = p.shape[1] / m.shape[1]
    if ratio is None and sensor is None:
        ratio = int(round(measured))
    sen, notes = resolve_sensor(sensor, m.shape[0], ratio, bits)
    r = sen.ratio
    if (m.shape[1] * r, m.shape[2] * r) != p.shape[1:]:
        raise ValueError(f"{_label(pan, 'PAN')} is {p.shape[1:]} px but {_label(ms, 'MS')} is {m.shape[1:]} px "
                         f"at ratio {r}: PAN must be {(m.shape[1] * r, m.shape[2] * r)} (measured ratio "
                         f"{measured:.3g}); give the matching pair or --ratio")
    expected = (m.shape[0], *p.shape[1:])
    images = {n: load_product(f, expected, f"fused product {n}", "full resolution (MS bands on the PAN grid)",
                              m, other={"MS": tuple(m.shape)}) for n, f in fused.items()}
    metrics = {n: {k: float(v) for k, v in full_resolution_metrics(
        f, m, p, sen, r, sen.bits, block=block, clip=clip).items()} for n, f in images.items()}
    res = SceneResult(scene_id=_scene_name(ms, "full"), sensor=sen.name, bits=sen.bits, ratio=r,
                      bands=tuple(sen.bands), source=_source(ms), ms_shape=m.shape, pan_shape=p.shape,
                      notes=notes, metrics={"full": metrics})
    if quicklook_dir is not None:
        res.quicklooks["full"] = str(figures.full_figure(
            Path(quicklook_dir) / f"{res.scene_id}_full.png", p, images, sen.bands, metrics, reference=m,
            title=f"{res.scene_id}: full resolution"))
    return EvaluationResult([res], conventions(DIM_CUT, block, clip))


def _scene_name(src: Any, protocol: str) -> str:
    return Path(os.fspath(src)).stem if isinstance(src, (str, os.PathLike)) else f"{protocol}_products"


def _source(src: Any) -> str:
    return os.fspath(src) if isinstance(src, (str, os.PathLike)) else "(arrays)"
