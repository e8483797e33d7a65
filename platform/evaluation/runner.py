"""Evaluate pansharpening methods and fused products on scenes, at reduced and full resolution.

Per scene (see DESIGN.md section 4 for the conventions):

* **reduced** (Wald's protocol): the scene's pair is degraded with
  :func:`crossdiff.models.resample.wald_pair`; every method fuses the degraded
  pair and is scored against the original MS with
  :func:`crossdiff.models.metrics.reduced_resolution_metrics`;
* **full**: every method fuses the original pair and is scored without a
  reference with :func:`crossdiff.models.metrics.full_resolution_metrics`;
* **truth** (synthetic scenes written with their truth only): the full-
  resolution products scored against the truth with the reduced-resolution
  metrics, a check the real world never allows.

Fused products made elsewhere join by shape: a product with the MS file's
shape is a reduced-resolution product, one on the PAN grid a full-resolution
one. Several scenes give a mean and standard deviation per method and metric.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crossdiff.models.baselines import BASELINES, get_baseline
from crossdiff.models.metrics import full_resolution_metrics, reduced_resolution_metrics
from crossdiff.models.resample import interp23tap, wald_pair
from crossdiff.platform.evaluation import figures
from crossdiff.platform.evaluation.inputs import as_image, check_dn, check_shape
from crossdiff.platform.evaluation.scenes import BLOCK, Scene, find_scenes, load_scene
from crossdiff.platform.quicklook import rgb_indices

DIM_CUT = 21
REDUCED_KEYS = ("Q2n", "Q", "SAM", "ERGAS", "SCC", "PSNR")
FULL_KEYS = ("D_lambda_K", "D_s", "HQNR", "D_lambda", "QNR")
METRIC_KEYS = {"reduced": REDUCED_KEYS, "full": FULL_KEYS, "truth": REDUCED_KEYS}
PROTOCOLS = ("reduced", "full", "truth")

Method = Callable[..., torch.Tensor]  # fn(ms, pan, sensor, ratio=None) -> fused, as the baselines


@dataclasses.dataclass
class SceneResult:
    """Metrics of every method and product on one scene.

    ``metrics[protocol][name][metric]`` holds floats; ``seconds[protocol][name]``
    the fusion time of each method; ``quicklooks`` kind -> PNG path.
    """

    scene_id: str
    sensor: str
    bits: int
    ratio: int
    bands: tuple[str, ...]
    source: str = ""
    ms_shape: tuple[int, ...] = ()
    pan_shape: tuple[int, ...] = ()
    notes: list[str] = dataclasses.field(default_factory=list)
    metrics: dict[str, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)
    seconds: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    quicklooks: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class EvaluationResult:
    """Per-scene results, their summary over scenes and the conventions used."""

    scenes: list[SceneResult]
    conventions: dict[str, Any]
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (scene id, reason)

    def summary(self) -> dict[str, dict[str, dict[str, dict[str, float | int | None]]]]:
        """protocol -> name -> metric -> {"mean", "std", "n"} over the scenes that have it.

        ``std`` is the sample standard deviation (N - 1, as MATLAB's ``std``); None for one scene
        or when a value is not finite.
        """
        out: dict[str, dict[str, dict[str, dict[str, float | int | None]]]] = {}
        for protocol in PROTOCOLS:
            names = list(dict.fromkeys(n for s in self.scenes for n in s.metrics.get(protocol, {})))
            for name in names:
                for key in METRIC_KEYS[protocol]:
                    vals = np.array([s.metrics[protocol][name][key] for s in self.scenes
                                     if name in s.metrics.get(protocol, {})], dtype=np.float64)
                    # No spread for one scene, nor when a value is infinite (PSNR of an exact copy).
                    std = float(np.std(vals, ddof=1)) if vals.size > 1 and np.isfinite(vals).all() else None
                    out.setdefault(protocol, {}).setdefault(name, {})[key] = {
                        "mean": float(np.mean(vals)), "std": std, "n": int(vals.size)}
        return out


def resolve_methods(methods: str | Sequence[str] | Mapping[str, Method] | None) -> dict[str, Method]:
    """Method name -> fusion function: None = every baseline; names as in ``BASELINES``
    ("EXP,GSA" or a list); or a mapping of names to functions (e.g. a trained model)."""
    if methods is None:
        return dict(BASELINES)
    if isinstance(methods, Mapping):
        return dict(methods)
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    out: dict[str, Method] = {}
    for name in filter(None, names):
        fn = get_baseline(name)
        out[next(k for k, v in BASELINES.items() if v is fn)] = fn
    return out


def conventions(dim_cut: int = DIM_CUT, block: int = BLOCK, clip: bool = False) -> dict[str, Any]:
    """The evaluation conventions, written into every report."""
    return {
        "toolbox": "Vivone et al. pansharpening toolbox (MATLAB reference), DESIGN.md section 4",
        "units": "digital numbers (DN) of the delivered MS",
        "dim_cut": dim_cut,
        "dim_cut_semantics": f"MATLAB I(dim_cut:end-dim_cut): {max(dim_cut - 1, 0)} px off the top/left, "
                             f"{dim_cut} px off the bottom/right, before the reduced-resolution metrics",
        "block": block,
        "q2n": f"images cast to uint16 first; {block}x{block} distinct blocks, mirror padding",
        "q": f"UIQI per band over a sliding {block}x{block} window, averaged",
        "sam": "degrees, mean over pixels with non-zero spectra",
        "ergas": "100/ratio * sqrt(mean_b(MSE_b / mean(GT_b)^2))",
        "psnr": "peak 2**bits - 1, MSE over all bands",
        "wald": "MS: sensor MTF-matched Gaussian (41x41, Kaiser), replicate borders, keep rows/cols "
                "ratio//2::ratio; PAN: MATLAB imresize bicubic with antialiasing; GT = original MS",
        "exp_interpolator": "23-tap polynomial, dyadic stages, circular borders",
        "d_lambda_k": "Khan: 1 - Q2n(lms, MTF-filtered fused) at PAN scale (toolbox 2020)",
        "d_s": "mean_b |Q(F_b, PAN) - Q(lms_b, PAN_LP)|, UIQI on distinct blocks, q = 1",
        "hqnr": "(1 - D_lambda_K)(1 - D_s)",
        "qnr": "classic: (1 - D_lambda)(1 - D_s), D_lambda of Alparone 2008, alpha = beta = 1",
        "clip": f"fused clamped to [0, 2**bits] before scoring (toolbox th_values): {'yes' if clip else 'no'}",
        "aggregate": "mean and sample std (N - 1) over scenes",
    }


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def _floats(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


def split_products(scene: Scene, products: Mapping[str, Any] | None
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Load products and sort them by shape into reduced (MS grid) and full (PAN grid) ones.

    A path may contain ``{scene}``, replaced by the scene's folder name. Products
    are checked against the scene files' shapes and cut to the evaluated window.
    """
    reduced: dict[str, np.ndarray] = {}
    full: dict[str, np.ndarray] = {}
    ms_shape, pan_shape = scene.file_shapes["ms"], scene.file_shapes["pan"]
    full_shape = (ms_shape[0], pan_shape[1], pan_shape[2])
    for name, src in (products or {}).items():
        path = None
        if isinstance(src, (str, os.PathLike)):
            path = os.fspath(src).replace("{scene}", Path(scene.scene_id).name)
            src = path
        label = f"fused product {name}" + (f" ({path})" if path else "")
        image = as_image(src, label)
        if image.shape == ms_shape:
            r, c, h, w = scene.ms_window
            reduced[name] = image[:, r:r + h, c:c + w]
        else:
            check_shape(image, full_shape, label,
                        f"scene {scene.scene_id} (reduced resolution: the MS shape {ms_shape}; "
                        "full resolution: the PAN grid)", path, other={"MS": ms_shape})
            r, c, h, w = scene.pan_window
            full[name] = image[:, r:r + h, c:c + w]
        check_dn(image, scene.ms, label)
    return reduced, full


def evaluate_scene(
    scene: Scene | str | Path,
    methods: str | Sequence[str] | Mapping[str, Method] | None = None,
    products: Mapping[str, Any] | None = None,
    *,
    dim_cut: int = DIM_CUT,
    block: int = BLOCK,
    clip: bool = False,
    protocols: Iterable[str] = ("reduced", "full"),
    quicklook_dir: str | Path | None = None,
) -> SceneResult:
    """Evaluate methods and products on one scene.

    Args:
        scene: a loaded :class:`Scene`, or a scene location (folder, STAC item folder, s3:// prefix).
        methods: see :func:`resolve_methods`; ``[]`` evaluates products only.
        products: name -> fused product (path with optional ``{scene}``, or a (C, H, W) array).
        dim_cut: border cut of the reduced-resolution metrics (toolbox: 21).
        block: block size of Q2n, Q and the full-resolution indices.
        clip: clamp fused images to [0, 2**bits] before scoring.
        protocols: any of "reduced" and "full"; "truth" is added when the scene has a truth.
        quicklook_dir: write the quicklook PNGs there.
    """
    scene = scene if isinstance(scene, Scene) else load_scene(scene, block=block)
    protocols = set(protocols)
    unknown = protocols - {"reduced", "full"}
    if unknown:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)}; choose from reduced, full")
    fns = resolve_methods(methods)
    red_products, full_products = split_products(scene, products)
    for kind, given in (("reduced", red_products), ("full", full_products)):
        if given and kind not in protocols:
            raise ValueError(f"product(s) {', '.join(given)} are {kind}-resolution products (by their shape) but "
                             f"the {kind} protocol is not run; add it to the protocols")
    sensor, ratio, bits = scene.sensor, scene.ratio, scene.bits
    ms, pan = _tensor(scene.ms), _tensor(scene.pan)
    result = SceneResult(scene_id=scene.scene_id, sensor=sensor.name, bits=bits, ratio=ratio,
                         bands=tuple(sensor.bands), source=scene.source, ms_shape=tuple(ms.shape),
                         pan_shape=tuple(pan.shape), notes=list(scene.notes))
    qdir = Path(quicklook_dir) if quicklook_dir is not None else None
    slug = scene.scene_id.replace("/", "__")
    title = f"{scene.scene_id} ({sensor.name}, {bits}-bit, ratio {ratio})"
    # One zoom window (MS pixels, clear of the metrics' border cut) for every figure: the same ground.
    win = figures.zoom_window(pan, tuple(ms.shape[-2:]), margin=dim_cut) if qdir is not None else None

    if "reduced" in protocols:
        pair = wald_pair(ms, pan, sensor)
        fused, secs = {}, {}
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fused[name] = fn(pair["ms"], pair["pan"], sensor, ratio=ratio).to(torch.float64)
            secs[name] = time.perf_counter() - t0
        fused.update({k: _tensor(v) for k, v in red_products.items()})
        result.metrics["reduced"] = {
            k: _floats(reduced_resolution_metrics(f, pair["gt"], ratio, bits, dim_cut=dim_cut, block=block,
                                                  clip=clip)) for k, f in fused.items()}
        result.seconds["reduced"] = secs
        if qdir is not None and fused:
            result.quicklooks["reduced"] = str(figures.reduced_figure(
                qdir / f"{slug}_reduced.png", pair["gt"], fused, sensor.bands, pair["pan"],
                result.metrics["reduced"], title=f"{title}: reduced resolution (Wald)", window=win))
        del pair, fused

    if "full" in protocols:
        lms = interp23tap(ms, ratio).to(torch.float64)
        idx = list(rgb_indices(sensor.bands, ms.shape[0]))
        rgb: dict[str, np.ndarray] = {}  # only red, green, blue are kept for the quicklook
        result.metrics["full"], result.seconds["full"] = {}, {}
        if scene.truth is not None:
            truth = _tensor(scene.truth)
            result.metrics["truth"] = {}
        for name in (*fns, *full_products):
            t0 = time.perf_counter()
            if name in fns:
                f = fns[name](ms, pan, sensor, ratio=ratio).to(torch.float64)
                result.seconds["full"][name] = time.perf_counter() - t0
            else:
                f = _tensor(full_products[name])
            result.metrics["full"][name] = _floats(full_resolution_metrics(
                f, ms, pan, sensor, ratio, bits, block=block, lms=lms, clip=clip))
            if scene.truth is not None:
                result.metrics["truth"][name] = _floats(reduced_resolution_metrics(
                    f, truth, ratio, bits, dim_cut=dim_cut, block=block, clip=clip))
            rgb[name] = f[idx].to(torch.float32).numpy()
            del f
        if qdir is not None and rgb:
            result.quicklooks["full"] = str(figures.full_figure(
                qdir / f"{slug}_full.png", pan, rgb, None, result.metrics["full"],
                reference=lms[idx].numpy(), title=f"{title}: full resolution",
                window=(win[0] * ratio, win[1] * ratio, win[2] * ratio)))
    if qdir is not None:
        inputs = figures.inputs_figure(qdir / f"{slug}_inputs.png", ms, pan, sensor.bands,
                                       lms=interp23tap(ms, ratio), title=f"{title}: inputs", window=win)
        result.quicklooks = {"inputs": str(inputs), **result.quicklooks}
    return result


