"""Stage-1 checkpoints: written whole or not at all, verified before use.

A checkpoint is a directory ``step_<n>`` holding ``state.pt`` (config,
weights, optimiser, schedule, EMA, data position) and ``integrity.json``
(its SHA-256 and step). Ray Train copies the directory to ``storage_path``
(local or S3). On resume the newest checkpoint whose bytes match its hash is
used; a truncated or corrupted one is reported and skipped for the one
before it, so a crash during an upload never costs the run.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pyarrow import fs as pafs

from crossdiff.models.checkpoint import load_checkpoint, save_checkpoint
from crossdiff.models.crossdiff import CrossDiff

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"
INTEGRITY_FILE = "integrity.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class CorruptCheckpointError(RuntimeError):
    """A checkpoint's bytes do not match its recorded hash, or it cannot be read."""


def checkpoint_dir_name(step: int) -> str:
    return f"step_{step:09d}"


def write_checkpoint(directory: Path, model: CrossDiff, train_state: dict[str, Any],
                     run_config: dict[str, Any]) -> Path:
    """Write ``state.pt`` and its integrity record into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    save_checkpoint(buf, model, extra={"train_state": train_state, "run_config": run_config})
    data = buf.getvalue()
    (directory / STATE_FILE).write_bytes(data)
    record = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "step": train_state["step"]}
    (directory / INTEGRITY_FILE).write_text(json.dumps(record))
    return directory


@dataclass
class LoadedCheckpoint:
    model_config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    train_state: dict[str, Any]
    run_config: dict[str, Any]
    path: str


def _read(filesystem: pafs.FileSystem, path: str) -> bytes:
    with filesystem.open_input_stream(path) as f:
        return f.read()


def read_checkpoint(filesystem: pafs.FileSystem, path: str) -> LoadedCheckpoint:
    """Read and verify one checkpoint directory on any pyarrow filesystem (local, S3)."""
    try:
        record = json.loads(_read(filesystem, f"{path}/{INTEGRITY_FILE}"))
        data = _read(filesystem, f"{path}/{STATE_FILE}")
    except (OSError, ValueError) as err:
        raise CorruptCheckpointError(f"{path}: unreadable checkpoint ({err})") from err
    if len(data) != record.get("bytes") or hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise CorruptCheckpointError(f"{path}: {STATE_FILE} does not match its SHA-256 (truncated or corrupted)")
    try:
        ckpt = load_checkpoint(data)
    except Exception as err:  # a file that hashes right but will not unpickle is corrupt all the same
        raise CorruptCheckpointError(f"{path}: {err}") from err
    return LoadedCheckpoint(ckpt.config, ckpt.state_dict, ckpt.extra["train_state"],
                            ckpt.extra.get("run_config", {}), path)


def _step_of(path: str) -> int:
    m = _STEP_DIR.match(path.rstrip("/").rsplit("/", 1)[-1])
    return int(m.group(1)) if m else -1


def list_checkpoints(filesystem: pafs.FileSystem, run_dir: str) -> list[str]:
    """Checkpoint directories under a run directory, newest (highest step) first."""
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(run_dir, allow_not_found=True))
    except OSError:
        return []
    found = [(int(m.group(1)), i.path) for i in infos
             if i.type == pafs.FileType.Directory and (m := _STEP_DIR.match(i.base_name))]
    return [p for _, p in sorted(found, reverse=True)]


def resume_point(checkpoint: Any | None, filesystem: pafs.FileSystem | None = None,
                 run_dir: str | None = None) -> LoadedCheckpoint | None:
    """Where a (re)started run continues: the newest checkpoint that verifies.

    Args:
        checkpoint: ``ray.train.get_checkpoint()``, None for a fresh run.
        filesystem, run_dir: the run's storage. Checkpoints there are candidates
            too: a worker killed right after uploading may die before Ray Train
            registers that checkpoint, and a corrupt latest needs its predecessor.
    """
    found: dict[str, tuple[int, pafs.FileSystem]] = {}
    if filesystem is not None and run_dir is not None:
        for path in list_checkpoints(filesystem, run_dir):
            found[path] = (_step_of(path), filesystem)
    if checkpoint is not None:
        path = checkpoint.path.rstrip("/")
        found[path] = (_step_of(path), checkpoint.filesystem)
    for path, (_, fs) in sorted(found.items(), key=lambda item: item[1][0], reverse=True):
        try:
            return read_checkpoint(fs, path)
        except CorruptCheckpointError as err:
            log.warning("skipping corrupt checkpoint: %s", err)
    return None


def storage_location(storage_path: str, endpoint_url: str | None = None) -> tuple[str, pafs.FileSystem]:
    """A storage path as Ray Train and pyarrow want it: local folders absolute, S3 through s3fs."""
    from crossdiff.platform.archive.filesystems import StorageOptions, get_filesystem, is_s3

    if not is_s3(storage_path):
        return str(Path(storage_path).resolve()), pafs.LocalFileSystem()
    fs, key = get_filesystem(storage_path, StorageOptions(endpoint_url=endpoint_url))
    return key, pafs.PyFileSystem(pafs.FSSpecHandler(fs))
