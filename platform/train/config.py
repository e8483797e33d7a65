"""The typed configuration of a stage-1 pretraining job.

A job is described by one YAML file; every section is a frozen dataclass and
unknown or mistyped keys are errors that name the allowed keys, reported
before any cluster resource is taken. The resolved config is saved beside
every checkpoint and logged to the MLflow run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import yaml

from crossdiff.models.config import CrossDiffConfig, StrictConfig


@dataclasses.dataclass(frozen=True)
class DataSection(StrictConfig):
    """Where the tiles come from.

    Attributes:
        manifest: the Parquet tile manifest written by ``crossdiff ingest`` (path or s3:// URI).
        split: which split to train on (None: every split, e.g. for a tiny archive).
        sensors: keep only these sensors (names or aliases); None keeps all, which
            must then share one band count.
        batch_size: global batch size, split evenly over the workers.
        shuffle_seed: seed of the deterministic per-epoch tile order.
        endpoint_url: S3 endpoint for s3:// manifests and rasters (None: AWS default).
        readers: Ray Data reader actors (None: one per free CPU).
        reader_cpus: CPUs each reader actor reserves (fractions share cores with training).
        lms_on: where ``lms`` is computed: "trainer" (default: each training
            worker computes it from ``ms`` on its own device, so readers of
            8-band tiles ship a sixth of the bytes and spend a third to a
            quarter of the CPU a tile) or
            "readers" (the stream ships it: for CPU trainers with readers on
            other machines).
    """

    manifest: str = ""
    split: str | None = "train"
    sensors: tuple[str, ...] | None = None
    batch_size: int = 32
    shuffle_seed: int = 0
    endpoint_url: str | None = None
    readers: int | None = None
    reader_cpus: float = 0.5
    lms_on: Literal["trainer", "readers"] = "trainer"

    def __post_init__(self) -> None:
        if not self.manifest:
            raise ValueError("data.manifest is required: the tile manifest from `crossdiff ingest`")
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")


@dataclasses.dataclass(frozen=True)
class OptimSection(StrictConfig):
    """AdamW with warm-up and an optional cosine decay (the paper: lr 3e-4, no decay, wd 0)."""

    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"optim.ema_decay must lie in (0, 1), got {self.ema_decay}")


@dataclasses.dataclass(frozen=True)
class RunSection(StrictConfig):
    """Length, checkpoints and the run's identity.

    Attributes:
        name: run name; a job started again with the same name resumes it.
        storage_path: where checkpoints go (local path or s3:// URI).
        max_steps: optimizer steps in total, over all epochs.
        checkpoint_every: steps between checkpoints.
        keep_checkpoints: how many recent checkpoints to keep.
        log_every: steps between metric logs.
        seed: seed of initialisation and noise.
        nets: train both nets in one job (the paper) or one of them.
        bf16: bfloat16 autocast; None: on where the device computes bfloat16 in
            hardware (Ampere+ GPUs, CPUs with AVX512-BF16 or AMX; see
            ``models.performance.native_bf16``).
        channels_last: channels-last memory format; None: where it is faster
            (see ``models.performance.default_channels_last``).
    """

    name: str = "pretrain"
    storage_path: str = "runs"
    max_steps: int = 1000
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    log_every: int = 10
    seed: int = 0
    nets: Literal["both", "p2m", "m2p"] = "both"
    bf16: bool | None = None
    channels_last: bool | None = None

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("run.max_steps, run.checkpoint_every and run.log_every must be >= 1")
        if self.keep_checkpoints < 1:
            raise ValueError("run.keep_checkpoints must be >= 1")

    @property
    def roles(self) -> tuple[str, ...]:
        return ("p2m", "m2p") if self.nets == "both" else (self.nets,)


@dataclasses.dataclass(frozen=True)
class ScaleSection(StrictConfig):
    """How many Ray Train workers, and what each takes."""

    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    placement: Literal["PACK", "SPREAD", "STRICT_SPREAD"] = "PACK"
    max_failures: int = 3

    def __post_init__(self) -> None:
        if self.num_workers < 1 or self.cpus_per_worker <= 0:
            raise ValueError("scale.num_workers must be >= 1 and scale.cpus_per_worker > 0")


@dataclasses.dataclass(frozen=True)
class TrackingSection(StrictConfig):
    """MLflow: where runs go and what the encoders are registered as."""

    tracking_uri: str | None = None
    experiment: str = "crossdiff-pretrain"
    register_as: str | None = "crossdiff-encoders"
    alias: str | None = None


@dataclasses.dataclass(frozen=True)
class PretrainConfig(StrictConfig):
    """A whole stage-1 job. ``model`` is a CrossDiffConfig dict; its band count must match the data."""

    data: DataSection = dataclasses.field(default_factory=DataSection)
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    optim: OptimSection = dataclasses.field(default_factory=OptimSection)
    run: RunSection = dataclasses.field(default_factory=RunSection)
    scale: ScaleSection = dataclasses.field(default_factory=ScaleSection)
    tracking: TrackingSection = dataclasses.field(default_factory=TrackingSection)

    def __post_init__(self) -> None:
        try:  # a wrong model section fails here, before any worker starts
            CrossDiffConfig.from_dict(dict(self.model))
        except (ValueError, TypeError) as err:
            raise ValueError(f"model: {err}") from err

    def model_config(self) -> CrossDiffConfig:
        return CrossDiffConfig.from_dict(dict(self.model))


def load_pretrain_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PretrainConfig:
    """Read and validate a YAML job file; ``overrides`` are merged section by section."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the top level must be a mapping of sections")
    for section, values in (overrides or {}).items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    try:
        return PretrainConfig.from_dict(raw)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
