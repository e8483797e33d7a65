"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

# Ray resolves "this node" to the machine's external address, which a sandbox
# may not route; single-machine test clusters must use loopback throughout.
# Ray reads this switch when it is first imported, so it is set here, first.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import pytest
from scenes import SCENES_DIR


@pytest.fixture(scope="session")
def scenes_dir() -> Path:
    """The real PAN/MS sample scenes beside the checkout; skips when absent."""
    if not SCENES_DIR.is_dir():
        pytest.skip(f"real sample scenes not found at {SCENES_DIR}")
    return SCENES_DIR


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """URI of a real MLflow tracking server with a model registry, for the session."""
    from services import mlflow_server

    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(scope="session")
def s3_env(tmp_path_factory) -> dict:
    """Credentials and endpoint of a real S3-compatible server (moto) on loopback."""
    from services import s3_server

    with s3_server(tmp_path_factory.mktemp("s3")) as env:
        yield env
