"""The pure-torch part of stage 1: optimiser, schedule, EMA and one training step.

Nothing here knows about Ray: the per-worker loop calls these, and the
stage-1 benchmark calls the very same step in a plain PyTorch loop so the two
are compared on identical work.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping

import torch
from torch import nn

from crossdiff.models.performance import autocast, sample_channels_last
from crossdiff.platform.train.config import OptimSection


@dataclasses.dataclass
class TrainState:
    """Everything a checkpoint restores besides the weights."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    ema: nn.Module | None
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    foreach_clip: bool = False  # clip gradients with the multi-tensor kernel (not part of a checkpoint)

    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
        }

    def load_state_dict(self, state: Mapping) -> None:
        # The kernel choice (fused/foreach) belongs to this machine, not to the one that saved the state.
        kernels = [(g.get("fused"), g.get("foreach")) for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])
        for group, (fused, foreach) in zip(self.optimizer.param_groups, kernels, strict=True):
            group["fused"], group["foreach"] = fused, foreach
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]


def lr_factor(step: int, optim: OptimSection, max_steps: int) -> float:
    """Linear warm-up, then constant or cosine decay to ``min_lr_ratio``."""
    if step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - optim.warmup_steps) / max(1, max_steps - optim.warmup_steps))
    return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _fused_optimizer_ok(params: list[nn.Parameter]) -> bool:
    """Whether torch's fused AdamW and multi-tensor clipping can take these parameters (float, CPU or CUDA).

    On CPU torch's defaults are Python loops over the parameters; the fused
    AdamW kernel does the same update in one pass per tensor (measured: 2.6 ms
    -> 0.7 ms per P2M step on one thread), the multi-tensor norm saves about a
    hundred small kernel calls of gradient clipping.
    """
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def build_train_state(trained: nn.Module, optim: OptimSection, max_steps: int) -> TrainState:
    """AdamW (the paper's optimiser), its schedule and an optional timm EMA of ``trained``."""
    params = list(trained.parameters())
    fast = _fused_optimizer_ok(params)
    opt = torch.optim.AdamW(params, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay,
                            fused=True if fast else None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, optim, max_steps))
    ema = None
    if optim.ema_decay is not None:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(_unwrap(trained), decay=optim.ema_decay)
    return TrainState(opt, sched, ema, foreach_clip=fast)


def _unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)  # DistributedDataParallel keeps the net in .module


def train_step(
    trained: nn.Module,
    batch: Mapping[str, torch.Tensor],
    state: TrainState,
    *,
    grad_clip: float | None = None,
    bf16: bool = False,
    channels_last: bool = False,
) -> dict[str, float]:
    """One optimiser step on one batch; returns the losses, learning rate and step time.

    Args:
        trained: a CrossPretrainer (or its DDP wrapper) returning a dict of losses.
        batch: ``pan`` and ``lms`` in [-1, 1], already on the model's device.
        state: optimiser, schedule and EMA; ``state.step`` is advanced.
    """
    start = time.perf_counter()
    if channels_last:
        batch = sample_channels_last(batch)
    with autocast(batch["pan"], enabled=bf16):
        losses = trained(batch)
    state.optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    grad_norm = None
    if grad_clip is not None:
        grad_norm = torch.nn.utils.clip_grad_norm_(trained.parameters(), grad_clip,
                                                   foreach=True if state.foreach_clip else None)
    state.optimizer.step()
    state.scheduler.step()
    if state.ema is not None:
        state.ema.update(_unwrap(trained), step=state.step)
    state.step += 1
    state.batch_in_epoch += 1
    # One device-to-host transfer for every logged value (each float() would be a sync on a GPU).
    names = [f"loss_{k}" if k != "loss" else "loss" for k in losses]
    values = [v.detach().float() for v in losses.values()]
    if grad_norm is not None:
        names.append("grad_norm")
        values.append(grad_norm.detach().float())
    out = dict(zip(names, torch.stack(values).tolist(), strict=True))
    out["lr"] = state.scheduler.get_last_lr()[0]
    out["step_seconds"] = time.perf_counter() - start
    return out
