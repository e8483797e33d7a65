"""The CrossDiff front door: stage-1 losses (incl. over-fitting one real tile), stage-2
features and fusion, freezing, input checks, and the bf16 / channels-last path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scenes import real_scene

from crossdiff.models.config import CrossDiffConfig
from crossdiff.models.crossdiff import CrossDiff
from crossdiff.models.performance import autocast, sample_channels_last, to_channels_last


def _sample(bands: int = 4, b: int = 2, h: int = 16, w: int = 24, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "pan": torch.rand(b, 1, h, w, generator=g) * 2 - 1,
        "lms": torch.rand(b, bands, h, w, generator=g) * 2 - 1,
    }


@pytest.fixture(scope="module")
def model() -> CrossDiff:
    torch.manual_seed(0)
    return CrossDiff.from_config({"bands": 4})


def test_from_config_accepts_objects_dicts_and_rejects_unknown_keys():
    assert CrossDiff.from_config(CrossDiffConfig(bands=8)).config.bands == 8
    m = CrossDiff.from_config({"bands": 3, "head": {"keep_finest": True}})
    assert m.p2m.config.x0_channels == 3 and m.m2p.config.cond_channels == 3 and m.config.head.keep_finest
    with pytest.raises(ValueError, match="allowed keys"):
        CrossDiff.from_config({"bands": 4, "unet_width": 64})


@pytest.mark.parametrize("bands", [3, 8])
def test_pretrain_losses_train_both_nets(bands):
    m = CrossDiff.from_config({"bands": bands})
    losses = m.pretrain_losses(_sample(bands))
    assert set(losses) == {"p2m", "m2p", "loss"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    losses["loss"].backward()
    for net in (m.p2m, m.m2p):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in m.head.parameters())  # stage 1 leaves the head alone


def test_features_and_fuse(model):
    s = _sample()
    feats = model.features(s, seed=1)
    assert [f.shape[1] for f in feats["p2m"]] == [32, 64, 128, 256] == [f.shape[1] for f in feats["m2p"]]
    assert feats["p2m"][3].shape[2:] == (2, 3) and not feats["p2m"][0].requires_grad
    again = model.features(s, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(feats["m2p"], again["m2p"], strict=True))
    assert not torch.equal(model.features(s)["p2m"][0], model.features(s)["p2m"][0])  # fresh noise
    fused = model.fuse(s, seed=1)
    assert fused.shape == s["lms"].shape and torch.isfinite(fused).all()
    torch.testing.assert_close(model.fuse(s, features=feats), fused)


def test_freeze_encoders_leaves_only_the_head_trainable():
    m = CrossDiff.from_config({"bands": 4}).freeze_encoders()
    assert not any(p.requires_grad for p in [*m.p2m.parameters(), *m.m2p.parameters()])
    s = _sample()
    F.l1_loss(m.fuse(s, seed=0), s["lms"]).backward()
    assert all(p.grad is None for p in [*m.p2m.parameters(), *m.m2p.parameters()])
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.head.parameters())


def test_bad_samples_are_clear_errors(model):
    s = _sample()
    with pytest.raises(ValueError, match="lacks \\['lms'\\]"):
        model.fuse({"pan": s["pan"], "ms": s["lms"][:, :, ::4, ::4]})
    with pytest.raises(ValueError, match="4-band model"):
        model.pretrain_losses({"pan": s["pan"], "lms": torch.zeros(2, 8, 16, 24)})
    with pytest.raises(ValueError, match=r"pan'\] must be \(B, 1, H, W\)"):
        model.features({"pan": s["lms"], "lms": s["lms"]})
    with pytest.raises(ValueError, match="divisible by 8"):
        model.pretrain_losses(_sample(h=36, w=36))


def test_bf16_autocast_and_channels_last_forward_on_cpu():
    m = to_channels_last(CrossDiff.from_config({"bands": 4}))
    assert m.p2m.stem.weight.is_contiguous(memory_format=torch.channels_last)
    s = sample_channels_last(_sample())
    with autocast(m):
        losses = m.pretrain_losses(s)
        fused = m.fuse(s, seed=0)
        eps = m.p2m(s["lms"], s["pan"], 10)
    assert eps.dtype == torch.bfloat16  # autocast really ran the convs in bf16
    assert losses["loss"].dtype == torch.float32 and torch.isfinite(losses["loss"])
    assert fused.shape == s["lms"].shape and torch.isfinite(fused).all()
    losses["loss"].backward()
    assert m.p2m.stem.weight.grad is not None
    with autocast(m, enabled=False):
        assert m.p2m(s["lms"], s["pan"], 10).dtype == torch.float32


def _real_tile() -> dict[str, torch.Tensor]:
    """A 64x64 PAN / 16x16 MS tile of the GeoEye-1 sample, lms by bicubic x4, scaled to [-1, 1]."""
    rasterio = pytest.importorskip("rasterio")
    root = real_scene("ge1_sample")
    scale = 2.0**8 - 1  # the sample is 8-bit (scene.json "bits": 8)
    with rasterio.open(root / "pan.tif") as ds:
        pan = ds.read(window=((512, 576), (512, 576))).astype(np.float32)
    with rasterio.open(root / "ms.tif") as ds:
        ms = ds.read(window=((128, 144), (128, 144))).astype(np.float32)
    pan_t = torch.from_numpy(pan)[None] / scale * 2 - 1
    ms_t = torch.from_numpy(ms)[None] / scale * 2 - 1
    lms = F.interpolate(ms_t, scale_factor=4, mode="bicubic", align_corners=False)
    return {"pan": pan_t, "lms": lms}


def test_both_diffusion_losses_drop_when_overfitting_one_real_tile():
    tile = _real_tile()
    torch.manual_seed(0)
    m = CrossDiff.from_config({"bands": 4, "diffusion": {"cond_dropout": 0.0}})
    s = {k: v.expand(2, -1, -1, -1) for k, v in tile.items()}
    t = torch.tensor([50, 400])  # fixed timesteps and noise: every step sees the same problem
    g = torch.Generator().manual_seed(0)
    noise = {"p2m": torch.randn(2, 4, 64, 64, generator=g), "m2p": torch.randn(2, 1, 64, 64, generator=g)}
    opt = torch.optim.Adam([*m.p2m.parameters(), *m.m2p.parameters()], lr=2e-3)
    first = None
    for _ in range(12):
        losses = m.pretrain_losses(s, t=t, noise=noise)
        first = first or {k: v.item() for k, v in losses.items()}
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    last = m.pretrain_losses(s, t=t, noise=noise)
    assert last["p2m"].item() < 0.75 * first["p2m"]
    assert last["m2p"].item() < 0.75 * first["m2p"]
