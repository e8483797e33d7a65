"""The sensor table: spellings, gains and registration of new sensors."""

from __future__ import annotations

import json

import pytest

from crossdiff.models.sensors import Sensor, generic_sensor, get_sensor, known_sensors, register_sensor


@pytest.mark.parametrize(
    ("name", "bands", "ratio", "pan_gain"),
    [("WV2", 8, 4, 0.11), ("WorldView-2", 8, 4, 0.11), ("GeoEye1", 4, 4, 0.16), ("QB", 4, 4, 0.15),
     ("Landsat8-OLI", 4, 2, 0.15), ("Landsat7-ETM+", 6, 2, 0.15), ("IKONOS", 4, 4, 0.17)],
)
def test_aliases_resolve(name, bands, ratio, pan_gain):
    s = get_sensor(name)
    assert (s.n_bands, s.ratio, s.mtf_pan) == (bands, ratio, pan_gain)


def test_toolbox_gains():
    assert get_sensor("QuickBird").mtf_ms == (0.34, 0.32, 0.30, 0.22)
    assert get_sensor("WV2").mtf_ms == (0.35,) * 7 + (0.27,)
    assert get_sensor("WV3").mtf_ms[0] == 0.325 and get_sensor("WV3").mtf_pan == 0.14


def test_every_real_scene_sensor_is_known(scenes_dir):
    for meta in scenes_dir.glob("*/scene.json"):
        d = json.loads(meta.read_text())
        n = len(d.get("bands") or d.get("ms") or [])
        assert get_sensor(d["sensor"], n_bands=n).ratio == d["ratio"], meta


def test_band_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match="8 MS bands"):
        get_sensor("WV2", n_bands=4)


def test_unknown_sensor_needs_band_count_and_falls_back_to_generic():
    with pytest.raises(KeyError, match="unknown sensor"):
        get_sensor("Pleiades-Neo")
    s = get_sensor("Pleiades-Neo", n_bands=6)
    assert s.mtf_ms == (0.3,) * 6 and s.mtf_pan == 0.15
    assert get_sensor("generic", n_bands=5).n_bands == 5


def test_register_from_dict_and_strict_keys():
    s = register_sensor(Sensor.from_dict({"name": "TestSat-1", "bands": ["b", "g", "r"], "bits": 12,
                                          "ratio": 4, "mtf_ms": 0.28, "mtf_pan": 0.12,
                                          "aliases": ["TS1"]}))
    assert get_sensor("ts-1") is s and s.mtf_ms == (0.28,) * 3 and "TestSat-1" in known_sensors()
    with pytest.raises(ValueError, match="unknown sensor keys"):
        Sensor.from_dict({"name": "x", "bands": ["a"], "bits": 8, "ratio": 4, "gain": 0.3})
    with pytest.raises(ValueError, match="one gain per MS band"):
        Sensor("bad", ("a", "b"), 11, 4, (0.3,), 0.15)
    with pytest.raises(ValueError, match="already registered"):
        register_sensor(generic_sensor(3, name="QuickBird"))
