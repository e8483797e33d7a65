"""Checkpoints round-trip the config, the weights and an optional extra dict, safely."""

from __future__ import annotations

import io

import pytest
import torch

from crossdiff.models.checkpoint import load_checkpoint, load_model, save_checkpoint
from crossdiff.models.config import UNetConfig
from crossdiff.models.crossdiff import CrossDiff
from crossdiff.models.unet import ConditionalUNet


@pytest.fixture(scope="module")
def trained() -> tuple[CrossDiff, torch.optim.Optimizer]:
    """A 3-band model with non-default settings after one optimizer step (so Adam has state)."""
    torch.manual_seed(0)
    m = CrossDiff.from_config({"bands": 3, "head": {"keep_finest": True}, "diffusion": {"cond_dropout": 0.2}})
    opt = torch.optim.AdamW(m.parameters(), lr=3e-4)
    s = {"pan": torch.rand(1, 1, 16, 16), "lms": torch.rand(1, 3, 16, 16)}
    m.pretrain_losses(s)["loss"].backward()
    opt.step()
    return m, opt


def test_round_trip_restores_config_weights_and_extra(tmp_path, trained):
    m, opt = trained
    path = tmp_path / "model.pt"
    save_checkpoint(path, m, extra={"optimizer": opt.state_dict(), "step": 1, "note": "stage1"})
    assert not (tmp_path / "model.pt.tmp").exists()

    ckpt = load_checkpoint(path)
    assert ckpt.kind == "CrossDiff" and ckpt.config == m.config.to_dict()
    restored, extra = load_model(path)
    assert restored.config == m.config  # the typed config, rebuilt from the stored dict
    ref = m.state_dict()
    got = restored.state_dict()
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    assert extra["step"] == 1 and extra["note"] == "stage1"
    state = extra["optimizer"]["state"]
    assert all(torch.equal(state[i]["exp_avg"], opt.state_dict()["state"][i]["exp_avg"]) for i in state)
    # The restored optimizer state loads into a fresh optimizer of the restored model.
    torch.optim.AdamW(restored.parameters(), lr=3e-4).load_state_dict(extra["optimizer"])

    s = {"pan": torch.rand(1, 1, 16, 16), "lms": torch.rand(1, 3, 16, 16)}
    assert torch.equal(restored.fuse(s, seed=4), m.fuse(s, seed=4))


def test_a_single_unet_round_trips_through_a_file_object():
    net = ConditionalUNet(UNetConfig(bands=8, role="m2p", base_width=16))
    buf = io.BytesIO()
    save_checkpoint(buf, net)
    restored, extra = load_model(buf.getvalue())
    assert isinstance(restored, ConditionalUNet) and restored.config == net.config and extra == {}
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), restored.state_dict().values(), strict=True)
    )


def test_foreign_files_and_modules_are_rejected(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a crossdiff-checkpoint"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="cannot checkpoint a Linear"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2))


def test_loading_never_unpickles_objects(tmp_path):
    """weights_only=True: an arbitrary object inside the file makes loading fail."""
    net = ConditionalUNet(UNetConfig(bands=4, role="p2m"))
    path = tmp_path / "evil.pt"
    save_checkpoint(path, net, extra={"obj": _Opaque()})
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_checkpoint(path)


def test_tampered_weights_fail_strict_loading(tmp_path):
    net = ConditionalUNet(UNetConfig(bands=4, role="p2m"))
    path = tmp_path / "net.pt"
    save_checkpoint(path, net)
    ckpt = load_checkpoint(path)
    ckpt.state_dict.pop("out.bias")
    with pytest.raises(RuntimeError, match="out.bias"):
        ckpt.build()


class _Opaque:
    pass
