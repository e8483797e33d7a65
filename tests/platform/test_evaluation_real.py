"""Every classical baseline evaluated on the real WorldView-2 and GeoEye-1 samples, at reduced
and full resolution, against the ordering the pansharpening literature reports:

* reduced resolution: every baseline beats EXP (plain interpolation) on Q2n and ERGAS;
* full resolution: the MTF-GLP methods (MRA, MTF-matched filters) have a lower spectral
  distortion D_lambda than BT-H (component substitution, Brovey) -- here Khan's
  D_lambda_K, the one HQNR uses (DESIGN.md section 4).

Each scene has its own explicit assertion set; what does not hold on a scene is
left out with the reason written next to it and checked where it can be. Skips
without the scenes; slow (whole 1280-px scenes, seven methods, two protocols).
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from crossdiff.models.baselines import BASELINES
from crossdiff.platform.evaluation import evaluate_scene

pytestmark = pytest.mark.slow

MTF_GLP = ("MTF-GLP-HPM", "MTF-GLP-HPM-R", "MTF-GLP-FS")
NOT_EXP = tuple(k for k in BASELINES if k != "EXP")


def real_scene(scenes_dir, name: str):
    path = scenes_dir / name
    if not (path / "scene.json").is_file():
        pytest.skip(f"real sample scene {name} not found at {path}")
    return path


@pytest.fixture(scope="module")
def wv2(scenes_dir):
    return evaluate_scene(real_scene(scenes_dir, "wv2_sample"), methods=None, dim_cut=21).metrics


@pytest.fixture(scope="module")
def ge1(scenes_dir):
    return evaluate_scene(real_scene(scenes_dir, "ge1_sample"), methods=None, dim_cut=21).metrics


def _beats_exp(reduced, methods, key, higher_is_better):
    exp = reduced["EXP"][key]
    worse = {m: reduced[m][key] for m in methods
             if not (reduced[m][key] > exp if higher_is_better else reduced[m][key] < exp)}
    assert not worse, f"{key}: EXP {exp:.4f}, not beaten by {worse}"


def test_wv2_reduced_every_baseline_beats_exp_on_q2n_and_ergas(wv2):
    _beats_exp(wv2["reduced"], NOT_EXP, "Q2n", True)
    _beats_exp(wv2["reduced"], NOT_EXP, "ERGAS", False)


def test_wv2_full_mtf_glp_has_lower_d_lambda_than_bt_h(wv2):
    full = wv2["full"]
    for m in MTF_GLP:
        assert full[m]["D_lambda_K"] < full["BT-H"]["D_lambda_K"], (m, full[m], full["BT-H"])


def test_ge1_reduced_every_baseline_beats_exp_on_q2n(ge1):
    _beats_exp(ge1["reduced"], NOT_EXP, "Q2n", True)


def test_ge1_reduced_every_baseline_but_mtf_glp_hpm_beats_exp_on_ergas(ge1):
    # Left out: MTF-GLP-HPM. Its multiplicative injection scales PAN detail by MS/PAN_LP per
    # band; on this scene the NIR band hardly follows the PAN (checked below), so the injected
    # NIR detail is mostly wrong and ERGAS, an all-band mean, ends above EXP's. The regression-
    # based MTF-GLP-HPM-R and -FS fit the injection per band and do beat EXP here.
    _beats_exp(ge1["reduced"], tuple(m for m in NOT_EXP if m != "MTF-GLP-HPM"), "ERGAS", False)


def test_ge1_nir_hardly_follows_the_pan(scenes_dir):
    """The reason for the exception above: NIR correlates weakly with PAN (visible bands strongly)."""
    root = real_scene(scenes_dir, "ge1_sample")
    with rasterio.open(root / "ms.tif") as f:
        ms = f.read().astype(np.float64)
    with rasterio.open(root / "pan.tif") as f:
        pan = f.read(1).astype(np.float64)
    pan_ms = pan.reshape(ms.shape[1], 4, ms.shape[2], 4).mean(axis=(1, 3))  # PAN averaged to the MS grid
    corr = [np.corrcoef(band.ravel(), pan_ms.ravel())[0, 1] for band in ms]
    assert corr[3] < 0.3 and min(corr[:3]) > 0.7, corr


def test_ge1_full_mtf_glp_has_lower_d_lambda_than_bt_h(ge1):
    # Holds for all three on this scene, MTF-GLP-HPM by the narrowest margin.
    full = ge1["full"]
    for m in MTF_GLP:
        assert full[m]["D_lambda_K"] < full["BT-H"]["D_lambda_K"], (m, full[m], full["BT-H"])


@pytest.mark.parametrize("scene", ["wv2", "ge1"])
def test_every_value_is_finite_and_in_range(scene, request):
    metrics = request.getfixturevalue(scene)
    for protocol, rows in metrics.items():
        assert set(rows) == set(BASELINES), protocol
        for m, values in rows.items():
            assert all(np.isfinite(v) for v in values.values()), (protocol, m, values)
            for key in ("Q2n", "Q", "SCC", "HQNR", "QNR"):
                if key in values:
                    assert -1.0 <= values[key] <= 1.0, (protocol, m, key, values[key])
