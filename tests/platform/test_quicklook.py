"""Quicklooks: band picking by name, percentile stretch, true-colour composites,
error maps and the PNG panel grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from crossdiff.models.sensors import get_sensor
from crossdiff.platform.quicklook import (
    error_magnitude,
    error_map,
    gray8,
    rgb_indices,
    save_panels,
    stretch,
    to_rgb8,
)

WV2 = get_sensor("WV2").bands  # coastal, blue, green, yellow, red, red_edge, nir1, nir2


def test_rgb_indices_by_name():
    assert rgb_indices(WV2) == (4, 2, 1)
    assert rgb_indices(("blue", "green", "red", "nir")) == (2, 1, 0)
    assert rgb_indices(("NIR", "Red", "GREEN", "Blue")) == (1, 2, 3)  # case-insensitive
    assert rgb_indices(("b", "g", "r")) == (2, 1, 0)


def test_rgb_indices_fallback_first_three():
    assert rgb_indices(("b1", "b2", "b3", "b4")) == (0, 1, 2)
    # red_edge is not red: without a red band the fallback applies
    assert rgb_indices(("red_edge", "green", "blue", "nir")) == (0, 1, 2)
    assert rgb_indices(None, n_bands=5) == (0, 1, 2)
    assert rgb_indices(("pan",)) == (0, 0, 0)
    with pytest.raises(ValueError, match="band names or a band count"):
        rgb_indices(None)


def test_stretch_maps_percentiles_to_0_and_255():
    ramp = np.arange(101, dtype=np.float64)  # percentile p of 0..100 is exactly p
    out = stretch(ramp.reshape(1, 1, 101), low=2, high=98)[0, 0]
    assert out.dtype == np.uint8
    assert out[2] == 0 and out[98] == 255
    assert (out[:2] == 0).all() and (out[99:] == 255).all()  # clipped beyond the percentiles
    assert out[50] == round((50 - 2) / 96 * 255)
    assert (np.diff(out.astype(int)) >= 0).all()


def test_stretch_per_band_vs_shared_and_nodata():
    ramp = np.linspace(0, 1, 400).reshape(20, 20)
    img = np.stack([ramp, 10 * ramp])
    per_band = stretch(img)
    np.testing.assert_array_equal(per_band[0], per_band[1])  # each band fills 0..255
    shared = stretch(img, per_band=False)
    assert shared[0].max() < 64 and shared[1].max() == 255  # relative brightness kept
    with_fill = img.copy()
    with_fill[:, :5] = 0  # a nodata border must not drag the low percentile down
    out = stretch(with_fill, nodata=0)
    assert (out[:, :5] == 0).all() and out[0, 5:].min() == 0 and out[0, 5:].max() == 255


def test_stretch_flat_band_and_nan():
    img = np.full((1, 4, 4), 7.0)
    img[0, 0, 0] = np.nan
    out = stretch(img)
    assert out[0, 0, 0] == 0 and (out[0].ravel()[1:] == 128).all()


def _scene(h: int = 16, w: int = 16) -> np.ndarray:
    """8 WV2 bands: red bright on the left half, green on the top half, blue on the diagonal."""
    rng = np.random.default_rng(0)
    img = rng.uniform(100, 110, (8, h, w))
    img[4, :, : w // 2] += 1000
    img[2, : h // 2, :] += 1000
    img[1][np.eye(h, w, dtype=bool)] += 1000
    return img


def test_to_rgb8_true_colour_order():
    rgb = to_rgb8(_scene(), WV2, low=0, high=100)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert rgb[:, :8, 0].min() > 200 and rgb[:, 8:, 0].max() < 50  # red: left half
    assert rgb[:8, :, 1].min() > 200 and rgb[8:, :, 1].max() < 50  # green: top half
    assert (rgb[..., 2][np.eye(16, dtype=bool)] > 200).all()  # blue: diagonal
    assert rgb[..., 2][~np.eye(16, dtype=bool)].max() < 50


def test_to_rgb8_is_scale_free_and_accepts_tensors():
    dn = _scene()
    scaled = dn / dn.max() * 2 - 1  # [-1, 1], as the model sees it
    a = to_rgb8(dn, WV2)
    b = to_rgb8(torch.from_numpy(scaled)[None], WV2)  # a (1, C, H, W) tensor
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # rounding only
    with pytest.raises(ValueError, match="one name per band"):
        to_rgb8(dn, WV2[:4])


def test_gray8():
    pan = np.linspace(0, 2047, 64).reshape(1, 8, 8)
    g = gray8(pan)
    assert g.shape == (8, 8) and g.dtype == np.uint8 and g.min() == 0 and g.max() == 255
    with pytest.raises(ValueError, match="one band"):
        gray8(np.zeros((3, 8, 8)))


def test_error_map_zero_for_identical_inputs():
    img = _scene()
    assert not error_magnitude(img, img).any()
    heat = error_map(img, img)
    assert heat.shape == (16, 16, 3) and heat.dtype == np.uint8 and not heat.any()


def test_error_magnitude_hand_worked_and_map_brightness():
    a = np.zeros((2, 3, 3))
    b = np.zeros((2, 3, 3))
    b[0, 1, 1], b[1, 1, 1] = 3.0, 4.0  # spectral error (3, 4) -> magnitude 5
    b[0, 0, 0] = 1.0
    mag = error_magnitude(a, b)
    assert mag[1, 1] == 5.0 and mag[0, 0] == 1.0 and mag.sum() == 6.0
    heat = error_map(a, b, vmax=5.0).astype(int).sum(axis=2)
    assert heat[1, 1] > heat[0, 0] > heat[2, 2] == 0
    with pytest.raises(ValueError, match="shapes differ"):
        error_map(a, b[:1])


def test_save_panels_writes_a_readable_grid(tmp_path):
    img = _scene()
    panels = {
        "MS (true colour)": to_rgb8(img, WV2),
        "PAN": gray8(img[6:7]),
        "error": error_map(img, img + 1),
        "float gray": img[0],
        "float rgb": np.full((16, 16, 3), 0.5),
    }
    out = save_panels(panels, tmp_path / "sub" / "grid.png", ncols=3)
    pixels = imread(out)
    assert out.is_file() and pixels.ndim == 3 and pixels.shape[1] > pixels.shape[0]  # 3 cols x 2 rows
    single = imread(save_panels({"only": panels["PAN"]}, tmp_path / "one.png"))
    assert single.shape[0] > 0 and single.shape[1] < pixels.shape[1]


def test_save_panels_rejects_raw_multiband(tmp_path):
    with pytest.raises(ValueError, match="to_rgb8"):
        save_panels({"raw": _scene()}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="at least one"):
        save_panels({}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
