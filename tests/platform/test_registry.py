"""The registry front door: register a small CrossDiff, load it back by alias,
version and run, bit for bit; tags, aliases, clear errors; and the
models-from-code pyfunc, on a local sqlite store and on a real MLflow server."""

from __future__ import annotations

import json
import os

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file
from torch import nn

from crossdiff.models.crossdiff import CrossDiff
from crossdiff.platform import registry
from crossdiff.platform.registry import (
    ModelNotFoundError,
    load_crossdiff,
    model_from_files,
    register_crossdiff,
    save_weights,
    set_alias,
    version_tags,
    weights_digest,
)
from crossdiff.platform.tracking.runs import RunLogger, start_or_resume_run

TINY = {"bands": 4, "p2m": {"base_width": 8, "embed_dim": 16}, "m2p": {"base_width": 8, "embed_dim": 16},
        "head": {"inner_channels": 8}}


def _tiny(seed: int = 0) -> CrossDiff:
    torch.manual_seed(seed)
    return CrossDiff.from_config(TINY).eval()


def _sample(seed: int = 1, h: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"pan": rng.uniform(-1, 1, (2, 1, h, h)).astype(np.float32),
            "lms": rng.uniform(-1, 1, (2, 4, h, h)).astype(np.float32)}


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def local_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def registered(local_uri):
    """Two versions of 'cd-local' in the sqlite store: v1 from a run with alias 'champion', v2 without a run."""
    run_id = start_or_resume_run(local_uri, "stage2", "tune-head-wv2")
    m1, m2 = _tiny(0), _tiny(1)
    v1 = register_crossdiff(m1, name="cd-local", tracking_uri=local_uri, run_id=run_id, alias="champion",
                            tags={"manifest_hash": "abc123", "sensors": ["WV2"]}, description="first")
    v2 = register_crossdiff(m2, name="cd-local", tracking_uri=local_uri, with_input_example=False)
    return {"run_id": run_id, "models": (m1, m2), "versions": (v1, v2)}


# -- files, no MLflow --------------------------------------------------------------------


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.b = self.a  # the same parameters under two names
        self.register_buffer("t", torch.arange(6.0).reshape(2, 3).t())  # a non-contiguous view


def test_save_weights_handles_shared_and_noncontiguous_tensors(tmp_path):
    model = _Tied()
    path = save_weights(model, tmp_path / "w.safetensors")
    fresh = _Tied()
    fresh.load_state_dict(load_file(str(path)), strict=True)
    assert _same_weights(model, fresh) and fresh.b is fresh.a


def test_model_from_files_is_strict(tmp_path):
    model = _tiny()
    save_weights(model, tmp_path / registry.WEIGHTS_FILE)
    (tmp_path / "config.json").write_text(json.dumps(model.config.to_dict()))
    assert _same_weights(model_from_files(tmp_path / registry.WEIGHTS_FILE, tmp_path / "config.json"), model)
    other = {**TINY, "bands": 3}
    (tmp_path / "wrong.json").write_text(json.dumps(other))
    with pytest.raises(RuntimeError, match="size mismatch"):
        model_from_files(tmp_path / registry.WEIGHTS_FILE, tmp_path / "wrong.json")


# -- a local sqlite store ----------------------------------------------------------------


def test_register_sets_versions_tags_alias_and_lineage(local_uri, registered):
    v1, v2 = registered["versions"]
    assert (str(v1.version), str(v2.version)) == ("1", "2") and v1.aliases == ["champion"]
    assert v1.run_id == registered["run_id"] and v1.description == "first"
    tags = version_tags("models:/cd-local@champion", local_uri)
    assert tags["manifest_hash"] == "abc123" and json.loads(tags["sensors"]) == ["WV2"]
    assert tags["crossdiff.bands"] == "4" and tags["crossdiff.run_id"] == registered["run_id"]
    assert tags["crossdiff.code_version"] not in ("", "unknown")
    assert "crossdiff.run_id" not in version_tags("models:/cd-local/2", local_uri)
    # the run lists the logged model among its outputs
    outputs = MlflowClient(local_uri).get_run(registered["run_id"]).outputs.model_outputs
    assert [o.model_id for o in outputs] == [tags["crossdiff.logged_model_id"]]


def test_load_by_alias_version_latest_and_run_bit_for_bit(local_uri, registered):
    m1, m2 = registered["models"]
    by_alias = load_crossdiff("models:/cd-local@champion", tracking_uri=local_uri)
    assert isinstance(by_alias, CrossDiff) and not by_alias.training
    assert _same_weights(by_alias, m1) and by_alias.config == m1.config
    assert _same_weights(load_crossdiff("models:/cd-local/2", tracking_uri=local_uri), m2)
    assert _same_weights(load_crossdiff("models:/cd-local/latest", tracking_uri=local_uri), m2)
    assert _same_weights(load_crossdiff(f"runs:/{registered['run_id']}/cd-local", tracking_uri=local_uri), m1)
    # the recorded digest identifies exactly these weights
    assert version_tags("models:/cd-local/1", local_uri)["crossdiff.weights_digest"] == weights_digest(by_alias)
    assert weights_digest(by_alias) != weights_digest(m2)


