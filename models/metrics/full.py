"""Full-resolution (no reference) metrics: D_lambda (Khan), D_s, HQNR and the
classic QNR, as the reference toolbox (Vivone et al. 2020) computes them.

Inputs are in digital numbers: ``fused`` at PAN scale (C, H, W), ``lms`` the
MS brought to PAN scale by the 23-tap interpolator (the toolbox's ``I_MS``),
``ms`` the original MS (C, H/ratio, W/ratio), ``pan`` (1, H, W) or (H, W).
Batched inputs (B, ...) give (B,) tensors, unbatched ones floats. H and W
must be multiples of the block size (the toolbox refuses other sizes).

* D_lambda_K (``D_lambda_K.m``, Khan 2009) = 1 - Q2n(lms, MTF(fused)): the
  fused image is low-passed with the sensor's MTF-matched filters and
  compared with ``lms`` at PAN scale. ``scale="ms"`` gives the older
  toolbox's form instead: the filtered image decimated to MS scale (keeping
  0-based rows/columns ``2::ratio``, MATLAB ``imresize(.., 'nearest')``) and
  compared with ``ms``.
* D_s (``D_s.m``, toolbox 1.0 option) = mean_b |Q(F_b, PAN) - Q(lms_b, PAN_LP)|
  with the block-wise UIQI (N-1 covariances) on distinct blocks; PAN_LP is
  PAN bicubically downscaled by the ratio (MATLAB ``imresize``) and brought
  back by the 23-tap interpolator.
* D_lambda (``D_lambda.m``, Alparone 2008, toolbox 1.0 option) = mean over
  band pairs of |Q(F_i, F_j) - Q(lms_i, lms_j)|, block-wise UIQI.
* HQNR = (1 - D_lambda_K)(1 - D_s); QNR = (1 - D_lambda)^alpha (1 - D_s)^beta.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from crossdiff.models.metrics._inputs import (
    ImageLike,
    as_batch,
    check_block_multiple,
    check_dn_units,
    finish,
    same_shape,
)
from crossdiff.models.metrics.q2n import q2n_blocks
from crossdiff.models.metrics.uiqi import uiqi_blocks
from crossdiff.models.resample.mtf import mtf_filter
from crossdiff.models.sensors import Sensor, get_sensor

BLOCK = 32
GainsLike = Sensor | str | float | Sequence[float]


def resolve_gains(sensor_or_gains: GainsLike, n_bands: int) -> tuple[float, ...]:
    """MS MTF gains from a Sensor, a sensor name, one gain for all bands, or one per band."""
    if isinstance(sensor_or_gains, Sensor):
        gains = sensor_or_gains.mtf_ms
    elif isinstance(sensor_or_gains, str):
        gains = get_sensor(sensor_or_gains, n_bands=n_bands).mtf_ms
    elif isinstance(sensor_or_gains, (int, float)):
        gains = (float(sensor_or_gains),) * n_bands
    else:
        gains = tuple(float(g) for g in sensor_or_gains)
    if len(gains) != n_bands:
        raise ValueError(f"{len(gains)} MTF gains for {n_bands} bands; give one gain per band "
                         "or a sensor with this band count")
    return tuple(gains)


def _check_ratio(ratio: int) -> int:
    if int(ratio) != ratio or ratio < 2:
        raise ValueError(f"ratio must be an integer >= 2, got {ratio}")
    return int(ratio)


def _d_lambda_khan(f: torch.Tensor, ref: torch.Tensor, gains: tuple[float, ...], ratio: int, block: int,
                   scale: str) -> torch.Tensor:
    check_block_multiple(*f.shape[-2:], block, "D_lambda_K")
    low = mtf_filter(f, gains, ratio)
    if scale == "ms":
        low = low[..., 2::ratio, 2::ratio]
    elif scale != "pan":
        raise ValueError(f"scale must be 'pan' (toolbox 2020) or 'ms' (older toolbox), got {scale!r}")
    same_shape(low, ref, f"D_lambda_K at {scale.upper()} scale: MTF-filtered fused and reference")
    return 1.0 - q2n_blocks(low, ref, block).mean(dim=(-2, -1))


def d_lambda_khan(fused: ImageLike, reference: ImageLike, sensor_or_gains: GainsLike, ratio: int,
                  block: int = BLOCK, scale: str = "pan") -> torch.Tensor | float:
    """Khan's spectral distortion D_lambda_K = 1 - Q2n(reference, MTF(fused)); 0 is ideal.

    Args:
        fused: fused image at PAN scale, digital numbers.
        reference: ``lms`` (MS interpolated to PAN scale) for ``scale="pan"``,
            the original MS for ``scale="ms"``.
        sensor_or_gains: Sensor, sensor name or MS MTF gains.
        ratio: PAN/MS resolution ratio.
        block: Q2n block size.
        scale: "pan" (the 2020 toolbox, default) or "ms" (decimate, compare with MS).
    """
    f, batched = as_batch(fused, "fused")
    r, _ = as_batch(reference, "reference")
    gains = resolve_gains(sensor_or_gains, f.shape[1])
    return finish(_d_lambda_khan(f, r, gains, _check_ratio(ratio), block, scale), batched)


def pan_low_pass(pan: torch.Tensor, ratio: int) -> torch.Tensor:
    """PAN_LP of D_s: MATLAB ``imresize(pan, 1/ratio)`` (bicubic, antialiased), then 23-tap x ratio."""
    from crossdiff.models.resample.imresize import imresize  # imported here: written alongside these metrics
    from crossdiff.models.resample.interp23 import interp23tap

    return interp23tap(imresize(pan, 1.0 / ratio), ratio).to(torch.float64)


def _d_s(f: torch.Tensor, lms: torch.Tensor, pan: torch.Tensor, pan_lp: torch.Tensor, block: int,
         q: float) -> torch.Tensor:
    check_block_multiple(*f.shape[-2:], block, "D_s")
    same_shape(f, lms, "D_s: fused and lms")
    for name, p in (("pan", pan), ("pan_lp", pan_lp)):
        if p.shape[0] != f.shape[0] or p.shape[-2:] != f.shape[-2:]:
            raise ValueError(f"D_s: {name} is {tuple(p.shape)}, the fused image {tuple(f.shape)}; "
                             "give PAN at the fused image's size")
    q_high = uiqi_blocks(f, pan, block).mean(dim=(-2, -1))
    q_low = uiqi_blocks(lms, pan_lp, block).mean(dim=(-2, -1))
    return ((q_high - q_low).abs() ** q).mean(dim=1) ** (1.0 / q)


def d_s(fused: ImageLike, lms: ImageLike, pan: ImageLike, ratio: int, block: int = BLOCK, q: float = 1.0,
        pan_lp: ImageLike | None = None) -> torch.Tensor | float:
    """Spatial distortion D_s (toolbox ``D_s.m``); 0 is ideal.

    Args:
        fused: fused image at PAN scale; lms: MS interpolated to PAN scale.
        pan: the PAN image, (1, H, W), (H, W) or (B, 1, H, W).
        ratio: PAN/MS resolution ratio.
        block: side of the distinct UIQI blocks.
        q: exponent of the band mean (toolbox: 1).
        pan_lp: a precomputed low-pass PAN (see :func:`pan_low_pass`).
    """
    f, batched = as_batch(fused, "fused")
    m, _ = as_batch(lms, "lms")
    p, _ = as_batch(pan, "pan", single_band=True)
    ratio = _check_ratio(ratio)
    lp = pan_low_pass(p, ratio) if pan_lp is None else as_batch(pan_lp, "pan_lp", single_band=True)[0]
    return finish(_d_s(f, m, p, lp, block, q), batched)


def _pairwise_block_q(x: torch.Tensor, block: int) -> torch.Tensor:
    """Mean over blocks of the block-wise UIQI of every band pair: (B, C, C)."""
    b, c, h, w = x.shape
    xb = x.reshape(b, c, h // block, block, w // block, block).permute(0, 2, 4, 1, 3, 5)
    xb = xb.reshape(b, -1, c, block * block)
    m = xb.mean(dim=-1)
    d = xb - m.unsqueeze(-1)
    cov = d @ d.transpose(-1, -2) / (block * block - 1)  # MATLAB cov: N-1, centred
    var = torch.diagonal(cov, dim1=-2, dim2=-1)
    mi, mj = m.unsqueeze(-1), m.unsqueeze(-2)
    q = 4.0 * cov * mi * mj / (var.unsqueeze(-1) + var.unsqueeze(-2)) / (mi * mi + mj * mj)
    return q.mean(dim=1)


def _d_lambda_qnr(f: torch.Tensor, lms: torch.Tensor, block: int, p: float) -> torch.Tensor:
    check_block_multiple(*f.shape[-2:], block, "D_lambda")
    same_shape(f, lms, "D_lambda: fused and lms")
    c = f.shape[1]
    if c < 2:
        raise ValueError("D_lambda compares band pairs: it needs at least two bands")
    i, j = torch.triu_indices(c, c, offset=1, device=f.device)
    diff = _pairwise_block_q(f, block)[:, i, j] - _pairwise_block_q(lms, block)[:, i, j]
    return (diff.abs() ** p).mean(dim=1) ** (1.0 / p)


def d_lambda_qnr(fused: ImageLike, lms: ImageLike, block: int = BLOCK,
                 p: float = 1.0) -> torch.Tensor | float:
    """Classic QNR spectral distortion (Alparone 2008, toolbox ``D_lambda.m``); 0 is ideal."""
    f, batched = as_batch(fused, "fused")
    m, _ = as_batch(lms, "lms")
    return finish(_d_lambda_qnr(f, m, block, p), batched)


def hqnr(fused: ImageLike, lms: ImageLike, pan: ImageLike, sensor_or_gains: GainsLike, ratio: int,
         block: int = BLOCK) -> torch.Tensor | float:
    """HQNR = (1 - D_lambda_K)(1 - D_s); 1 is ideal."""
    f, batched = as_batch(fused, "fused")
    m, _ = as_batch(lms, "lms")
    p, _ = as_batch(pan, "pan", single_band=True)
    ratio = _check_ratio(ratio)
    gains = resolve_gains(sensor_or_gains, f.shape[1])
    dl = _d_lambda_khan(f, m, gains, ratio, block, "pan")
    ds = _d_s(f, m, p, pan_low_pass(p, ratio), block, 1.0)
    return finish((1.0 - dl) * (1.0 - ds), batched)


def full_resolution_metrics(
    fused: ImageLike,
    ms: ImageLike,
    pan: ImageLike,
    sensor_or_gains: GainsLike,
    ratio: int,
    bits: int,
    block: int = BLOCK,
    lms: ImageLike | None = None,
    clip: bool = False,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> dict[str, torch.Tensor | float]:
    """All full-resolution metrics, as the toolbox's ``indexes_evaluation_FS``.

    Args:
        fused: fused image at PAN scale (C, H, W) or (B, C, H, W), digital numbers.
        ms: original MS (C, H/ratio, W/ratio); interpolated to ``lms`` by the
            23-tap interpolator unless ``lms`` is given.
        pan: PAN image at the fused image's size.
        sensor_or_gains: Sensor, sensor name or MS MTF gains (for D_lambda_K).
        ratio: PAN/MS resolution ratio.
        bits: radiometric bit depth (the clip bound 2**bits).
        block: block size of every index (toolbox: 32).
        lms: MS already interpolated to PAN scale (skips the interpolation).
        clip: the toolbox's ``th_values``: clamp fused to [0, 2**bits] first.
        alpha, beta: exponents of the classic QNR.

    Returns:
        {"D_lambda_K", "D_s", "HQNR", "D_lambda", "QNR"}: floats, or (B,) tensors.
    """
    f, batched = as_batch(fused, "fused")
    m, _ = as_batch(ms, "ms")
    p, _ = as_batch(pan, "pan", single_band=True)
    ratio = _check_ratio(ratio)
    check_dn_units(m, "full_resolution_metrics")
    if m.shape[1] != f.shape[1] or m.shape[0] != f.shape[0]:
        raise ValueError(f"ms {tuple(m.shape)} and fused {tuple(f.shape)} differ in batch or band count")
    if (m.shape[-2] * ratio, m.shape[-1] * ratio) != tuple(f.shape[-2:]):
        raise ValueError(f"fused is {tuple(f.shape[-2:])} px but ms {tuple(m.shape[-2:])} x ratio {ratio} is "
                         f"{(m.shape[-2] * ratio, m.shape[-1] * ratio)}; give the fused image at PAN scale")
    if lms is None:
        from crossdiff.models.resample.interp23 import interp23tap

        lm = interp23tap(m, ratio).to(torch.float64)
    else:
        lm = as_batch(lms, "lms")[0]
    if clip:
        f = f.clamp(0.0, float(2**bits))
    gains = resolve_gains(sensor_or_gains, f.shape[1])
    dl_k = _d_lambda_khan(f, lm, gains, ratio, block, "pan")
    ds = _d_s(f, lm, p, pan_low_pass(p, ratio), block, 1.0)
    dl = _d_lambda_qnr(f, lm, block, 1.0)
    values = {
        "D_lambda_K": dl_k,
        "D_s": ds,
        "HQNR": (1.0 - dl_k) * (1.0 - ds),
        "D_lambda": dl,
        "QNR": (1.0 - dl) ** alpha * (1.0 - ds) ** beta,
    }
    return {k: finish(v, batched) for k, v in values.items()}
