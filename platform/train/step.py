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

    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
        }

    def load_state_dict(self, state: Mapping) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
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


def build_train_state(trained: nn.Module, optim: OptimSection, max_steps: int) -> TrainState:
    """AdamW (the paper's optimiser), its schedule and an optional timm EMA of ``trained``."""
    opt = torch.optim.AdamW(trained.parameters(), lr=optim.lr, betas=optim.betas,
                            weight_decay=optim.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, optim, max_steps))
    ema = None
    if optim.ema_decay is not None:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(_unwrap(trained), decay=optim.ema_decay)
    return TrainState(opt, sched, ema)


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
        grad_norm = torch.nn.utils.clip_grad_norm_(trained.parameters(), grad_clip)
    state.optimizer.step()
    state.scheduler.step()
    if state.ema is not None:
        state.ema.update(_unwrap(trained), step=state.step)
    state.step += 1
    state.batch_in_epoch += 1
    out = {f"loss_{k}" if k != "loss" else "loss": float(v.detach()) for k, v in losses.items()}
    out["lr"] = state.scheduler.get_last_lr()[0]
    if grad_norm is not None:
        out["grad_norm"] = float(grad_norm)
    out["step_seconds"] = time.perf_counter() - start
    return out
