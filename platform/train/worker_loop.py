"""The per-worker stage-1 loop that Ray Train runs on every worker.

Each worker builds the model, restores the newest valid checkpoint (weights,
optimiser, schedule, EMA, data position), wraps the trained nets in DDP and
steps through its shard of the tile stream. Rank 0 alone writes checkpoints
and logs to MLflow; every rank reports, which keeps the ranks in lockstep.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import torch

from crossdiff.models.crossdiff import CrossDiff
from crossdiff.models.performance import default_channels_last, keep_freed_memory, native_bf16, to_channels_last
from crossdiff.models.pretrain import CrossPretrainer
from crossdiff.platform.stream.samples import LMS_SOURCES, add_lms
from crossdiff.platform.train.checkpoints import (
    checkpoint_dir_name,
    resume_point,
    storage_location,
    write_checkpoint,
)
from crossdiff.platform.train.config import PretrainConfig
from crossdiff.platform.train.step import build_train_state, train_step

TRAINED_COLUMNS = ["pan", "lms"]


def stream_columns(lms_on: str) -> list[str]:
    """The stream columns a run reads: ``lms`` itself, or what the trainer computes it from."""
    return TRAINED_COLUMNS if lms_on == "readers" else list(LMS_SOURCES)


def trained_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The nets' inputs (``pan``, ``lms``) from a stream batch; ``lms`` is computed here, on the
    batch's device, unless the readers shipped it."""
    if "lms" not in batch:
        batch = add_lms(batch)
    return {k: batch[k] for k in TRAINED_COLUMNS}


class _Window:
    """Running means of the metrics since the last log, and throughput."""

    def __init__(self, size: int) -> None:
        self.rows: deque[dict[str, float]] = deque(maxlen=size)
        self.started = time.perf_counter()

    def add(self, row: dict[str, float]) -> None:
        self.rows.append(row)

    def summary(self, samples_per_step: int) -> dict[str, float]:
        keys = self.rows[0].keys()
        out = {k: sum(r[k] for r in self.rows) / len(self.rows) for k in keys}
        elapsed = time.perf_counter() - self.started
        out["samples_per_s"] = samples_per_step * len(self.rows) / max(elapsed, 1e-9)
        self.rows.clear()
        self.started = time.perf_counter()
        return out


def _use_allotted_cpus() -> int:
    """Size torch's intra-op thread pool to this worker's CPU allotment; returns the thread count.

    Ray exports OMP_NUM_THREADS = floor(allotted CPUs) to a worker only when
    the variable is unset; a value inherited from the driver's environment
    wins (OMP_NUM_THREADS=1 is a common cluster default, or one sized for a
    whole node), and the worker then runs one thread on a 2-CPU allotment or
    oversubscribes the cores it shares with Ray Data readers and other
    workers. Fractions below one CPU get one thread, as in Ray's own rule.
    """
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, math.floor(cpus)))
    return torch.get_num_threads()


def pretrain_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point; ``loop_config`` holds the resolved config and the MLflow run."""
    import ray.train
    import ray.train.torch

    cfg = PretrainConfig.from_dict(loop_config["config"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    threads = _use_allotted_cpus()
    if device.type == "cpu":
        keep_freed_memory()  # no page faults on the activations of every step (see its docstring)
    bf16 = native_bf16(device) if cfg.run.bf16 is None else cfg.run.bf16
    channels_last = default_channels_last(device, bf16) if cfg.run.channels_last is None else cfg.run.channels_last

    torch.manual_seed(cfg.run.seed)  # identical initial weights on every rank
    model = CrossDiff.from_config(cfg.model_config())
    storage_path, storage_fs = storage_location(cfg.run.storage_path, cfg.data.endpoint_url)
    resume = resume_point(ray.train.get_checkpoint(), storage_fs, f"{storage_path}/{cfg.run.name}")
    if resume is not None:
        model.load_state_dict(resume.state_dict)
    model.to(device)
    if channels_last:
        to_channels_last(model)
    trained = ray.train.torch.prepare_model(CrossPretrainer(model, cfg.run.roles), parallel_strategy="ddp")
    state = build_train_state(trained, cfg.optim, cfg.run.max_steps)
    if resume is not None:
        state.load_state_dict(resume.train_state)
    torch.manual_seed(cfg.run.seed * 1000 + rank + state.step)  # noise differs per rank and per restart

    logger = _rank0_logger(loop_config) if rank == 0 else None
    if logger is not None:
        logger.set_tags({"resumed_from_step": str(state.step)} if resume else {})
    shard = ray.train.get_dataset_shard("train")
    per_worker = max(1, cfg.data.batch_size // world)
    window = _Window(cfg.run.log_every)
    ckpt_losses: list[float] = []
    # Throughput between reports, without the checkpoint writes: (time, step) after the last report,
    # and the time spent in train_step since (the rest is waiting for data and loop overhead).
    since, in_step = (time.perf_counter(), state.step), 0.0

    while state.step < cfg.run.max_steps:
        skip = state.batch_in_epoch  # batches this epoch already trained on before a restart
        batches = shard.iter_torch_batches(batch_size=per_worker, drop_last=True, device=device,
                                           dtypes=torch.float32)
        seen = 0
        for batch in batches:
            seen += 1
            if seen <= skip:
                continue
            row = train_step(trained, trained_inputs(batch), state,
                             grad_clip=cfg.optim.grad_clip, bf16=bf16, channels_last=channels_last)
            window.add(row)
            in_step += row["step_seconds"]
            ckpt_losses.append(row["loss"])
            if logger is not None and state.step % cfg.run.log_every == 0:
                logger.log_metrics({**window.summary(per_worker * world), "epoch": state.epoch}, step=state.step)
            if state.step % cfg.run.checkpoint_every == 0 or state.step >= cfg.run.max_steps:
                elapsed = max(time.perf_counter() - since[0], 1e-9)
                speed = {"samples_per_s": per_worker * world * (state.step - since[1]) / elapsed,
                         "step_time_share": in_step / elapsed, "torch_threads": threads}
                _report(model, state, loop_config, rank, sum(ckpt_losses) / len(ckpt_losses), speed)
                ckpt_losses.clear()
                since, in_step = (time.perf_counter(), state.step), 0.0
            if state.step >= cfg.run.max_steps:
                break
        else:
            if seen == 0:
                raise RuntimeError("the training shard yielded no complete batch: the manifest "
                                   "has fewer tiles than workers x per-worker batch size")
            state.epoch += 1
            state.batch_in_epoch = 0


def _report(model: CrossDiff, state, loop_config: dict, rank: int, mean_loss: float,
            speed: dict[str, float]) -> None:
    """Checkpoint on rank 0, report on every rank (Ray Train keeps the best N by loss)."""
    import ray.train

    metrics = {"step": state.step, "epoch": state.epoch, "loss_since_checkpoint": mean_loss, **speed}
    name = checkpoint_dir_name(state.step)
    if rank != 0:
        ray.train.report(metrics, checkpoint=None, checkpoint_dir_name=name)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run_config = {"config": loop_config["config"], "run_id": loop_config.get("run_id")}
        write_checkpoint(Path(tmp), model, state.state_dict(), run_config)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp), checkpoint_dir_name=name)


def _rank0_logger(loop_config: dict[str, Any]):
    """The MLflow logger of rank 0, or None when the run is not tracked."""
    if not loop_config.get("run_id"):
        return None
    from crossdiff.platform.tracking.runs import RunLogger

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    return RunLogger(loop_config["tracking_uri"], loop_config["run_id"])
