"""The one front door to the MLflow model registry for CrossDiff models.

A registered CrossDiff is a models-from-code pyfunc (``serving/pyfunc_model.py``)
whose artifacts are ``weights.safetensors`` (the state dict) and ``config.json``
(``model.config.to_dict()``): nothing is pickled, and any consumer can rebuild
the model with ``CrossDiff.from_config`` and a strict state-dict load, with or
without MLflow's pyfunc machinery.

    version = register_crossdiff(model, name="crossdiff-wv2", tracking_uri=uri,
                                 run_id=run_id, tags={"sensors": "WV2"}, alias="champion")
    model = load_crossdiff("models:/crossdiff-wv2@champion", tracking_uri=uri)
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.entities import LoggedModelOutput
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec
from safetensors.torch import load_file, save_file

from crossdiff.models.crossdiff import CrossDiff
from crossdiff.platform.tracking.runs import ensure_experiment

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
PYFUNC_FILE = Path(__file__).resolve().parent / "serving" / "pyfunc_model.py"
# Experiment that holds the logged model when no run is given.
REGISTRY_EXPERIMENT = "crossdiff-registry"
TAG_PREFIX = "crossdiff."
_REPO_ROOT = Path(__file__).resolve().parents[1]
_URI_LOCK = threading.Lock()


class ModelNotFoundError(LookupError):
    """A registered model, version or alias that does not exist (the message names what does)."""


# -- files -------------------------------------------------------------------------------


def save_weights(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write the state dict as safetensors; tied or non-contiguous tensors are copied apart first."""
    # safetensors refuses tensors sharing storage and views; a contiguous clone of each is
    # always accepted, and a strict load_state_dict restores the ties by key.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})
    return Path(path)


def model_from_files(
    weights: str | os.PathLike, config: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> CrossDiff:
    """Rebuild a CrossDiff from ``config.json`` and load ``weights.safetensors`` strictly, in eval mode."""
    with open(config) as f:
        model = CrossDiff.from_config(json.load(f))
    state = load_file(str(weights), device=str(map_location))
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()


def _find_model_files(folder: Path) -> tuple[Path, Path]:
    """weights + config in a downloaded pyfunc model (under ``artifacts/``) or a plain folder."""
    for cand in (folder / "artifacts", folder):
        if (cand / WEIGHTS_FILE).is_file() and (cand / CONFIG_FILE).is_file():
            return cand / WEIGHTS_FILE, cand / CONFIG_FILE
    found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())[:20]
    raise FileNotFoundError(
        f"no {WEIGHTS_FILE} + {CONFIG_FILE} in the downloaded model (files: {found}); "
        "is this a model written by register_crossdiff?"
    )


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over the state dict's names, dtypes, shapes and bytes, in key order.

    Recorded as a version tag so a loaded model can be checked against the
    registered one (the safetensors file itself is not byte-stable: its header
    order varies between writes).
    """
    h = hashlib.sha256()
    state = model.state_dict()
    for key in sorted(state):
        t = state[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def code_version() -> str:
    """``git describe`` of the checkout the code runs from, else the installed package version."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        if (_REPO_ROOT / ".git").exists():
            out = subprocess.run(
                ["git", "-C", str(_REPO_ROOT), "describe", "--always", "--dirty", "--tags"],
                capture_output=True, text=True, timeout=10, check=True,
            )
            if out.stdout.strip():
                return out.stdout.strip()
    try:
        return importlib.metadata.version("crossdiff")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# -- MLflow plumbing ---------------------------------------------------------------------


