"""MLflow runs for the platform's jobs: where they are stored, how they are named
and resumed, and a logger that needs no global MLflow state.

Every job names its run deterministically (e.g. ``pretrain-wv2-<manifest hash>``)
and calls :func:`start_or_resume_run`: a restarted job then keeps logging into
the same run instead of scattering a training curve over several. Logging goes
through :class:`RunLogger`, which holds only ``(tracking_uri, run_id)`` and an
``MlflowClient``: it never touches ``mlflow.start_run``'s process-global active
run, so it can be pickled into a Ray worker and used from rank 0 there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
_TRUNCATED = "...[truncated]"


# -- where runs live ---------------------------------------------------------------------


def resolve_tracking_uri(uri: str | None, local_root: str | os.PathLike) -> str:
    """The tracking URI a job should use.

    Order: the explicit ``uri``, else ``MLFLOW_TRACKING_URI``, else a local
    sqlite store ``sqlite:///<local_root>/mlflow.db`` whose experiments keep
    their artifacts under ``<local_root>/artifacts`` (see :func:`ensure_experiment`).
    """
    if uri:
        return uri
    if os.environ.get(TRACKING_URI_ENV):
        return os.environ[TRACKING_URI_ENV]
    root = Path(local_root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def local_artifact_root(tracking_uri: str) -> Path | None:
    """``<db folder>/artifacts`` for a local sqlite store; None for servers and other stores.

    A client-side sqlite store would otherwise default every new experiment's
    artifacts to ``./mlruns`` in whatever directory the job happened to start in.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(unquote(tracking_uri[len("sqlite:///"):]))
    return db.expanduser().resolve().parent / "artifacts"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "experiment"


