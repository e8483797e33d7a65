"""Stage 1 on a real two-node Ray cluster, tracked by a real MLflow server."""

from __future__ import annotations

import pytest
import torch
from pretrain_helpers import job, real_manifest
from scenes import real_scene

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_two_nodes_train_one_worker_each_and_register(tmp_path, mlflow_uri):
    import ray
    from ray.util.state import list_actors
    from services import ray_cluster

    from crossdiff.platform.registry import load_crossdiff, version_tags
    from crossdiff.platform.train.driver import run_pretraining

    manifest = real_manifest(real_scene("ge1_sample"), tmp_path)
    cfg = job(manifest, tmp_path / "ckpt", name="two-nodes", steps=4, every=2, workers=2, cpus=0.5,
              tracking_uri=mlflow_uri)
    with ray_cluster(n_nodes=2, cpus_per_node=1):
        nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        result = run_pretraining(cfg, out_dir=tmp_path / "out")
        workers = list_actors(filters=[("class_name", "=", "RayTrainWorker")], detail=True, limit=100)

    assert len(nodes) == 2
    assert {w.node_id for w in workers} == nodes, "each node must have run a training worker"
    assert result.steps == 4

    uri = "models:/test-two-nodes@candidate"
    loaded = load_crossdiff(uri, tracking_uri=mlflow_uri)
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    tags = version_tags(uri, tracking_uri=mlflow_uri)
    assert tags["sensors"] == "GeoEye-1" and tags["manifest_hash"] and tags["nets"] == "p2m,m2p"
    assert (tmp_path / "out" / "loss_curve.png").stat().st_size > 0
