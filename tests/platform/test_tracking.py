"""MLflow tracking: URI resolution, deterministic run names that resume, and the
client-only RunLogger, on a local sqlite store and on a real tracking server."""

from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from matplotlib.image import imread
from mlflow.tracking import MlflowClient

from crossdiff.platform.tracking import plots, runs
from crossdiff.platform.tracking.runs import (
    RunLogger,
    ensure_experiment,
    flatten,
    local_artifact_root,
    resolve_tracking_uri,
    start_or_resume_run,
)


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory) -> str:
    """A local sqlite store, as resolve_tracking_uri makes (created once: its migrations take seconds)."""
    root = tmp_path_factory.mktemp("local_mlflow")
    return f"sqlite:///{root / 'mlflow.db'}"


def _download(uri: str, run_id: str, path: str, dst: Path) -> Path:
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst),
                                                    tracking_uri=uri))


# -- URIs and experiments ----------------------------------------------------------------


def test_resolve_tracking_uri_order(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local = resolve_tracking_uri(None, tmp_path / "runs")
    assert local == f"sqlite:///{(tmp_path / 'runs').resolve() / 'mlflow.db'}"
    assert (tmp_path / "runs").is_dir()
    assert local_artifact_root(local) == (tmp_path / "runs").resolve() / "artifacts"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert resolve_tracking_uri(None, tmp_path) == "http://tracking:5000"
    assert resolve_tracking_uri("http://explicit:1", tmp_path) == "http://explicit:1"
    assert local_artifact_root("http://tracking:5000") is None


def test_local_store_keeps_artifacts_under_its_root(sqlite_uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # artifacts must not follow the working directory
    exp_id = ensure_experiment("local-artifacts", sqlite_uri)
    assert ensure_experiment("local-artifacts", sqlite_uri) == exp_id
    root = local_artifact_root(sqlite_uri)
    assert MlflowClient(sqlite_uri).get_experiment(exp_id).artifact_location.startswith(root.as_uri())
    run_id = start_or_resume_run(sqlite_uri, "local-artifacts", "artifact-run")
    note = tmp_path / "note.txt"
    note.write_text("hello")
    RunLogger(sqlite_uri, run_id).log_artifact(note, "notes")
    assert [p.read_text() for p in root.rglob("note.txt")] == ["hello"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note.txt"]  # no ./mlruns, no ./mlflow.db


def test_deleted_experiment_is_restored(sqlite_uri):
    client = MlflowClient(sqlite_uri)
    exp_id = ensure_experiment("to-delete", sqlite_uri)
    client.delete_experiment(exp_id)
    assert ensure_experiment("to-delete", sqlite_uri) == exp_id
    assert client.get_experiment(exp_id).lifecycle_stage == "active"


# -- runs --------------------------------------------------------------------------------


def test_reusing_a_run_name_resumes_the_run(sqlite_uri):
    client = MlflowClient(sqlite_uri)
    first = start_or_resume_run(sqlite_uri, "resume", "pretrain-wv2-abc", tags={"stage": 1})
    RunLogger(sqlite_uri, first).end("FAILED")
    again = start_or_resume_run(sqlite_uri, "resume", "pretrain-wv2-abc", tags={"attempt": 2})
    assert again == first
    run = client.get_run(first)
    assert run.info.status == "RUNNING" and run.data.tags["stage"] == "1" and run.data.tags["attempt"] == "2"
    other = start_or_resume_run(sqlite_uri, "resume", "pretrain-wv2-def")
    assert other != first
    client.delete_run(first)  # a deleted run is never resumed
    fresh = start_or_resume_run(sqlite_uri, "resume", "pretrain-wv2-abc")
    assert fresh not in (first, other)
    assert mlflow.active_run() is None  # no global MLflow state was used


def test_quotes_in_run_names(sqlite_uri):
    name = "it's-run"
    assert start_or_resume_run(sqlite_uri, "quotes", name) == start_or_resume_run(sqlite_uri, "quotes", name)
    with pytest.raises(ValueError, match="quote"):
        start_or_resume_run(sqlite_uri, "quotes", "it's \"odd\"")


def test_log_params_flattens_truncates_and_refuses_changes(sqlite_uri):
    assert flatten({"a": {"b": {"c": 1}, "d": [1, 2]}, "e": {}}) == {"a.b.c": 1, "a.d": [1, 2], "e": {}}
    run_id = start_or_resume_run(sqlite_uri, "params", "p1")
    log = RunLogger(sqlite_uri, run_id)
    config = {"model": {"head": {"levels": [256, 128]}, "bands": 8}, "note": "x" * 10_000}
    log.log_params(config)
    params = MlflowClient(sqlite_uri).get_run(run_id).data.params
    assert params["model.head.levels"] == "[256, 128]" and params["model.bands"] == "8"
    assert len(params["note"]) == runs.MAX_PARAM_VAL_LENGTH and params["note"].endswith("[truncated]")
    log.log_params(config)  # resuming with the same config is fine
    with pytest.raises(ValueError, match="model.bands"):
        log.log_params({"model": {"bands": 4}})


def test_log_config_artifact_round_trips(sqlite_uri, tmp_path):
    run_id = start_or_resume_run(sqlite_uri, "config", "c1")
    config = {"bands": 4, "head": {"levels": [64, 32]}}
    RunLogger(sqlite_uri, run_id).log_config(config)
    RunLogger(sqlite_uri, run_id).log_config(config, "resolved.json")
    assert yaml.safe_load(_download(sqlite_uri, run_id, "config.yaml", tmp_path).read_text()) == config
    assert yaml.safe_load(_download(sqlite_uri, run_id, "resolved.json", tmp_path).read_text()) == config


def test_metrics_batches_and_history(sqlite_uri, monkeypatch):
    run_id = start_or_resume_run(sqlite_uri, "metrics", "m1")
    log = RunLogger(sqlite_uri, run_id)
    monkeypatch.setattr(runs, "MAX_METRICS_PER_BATCH", 2)  # force several requests per call
    for step in range(3):
        log.log_metrics({"loss": torch.tensor(1.0 / (step + 1)), "lr": np.float32(3e-4), "n": step,
                         "p2m": 0.5, "m2p": 0.25}, step=step)
    assert log.metric_history("loss") == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert [s for s, _ in log.metric_history("m2p")] == [0, 1, 2]
    log.log_metrics({"loss": 0.1}, step=1, timestamp_ms=10**13)  # a resumed run re-logs step 1
    assert log.metric_history("loss")[1] == (1, pytest.approx(0.1))
    assert log.metric_history("missing") == []


def test_png_artifacts(sqlite_uri, tmp_path):
    run_id = start_or_resume_run(sqlite_uri, "png", "q1")
    log = RunLogger(sqlite_uri, run_id)
    rgb = np.zeros((6, 9, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    log.log_png(rgb, "quicklook/step_000001.png")
    log.log_png(np.arange(24, dtype=np.uint8).reshape(4, 6), "gray.png")
    curve = plots.loss_curve_png({"loss": [(i, 1.0 / (i + 1)) for i in range(50)]}, tmp_path / "c.png", "loss")
    log.log_png(curve, "curves/loss.png")
    img = imread(_download(sqlite_uri, run_id, "quicklook/step_000001.png", tmp_path / "d"))
    assert img.shape[:2] == (6, 9) and np.allclose(img[..., 0], 1.0) and np.allclose(img[..., 1], 0.0)
    assert imread(_download(sqlite_uri, run_id, "gray.png", tmp_path / "d")).shape[:2] == (4, 6)
    assert _download(sqlite_uri, run_id, "curves/loss.png", tmp_path / "d").stat().st_size > 1000
    with pytest.raises(ValueError, match="uint8"):
        log.log_png(rgb.astype(np.float32), "f.png")
    with pytest.raises(ValueError, match=".png"):
        log.log_png(rgb, "f.jpg")


def test_end_and_context_manager(sqlite_uri):
    client = MlflowClient(sqlite_uri)
    ok = start_or_resume_run(sqlite_uri, "end", "ok")
    with RunLogger(sqlite_uri, ok) as log:
        log.set_tags({"note": "fine"})
    assert client.get_run(ok).info.status == "FINISHED"
    bad = start_or_resume_run(sqlite_uri, "end", "bad")
    with pytest.raises(RuntimeError), RunLogger(sqlite_uri, bad):
        raise RuntimeError("boom")
    assert client.get_run(bad).info.status == "FAILED"
    with pytest.raises(ValueError, match="FINISHED"):
        RunLogger(sqlite_uri, ok).end("DONE")


def test_run_logger_pickles_without_its_client(sqlite_uri):
    log = RunLogger(sqlite_uri, start_or_resume_run(sqlite_uri, "pickle", "p"))
    log.log_metrics({"x": 1.0}, step=0)  # creates the client
    clone = pickle.loads(pickle.dumps(log))
    assert clone._client is None and clone.run_id == log.run_id
    assert clone.metric_history("x") == [(0, 1.0)]


# -- plots -------------------------------------------------------------------------------


def test_smoothing_and_log_scale_choice():
    assert np.allclose(plots.smooth([2.0] * 30), 2.0)  # bias-corrected: no ramp-up from zero
    s = plots.smooth([1.0, float("nan"), 1.0], weight=0.5)
    assert np.isnan(s[1]) and s[2] == 1.0
    assert plots._use_log_scale({"a": [(0, 10.0), (1, 0.01)]})
    assert not plots._use_log_scale({"a": [(0, 1.0), (1, 0.5)]})
    assert not plots._use_log_scale({"a": [(0, 10.0), (1, -0.01)]})


def test_loss_curve_png(tmp_path):
    hist = {"p2m": [(i, 2.0 * 0.95**i) for i in range(100)], "m2p": [(i, 1.0 * 0.9**i) for i in range(100)]}
    out = plots.loss_curve_png(hist, tmp_path / "deep" / "loss.png", "stage 1")
    img = imread(out)
    assert img.shape == (400, 700, 4)  # 7 x 4 in at 100 dpi
    with pytest.raises(ValueError, match="non-empty"):
        plots.loss_curve_png({"a": []}, tmp_path / "x.png")


# -- a real tracking server --------------------------------------------------------------


def _log_in_child(logger: RunLogger, values: list[float]) -> None:
    for step, v in enumerate(values):
        logger.log_metrics({"loss": v}, step=step)


@pytest.mark.integration
def test_server_resume_and_logging_from_another_process(mlflow_uri):
    run_id = start_or_resume_run(mlflow_uri, "server", "stage1-wv2-0001")
    assert start_or_resume_run(mlflow_uri, "server", "stage1-wv2-0001") == run_id
    logger = RunLogger(mlflow_uri, run_id)
    logger.log_params({"train": {"lr": 3e-4, "batch": 32}})
    # A spawned process gets the pickled logger, as a Ray worker would, and logs from there.
    proc = multiprocessing.get_context("spawn").Process(target=_log_in_child, args=(logger, [3.0, 2.0, 1.5]))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0
    assert logger.metric_history("loss") == [(0, 3.0), (1, 2.0), (2, 1.5)]
    logger.log_png(np.full((4, 4, 3), 200, dtype=np.uint8), "quicklook/q.png")
    paths = [a.path for a in MlflowClient(mlflow_uri).list_artifacts(run_id, "quicklook")]
    assert paths == ["quicklook/q.png"]
    logger.end()
    assert MlflowClient(mlflow_uri).get_run(run_id).data.params["train.batch"] == "32"
