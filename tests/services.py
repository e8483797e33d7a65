"""Real services for integration tests, each on loopback in a subprocess.

The tests never mock Ray, MLflow or S3: these helpers start the real thing
(an MLflow tracking server with a registry, moto's S3 server, a Ray cluster
of several raylets) and stop exactly what they started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    """Poll until the URL answers (any HTTP status) or the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)  # polling a port, not waiting for a result
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextlib.contextmanager
def service(cmd: list[str], url: str, log: Path, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Run a server in its own process group; kill the whole group afterwards."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True)
    try:
        wait_for_http(url, proc)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """A real MLflow tracking server + model registry (sqlite store, local artifacts)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", str(root / "artifacts")]
    uri = f"http://127.0.0.1:{port}"
    with service(cmd, f"{uri}/health", root / "server.log",
                 env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}):
        yield uri


@contextlib.contextmanager
def s3_server(root: Path) -> Iterator[dict[str, str]]:
    """moto's S3-compatible server; yields the environment a client needs."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    exe = shutil.which("moto_server", path=str(BIN)) or "moto_server"
    with service([exe, "-H", "127.0.0.1", "-p", str(port)], endpoint, root / "moto.log"):
        yield {
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
        }


@contextlib.contextmanager
def ray_cluster(n_nodes: int = 2, cpus_per_node: float = 1, tmp_dir: Path | None = None,
                dashboard_port: int | None = None) -> Iterator[str]:
    """A real multi-node Ray cluster on this machine: one raylet per node, all on loopback.

    Yields the GCS address; the caller's process is connected as a driver. The
    head's dashboard (jobs API, state API) listens on ``dashboard_port`` (any free one if None).
    """
    import ray
    from ray.cluster_utils import Cluster

    # Single-machine clusters must bind to loopback: tests/conftest.py sets
    # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before Ray is first imported.
    if tmp_dir is not None:
        os.environ["RAY_TMPDIR"] = str(tmp_dir)
    node_args = {"num_cpus": cpus_per_node, "node_ip_address": "127.0.0.1"}
    # The head runs the dashboard: Ray's state API (which actor ran on which node) needs it.
    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={**node_args, "include_dashboard": True,
                                      "dashboard_port": dashboard_port or free_port()})
    try:
        for _ in range(n_nodes - 1):
            cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()
