"""The stage-1 driver: builds the TorchTrainer, runs it, reports and registers.

``run_pretraining`` is what ``crossdiff pretrain`` and ``ray job submit``
call. It opens (or resumes, by run name) the MLflow run, streams the tile
manifest through Ray Data into a ``TorchTrainer`` with DDP, and when training
ends logs the loss curves and a denoising quicklook and registers both nets
as one model version (safetensors + config + pyfunc) with lineage tags.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch

from crossdiff.models.crossdiff import CrossDiff
from crossdiff.models.pretrain import CrossPretrainer
from crossdiff.platform.archive.filesystems import StorageOptions
from crossdiff.platform.archive.manifest import manifest_hash, read_manifest
from crossdiff.platform.ray_runtime import ensure_ray
from crossdiff.platform.train.checkpoints import read_checkpoint, storage_location
from crossdiff.platform.train.config import PretrainConfig
from crossdiff.platform.train.report import LOSS_KEYS, denoising_quicklook, write_loss_curves
from crossdiff.platform.train.worker_loop import pretrain_worker, stream_columns, trained_inputs

log = logging.getLogger(__name__)

# Settings every training worker needs to reach object storage and MLflow;
# workers on other nodes do not share the driver's environment.
FORWARDED_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                 "AWS_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                 "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def worker_env() -> dict[str, str]:
    """The forwarded settings present in the driver's environment."""
    return {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}


@dataclasses.dataclass
class PretrainResult:
    """What a finished stage-1 job produced."""

    model: CrossDiff
    run_id: str | None
    tracking_uri: str | None
    checkpoint_path: str
    steps: int
    model_version: Any | None = None
    artifacts: dict[str, Path] = dataclasses.field(default_factory=dict)


def _manifest_facts(cfg: PretrainConfig) -> dict[str, str]:
    """Lineage tags: the manifest's fingerprint and the sensors/bands it holds."""
    table = read_manifest(cfg.data.manifest, StorageOptions(endpoint_url=cfg.data.endpoint_url))
    sensors = sorted(set(table.column("sensor").to_pylist()))
    bands = sorted({",".join(b) for b in table.column("bands").to_pylist()})
    return {"manifest_hash": manifest_hash(table, ignore_locations=True),
            "sensors": ",".join(sensors), "bands": ";".join(bands), "manifest": cfg.data.manifest}


def build_dataset(cfg: PretrainConfig, *, shuffle: bool = True):
    """The training tile stream for every epoch the run needs.

    PAN in [-1, 1] and, with ``data.lms_on`` "trainer", the MS and its shifts,
    from which each worker computes ``lms`` on its own device
    (:func:`~crossdiff.platform.train.worker_loop.trained_inputs`); with
    "readers", ``lms`` itself.

    The epochs are laid end to end, each in its own seeded order, so a run of
    ``max_steps`` reads one deterministic stream; a restarted worker skips the
    batches it already trained on.
    """
    from crossdiff.platform.stream import StreamConfig, TileStream

    d = cfg.data
    stream = TileStream(d.manifest, StreamConfig(split=d.split, sensors=d.sensors, seed=d.shuffle_seed,
                                                 shuffle=shuffle, workers=d.readers, cpus_per_worker=d.reader_cpus,
                                                 columns=stream_columns(d.lms_on),
                                                 with_lms=d.lms_on == "readers"),
                        StorageOptions(endpoint_url=d.endpoint_url))
    if stream.n_tiles == 0:
        raise ValueError(f"{d.manifest}: no tiles for split={d.split!r}, sensors={d.sensors}")
    epochs = math.ceil(cfg.run.max_steps * d.batch_size / stream.n_tiles) + 1
    return stream.dataset(range(epochs))