def ensure_experiment(name: str, tracking_uri: str) -> str:
    """Id of the experiment called ``name``, creating (or restoring a deleted) one if needed."""
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    root = local_artifact_root(tracking_uri)
    location = (root / _slug(name)).as_uri() if root is not None else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it between our get and create
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _quote(value: str) -> str:
    """A string literal for an MLflow search filter."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"run name {value!r} mixes both quote characters; choose a simpler deterministic name")


def find_run(tracking_uri: str, experiment_id: str, run_name: str) -> str | None:
    """Id of the newest non-deleted run called ``run_name`` in the experiment, or None."""
    runs = MlflowClient(tracking_uri).search_runs(
        [experiment_id],
        filter_string=f"attributes.run_name = {_quote(run_name)}",
        run_view_type=ViewType.ACTIVE_ONLY,
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def start_or_resume_run(
    tracking_uri: str, experiment: str, run_name: str, tags: Mapping[str, Any] | None = None
) -> str:
    """Run id for a deterministic ``run_name``: the existing run (set running again) or a new one.

    Args:
        tracking_uri: where the run lives (see :func:`resolve_tracking_uri`).
        experiment: experiment name, created when missing.
        run_name: deterministic name; reusing it resumes the newest non-deleted run of that name.
        tags: tags to set on the run (new or resumed).

    Call it from one process (the driver or rank 0): two processes racing on a
    fresh name may each create a run.
    """
    client = MlflowClient(tracking_uri)
    exp_id = ensure_experiment(experiment, tracking_uri)
    str_tags = {k: _tag_value(v) for k, v in (tags or {}).items()}
    run_id = find_run(tracking_uri, exp_id, run_name)
    if run_id is None:
        return client.create_run(exp_id, run_name=run_name, tags=str_tags).info.run_id
    client.update_run(run_id, status="RUNNING")
    if str_tags:
        RunLogger(tracking_uri, run_id).set_tags(str_tags)
    return run_id


# -- logging -----------------------------------------------------------------------------


def flatten(params: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"head": {"levels": [..]}}`` -> ``{"head.levels": [..]}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name, sep))
        else:
            out[name] = value
    return out


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _param_value(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, list | tuple | Mapping) else str(value)
    return _truncate(text, MAX_PARAM_VAL_LENGTH)


def _tag_value(value: Any) -> str:
    return _truncate(str(value), MAX_TAG_VAL_LENGTH)


def _as_float(value: Any) -> float:
    """A metric value from a Python, numpy or torch scalar."""
    if hasattr(value, "item"):
        value = value.item()
    return float(value)


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


class RunLogger:
    """Logs to one existing MLflow run through ``MlflowClient`` only.

    Holds ``(tracking_uri, run_id)``; the client is created lazily and dropped
    when pickled, so the logger can be shipped to a Ray worker as is.
    Usable as a context manager: ends the run FINISHED, or FAILED on an exception.
    """

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "run_id": self.run_id, "_client": None}

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end("FAILED" if exc_type is not None else "FINISHED")

    def __repr__(self) -> str:
        return f"RunLogger({self.tracking_uri!r}, {self.run_id!r})"

    # params, tags, config

    def log_params(self, params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
        """Log a nested dict as flat ``a.b.c`` params, values truncated to MLflow's limit.

        A resumed run may log the same params again; values it already has are
        skipped, and a changed value is an error (MLflow params are immutable).

        Returns:
            The flattened params as logged.
        """
        flat = {
            _truncate(k, MAX_ENTITY_KEY_LENGTH): _param_value(v) for k, v in flatten(params, prefix).items()
        }
        existing = self.client.get_run(self.run_id).data.params
        changed = sorted(k for k, v in flat.items() if k in existing and existing[k] != v)
        if changed:
            detail = ", ".join(f"{k}: {existing[k]!r} -> {flat[k]!r}" for k in changed[:5])
            raise ValueError(
                f"run {self.run_id} already has different values for params {changed} ({detail}); "
                "params cannot change within a run: use a new run name for a new configuration"
            )
        new = [Param(k, v) for k, v in flat.items() if k not in existing]
        for chunk in _chunks(new, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, params=chunk)
        return flat

    def log_config(self, config: Any, artifact_file: str = "config.yaml") -> None:
        """Save the resolved config (a dict, or anything with ``to_dict()``) as a YAML or JSON artifact."""
        data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        self.client.log_dict(self.run_id, data, artifact_file)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values stringified and truncated)."""
        items = [RunTag(_truncate(k, MAX_ENTITY_KEY_LENGTH), _tag_value(v)) for k, v in tags.items()]
        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, tags=chunk)

    # metrics

    def log_metrics(self, metrics: Mapping[str, Any], step: int, timestamp_ms: int | None = None) -> None:
        """Log scalars (Python, numpy or 0-d torch values) at one step in as few requests as possible."""
        ts = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        items = [Metric(k, _as_float(v), ts, int(step)) for k, v in metrics.items()]
        for chunk in _chunks(items, MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=chunk)

    def metric_history(self, key: str) -> list[tuple[int, float]]:
        """``[(step, value), ...]`` sorted by step; for a step logged twice (a resumed run) the latest wins."""
        latest: dict[int, tuple[int, float]] = {}
        for m in self.client.get_metric_history(self.run_id, key):
            if m.step not in latest or m.timestamp >= latest[m.step][0]:
                latest[m.step] = (m.timestamp, m.value)
        return [(step, latest[step][1]) for step in sorted(latest)]

    # artifacts

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Upload a file, or a folder's contents, under ``artifact_path`` of the run."""
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        elif path.is_file():
            self.client.log_artifact(self.run_id, str(path), artifact_path)
        else:
            raise FileNotFoundError(f"cannot log {path}: no such file or folder")

    def log_png(self, image: str | os.PathLike | np.ndarray, artifact_file: str) -> None:
        """Log a PNG as ``artifact_file`` (e.g. ``"quicklook/step_000100.png"``).

        Args:
            image: a PNG path, or a uint8 array (H, W) or (H, W, 3|4) already
                rendered for display (see :mod:`crossdiff.platform.quicklook`).
            artifact_file: destination path in the run's artifacts, ending in ``.png``.
        """
        if not artifact_file.lower().endswith(".png"):
            raise ValueError(f"artifact_file {artifact_file!r} must end in .png")
        folder, name = os.path.split(artifact_file)
        with tempfile.TemporaryDirectory(prefix="crossdiff-png-") as tmp:
            local = Path(tmp) / name
            if isinstance(image, str | os.PathLike):
                shutil.copyfile(image, local)
            else:
                write_png(np.asarray(image), local)
            self.client.log_artifact(self.run_id, str(local), folder or None)

    def end(self, status: str = "FINISHED") -> None:
        """Mark the run FINISHED, FAILED or KILLED."""
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ValueError(f"status {status!r}: use FINISHED, FAILED or KILLED")
        self.client.set_terminated(self.run_id, status)


def write_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a display-ready uint8 (H, W) or (H, W, 3|4) array as a PNG with matplotlib."""
    from matplotlib.image import imsave

    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 display image, got {image.dtype}; render it with quicklook.to_rgb8")
    if image.ndim == 2:
        imsave(path, image, cmap="gray", vmin=0, vmax=255)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        imsave(path, image)
    else:
        raise ValueError(f"expected (H, W) or (H, W, 3|4), got {image.shape}")
    return Path(path)


__all__ = [
    "RunLogger",
    "ensure_experiment",
    "find_run",
    "flatten",
    "local_artifact_root",
    "resolve_tracking_uri",
    "start_or_resume_run",
    "write_png",
]
