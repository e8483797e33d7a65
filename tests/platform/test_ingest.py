"""Ingest of good archives: tiling from real geotransforms, valid fractions, splits, tables, CLI."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
from archive_helpers import L8, link_scene, real
from rasterio.transform import Affine
from rich.console import Console

from crossdiff.platform.archive import manifest as mf
from crossdiff.platform.archive.ingest import IngestConfig, ingest_archive
from crossdiff.platform.archive.tiling import check_tiling, plan_windows


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_windows_follow_a_half_pixel_pan_offset():
    """Landsat-8 sample by hand: PAN 15 m starting 7.5 m NW of the 30 m MS grid -> offset -0.25 MS px."""
    wins = plan_windows((1207, 1254), (603, 627), (0.5, 0.5, -0.25, -0.25), ratio=2, tile=256)
    # Column/row 0 would start a quarter MS pixel outside the MS raster: the grid starts at 1.
    # Columns 1, 257, 513, 769 fit (769 + 256 <= 1254); 1025 does not. Rows likewise (<= 1207).
    assert sorted({w.pan_col for w in wins}) == [1, 257, 513, 769]
    assert sorted({w.pan_row for w in wins}) == [1, 257, 513, 769]
    first = wins[0]
    assert (first.ms_row, first.ms_col, first.ms_height, first.ms_width) == (0, 0, 128, 128)
    assert all((w.shift_x, w.shift_y) == (0.25, 0.25) for w in wins)
    assert all(w.ms_col == (w.pan_col - 1) // 2 for w in wins)


def test_windows_of_corner_aligned_grids_and_strides():
    wins = plan_windows((1280, 1280), (320, 320), (0.25, 0.25, 0.0, 0.0), ratio=4, tile=256)
    assert len(wins) == 25
    assert all(w.ms_row * 4 == w.pan_row and w.ms_col * 4 == w.pan_col and w.shift_x == 0 for w in wins)
    assert len(plan_windows((1280, 1280), (320, 320), (0.25, 0.25, 0.0, 0.0), 4, 256, stride=128)) == 81
    # MS covering only the left half: no tile may stick out of it.
    half = plan_windows((1280, 1280), (320, 160), (0.25, 0.25, 0.0, 0.0), 4, 256)
    assert {w.pan_col for w in half} == {0, 256} and all(w.ms_col + w.ms_width <= 160 for w in half)
    with pytest.raises(ValueError, match="multiple of the PAN/MS ratio 3"):
        check_tiling(256, 256, 3)


@pytest.fixture(scope="module")
def real_ingest(tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest") / "manifest.parquet"
    result = ingest_archive(str(real("wv2_sample").parent), str(out), workers=0, console=_quiet())
    return result, pq.read_table(out), pq.read_table(result.paths["scenes"]), pq.read_table(
        result.paths["quarantine"])


def test_real_archive_ingests_completely(real_ingest, scenes_dir):
    result, tiles, scenes, quarantine = real_ingest
    assert quarantine.num_rows == 0
    assert scenes.num_rows == len([p for p in scenes_dir.iterdir() if p.is_dir()])
    # By hand: 1280-px PAN -> 5 x 5 tiles; 800-px PAN -> 3 x 3; Landsat-8 -> 4 x 4 (see above).
    expected = {"wv2_sample": 25, "ge1_sample": 25, "vhr4_sample": 9, L8: 16}
    counts = Counter(tiles.column("scene_id").to_pylist())
    for scene, n in counts.items():
        assert n == expected.get(scene, 9), scene
    assert result.tiles == tiles.num_rows == sum(counts.values())


def test_manifest_windows_agree_with_the_real_geotransforms(real_ingest):
    _, tiles, scenes, _ = real_ingest
    by_scene = {s["scene_id"]: s for s in scenes.to_pylist()}
    for row in tiles.to_pylist():
        s = by_scene[row["scene_id"]]
        assert row["pan_height"] == row["ratio"] * row["ms_height"]
        assert row["pan_col"] >= 0 and row["pan_col"] + row["pan_width"] <= s["pan_width"]
        assert row["ms_row"] >= 0 and row["ms_row"] + row["ms_height"] <= s["ms_height"]
        assert abs(row["ms_shift_x"]) <= 0.5 and abs(row["ms_shift_y"]) <= 0.5
        # The PAN window corner and (MS window corner + shift) are the same point on the ground.
        pan_xy = Affine(*s["pan_transform"]) @ (row["pan_col"], row["pan_row"])
        ms_xy = Affine(*s["ms_transform"]) @ (row["ms_col"] + row["ms_shift_x"],
                                              row["ms_row"] + row["ms_shift_y"])
        assert pan_xy == pytest.approx(ms_xy, abs=1e-6)
    l8 = by_scene[L8]
    assert (l8["pan_origin_ms_x"], l8["pan_origin_ms_y"]) == (-0.25, -0.25)
    assert (l8["ms_shift_x"], l8["ms_shift_y"]) == (0.25, 0.25) and l8["crs"] == "EPSG:32616"
    assert by_scene["wv2_sample"]["crs"] is None and by_scene["wv2_sample"]["ms_shift_x"] == 0.0


def test_landsat_cloud_from_bqa_matches_a_full_resolution_count(real_ingest):
    _, tiles, scenes, _ = real_ingest
    l8 = next(s for s in scenes.to_pylist() if s["scene_id"] == L8)
    with rasterio.open(real(L8) / "l8_BQA.tif") as src:
        qa = src.read(1)
    cloud = ((qa >> 14) & 3) == 3  # pre-collection: high-confidence cloud
    assert l8["cloud_fraction"] == pytest.approx(cloud.mean(), abs=0.01)
    rows = [r for r in tiles.to_pylist() if r["scene_id"] == L8]
    fractions = [r["valid_fraction"] for r in rows]
    assert min(fractions) < 1.0 and all(0 <= f <= 1 for f in fractions)
    for r in rows:  # decimated estimate vs the exact count over the same MS window
        win = cloud[r["ms_row"]:r["ms_row"] + r["ms_height"], r["ms_col"]:r["ms_col"] + r["ms_width"]]
        exact = 1 - win.mean()
        assert r["valid_fraction"] == pytest.approx(exact, abs=0.05)


def test_splits_are_whole_scenes_and_follow_the_hash(real_ingest):
    _, tiles, scenes, _ = real_ingest
    for s in scenes.to_pylist():
        assert s["split"] == mf.assign_split(s["scene_id"])
    pairs = set(zip(tiles.column("scene_id").to_pylist(), tiles.column("split").to_pylist(), strict=True))
    assert len(pairs) == scenes.num_rows
    draws = Counter(mf.assign_split(f"scene-{i}") for i in range(3000))
    assert draws["train"] / 3000 == pytest.approx(0.8, abs=0.03)
    assert draws["val"] / 3000 == pytest.approx(0.1, abs=0.02)
    assert mf.assign_split("a", salt="x") == mf.assign_split("a", salt="x")
    with pytest.raises(ValueError, match="sum"):
        mf.assign_split("a", (0.5, 0.5, 0.5))


def test_tables_carry_schema_docs_and_ingest_info(real_ingest):
    result, _, _, _ = real_ingest
    table = mf.read_manifest(result.paths["tiles"])
    assert table.schema.equals(mf.TILE_SCHEMA, check_metadata=False)
    assert all(f.metadata and f.metadata[b"doc"] for f in table.schema)
    info = mf.manifest_info(table)
    assert info["config"]["tile"] == 256 and info["manifest_hash"] == mf.manifest_hash(table)
    ids = table.column("tile_id").to_pylist()
    assert len(set(ids)) == len(ids)


def test_ingest_is_deterministic_and_stats_can_be_off(tmp_path):
    arch = tmp_path / "arch"
    link_scene("wv2_sample", arch / "wv2")
    link_scene(L8, arch / "l8")
    a = ingest_archive(str(arch), str(tmp_path / "a.parquet"), workers=0, console=_quiet())
    b = ingest_archive(str(arch), str(tmp_path / "b.parquet"), workers=0, console=_quiet())
    assert a.manifest_hash == b.manifest_hash and a.tiles == 41
    c = ingest_archive(str(arch), str(tmp_path / "c.parquet"), IngestConfig(stats=False), workers=0,
                       console=_quiet())
    t = pq.read_table(tmp_path / "c.parquet")
    assert c.tiles == a.tiles and t.column("valid_fraction").null_count == t.num_rows


def test_reading_costs_headers_plus_a_decimated_ms(tmp_path, monkeypatch):
    """Count every pixel rasterio hands back: no PAN pixels beyond one probe block per file."""
    arch = tmp_path / "arch"
    link_scene("wv2_sample", arch / "wv2")
    read = []
    original = rasterio.io.DatasetReader.read

    def counting(self, *args, **kwargs):
        arr = original(self, *args, **kwargs)
        read.append(arr.size)
        return arr

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", counting)
    ingest_archive(str(arch), str(tmp_path / "m.parquet"), IngestConfig(stats=False), workers=0,
                   console=_quiet())
    probe = 256 * 256 * 8  # at most one 256x256 block of each file, all bands
    assert sum(read) <= 2 * probe
    read.clear()
    ingest_archive(str(arch), str(tmp_path / "n.parquet"), IngestConfig(decimation=4), workers=0,
                   console=_quiet())
    assert sum(read) <= 2 * probe + 8 * (320 // 4) ** 2
    assert sum(read) < 1280 * 1280 // 4  # far below one full PAN read


def test_cli_ingest(tmp_path):
    import argparse

    from crossdiff.jobs import cli, ingest

    assert cli.JOBS["ingest"][0] == "ingest"

    def main(argv):
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers(dest="command")
        ingest.configure(sub.add_parser("ingest"))
        return ingest.main(parser.parse_args(argv))

    arch = tmp_path / "arch"
    link_scene("ge1_sample", arch / "ge1")
    out = tmp_path / "m.parquet"
    assert main(["ingest", str(arch), "--out", str(out), "--workers", "0", "--quiet", "--tile", "128"]) == 0
    table = mf.read_manifest(str(out))
    assert table.num_rows == 100 and set(table.column("ms_height").to_pylist()) == {32}
    assert main(["ingest", str(arch), "--out", str(out), "--tile", "255", "--quiet"]) == 2
    assert main(["ingest", str(tmp_path / "empty"), "--out", str(tmp_path / "e.parquet"), "--quiet"]) == 1


def test_synthetic_cog_archive_with_overviews_ingests_cleanly(tmp_path):
    """COGs carry overviews, so the decimated statistics read is answered from them."""
    synthetic = pytest.importorskip("crossdiff.platform.synthetic")
    synthetic.write_synthetic_archive(tmp_path / "syn", 2, seed=0, sensors=["WorldView-2", "Landsat-7"],
                                      pan_size=512, cog=True)
    ms = sorted((tmp_path / "syn").glob("*/ms.tif"))
    with rasterio.open(ms[0]) as src:
        assert src.overviews(1)
    result = ingest_archive(str(tmp_path / "syn"), str(tmp_path / "m.parquet"), workers=0, console=_quiet())
    # 512-px PAN -> 2 x 2 tiles of 256 per scene.
    assert result.quarantined == {} and result.tiles == 8
    v = pq.read_table(tmp_path / "m.parquet").column("valid_fraction").to_numpy()
    assert np.all(v == 1.0)


@pytest.mark.integration
@pytest.mark.slow
def test_ray_ingest_equals_in_process(tmp_path, ray_tmpdir):
    arch = tmp_path / "arch"
    for name in ("wv2_sample", "ge1_sample", L8, "landsat7_crop01"):
        link_scene(name, arch / name)
    local = ingest_archive(str(arch), str(tmp_path / "a.parquet"), workers=0, console=_quiet())
    ray_run = ingest_archive(str(arch), str(tmp_path / "b.parquet"), workers=2,
                             console=_quiet())
    assert ray_run.mode == "ray" and local.mode == "in-process"
    assert ray_run.manifest_hash == local.manifest_hash and ray_run.tiles == 25 + 25 + 16 + 9
