"""Stage 1 survives what clusters do: a killed worker, a restarted job, a corrupt checkpoint."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from mlflow import MlflowClient
from pretrain_helpers import job, real_manifest
from scenes import real_scene

from crossdiff.platform.train.checkpoints import checkpoint_dir_name

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return real_manifest(real_scene("ge1_sample"), tmp_path_factory.mktemp("manifest"))


def _run(cfg, tmp_path):
    from crossdiff.platform.train.driver import run_pretraining

    return run_pretraining(cfg, out_dir=tmp_path / "out")


def _run_tags(result) -> dict[str, str]:
    return MlflowClient(result.tracking_uri).get_run(result.run_id).data.tags


def _train_worker_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"])
            if "RayTrainWorker" in " ".join(p.info["cmdline"] or [])]


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)  # polling the file system for a condition, not waiting out a duration
    raise TimeoutError(f"timed out waiting for {what}")


def test_killed_worker_resumes_from_last_checkpoint(ray_local, manifest, tmp_path):
    cfg = job(manifest, tmp_path / "ckpt", name="killed", steps=30, every=5,
              tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(result=_run(cfg, tmp_path)), daemon=True)
    runner.start()
    first = tmp_path / "ckpt" / "killed" / checkpoint_dir_name(10)
    _wait_for(first.exists, 300, "the step-10 checkpoint")
    killed_after = max(int(p.name.split("_")[1]) for p in first.parent.glob("step_*"))
    pids = _wait_for(_train_worker_pids, 60, "a training worker process")
    os.kill(pids[0], signal.SIGKILL)
    runner.join(timeout=600)
    result = outcome["result"]
    assert result.steps == 30
    resumed = int(_run_tags(result)["resumed_from_step"])
    # Nothing is lost beyond one checkpoint interval: training went on from the newest checkpoint.
    assert killed_after <= resumed <= 30 and resumed % 5 == 0


def test_restart_with_same_name_resumes_and_corrupt_checkpoint_is_skipped(ray_local, manifest, tmp_path):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _run(job(manifest, tmp_path / "ckpt", name="again", steps=6, every=3, tracking_uri=tracking), tmp_path)
    assert first.steps == 6

    second = _run(job(manifest, tmp_path / "ckpt", name="again", steps=9, every=3, tracking_uri=tracking), tmp_path)
    assert second.steps == 9 and second.run_id == first.run_id
    assert _run_tags(second)["resumed_from_step"] == "6"

    newest = tmp_path / "ckpt" / "again" / checkpoint_dir_name(9)
    (newest / "state.pt").write_bytes((newest / "state.pt").read_bytes()[:1000])  # a torn upload
    third = _run(job(manifest, tmp_path / "ckpt", name="again", steps=12, every=3, tracking_uri=tracking), tmp_path)
    assert third.steps == 12
    assert _run_tags(third)["resumed_from_step"] == "6", "the corrupt step-9 checkpoint must be skipped"
