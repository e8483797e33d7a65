"""`crossdiff evaluate`'s library on small synthetic scenes: hand-checkable facts.

Scenes are GeoEye-1-like (4 bands, ratio 4, 11-bit), PAN 256 px (MS 64 px),
written with their truth. A few facts need no reference numbers: a product
equal to the reference scores ideally; EXP at reduced resolution is the 23-tap
interpolation of the Wald-degraded MS; .npy and GeoTIFF copies of one product
score identically; the mean and std of two scenes are those of the per-scene values.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from crossdiff.models.metrics import reduced_resolution_metrics
from crossdiff.models.resample import wald_pair
from crossdiff.platform.evaluation import (
    evaluate_full_files,
    evaluate_reduced_files,
    evaluate_scene,
    evaluate_scenes,
    load_scene,
    read_image,
    resolve_methods,
    write_report,
)
from crossdiff.platform.evaluation.report import markdown
from crossdiff.platform.evaluation.runner import EvaluationResult, SceneResult, conventions
from crossdiff.platform.synthetic import write_synthetic_scene

DIM_CUT = 8  # a 64-px reference leaves 49 px after the toolbox cut


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_scenes")
    return [write_synthetic_scene(root / f"s{i}", seed=10 + i, sensor="GeoEye-1", pan_size=256, save_truth=True)
            for i in range(2)]


def _read(path):
    with rasterio.open(path) as f:
        return f.read().astype(np.float64)


def test_reference_as_product_scores_ideal_values(scenes):
    """ms.tif is the reduced-resolution reference, truth.tif the full-resolution one."""
    res = evaluate_scene(scenes[0], methods=[], products={"MS": scenes[0] / "ms.tif",
                                                          "truth": scenes[0] / "truth.tif"}, dim_cut=DIM_CUT)
    red = res.metrics["reduced"]["MS"]
    assert red["Q2n"] == pytest.approx(1.0, abs=1e-9) and red["Q"] == pytest.approx(1.0, abs=1e-9)
    assert red["SAM"] == pytest.approx(0.0, abs=1e-6) and red["ERGAS"] == 0.0
    assert red["SCC"] == pytest.approx(1.0, abs=1e-9) and math.isinf(red["PSNR"])
    tru = res.metrics["truth"]["truth"]
    assert tru["Q2n"] == pytest.approx(1.0, abs=1e-9) and tru["ERGAS"] == 0.0
    # Products join the protocol their shape says: MS-sized -> reduced, PAN grid -> full.
    assert set(res.metrics["reduced"]) == {"MS"} and set(res.metrics["full"]) == {"truth"}
    assert 0.0 <= res.metrics["full"]["truth"]["HQNR"] <= 1.0


def test_exp_at_reduced_resolution_is_the_wald_lms(scenes):
    res = evaluate_scene(scenes[0], methods="exp", protocols=["reduced"], dim_cut=DIM_CUT)
    assert list(res.metrics["reduced"]) == ["EXP"]
    ms, pan = torch.from_numpy(_read(scenes[0] / "ms.tif")), torch.from_numpy(_read(scenes[0] / "pan.tif"))
    pair = wald_pair(ms, pan, "GeoEye-1")
    expected = reduced_resolution_metrics(pair["lms"], pair["gt"], 4, 11, dim_cut=DIM_CUT)
    assert res.metrics["reduced"]["EXP"] == pytest.approx(expected, rel=1e-12)
    assert "full" not in res.metrics  # the protocol was not asked for


def test_array_product_equal_to_a_method_scores_like_it(scenes):
    scene = load_scene(scenes[0])
    exp_full = resolve_methods("EXP")["EXP"](torch.from_numpy(scene.ms), torch.from_numpy(scene.pan), "GeoEye-1")
    res = evaluate_scene(scene, methods=["EXP"], products={"mine": exp_full.numpy()}, protocols=["full"])
    assert res.metrics["full"]["mine"] == pytest.approx(res.metrics["full"]["EXP"], rel=1e-12)
    assert res.metrics["full"]["EXP"]["D_lambda"] == pytest.approx(0.0, abs=1e-12)  # EXP keeps lms exactly


def test_mean_and_std_over_scenes(scenes):
    result = evaluate_scenes(scenes, methods="EXP,GSA", protocols=["reduced"], dim_cut=DIM_CUT)
    summary = result.summary()["reduced"]
    for method in ("EXP", "GSA"):
        values = [s.metrics["reduced"][method]["ERGAS"] for s in result.scenes]
        cell = summary[method]["ERGAS"]
        assert cell["n"] == 2 and cell["mean"] == pytest.approx((values[0] + values[1]) / 2)
        assert cell["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))  # sample std of two


def test_report_files_hold_the_table_and_the_quicklooks(scenes, tmp_path):
    per_scene = str(scenes[0].parent / "{scene}" / "ms.tif")  # each scene's own reference
    result = evaluate_scenes(scenes, methods="EXP", products={"MS": per_scene}, dim_cut=DIM_CUT,
                             quicklook_dir=tmp_path / "q")
    paths = write_report(result, tmp_path)
    md = paths["markdown"].read_text()
    assert "| Method | Q2n ↑ | Q ↑ | SAM ↓ | ERGAS ↓ | SCC ↑ | PSNR ↑ | n |" in md
    assert "| Method | D_lambda_K ↓ | D_s ↓ | HQNR ↑ | D_lambda ↓ | QNR ↑ | n |" in md
    ms_row = next(line for line in md.splitlines() if line.startswith("| MS |"))
    assert "**1.0000 ± 0.0000**" in ms_row  # the reference itself is best at Q2n, with no spread
    assert "| inf |" in ms_row.replace("**", "")  # PSNR: infinite, so no ± either
    assert "dim_cut = 8" in md and "11-bit, ratio 4" in md
    doc = json.loads(paths["json"].read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert doc["summary"]["reduced"]["MS"]["PSNR"]["mean"] == "inf"
    assert doc["conventions"]["dim_cut"] == DIM_CUT and len(doc["scenes"]) == 2
    for scene in result.scenes:
        assert set(scene.quicklooks) == {"inputs", "reduced", "full"}
        for png in scene.quicklooks.values():
            assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"(q/{png.split('/')[-1]})" in md  # linked relative to the report


def test_best_value_per_column_is_bold_in_either_direction():
    def scene(sid, ergas, q2n):
        return SceneResult(sid, "X", 11, 4, ("b",), metrics={"reduced": {
            m: {"Q2n": q, "Q": 0.5, "SAM": 1.0, "ERGAS": e, "SCC": 0.5, "PSNR": 30.0}
            for m, e, q in zip(("A", "B"), ergas, q2n, strict=True)}})

    md = markdown(EvaluationResult([scene("s1", (2.0, 3.0), (0.8, 0.9))], conventions()))
    row = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith(("| A", "| B"))}
    assert "**2.000**" in row["A"] and "**0.9000**" in row["B"]  # lower ERGAS, higher Q2n
    assert "**0.5000**" in row["A"] and "**0.5000**" in row["B"]  # ties are all bold
    assert "±" not in row["A"]  # one scene: no spread to show


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_npy_and_geotiff_products_score_identically(scenes, tmp_path):
    gt = scenes[0] / "ms.tif"
    product = _read(gt) * 0.97 + 3.0  # a slightly wrong product in DN
    tif = tmp_path / "p.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=64, height=64, count=4, dtype="float32") as f:
        f.write(product.astype(np.float32))
    npy = tmp_path / "p.npy"
    np.save(npy, np.moveaxis(product.astype(np.float32), 0, -1))  # H x W x C
    np.testing.assert_array_equal(read_image(tif), read_image(npy))
    a = evaluate_reduced_files(gt, {"tif": tif, "npy": npy}, "GE1", dim_cut=DIM_CUT).scenes[0].metrics["reduced"]
    assert a["tif"] == a["npy"] and a["tif"]["ERGAS"] > 0

    full = np.moveaxis(_read(scenes[0] / "truth.tif"), 0, -1)
    np.save(tmp_path / "f.npy", full)
    b = evaluate_full_files(scenes[0] / "ms.tif", scenes[0] / "pan.tif",
                            {"tif": scenes[0] / "truth.tif", "npy": tmp_path / "f.npy"}, "GE1")
    assert b.scenes[0].metrics["full"]["tif"] == b.scenes[0].metrics["full"]["npy"]


def test_npy_saved_bands_first_is_refused_with_the_fix(scenes, tmp_path):
    np.save(tmp_path / "chw.npy", _read(scenes[0] / "ms.tif"))  # (4, 64, 64): bands first
    with pytest.raises(ValueError, match=r"H x W x C \(4, 64, 64\).*needs H x W x C \(64, 64, 4\).*np.moveaxis"):
        evaluate_reduced_files(scenes[0] / "ms.tif", {"f": tmp_path / "chw.npy"}, "GE1")


def test_wrong_shapes_name_both_shapes_and_the_protocol(scenes, tmp_path):
    truth = scenes[0] / "truth.tif"
    with pytest.raises(ValueError, match=r"C x H x W \(4, 256, 256\) but the GT.*needs C x H x W \(4, 64, 64\)"):
        evaluate_reduced_files(scenes[0] / "ms.tif", {"f": truth}, "GE1")  # a PAN-scale product vs the GT
    with pytest.raises(ValueError, match=r"MS's shape.*--gt"):  # a reduced-resolution product at full res
        evaluate_full_files(scenes[0] / "ms.tif", scenes[0] / "pan.tif", {"f": scenes[0] / "ms.tif"}, "GE1")
    np.save(tmp_path / "three.npy", np.zeros((64, 64, 3)))
    with pytest.raises(ValueError, match="3 bands where 4"):
        evaluate_reduced_files(scenes[0] / "ms.tif", {"f": tmp_path / "three.npy"}, "GE1")
    np.save(tmp_path / "odd.npy", np.ones((100, 100, 4)) * 500)
    with pytest.raises(ValueError, match=r"\(100, 100, 4\).*MS shape \(4, 64, 64\).*H x W x C \(256, 256, 4\)"):
        evaluate_scene(scenes[0], methods=[], products={"odd": tmp_path / "odd.npy"})


def test_normalised_product_is_refused(scenes, tmp_path):
    np.save(tmp_path / "unit.npy", np.moveaxis(_read(scenes[0] / "ms.tif") / 2047.0, 0, -1))
    with pytest.raises(ValueError, match=r"normalised.*2\*\*bits - 1"):
        evaluate_reduced_files(scenes[0] / "ms.tif", {"f": tmp_path / "unit.npy"}, "GE1")


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(KeyError, match="MTF-GLP-FS"):
        resolve_methods("EXP,NoSuchMethod")
    assert list(resolve_methods("mtf_glp_fs, exp")) == ["MTF-GLP-FS", "EXP"]


def test_a_scene_is_cut_to_whole_blocks_and_products_follow(tmp_path):
    """PAN 264 x 256: MS 66 rows, cut to 64 (a multiple of 8 MS = 32 PAN px) with a note."""
    root = write_synthetic_scene(tmp_path / "odd", seed=3, sensor="GeoEye-1", pan_size=(264, 256))
    scene = load_scene(root)
    assert scene.ms.shape == (4, 64, 64) and scene.pan.shape == (1, 256, 256)
    assert scene.file_shapes["ms"] == (4, 66, 64) and any("evaluated window" in n for n in scene.notes)
    res = evaluate_scene(scene, methods=[], products={"MS": root / "ms.tif"}, protocols=["reduced"],
                         dim_cut=DIM_CUT)
    assert res.metrics["reduced"]["MS"]["ERGAS"] == 0.0  # the file-sized product was cut the same way


def test_an_archive_is_evaluated_and_unusable_folders_are_reported(scenes, tmp_path):
    root = tmp_path / "archive"
    shutil.copytree(scenes[0], root / "good")
    (root / "stray").mkdir()
    shutil.copy(scenes[0] / "pan.tif", root / "stray" / "pan.tif")  # a raster with no scene.json
    result = evaluate_scenes([root], methods="EXP", protocols=["reduced"], dim_cut=DIM_CUT)
    assert [s.scene_id for s in result.scenes] == ["good"]
    assert [sid for sid, _ in result.skipped] == ["stray"]
    assert "stray: skipped, not evaluated" in markdown(result)
