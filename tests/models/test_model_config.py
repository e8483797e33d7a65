"""Typed model configs: strict from_dict, JSON round trip, consistency checks."""

from __future__ import annotations

import json

import pytest

from crossdiff.models.config import CrossDiffConfig, DiffusionConfig, HeadConfig, UNetConfig


def test_defaults_are_the_paper_settings():
    cfg = CrossDiffConfig()
    assert cfg.p2m.widths == (32, 64, 128, 256) and cfg.p2m.role == "p2m" and cfg.m2p.role == "m2p"
    assert (cfg.p2m.time_dim, cfg.p2m.embed_dim) == (32, 256)
    assert cfg.p2m.groups(32) == 4 and cfg.p2m.groups(64) == 32 and cfg.p2m.groups(256) == 32
    d = cfg.diffusion
    assert (d.timesteps, d.cosine_s, d.max_beta, d.cond_dropout) == (1000, 0.008, 0.999, 0.1)
    assert cfg.head.levels == (256, 128, 64, 32) and cfg.head.keep_finest is False
    assert cfg.head.feature_timestep == 50


def test_json_round_trip():
    cfg = CrossDiffConfig.from_dict(
        {
            "bands": 8,
            "ratio": 4,
            "p2m": {"base_width": 16},
            "m2p": {"base_width": 16},
            "head": {"keep_finest": True},
            "diffusion": {"timesteps": 500},
        }
    )
    text = json.dumps(cfg.to_dict())
    back = CrossDiffConfig.from_dict(json.loads(text))
    assert back == cfg
    assert back.head.levels == (128, 64, 32, 16)  # derived from the UNet widths when not given
    assert back.p2m.bands == 8 and back.m2p.role == "m2p"


@pytest.mark.parametrize(
    ("cls", "data", "message"),
    [
        (CrossDiffConfig, {"bands": 4, "lr": 3e-4}, "unknown key"),
        (CrossDiffConfig, {"head": {"keepfinest": True}}, "allowed keys are"),
        (UNetConfig, {"widths": [32, 64]}, "channel_mults"),
        (DiffusionConfig, {"timesteps": "1000"}, "expected an integer"),
        (HeadConfig, {"keep_finest": "yes"}, "expected true/false"),
        (HeadConfig, {"se_gate": "relu"}, "not one of"),
        (UNetConfig, {"bands": 2}, "3..16"),
        (CrossDiffConfig, {"bands": 4, "p2m": {"bands": 8}}, "bands=4"),
        (CrossDiffConfig, {"p2m": {"base_width": 16}}, "widths"),
        (DiffusionConfig, {"cond_dropout": 1.5}, r"\[0, 1\]"),
    ],
)
def test_strict_errors(cls, data, message):
    with pytest.raises(ValueError, match=message):
        cls.from_dict(data)


def test_unknown_key_error_names_the_allowed_keys():
    with pytest.raises(ValueError) as err:
        DiffusionConfig.from_dict({"schedule": "linear"})
    for key in ("timesteps", "cosine_s", "max_beta", "cond_dropout"):
        assert key in str(err.value)
