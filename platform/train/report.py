"""What a person looks at after stage 1: the loss curves and a denoising quicklook.

The quicklook shows, for a few tiles, what each net learned to predict from
the other modality: P2M generates the MS at PAN resolution from PAN alone,
M2P generates PAN from the upsampled MS, both by DDIM from pure noise, next
to the inputs they should match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from crossdiff.models.crossdiff import ROLE_INPUTS, CrossDiff
from crossdiff.platform.quicklook import gray8, save_panels, to_rgb8
from crossdiff.platform.tracking.plots import loss_curve_png

LOSS_KEYS = ("loss", "loss_p2m", "loss_m2p")


def write_loss_curves(histories: Mapping[str, Sequence[tuple[int, float]]], path: Path, title: str) -> Path | None:
    """Loss curves of every net that logged; None when nothing was logged yet."""
    series = {k: v for k, v in histories.items() if v}
    return loss_curve_png(series, path, title=title) if series else None


@torch.no_grad()
def denoising_quicklook(
    model: CrossDiff,
    tiles: Mapping[str, torch.Tensor],
    path: Path,
    *,
    band_names: Sequence[str] | None = None,
    roles: Sequence[str] = ("p2m", "m2p"),
    t: int = 100,
    seed: int = 0,
    max_tiles: int = 3,
) -> Path:
    """One row per tile: each trained net's input noised at ``t`` and its one-step denoising.

    A single denoising step shows what the nets learned from the very first
    checkpoints, where full sampling from pure noise still gives noise.

    Args:
        model: the pretrained CrossDiff (eval mode is set here).
        tiles: ``pan`` (B, 1, H, W) and ``lms`` (B, C, H, W) in [-1, 1].
        roles: the nets that were trained.
        t: the noise level shown (1..T).
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    n = min(max_tiles, tiles["pan"].shape[0])
    inputs = {k: tiles[k][:n].float() for k in ("pan", "lms")}
    diffusion = model.diffusion
    steps = torch.full((n,), t, dtype=torch.long)
    render = {"lms": lambda x: to_rgb8(x, band_names), "pan": gray8}
    rows: dict[str, dict[str, torch.Tensor]] = {}
    for role in roles:
        x0_key, cond_key = ROLE_INPUTS[role]
        x_t = diffusion.q_sample(inputs[x0_key], steps, generator=gen)
        eps = getattr(model, role)(x_t, inputs[cond_key], steps)
        rows[role] = {"key": x0_key, "noisy": x_t, "denoised": diffusion.predict_x0(x_t, steps, eps).clamp(-1, 1)}
    panels = {}
    for i in range(n):
        panels[f"tile {i}: PAN"] = gray8(inputs["pan"][i])
        panels[f"tile {i}: MS (lms)"] = to_rgb8(inputs["lms"][i], band_names)
        for role, r in rows.items():
            show = render[r["key"]]
            panels[f"tile {i}: {role.upper()} noisy {r['key']} (t={t})"] = show(r["noisy"][i].clamp(-1, 1))
            panels[f"tile {i}: {role.upper()} denoised, given {ROLE_INPUTS[role][1]}"] = show(r["denoised"][i])
    return save_panels(panels, path, ncols=2 + 2 * len(rows),
                       suptitle=f"Stage-1 one-step denoising at t={t}: each net predicts its input from the other")
