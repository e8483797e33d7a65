"""Stage-1 checkpoints on a real S3-compatible endpoint (moto's server on loopback)."""

from __future__ import annotations

import boto3
import pytest
from mlflow import MlflowClient
from pretrain_helpers import job, real_manifest
from scenes import real_scene

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def s3_bucket(s3_env, monkeypatch):
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket="runs")
    yield client


def test_checkpoints_go_to_s3_and_a_restart_resumes_from_there(s3_bucket, tmp_path):
    import ray

    from crossdiff.platform.ray_runtime import ensure_ray
    from crossdiff.platform.train.driver import run_pretraining

    manifest = real_manifest(real_scene("ge1_sample"), tmp_path)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_ray(num_cpus=2)
    try:
        first = run_pretraining(job(manifest, "s3://runs/stage1", name="on-s3", steps=4, every=2,
                                    tracking_uri=tracking), out_dir=tmp_path / "out")
        keys = {o["Key"] for o in s3_bucket.list_objects_v2(Bucket="runs")["Contents"]}
        assert {"stage1/on-s3/step_000000004/state.pt", "stage1/on-s3/step_000000004/integrity.json"} <= keys
        second = run_pretraining(job(manifest, "s3://runs/stage1", name="on-s3", steps=6, every=2,
                                     tracking_uri=tracking), out_dir=tmp_path / "out")
    finally:
        ray.shutdown()
    assert first.steps == 4 and second.steps == 6
    tags = MlflowClient(tracking).get_run(second.run_id).data.tags
    assert tags["resumed_from_step"] == "4"