def test_missing_alias_version_or_model_errors_name_what_exists(local_uri, registered):
    with pytest.raises(ModelNotFoundError, match=r"no alias 'staging'.*versions \[1, 2\].*'champion': '?1"):
        load_crossdiff("models:/cd-local@staging", tracking_uri=local_uri)
    with pytest.raises(ModelNotFoundError, match=r"no version 7.*versions \[1, 2\]"):
        load_crossdiff("models:/cd-local/7", tracking_uri=local_uri)
    with pytest.raises(ModelNotFoundError, match=r"no registered model 'cd-nope'.*cd-local"):
        load_crossdiff("models:/cd-nope@champion", tracking_uri=local_uri)
    with pytest.raises(ModelNotFoundError, match="neither a version number"):
        version_tags("models:/cd-local/Production", local_uri)


def test_set_alias_moves_it(local_uri, registered):
    _, m2 = registered["models"]
    mv = set_alias("cd-local", "candidate", 2, tracking_uri=local_uri)
    assert "candidate" in mv.aliases
    assert _same_weights(load_crossdiff("models:/cd-local@candidate", tracking_uri=local_uri), m2)
    with pytest.raises(ModelNotFoundError, match="no version 9"):
        set_alias("cd-local", "candidate", 9, tracking_uri=local_uri)


def test_pyfunc_matches_fuse_and_returns_features(local_uri, registered, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", local_uri)
    m1, _ = registered["models"]
    pyfunc = mlflow.pyfunc.load_model("models:/cd-local@champion")
    sample = _sample()
    fused = pyfunc.predict(sample, params={"seed": 5})
    expected = m1.fuse({k: torch.from_numpy(v) for k, v in sample.items()}, seed=5).detach().numpy()
    assert fused.dtype == np.float32 and fused.shape == (2, 4, 16, 16)
    np.testing.assert_array_equal(fused, expected)
    assert not np.array_equal(pyfunc.predict(sample, params={"seed": 6}), fused)
    feats = pyfunc.predict(sample, params={"task": "features", "seed": 5})
    assert {k: v.shape for k, v in feats.items()} == {
        **{f"p2m_h{i + 1}": (2, w) for i, w in enumerate((8, 16, 32, 64))},
        **{f"m2p_h{i + 1}": (2, w) for i, w in enumerate((8, 16, 32, 64))},
    }
    with pytest.raises(Exception, match="unknown task"):
        pyfunc.predict(sample, params={"task": "sample"})


def test_registration_leaves_global_state_and_cwd_alone(local_uri, monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    before = mlflow.get_tracking_uri()
    model = _tiny(2)
    mv = register_crossdiff(model, name="cd-state", tracking_uri=local_uri, with_input_example=False)
    assert _same_weights(load_crossdiff(f"models:/cd-state/{mv.version}", tracking_uri=local_uri), model)
    assert mlflow.get_tracking_uri() == before and mlflow.active_run() is None
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert list(tmp_path.iterdir()) == []  # no ./mlflow.db or ./mlruns from a default store


# -- a real MLflow server ----------------------------------------------------------------


@pytest.mark.integration
def test_register_and_load_through_a_server(mlflow_uri, monkeypatch):
    run_id = start_or_resume_run(mlflow_uri, "registry-it", "tune-head-ge1")
    model = _tiny(3)
    mv = register_crossdiff(model, name="cd-server", tracking_uri=mlflow_uri, run_id=run_id,
                            alias="ge1", tags={"manifest_hash": "f00d", "sensors": "GE1"})
    RunLogger(mlflow_uri, run_id).end()
    assert str(mv.version) == "1" and mv.aliases == ["ge1"] and mv.run_id == run_id
    assert _same_weights(load_crossdiff("models:/cd-server@ge1", tracking_uri=mlflow_uri), model)
    assert _same_weights(load_crossdiff("models:/cd-server/1", tracking_uri=mlflow_uri), model)
    tags = version_tags("models:/cd-server@ge1", mlflow_uri)
    assert tags["manifest_hash"] == "f00d" and tags["sensors"] == "GE1" and tags["crossdiff.bands"] == "4"
    with pytest.raises(ModelNotFoundError, match=r"no alias 'wv2'.*'ge1'"):
        load_crossdiff("models:/cd-server@wv2", tracking_uri=mlflow_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/cd-server@ge1")
    sample = _sample(seed=2)
    expected = model.fuse({k: torch.from_numpy(v) for k, v in sample.items()}, seed=11).detach().numpy()
    np.testing.assert_array_equal(pyfunc.predict(sample, params={"seed": 11}), expected)