def build_trainer(cfg: PretrainConfig, loop_config: dict[str, Any], datasets: dict[str, Any]):
    """The TorchTrainer: DDP workers, checkpoints kept best-N by loss, failed workers restarted."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    storage_path, storage_fs = storage_location(cfg.run.storage_path, cfg.data.endpoint_url)
    scale = cfg.scale
    return TorchTrainer(
        pretrain_worker,
        train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if scale.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=scale.num_workers, use_gpu=scale.use_gpu,
                                     resources_per_worker={"CPU": scale.cpus_per_worker},
                                     placement_strategy=scale.placement),
        run_config=RunConfig(
            name=cfg.run.name, storage_path=storage_path, storage_filesystem=storage_fs,
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.run.keep_checkpoints,
                                               checkpoint_score_attribute="loss_since_checkpoint",
                                               checkpoint_score_order="min"),
            failure_config=FailureConfig(max_failures=scale.max_failures),
            worker_runtime_env={"env_vars": worker_env()}),
        datasets=datasets,
    )


def _final_model(ckpt) -> CrossDiff:
    """The trained model; with EMA on, the nets carry the EMA weights (what is registered)."""
    model = CrossDiff.from_config(ckpt.model_config)
    model.load_state_dict(ckpt.state_dict)
    cfg = PretrainConfig.from_dict(ckpt.run_config["config"])
    ema_state = ckpt.train_state.get("ema")
    if ema_state is not None:
        CrossPretrainer(model, cfg.run.roles).load_state_dict(ema_state)
    return model.eval()


def run_pretraining(cfg: PretrainConfig, *, out_dir: Path, ray_address: str | None = None,
                    track: bool = True) -> PretrainResult:
    """Run (or resume) a stage-1 job end to end.

    Args:
        cfg: the validated job config.
        out_dir: local folder for reports (and the local MLflow store when none is configured).
        ray_address: cluster to use (default: RAY_ADDRESS, else a local instance).
        track: log to MLflow and register the nets.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    ensure_ray(ray_address)
    facts = _manifest_facts(cfg)
    tracking_uri = run_id = logger = None
    if track:
        from crossdiff.platform.tracking.runs import RunLogger, resolve_tracking_uri, start_or_resume_run

        tracking_uri = resolve_tracking_uri(cfg.tracking.tracking_uri, out_dir / "mlflow")
        run_id = start_or_resume_run(tracking_uri, cfg.tracking.experiment, cfg.run.name,
                                     tags={"stage": "pretrain", **facts})
        logger = RunLogger(tracking_uri, run_id)
        try:
            logger.log_params(cfg.to_dict())
        except ValueError as err:  # a resumed run with a changed config (e.g. more steps): keep both
            logger.set_tags({"config_changed_on_resume": str(err)})
        logger.log_config(cfg.to_dict(), "pretrain_config.yaml")
    (out_dir / "pretrain_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))

    loop_config = {"config": cfg.to_dict(), "run_id": run_id, "tracking_uri": tracking_uri}
    trainer = build_trainer(cfg, loop_config, {"train": build_dataset(cfg)})
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"stage-1 run {cfg.run.name!r} ended without a checkpoint: {result.error}")
    ckpt = read_checkpoint(result.checkpoint.filesystem, result.checkpoint.path)
    model = _final_model(ckpt)
    out = PretrainResult(model, run_id, tracking_uri, result.checkpoint.path, ckpt.train_state["step"])
    out.artifacts = _write_reports(model, cfg, out_dir, logger)
    if logger is not None and cfg.tracking.register_as:
        from crossdiff.platform.registry import register_crossdiff

        out.model_version = register_crossdiff(
            model, name=cfg.tracking.register_as, tracking_uri=tracking_uri, run_id=run_id,
            alias=cfg.tracking.alias, tags={**facts, "stage": "pretrain", "nets": ",".join(cfg.run.roles),
                                            "steps": str(out.steps)},
            description="CrossDiff stage-1 nets (P2M and M2P UNets); encoders for the fusion head")
        logger.end("FINISHED")
    return out


def _write_reports(model: CrossDiff, cfg: PretrainConfig, out_dir: Path, logger) -> dict[str, Path]:
    """Loss curves (from the MLflow history) and the denoising quicklook, logged to the run."""
    artifacts: dict[str, Path] = {}
    if logger is not None:
        histories = {k: logger.metric_history(k) for k in LOSS_KEYS}
        curve = write_loss_curves(histories, out_dir / "loss_curve.png", title=f"stage 1: {cfg.run.name}")
        if curve is not None:
            artifacts["loss_curve"] = curve
    stream = build_dataset(cfg, shuffle=False)
    tiles = trained_inputs(next(iter(stream.limit(3).iter_torch_batches(batch_size=3, dtypes=torch.float32))))
    artifacts["denoising_quicklook"] = denoising_quicklook(
        model, tiles, out_dir / "denoising_quicklook.png", roles=cfg.run.roles)
    if logger is not None:
        for path in artifacts.values():
            logger.log_artifact(path, "reports")
    return artifacts