@contextlib.contextmanager
def _process_uris(uri: str) -> Iterator[None]:
    """Point MLflow's process-global tracking and registry URIs at ``uri`` for one block.

    ``mlflow.pyfunc.log_model`` writes through fluent helpers that read only the
    global URIs, and the sqlite registry store and ``runs:/`` resolution look
    logged models up through them too; everything else here uses an explicit
    client. The previous values (and their environment variables) are restored
    afterwards; a lock keeps two threads of this process from interleaving.
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    env_keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    with _URI_LOCK:
        saved_env = {k: os.environ.get(k) for k in env_keys}
        saved_tracking, saved_registry = tracking_utils._tracking_uri, registry_utils._registry_uri
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            yield
        finally:
            tracking_utils.set_tracking_uri(saved_tracking)
            registry_utils._registry_uri = saved_registry
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _client(tracking_uri: str | None) -> MlflowClient:
    return MlflowClient(tracking_uri, registry_uri=tracking_uri)


def signature(bands: int) -> ModelSignature:
    """Input layout of the pyfunc: named float32 tensors, (B, 1, H, W) ``pan`` and (B, bands, H, W) ``lms``."""
    inputs = Schema([
        TensorSpec(np.dtype(np.float32), (-1, 1, -1, -1), "pan"),
        TensorSpec(np.dtype(np.float32), (-1, bands, -1, -1), "lms"),
    ])
    params = ParamSchema([ParamSpec("task", "string", "fuse"), ParamSpec("seed", "long", None)])
    return ModelSignature(inputs=inputs, params=params)


def input_example(model: CrossDiff) -> dict[str, np.ndarray]:
    """The smallest valid input: one tile of two coarsest-level cells (16 px for four levels)."""
    size = 2 * model.config.p2m.size_multiple  # type: ignore[union-attr]
    rng = np.random.default_rng(0)
    return {
        "pan": rng.uniform(-1, 1, (1, 1, size, size)).astype(np.float32),
        "lms": rng.uniform(-1, 1, (1, model.config.bands, size, size)).astype(np.float32),
    }


def _requirements() -> list[str]:
    """Pinned requirements, given explicitly so MLflow need not load the model to infer them."""
    reqs = [f"crossdiff=={_version('crossdiff')}"]
    for pkg in ("torch", "numpy", "safetensors", "mlflow"):
        reqs.append(f"{pkg}=={_version(pkg).split('+')[0]}")
    return reqs


def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _tag_str(value: Any) -> str:
    return json.dumps(value, default=str) if isinstance(value, list | tuple | Mapping) else str(value)


# -- register ----------------------------------------------------------------------------


def register_crossdiff(
    model: CrossDiff,
    *,
    name: str,
    tracking_uri: str,
    run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    alias: str | None = None,
    description: str | None = None,
    with_input_example: bool = True,
) -> ModelVersion:
    """Log ``model`` as a models-from-code pyfunc and register it as a new version of ``name``.

    Args:
        model: the CrossDiff to register (its weights are copied to the CPU).
        name: registered model name, e.g. ``"crossdiff-wv2"``.
        tracking_uri: the tracking server / store (also used as the registry).
        run_id: the run that produced the model: the logged model is placed in
            its experiment and linked to it, and the version records it (lineage).
        tags: extra version tags, e.g. ``{"manifest_hash": ..., "sensors": "WV2"}``;
            ``crossdiff.*`` tags (bands, ratio, code version, weights digest, run id)
            are always set.
        alias: alias to point at the new version (e.g. ``"champion"``, ``"wv2"``).
        description: version description.
        with_input_example: store a small input example (one 16-px tile) with the model.

    Returns:
        The new ModelVersion, with its tags and aliases.
    """
    client = _client(tracking_uri)
    exp_id = (client.get_run(run_id).info.experiment_id if run_id
              else ensure_experiment(REGISTRY_EXPERIMENT, tracking_uri))
    # log_model and the sqlite registry store resolve the logged model through MLflow's
    # process-global URIs (an MLflow TODO), so the whole registration runs under them.
    with tempfile.TemporaryDirectory(prefix="crossdiff-register-") as tmp, _process_uris(tracking_uri):
        weights = save_weights(model, Path(tmp) / WEIGHTS_FILE)
        config = Path(tmp) / CONFIG_FILE
        config.write_text(json.dumps(model.config.to_dict(), indent=2))
        version_tags = {
            f"{TAG_PREFIX}bands": str(model.config.bands),
            f"{TAG_PREFIX}ratio": str(model.config.ratio),
            f"{TAG_PREFIX}parameters": str(sum(p.numel() for p in model.parameters())),
            f"{TAG_PREFIX}weights_digest": weights_digest(model),
            f"{TAG_PREFIX}code_version": code_version(),
            **({f"{TAG_PREFIX}run_id": run_id} if run_id else {}),
            **{k: _tag_str(v) for k, v in (tags or {}).items()},
        }
        # Created explicitly so that it lands in the run's experiment (log_model alone would
        # use the process's active experiment) and is linked to the run.
        logged = client.create_logged_model(
            exp_id, name=name, source_run_id=run_id, tags=version_tags, model_type="crossdiff"
        )
        # The pyfunc declares its layout by signature, not by predict() type hints: MLflow's
        # "add type hints" warning is expected (a dict of named arrays has no hint it accepts).
        mlflow.pyfunc.log_model(
            name=name,
            python_model=str(PYFUNC_FILE),
            artifacts={"weights": str(weights), "config": str(config)},
            signature=signature(model.config.bands),
            input_example=input_example(model) if with_input_example else None,
            pip_requirements=_requirements(),
            model_id=logged.model_id,
        )
        if run_id:
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        try:
            client.create_registered_model(name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        mv = client.create_model_version(
            name, source=f"models:/{logged.model_id}", run_id=run_id,
            tags={**version_tags, f"{TAG_PREFIX}logged_model_id": logged.model_id},
            description=description, model_id=logged.model_id,
        )
        if alias:
            client.set_registered_model_alias(name, alias, mv.version)
    return client.get_model_version(name, mv.version)


def _quote(value: str) -> str:
    if "'" in value:
        raise ValueError(f"registered model name {value!r} must not contain a single quote")
    return f"'{value}'"


# -- resolve and load --------------------------------------------------------------------

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))?(?P<path>/.*)?$")


def _describe(client: MlflowClient, name: str) -> str:
    """'versions [1, 2]; aliases {champion: 2}' for an error message."""
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = {_quote(name)}"))
    aliases = client.get_registered_model(name).aliases
    return f"existing versions {versions}; aliases {dict(sorted(aliases.items())) or '{}'}"


def _registered_or_raise(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as err:
        names = sorted(m.name for m in client.search_registered_models(max_results=50))
        raise ModelNotFoundError(f"no registered model {name!r}; registered models: {names}") from err


def resolve_version(uri: str, tracking_uri: str | None = None) -> ModelVersion | None:
    """The ModelVersion a ``models:/name@alias`` or ``models:/name/<version|latest>`` URI points at.

    Returns None for URIs that name no registry version (``runs:/...``, ``models:/m-<id>``).
    Raises ModelNotFoundError naming the existing versions and aliases.
    """
    m = _MODELS_URI.match(uri)
    if m is None or (m["alias"] is None and m["version"] is None):
        return None
    client = _client(tracking_uri)
    name = m["name"]
    _registered_or_raise(client, name)
    try:
        if m["alias"] is not None:
            return client.get_model_version_by_alias(name, m["alias"])
        if m["version"] == "latest":
            versions = client.search_model_versions(f"name = {_quote(name)}")
            if not versions:
                raise ModelNotFoundError(f"registered model {name!r} has no versions yet")
            return max(versions, key=lambda v: int(v.version))
        if not m["version"].isdigit():
            raise ModelNotFoundError(
                f"{uri!r}: {m['version']!r} is neither a version number nor 'latest'; "
                f"use models:/{name}@<alias> for aliases ({_describe(client, name)})"
            )
        return client.get_model_version(name, m["version"])
    except MlflowException as err:
        what = f"alias {m['alias']!r}" if m["alias"] is not None else f"version {m['version']}"
        raise ModelNotFoundError(f"registered model {name!r} has no {what}; {_describe(client, name)}") from err


def load_crossdiff(
    uri: str, tracking_uri: str | None = None, map_location: str | torch.device = "cpu"
) -> CrossDiff:
    """Load a registered or logged CrossDiff.

    Args:
        uri: ``models:/name@alias``, ``models:/name/3``, ``models:/name/latest``,
            ``models:/m-<logged model id>`` or ``runs:/<run id>/<model name>``.
        tracking_uri: tracking server / store; default MLflow's (``MLFLOW_TRACKING_URI``).
        map_location: device for the weights.

    Returns:
        The model in eval mode, weights loaded strictly from ``weights.safetensors``.
    """
    version = resolve_version(uri, tracking_uri)
    if version is not None:
        uri = f"models:/{version.name}/{version.version}"
    # Resolving runs:/ and models:/ URIs consults MLflow's global URIs in places (as when
    # registering), so the download runs under the given one.
    scope = _process_uris(tracking_uri) if tracking_uri else contextlib.nullcontext()
    with tempfile.TemporaryDirectory(prefix="crossdiff-load-") as tmp, scope:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri, registry_uri=tracking_uri
        )
        weights, config = _find_model_files(Path(local))
        return model_from_files(weights, config, map_location)


def version_tags(uri: str, tracking_uri: str | None = None) -> dict[str, str]:
    """Tags of the version a ``models:/name@alias`` or ``models:/name/3`` URI points at."""
    version = resolve_version(uri, tracking_uri)
    if version is None:
        raise ValueError(f"{uri!r} names no registry version; use models:/name@alias or models:/name/3")
    return dict(version.tags)


def set_alias(name: str, alias: str, version: int | str, tracking_uri: str | None = None) -> ModelVersion:
    """Point ``alias`` of registered model ``name`` at ``version`` (which must exist)."""
    mv = resolve_version(f"models:/{name}/{version}", tracking_uri)
    assert mv is not None
    client = _client(tracking_uri)
    client.set_registered_model_alias(name, alias, mv.version)
    return client.get_model_version(name, mv.version)
