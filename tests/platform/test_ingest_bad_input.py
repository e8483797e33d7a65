"""Bad input: every kind of broken scene gets a quarantine row with its reason; the rest still ingest.

All bad scenes are derived from real sample scenes in tmp_path (symlinks for
the untouched files, rewritten copies for the broken ones) and ingested
together in one archive, so the tests also show that no bad scene stops the others.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
from archive_helpers import L8, link_scene, real
from rasterio.transform import Affine
from rasterio.windows import Window
from rich.console import Console

from crossdiff.platform.archive import masks
from crossdiff.platform.archive.ingest import ingest_archive


def rewrite(path: Path, data: np.ndarray | None = None, window: Window | None = None, **changes) -> None:
    """Replace a (symlinked) raster by a copy with other pixels and/or profile entries."""
    with rasterio.open(path) as src:
        profile = src.profile
        arr = src.read(window=window) if data is None else data
    profile.update(height=arr.shape[1], width=arr.shape[2], count=arr.shape[0], dtype=arr.dtype.name,
                   **changes)
    path.unlink()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)


def edit_json(path: Path, **changes) -> None:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.unlink()
    path.write_text(json.dumps(doc))


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def build_bad_archive(root: Path) -> dict[str, str | None]:
    """Scene folder -> expected quarantine reason (None: must be ingested)."""
    expected: dict[str, str | None] = {}

    def scene(name: str, base: str, reason: str | None) -> Path:
        expected[name] = reason
        return link_scene(base, root / name)

    scene("good", "ge1_sample", None)
    d = scene("truncated_pan", "wv2_sample", "corrupt")  # header intact, last tiles missing
    data = (d / "pan.tif").read_bytes()
    (d / "pan.tif").unlink()
    (d / "pan.tif").write_bytes(data[: int(len(data) * 0.6)])
    d = scene("truncated_header", "ge1_sample", "corrupt")
    data = (d / "ms.tif").read_bytes()
    (d / "ms.tif").unlink()
    (d / "ms.tif").write_bytes(data[:300])
    d = scene("garbage", "ge1_sample", "corrupt")
    (d / "pan.tif").unlink()
    (d / "pan.tif").write_bytes(np.random.default_rng(0).bytes(50_000))
    d = scene("crs_mismatch", "vhr4_sample", "crs_mismatch")
    rewrite(d / "ms.tif", crs="EPSG:32650")
    d = scene("no_overlap", "vhr4_sample", "no_overlap")
    with rasterio.open(d / "ms.tif") as src:
        shifted = src.transform @ Affine.translation(5000, 0)  # 5000 MS pixels east
    rewrite(d / "ms.tif", transform=shifted)
    d = scene("wrong_ratio", "ge1_sample", "ratio")
    rewrite(d / "ms.tif", transform=Affine(1.0, 0, 0, 0, -1.0, 640.0))  # 1 m MS vs 0.5 m PAN: ratio 2
    d = scene("band_count", "ge1_sample", "band_count")
    edit_json(d / "scene.json", bands=["blue", "green", "red"])
    d = scene("pan_bands", "ge1_sample", "band_count")
    pan = _read(d / "pan.tif")
    rewrite(d / "pan.tif", data=np.concatenate([pan, pan]))
    d = scene("dtype_mismatch", "ge1_sample", "dtype")
    rewrite(d / "ms.tif", data=_read(d / "ms.tif").astype(np.uint16))
    d = scene("bits_exceeded", "wv2_sample", "bit_depth")  # 11-bit data declared as 8-bit
    edit_json(d / "scene.json", bits=8)
    d = scene("all_zero", "ge1_sample", "nodata")
    rewrite(d / "ms.tif", data=np.zeros_like(_read(d / "ms.tif")))
    d = scene("fully_clouded", "ge1_sample", "cloud")
    rewrite(d / "ms.tif", data=np.ones((1, 320, 320), np.uint8))
    (d / "ms.tif").rename(d / "cloud.tif")
    (d / "ms.tif").symlink_to(real("ge1_sample") / "ms.tif")
    edit_json(d / "scene.json", cloud_mask="cloud.tif")
    d = scene("landsat_bqa_cloud", L8, "cloud")
    rewrite(d / "l8_BQA.tif", data=np.full((1, 603, 627), 0b1101 << 12, np.uint16))  # high-confidence cloud
    d = scene("rotated", "ge1_sample", "transform")
    rewrite(d / "ms.tif", transform=Affine(2.0, 0.1, 0, 0.1, -2.0, 640.0))
    d = scene("too_small", "ge1_sample", "too_small")
    rewrite(d / "pan.tif", window=Window(0, 0, 200, 200))
    rewrite(d / "ms.tif", window=Window(0, 0, 50, 50))
    d = scene("missing_ms", "ge1_sample", "unreadable")
    (d / "ms.tif").unlink()
    d = scene("no_sensor", "ge1_sample", "metadata")
    (d / "scene.json").unlink()
    (d / "scene.json").write_text(json.dumps({"bits": 8, "ratio": 4}))
    ge1 = real("ge1_sample")
    item = {"type": "Feature", "id": "good", "properties": {"platform": "geoeye-1"},
            "assets": {"pan": {"href": str(ge1 / "pan.tif")}, "ms": {"href": str(ge1 / "ms.tif")}}}
    (root / "items").mkdir()
    (root / "items" / "dup.json").write_text(json.dumps(item))
    expected["items/dup.json"] = "duplicate"
    d = scene("half_clouded", "ge1_sample", None)
    mask = np.zeros((1, 320, 320), np.uint8)
    mask[:, :, :160] = 1  # the western half of the MS is cloud
    rewrite(d / "ms.tif", data=mask)
    (d / "ms.tif").rename(d / "cloud.tif")
    (d / "ms.tif").symlink_to(ge1 / "ms.tif")
    edit_json(d / "scene.json", cloud_mask="cloud.tif")
    return expected


@pytest.fixture(scope="module")
def bad_ingest(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "archive"
    expected = build_bad_archive(root)
    out = io.StringIO()
    result = ingest_archive(str(root), str(root.parent / "manifest.parquet"), workers=0,
                            console=Console(file=out, width=250))
    quarantine = pq.read_table(result.paths["quarantine"]).to_pylist()
    return expected, result, quarantine, pq.read_table(result.paths["tiles"]), out.getvalue()


def _reasons(quarantine: list[dict]) -> dict[str, str]:
    out = {}
    for q in quarantine:
        key = "items/dup.json" if q["reason"] == "duplicate" else q["scene_id"]
        out[key] = q["reason"]
    return out


BAD = ["truncated_pan", "truncated_header", "garbage", "crs_mismatch", "no_overlap", "wrong_ratio",
       "band_count", "pan_bands", "dtype_mismatch", "bits_exceeded", "all_zero", "fully_clouded",
       "landsat_bqa_cloud", "rotated", "too_small", "missing_ms", "no_sensor", "items/dup.json"]


@pytest.mark.parametrize("name", BAD)
def test_each_bad_scene_gets_its_reason(bad_ingest, name):
    expected, _, quarantine, _, _ = bad_ingest
    assert _reasons(quarantine)[name] == expected[name]
    row = next(q for q in quarantine if name in (q["scene_id"], "items/dup.json") and
               (q["reason"] == "duplicate") == (name == "items/dup.json"))
    assert row["detail"] and row["uri"] and row["stage"] in {"discovery", "open", "validate", "stats"}


def test_good_scenes_survive_and_nothing_else_is_quarantined(bad_ingest):
    expected, result, quarantine, tiles, _ = bad_ingest
    assert _reasons(quarantine) == {k: v for k, v in expected.items() if v}
    assert set(tiles.column("scene_id").to_pylist()) == {"good", "half_clouded"}
    assert result.quarantined == {r: list(expected.values()).count(r) for r in set(expected.values()) if r}


def test_partial_cloud_mask_lowers_and_drops_tiles(bad_ingest):
    """By hand: MS columns 0-159 cloudy; 64-px MS windows at 0, 64 drop, at 128 half valid, 192, 256 clear."""
    _, result, _, tiles, _ = bad_ingest
    rows = [r for r in tiles.to_pylist() if r["scene_id"] == "half_clouded"]
    assert {r["ms_col"]: r["valid_fraction"] for r in rows} == {128: 0.5, 192: 1.0, 256: 1.0}
    assert len(rows) == 15 and result.tiles_dropped == 10


def test_summary_names_every_reason(bad_ingest):
    expected, _, _, _, printed = bad_ingest
    assert "quarantine" in printed
    for reason in {r for r in expected.values() if r}:
        assert reason in printed


def test_an_unexpected_error_is_quarantined_not_raised(tmp_path, monkeypatch):
    link_scene("ge1_sample", tmp_path / "arch" / "a")
    link_scene("ge1_sample", tmp_path / "arch" / "b")
    original = masks.read_validity

    def flaky(info, *args, **kwargs):
        if info.ref.scene_id == "a":
            raise RuntimeError("simulated bug")
        return original(info, *args, **kwargs)

    monkeypatch.setattr(masks, "read_validity", flaky)
    result = ingest_archive(str(tmp_path / "arch"), str(tmp_path / "m.parquet"), workers=0,
                            console=Console(file=io.StringIO()))
    assert result.quarantined == {"internal": 1} and result.scenes_ok == 1
    q, = pq.read_table(result.paths["quarantine"]).to_pylist()
    assert q["scene_id"] == "a" and "simulated bug" in q["detail"]
