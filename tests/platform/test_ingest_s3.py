"""Ingest from a real S3-compatible server (moto_server on loopback): same manifest as the local copy.

GDAL reads the rasters through /vsis3/ and s3fs lists the bucket, both
configured from the standard AWS environment (keys + AWS_ENDPOINT_URL).
"""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
from archive_helpers import L8
from rich.console import Console

from crossdiff.platform.archive import manifest as mf
from crossdiff.platform.archive.discovery import discover
from crossdiff.platform.archive.filesystems import StorageOptions
from crossdiff.platform.archive.ingest import ingest_archive

pytestmark = pytest.mark.integration


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def _strip(table, prefix: str) -> list[dict]:
    """Rows with the archive prefix cut off every URI, so local and S3 rows compare."""
    rows = table.to_pylist()
    for row in rows:
        row["pan_uri"] = row["pan_uri"].removeprefix(prefix)
        row["ms_uris"] = [u.removeprefix(prefix) for u in row["ms_uris"]]
    return rows


def test_s3_discovery_finds_the_same_layouts(aws_env, s3_archive):
    found = discover(s3_archive["root"])
    ids = [s.scene_id for s in found.scenes]
    assert ids == sorted(["broken", L8, "wv2_sample"])
    l8 = found.scenes[ids.index(L8)]
    assert l8.layout == "band_files" and l8.pan_uri == f"{s3_archive['root']}/{L8}/l8_B8.tif"
    assert l8.metadata["extra"]["mtl"]["SPACECRAFT_ID"] == "LANDSAT_8"
    assert [(q.scene_id, q.reason) for q in found.problems] == [("missing_ms", "unreadable")]


def test_s3_manifest_equals_the_local_one(aws_env, s3_archive, tmp_path):
    s3 = ingest_archive(s3_archive["root"], str(tmp_path / "s3.parquet"), workers=0, console=_quiet())
    local = ingest_archive(str(s3_archive["local"]), str(tmp_path / "local.parquet"), workers=0,
                           console=_quiet())
    t_s3, t_local = pq.read_table(tmp_path / "s3.parquet"), pq.read_table(tmp_path / "local.parquet")
    assert t_s3.num_rows == t_local.num_rows == 25 + 16
    assert _strip(t_s3, s3_archive["root"]) == _strip(t_local, str(s3_archive["local"]))
    assert s3.content_hash == local.content_hash and s3.manifest_hash != local.manifest_hash
    assert all(u.startswith("s3://") for u in t_s3.column("pan_uri").to_pylist())
    # The broken objects are quarantined and did not stop the two good scenes.
    q = {r["scene_id"]: r for r in pq.read_table(s3.paths["quarantine"]).to_pylist()}
    assert set(q) == {"broken", "missing_ms"}
    assert q["broken"]["reason"] == "corrupt" and q["broken"]["uri"].endswith("broken/pan.tif")
    assert q["missing_ms"]["reason"] == "unreadable" and "missing_ms/ms.tif" in q["missing_ms"]["detail"]


def test_manifest_written_to_and_read_from_s3(aws_env, s3_archive, tmp_path):
    out = f"s3://{s3_archive['bucket']}/manifests/run1/manifest.parquet"
    result = ingest_archive(s3_archive["root"], out, workers=0, console=_quiet())
    keys = {o["Key"] for o in s3_archive["client"].list_objects_v2(
        Bucket=s3_archive["bucket"], Prefix="manifests/run1/")["Contents"]}
    assert keys == {"manifests/run1/manifest.parquet", "manifests/run1/manifest.scenes.parquet",
                    "manifests/run1/manifest.quarantine.parquet"}
    table = mf.read_manifest(out)
    assert table.num_rows == result.tiles and mf.manifest_info(table)["manifest_hash"] == result.manifest_hash


def test_unreadable_object_is_quarantined(aws_env, s3_archive, tmp_path):
    """An object that exists in the listing but cannot be fetched (deleted after listing)."""
    from crossdiff.platform.archive.discovery import SceneRef
    from crossdiff.platform.archive.ingest import IngestConfig, process_scene

    root = s3_archive["root"]
    ref = SceneRef("ghost", "scene_folder", f"{root}/ghost/scene.json", f"{root}/ghost/pan.tif",
                   (f"{root}/ghost/ms.tif",), metadata={"sensor": "GeoEye-1", "bits": 8, "ratio": 4})
    result = process_scene(ref, IngestConfig(), StorageOptions())
    assert result.quarantine is not None and result.quarantine.reason == "unreadable"
    assert "ghost/pan.tif" in result.quarantine.detail


def test_missing_credentials_give_a_quarantine_row(aws_env, s3_archive, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    out = io.StringIO()
    result = ingest_archive(s3_archive["root"], str(tmp_path / "m.parquet"), workers=0,
                            console=Console(file=out, width=200))
    q, = pq.read_table(result.paths["quarantine"]).to_pylist()
    assert q["reason"] == "credentials" and "AWS_ACCESS_KEY_ID" in q["detail"]
    assert result.tiles == 0 and "credentials" in out.getvalue()


@pytest.mark.slow
def test_s3_ingest_on_ray_matches_in_process(aws_env, s3_archive, tmp_path, ray_tmpdir):
    """Ray workers read /vsis3/ with the credentials and endpoint of the environment."""
    a = ingest_archive(s3_archive["root"], str(tmp_path / "a.parquet"), workers=0, console=_quiet())
    b = ingest_archive(s3_archive["root"], str(tmp_path / "b.parquet"), workers=2,
                       console=_quiet())
    assert b.mode == "ray" and b.manifest_hash == a.manifest_hash
    assert b.quarantined == a.quarantined == {"corrupt": 1, "unreadable": 1}
