"""Scene discovery: the three layouts on the real samples, STAC items, Landsat MTL, URI handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from archive_helpers import L8, SCENES, link_scene, real

from crossdiff.models.sensors import get_sensor
from crossdiff.platform.archive import filesystems as fsx
from crossdiff.platform.archive import landsat
from crossdiff.platform.archive.discovery import discover


def test_every_real_scene_is_discovered(scenes_dir):
    found = discover(str(scenes_dir))
    folders = sorted(p.name for p in scenes_dir.iterdir() if p.is_dir())
    assert found.problems == []
    assert [s.scene_id for s in found.scenes] == folders
    for ref in found.scenes:
        doc = json.loads((scenes_dir / ref.scene_id / "scene.json").read_text())
        assert ref.metadata["sensor"] == doc["sensor"]
        assert ref.metadata["bits"] == doc["bits"] and ref.metadata["ratio"] == doc["ratio"]
        sensor = get_sensor(doc["sensor"])  # every declared name resolves, aliases included
        names = ref.band_names or sensor.bands
        assert len(names) == len(doc.get("bands", doc.get("ms", [])))
        assert Path(ref.pan_uri).is_file() and all(Path(u).is_file() for u in ref.ms_uris)


def test_landsat8_band_files_use_b8_bqa_and_mtl(scenes_dir):
    ref = next(s for s in discover(str(scenes_dir)).scenes if s.scene_id == L8)
    assert ref.layout == "band_files"
    assert Path(ref.pan_uri).name == "l8_B8.tif"
    assert [Path(u).name for u in ref.ms_uris] == ["l8_B2.tif", "l8_B3.tif", "l8_B4.tif", "l8_B5.tif"]
    assert ref.band_names == ("blue", "green", "red", "nir")
    assert Path(ref.mask_uri).name == "l8_BQA.tif" and ref.mask_kind == "landsat_bqa_pre"
    mtl = ref.metadata["extra"]["mtl"]
    assert mtl["SPACECRAFT_ID"] == "LANDSAT_8" and mtl["CLOUD_COVER"] == pytest.approx(11.08)
    assert ref.metadata["acquired"] == "2015-08-04"


def test_landsat_folder_without_scene_json_is_found_by_its_mtl(tmp_path):
    link_scene(L8, tmp_path / "arch" / "LC8", skip=("scene.json",))
    ref, = discover(str(tmp_path / "arch")).scenes
    assert ref.layout == "band_files" and ref.source_uri.endswith("l8_MTL.txt")
    assert ref.metadata["sensor"] == "Landsat-8" and ref.metadata["bits"] == 16 and ref.metadata["ratio"] == 2
    assert [Path(u).name for u in ref.ms_uris] == ["l8_B2.tif", "l8_B3.tif", "l8_B4.tif", "l8_B5.tif"]
    chosen, = discover(str(tmp_path / "arch"), landsat_bands=(4, 3, 2)).scenes
    assert chosen.band_names == ("red", "green", "blue")
    assert [Path(u).name for u in chosen.ms_uris] == ["l8_B4.tif", "l8_B3.tif", "l8_B2.tif"]


def test_stac_item_with_pan_and_ms_assets(tmp_path):
    wv2 = real("wv2_sample")
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "wv2-item",
            "properties": {"platform": "worldview-2", "datetime": "2013-01-01T00:00:00Z",
                           "crossdiff:bits": 11, "crossdiff:ratio": 4},
            "assets": {"pan": {"href": str(wv2 / "pan.tif"), "roles": ["data"]},
                       "ms": {"href": str(wv2 / "ms.tif"), "roles": ["data"]}}}
    (tmp_path / "items").mkdir()
    (tmp_path / "items" / "wv2.json").write_text(json.dumps(item))
    (tmp_path / "items" / "catalog.json").write_text(json.dumps({"type": "Catalog", "id": "c", "links": []}))
    found = discover(str(tmp_path))
    assert found.problems == []
    ref, = found.scenes
    assert (ref.scene_id, ref.layout, ref.metadata["sensor"]) == ("wv2-item", "stac_item", "worldview-2")
    assert ref.pan_uri == str(wv2 / "pan.tif") and ref.ms_uris == (str(wv2 / "ms.tif"),)
    assert ref.metadata["bits"] == 11 and ref.metadata["acquired"].startswith("2013")


def test_stac_item_with_eo_bands_per_band_assets(tmp_path):
    """Landsat-style item: MS chosen by common name in the sensor's band order, relative hrefs."""
    folder = link_scene(L8, tmp_path / "l8")

    def asset(name, common):
        return {"href": f"./{name}", "roles": ["data"], "eo:bands": [{"name": name, "common_name": common}]}

    assets = {"B5": asset("l8_B5.tif", "nir08"), "B4": asset("l8_B4.tif", "red"),
              "B3": asset("l8_B3.tif", "green"), "B2": asset("l8_B2.tif", "blue"),
              "B1": asset("l8_B1.tif", "coastal"), "B8": asset("l8_B8.tif", "pan"),
              "BQA": {"href": "./l8_BQA.tif", "roles": ["metadata", "cloud"]}}
    item = {"type": "Feature", "id": "LC80200392015216LGN00", "assets": assets,
            "properties": {"platform": "landsat-8", "datetime": "2015-08-04T16:19:21Z"}}
    (folder / "scene.json").unlink()
    (folder / "item.json").write_text(json.dumps(item))
    found = discover(str(tmp_path))
    ref, = found.scenes
    assert ref.layout == "stac_item" and Path(ref.pan_uri).name == "l8_B8.tif"
    assert [Path(u).name for u in ref.ms_uris] == ["l8_B2.tif", "l8_B3.tif", "l8_B4.tif", "l8_B5.tif"]
    assert ref.band_names == ("blue", "green", "red", "nir")
    assert Path(ref.mask_uri).name == "l8_BQA.tif"


