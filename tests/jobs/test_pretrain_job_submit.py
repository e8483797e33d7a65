"""`crossdiff pretrain` submitted as a Ray job, the way data-platform teams run it on a cluster."""

from __future__ import annotations

import asyncio
import shlex
import sys

import pytest
import yaml

from crossdiff.platform.archive.ingest import IngestConfig, ingest_archive
from crossdiff.platform.synthetic import write_synthetic_archive

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _wait_for(client, job_id: str) -> str:
    """The job's whole log; returns when the job has ended (the log stream closes then)."""

    async def tail() -> str:
        return "".join([chunk async for chunk in client.tail_job_logs(job_id)])

    return asyncio.run(tail())


def test_submitted_job_trains_checkpoints_and_registers(tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient
    from services import free_port, ray_cluster

    from crossdiff.platform.registry import load_crossdiff
    from crossdiff.platform.train.checkpoints import checkpoint_dir_name

    write_synthetic_archive(tmp_path / "archive", 2, seed=5, sensors=("GeoEye-1",), pan_size=128)
    manifest = tmp_path / "manifest.parquet"
    ingest_archive(str(tmp_path / "archive"), str(manifest), IngestConfig(tile=64), workers=0, progress=False)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump({
        "data": {"manifest": str(manifest), "split": None, "batch_size": 4, "readers": 1, "reader_cpus": 0.25},
        "model": {"bands": 4, "p2m": {"base_width": 8}, "m2p": {"base_width": 8}},
        "run": {"name": "submitted", "storage_path": str(tmp_path / "runs"), "max_steps": 4, "checkpoint_every": 2},
        "scale": {"num_workers": 1, "cpus_per_worker": 1.0},
        "tracking": {"tracking_uri": tracking, "register_as": "test-submitted", "alias": "candidate"},
    }))
    entrypoint = shlex.join([sys.executable, "-m", "crossdiff.jobs.cli", "pretrain", "--config", str(job_file),
                             "--out", str(tmp_path / "out")])

    port = free_port()
    with ray_cluster(n_nodes=1, cpus_per_node=2, dashboard_port=port):
        client = JobSubmissionClient(f"http://127.0.0.1:{port}")
        job_id = client.submit_job(entrypoint=entrypoint)
        log = _wait_for(client, job_id)
        status = client.get_job_status(job_id)

    assert status == JobStatus.SUCCEEDED, log[-3000:]
    assert "stage 1 done: 4 steps" in log and "registered test-submitted version 1" in log
    stored = {p.name for p in (tmp_path / "runs" / "submitted").iterdir()}
    assert {checkpoint_dir_name(2), checkpoint_dir_name(4)} <= stored, stored
    model = load_crossdiff("models:/test-submitted@candidate", tracking_uri=tracking)
    assert model.config.bands == 4
