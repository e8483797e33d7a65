"""Fixtures for the archive tests: an S3 bucket holding real sample scenes, and its environment.

The S3 endpoint is a real ``moto_server`` subprocess (the session fixture
``s3_env`` of tests/conftest.py starts it on a free loopback port, polls it
until it answers and kills its process group at teardown).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from archive_helpers import L8, link_scene, real


@pytest.fixture
def ray_tmpdir(monkeypatch):
    """A short RAY_TMPDIR (Ray's socket paths must stay under 108 bytes), removed afterwards."""
    path = tempfile.mkdtemp(prefix="cdray", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a private local instance, never a shared cluster
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def aws_env(monkeypatch, s3_env):
    """The moto server's credentials and endpoint in the environment, nothing else AWS-related."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return s3_env


@pytest.fixture(scope="session")
def s3_archive(s3_env, tmp_path_factory) -> dict:
    """A bucket holding two real scenes plus two broken ones; returns their URIs.

    ``scenes/wv2_sample`` and ``scenes/<Landsat-8>`` are the real files;
    ``scenes/broken`` has a PAN object that is not a raster; ``scenes/missing_ms``
    has a scene.json naming an MS object that was never uploaded. ``local`` is a
    folder with the same two good scenes (symlinks) for comparison.
    """
    import boto3

    client = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"],
                          aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    bucket = "crossdiff-archive"
    client.create_bucket(Bucket=bucket)
    local = tmp_path_factory.mktemp("s3_local") / "scenes"
    for name in ("wv2_sample", L8):
        for f in sorted(real(name).iterdir()):
            client.upload_file(str(f), bucket, f"scenes/{name}/{f.name}")
        link_scene(name, local / name)
    ge1 = real("ge1_sample")
    client.put_object(Bucket=bucket, Key="scenes/broken/pan.tif", Body=b"not a tiff " * 200)
    client.upload_file(str(ge1 / "ms.tif"), bucket, "scenes/broken/ms.tif")
    client.upload_file(str(ge1 / "scene.json"), bucket, "scenes/broken/scene.json")
    client.upload_file(str(ge1 / "pan.tif"), bucket, "scenes/missing_ms/pan.tif")
    client.upload_file(str(ge1 / "scene.json"), bucket, "scenes/missing_ms/scene.json")
    return {"bucket": bucket, "root": f"s3://{bucket}/scenes", "local": local, "client": client}


@pytest.fixture(scope="module")
def ray_local():
    """A private local Ray (2 CPUs, loopback) for one test module, shut down after it."""
    import ray

    from crossdiff.platform.ray_runtime import ensure_ray

    ensure_ray(num_cpus=2, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()
