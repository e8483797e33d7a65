"""The seeded synthetic PAN/MS scene generator: determinism, file layout, realism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch

from crossdiff.models.resample.mtf import mtf_filter
from crossdiff.models.sensors import get_sensor
from crossdiff.platform import synthetic
from crossdiff.platform.synthetic import (
    band_centres,
    make_synthetic_scene,
    pan_weights,
    spectrum,
    write_synthetic_archive,
    write_synthetic_scene,
)

SIZE = 128


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read()


def _corr(a, b) -> float:
    return float(np.corrcoef(np.ravel(a).astype(float), np.ravel(b).astype(float))[0, 1])


def _laplacian_energy(x: np.ndarray) -> float:
    x = x.astype(float)
    lap = 4 * x[..., 1:-1, 1:-1] - x[..., 2:, 1:-1] - x[..., :-2, 1:-1] - x[..., 1:-1, 2:] - x[..., 1:-1, :-2]
    return float((lap**2).mean())


def test_same_seed_same_pixels_different_seed_different():
    a = make_synthetic_scene(seed=7, sensor="WorldView-2", pan_size=SIZE)
    b = make_synthetic_scene(seed=7, sensor="WorldView-2", pan_size=SIZE)
    c = make_synthetic_scene(seed=8, sensor="WorldView-2", pan_size=SIZE)
    for name in ("pan", "ms", "truth"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert not np.array_equal(getattr(a, name), getattr(c, name)), name


def test_same_seed_same_pixels_on_disk_and_across_thread_counts(tmp_path):
    write_synthetic_scene(tmp_path / "a", seed=3, pan_size=SIZE)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        write_synthetic_scene(tmp_path / "b", seed=3, pan_size=SIZE)
    finally:
        torch.set_num_threads(threads)
    for name in ("pan.tif", "ms.tif"):
        assert np.array_equal(_read(tmp_path / "a" / name), _read(tmp_path / "b" / name))


@pytest.mark.parametrize(
    ("sensor", "n_bands", "count", "dtype", "bits", "ratio"),
    [
        ("WorldView-2", None, 8, "uint16", 11, 4),
        ("GE1", None, 4, "uint16", 11, 4),
        ("Landsat-7", None, 6, "uint8", 8, 2),
        ("generic", 5, 5, "uint16", 11, 4),
    ],
)
def test_files_layout_georeference_and_bit_depth(tmp_path, sensor, n_bands, count, dtype, bits, ratio):
    out = write_synthetic_scene(tmp_path / "s", seed=11, sensor=sensor, pan_size=SIZE, n_bands=n_bands)
    meta = json.loads((out / "scene.json").read_text())
    with rasterio.open(out / "pan.tif") as pan, rasterio.open(out / "ms.tif") as ms:
        assert pan.count == 1 and ms.count == count
        assert pan.dtypes[0] == ms.dtypes[0] == dtype
        assert pan.crs is not None and pan.crs.is_projected and pan.crs == ms.crs
        assert pan.nodata is None and ms.nodata is None
        for ds in (pan, ms):
            assert ds.profile["tiled"] and ds.compression.name == "deflate"
        # MS pixel = ratio x PAN pixel, same upper-left corner, no rotation.
        assert ms.transform.a == pytest.approx(ratio * pan.transform.a)
        assert ms.transform.e == pytest.approx(ratio * pan.transform.e)
        assert (ms.transform.c, ms.transform.f) == (pan.transform.c, pan.transform.f)
        assert pan.transform.b == pan.transform.d == 0
        assert (ms.height * ratio, ms.width * ratio) == (pan.height, pan.width) == (SIZE, SIZE)
        assert pan.bounds == pytest.approx(ms.bounds)
        assert ms.descriptions == tuple(meta["bands"])
        assert int(pan.read().max()) <= 2**bits - 1 and int(ms.read().max()) <= 2**bits - 1
        assert ms.read().max() > 0
    assert meta["synthetic"] is True and "synthetic" in meta["note"].lower() and meta["seed"] == 11
    assert meta["bits"] == bits and meta["ratio"] == ratio and meta["dtype"] == dtype
    assert meta["ms_shape"] == [count, SIZE // ratio, SIZE // ratio] and meta["pan_shape"] == [SIZE, SIZE]
    assert len(meta["bands"]) == count and meta["pan_gsd_m"] > 0
    assert not (out / "truth.tif").exists()


def test_truth_is_saved_on_the_pan_grid(tmp_path):
    out = write_synthetic_scene(tmp_path / "s", seed=2, pan_size=SIZE, save_truth=True)
    meta = json.loads((out / "scene.json").read_text())
    assert meta["truth"] == "truth.tif"
    with rasterio.open(out / "pan.tif") as pan, rasterio.open(out / "truth.tif") as truth:
        assert truth.count == 8 and truth.shape == pan.shape and truth.transform == pan.transform
        assert truth.crs == pan.crs and truth.dtypes[0] == pan.dtypes[0]
    # Writing again without truth removes the stale file.
    write_synthetic_scene(out, seed=2, pan_size=SIZE)
    assert not (out / "truth.tif").exists()


@pytest.mark.parametrize("sensor", ["WorldView-2", "GeoEye-1", "Landsat-7"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pan_and_ms_relate_like_real_data(sensor, seed):
    s = make_synthetic_scene(seed=seed, sensor=sensor, pan_size=SIZE)
    r = s.sensor.ratio
    # PAN is the spectral-response-weighted truth plus a little noise.
    assert _corr(s.pan, np.tensordot(s.pan_weights, s.truth.astype(float), axes=1)) > 0.9
    # PAN box-filtered to the MS grid follows the MS band mean (real pairs: 0.83-0.95).
    h, w = s.ms.shape[1:]
    pan_low = s.pan.astype(float).reshape(h, r, w, r).mean(axis=(1, 3))
    assert _corr(pan_low, s.ms.astype(float).mean(axis=0)) > 0.8


@pytest.mark.parametrize("sensor", ["WorldView-2", "Landsat-7"])
def test_ms_is_mtf_blurred(sensor):
    s = make_synthetic_scene(seed=4, sensor=sensor, pan_size=SIZE)
    r = s.sensor.ratio
    sampled = s.truth[:, r // 2::r, r // 2::r]  # the same grid without the MTF blur
    assert _laplacian_energy(s.ms) < 0.5 * _laplacian_energy(sampled)
    # The truth has detail finer than the MS grid: pansharpening has something to recover.
    assert _laplacian_energy(s.truth) > 0


def test_ms_is_the_wald_degradation_of_the_truth():
    s = make_synthetic_scene(seed=5, sensor="WorldView-2", pan_size=SIZE)
    r, vmax = s.sensor.ratio, s.sensor.max_value
    blurred = mtf_filter(torch.from_numpy(s.truth.astype(np.float32)), s.sensor.mtf_ms, r).numpy()
    ms = s.ms.astype(float)
    rmse = {o: float(np.sqrt(((ms - blurred[:, o::r, o::r]) ** 2).mean())) for o in range(r)}
    # Noise std is 0.2 % of the range; the truth's own rounding adds under 1 DN.
    assert rmse[r // 2] < 2 * 0.002 * vmax + 1
    assert rmse[r // 2] == min(rmse.values())


def test_cog_layout_has_overviews(tmp_path):
    out = write_synthetic_scene(tmp_path / "s", seed=1, pan_size=SIZE, cog=True, save_truth=True)
    for name in ("pan.tif", "ms.tif", "truth.tif"):
        with rasterio.open(out / name) as ds:
            assert ds.overviews(1), name
            assert ds.profile["tiled"] and ds.compression.name == "deflate"
            assert ds.crs.is_projected
    with rasterio.open(out / "pan.tif") as ds:
        if synthetic._cog_driver_available():
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


def test_cog_fallback_without_cog_driver(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "_cog_driver_available", lambda: False)
    out = write_synthetic_scene(tmp_path / "s", seed=1, pan_size=SIZE, cog=True)
    with rasterio.open(out / "pan.tif") as pan, rasterio.open(out / "ms.tif") as ms:
        assert pan.overviews(1) and ms.overviews(1) and pan.profile["tiled"]


def test_archive_cycles_sensors_and_reproduces(tmp_path):
    paths = write_synthetic_archive(tmp_path / "a", 3, seed=9, sensors=["WV2", "GeoEye-1"], pan_size=64)
    again = write_synthetic_archive(tmp_path / "b", 3, seed=9, sensors=["WV2", "GeoEye-1"], pan_size=64)
    metas = [json.loads((p / "scene.json").read_text()) for p in paths]
    assert [m["sensor"] for m in metas] == ["WorldView-2", "GeoEye-1", "WorldView-2"]
    assert len({m["seed"] for m in metas}) == 3 and all(m["synthetic"] for m in metas)
    assert not np.array_equal(_read(paths[0] / "pan.tif"), _read(paths[2] / "pan.tif"))
    for p, q in zip(paths, again, strict=True):
        assert np.array_equal(_read(p / "ms.tif"), _read(q / "ms.tif"))
    # The recorded seed regenerates the scene on its own.
    solo = write_synthetic_scene(tmp_path / "solo", seed=metas[1]["seed"], sensor="GE1", pan_size=64)
    assert np.array_equal(_read(solo / "pan.tif"), _read(paths[1] / "pan.tif"))


def test_spectra_and_pan_response_are_plausible():
    red, nir = band_centres(["red", "nir"])
    veg, water = spectrum("vegetation", np.array([red, nir])), spectrum("water", np.array([478.0, nir]))
    assert veg[1] > 3 * veg[0]  # the red edge: vegetation is bright in the NIR
    assert water[1] < water[0]  # water absorbs the NIR
    assert list(band_centres(["b1", "b2", "b3"])) == [450.0, 675.0, 900.0]
    w = pan_weights(get_sensor("WorldView-2"))
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[-1] < 0.01 < w[2]  # WV2 PAN (450-800 nm) sees green, not nir2 (908 nm)


def test_bad_input_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="multiple of the ratio"):
        make_synthetic_scene(seed=0, sensor="WorldView-2", pan_size=130)
    with pytest.raises(ValueError, match="non-negative"):
        make_synthetic_scene(seed=-1)
    with pytest.raises(KeyError, match="unknown sensor"):
        make_synthetic_scene(seed=0, sensor="NoSuchSat")
    with pytest.raises(ValueError, match="8 MS bands"):
        make_synthetic_scene(seed=0, sensor="WorldView-2", n_bands=4, pan_size=SIZE)
    with pytest.raises(ValueError, match="at least 1"):
        write_synthetic_archive(tmp_path, 0, seed=0)
    real = tmp_path / "real"
    real.mkdir()
    (real / "scene.json").write_text(json.dumps({"sensor": "WV2", "bits": 11}))
    with pytest.raises(FileExistsError, match="real scene"):
        write_synthetic_scene(real, seed=0, pan_size=SIZE)
    assert not (real / "pan.tif").exists()