def evaluate_scenes(
    locations: Iterable[Scene | str | Path],
    methods: str | Sequence[str] | Mapping[str, Method] | None = None,
    products: Mapping[str, Any] | None = None,
    *,
    dim_cut: int = DIM_CUT,
    block: int = BLOCK,
    clip: bool = False,
    protocols: Iterable[str] = ("reduced", "full"),
    quicklook_dir: str | Path | None = None,
    max_quicklooks: int = 12,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Evaluate every scene found at ``locations`` (folders or archives) and summarise.

    Quicklooks are drawn for the first ``max_quicklooks`` scenes only; products
    apply to every scene (use ``{scene}`` in their paths). See :func:`evaluate_scene`.
    """
    protocols = tuple(protocols)
    methods = resolve_methods(methods)  # an unknown name fails before any scene is read
    items: list[Any] = []
    skipped: list[tuple[str, str]] = []
    for loc in locations:
        items.extend([loc] if isinstance(loc, Scene) else find_scenes([loc], skipped=skipped))
    for sid, reason in skipped:
        if progress:
            progress(f"skipped {sid}: {reason}")
    if not items:
        raise ValueError("no scenes to evaluate")
    results = []
    for i, item in enumerate(items):
        scene = item if isinstance(item, Scene) else load_scene(item, block=block)
        if progress:
            progress(f"[{i + 1}/{len(items)}] {scene.scene_id}")
        qdir = quicklook_dir if i < max_quicklooks else None
        results.append(evaluate_scene(scene, methods, products, dim_cut=dim_cut, block=block, clip=clip,
                                      protocols=protocols, quicklook_dir=qdir))
    return EvaluationResult(results, conventions(dim_cut, block, clip), skipped)