def test_discovery_problems_become_quarantine_rows(tmp_path):
    root = tmp_path / "arch"
    link_scene("ge1_sample", root / "good")
    link_scene("ge1_sample", root / "orphan", skip=("scene.json",))
    bad = link_scene("ge1_sample", root / "badjson", skip=("scene.json",))
    (bad / "scene.json").write_text("{ not json")
    nosensor = link_scene("ge1_sample", root / "nosensor", skip=("scene.json",))
    (nosensor / "scene.json").write_text(json.dumps({"bits": 8, "ratio": 4}))
    missing = link_scene("ge1_sample", root / "missing", skip=("ms.tif",))
    found = discover(str(root))
    assert [s.scene_id for s in found.scenes] == ["good"]
    reasons = {q.scene_id: q.reason for q in found.problems}
    assert reasons == {"orphan": "metadata", "badjson": "metadata", "nosensor": "metadata",
                       "missing": "unreadable"}
    assert all(q.stage == "discovery" and q.detail for q in found.problems)
    assert str(missing / "ms.tif") in next(q.detail for q in found.problems if q.scene_id == "missing")


def test_missing_archive_is_a_quarantine_row_not_an_exception(tmp_path):
    found = discover(str(tmp_path / "nope"))
    assert found.scenes == [] and [q.reason for q in found.problems] == ["unreadable"]


def test_uris_map_to_gdal_paths_and_options(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    assert fsx.gdal_path("s3://bucket/a/b.tif") == "/vsis3/bucket/a/b.tif"
    assert fsx.normalize_uri("s3://bucket/a/") == "s3://bucket/a"
    assert fsx.resolve_href("../x/ms.tif", "s3://bucket/a/scene") == "s3://bucket/a/x/ms.tif"
    with pytest.raises(ValueError, match="leaves bucket"):
        fsx.resolve_href("../../../x.tif", "s3://bucket/a")
    opts = fsx.gdal_options("s3://b/k.tif", fsx.StorageOptions(endpoint_url="http://127.0.0.1:9000"))
    assert opts["AWS_HTTPS"] == "NO" and opts["AWS_VIRTUAL_HOSTING"] == "FALSE"
    assert "AWS_HTTPS" not in fsx.gdal_options("s3://b/k.tif")  # real AWS: defaults
    assert fsx.gdal_path(str(SCENES / "x.tif")) == str(SCENES / "x.tif")
    with pytest.raises(ValueError, match="unsupported URI scheme"):
        fsx.normalize_uri("gs://bucket/x")


def test_missing_credentials_raise_a_clear_error(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(fsx.MissingCredentialsError, match="AWS_ACCESS_KEY_ID"):
        fsx.resolve_credentials(fsx.StorageOptions(), "s3://b/x")
    assert fsx.resolve_credentials(fsx.StorageOptions(anon=True)) is None
    found = discover("s3://some-bucket/prefix")
    assert found.scenes == [] and [q.reason for q in found.problems] == ["credentials"]


def test_mtl_parsing_and_qa_bits_by_hand():
    text = 'GROUP = L1\n  SPACECRAFT_ID = "LANDSAT_8"\n  CLOUD_COVER = 11.08\nEND_GROUP = L1\n'
    mtl = landsat.parse_mtl(text)
    assert mtl == {"SPACECRAFT_ID": "LANDSAT_8", "CLOUD_COVER": "11.08"}
    with pytest.raises(ValueError, match="MTL"):
        landsat.parse_mtl("hello = 1")
    # Pre-collection BQA: bits 14-15 are cloud confidence (3 = high), bit 0 fill.
    qa = np.array([0b1101 << 12, 0b0101 << 12, 0b1001 << 12, 1, 0b1111 << 12], np.uint16)
    fill, cloud = landsat.invalid_from_qa(qa, "landsat_bqa_pre")
    assert fill.tolist() == [False, False, False, True, False]
    assert cloud.tolist() == [True, False, False, False, True]
    # Collection 2 QA_PIXEL: bit 3 cloud, bit 1 dilated cloud; 21824 is the usual clear-land value.
    fill, cloud = landsat.invalid_from_qa(np.array([21824, 1 << 3, 1 << 1, 1]), "landsat_qa_pixel")
    assert cloud.tolist() == [False, True, True, False] and fill.tolist() == [False, False, False, True]
    assert landsat.qa_kind("LC08_QA_PIXEL.TIF", None) == "landsat_qa_pixel"
    assert landsat.qa_kind("l8_BQA.tif", {"COLLECTION_NUMBER": "01"}) == "landsat_bqa_c1"
