"""The stream over S3 (a real moto server): /vsis3/ reads on Ray workers equal the local stream.

Ray starts before the test puts the AWS variables in the driver's
environment, so its workers never see them: the stream must hand the
endpoint and the credentials to every reader itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from stream_helpers import TILE, collect, make_archive

from crossdiff.platform.archive.ingest import IngestConfig, ingest_archive
from crossdiff.platform.stream import StreamConfig, TileStream

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def s3_stream_archive(s3_env, tmp_path_factory):
    """The synthetic test archive, locally and uploaded to a bucket."""
    import boto3

    local = make_archive(tmp_path_factory.mktemp("stream_s3"), sensors=("WorldView-2", "WorldView-2"))
    client = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"],
                          aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    bucket = "crossdiff-stream"
    client.create_bucket(Bucket=bucket)
    for scene in local["scenes"]:
        for f in sorted(scene.iterdir()):
            client.upload_file(str(f), bucket, f"archive/{scene.name}/{f.name}")
    return {**local, "root": f"s3://{bucket}/archive", "manifest_s3": f"s3://{bucket}/manifest.parquet"}


def test_s3_stream_equals_local_stream(s3_stream_archive, aws_env, ray_local):
    a = s3_stream_archive
    ingest_archive(a["root"], a["manifest_s3"], IngestConfig(tile=TILE), workers=0, progress=False)
    cfg = StreamConfig(split=None, seed=5, batch_size=8, workers=2)
    s3 = TileStream(a["manifest_s3"], cfg)
    assert all(u.startswith("s3://") for u in s3.tiles["pan_uri"].to_pylist())
    assert s3.settings.credentials["AWS_ACCESS_KEY_ID"] == aws_env["AWS_ACCESS_KEY_ID"]
    assert s3.settings.storage.endpoint_url == aws_env["AWS_ENDPOINT_URL"]
    local = TileStream(a["manifest"], cfg)
    got_s3, got_local = collect(s3.dataset(0)), collect(local.dataset(0))
    assert s3.skipped().num_rows == 0
    assert got_s3["tile_id"].tolist() == got_local["tile_id"].tolist()
    assert len(got_s3["tile_id"]) == local.n_tiles - len(a["punched"])
    for key in ("pan", "ms", "lms"):
        np.testing.assert_array_equal(got_s3[key], got_local[key])
