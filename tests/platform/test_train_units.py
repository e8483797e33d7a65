"""Stage-1 pieces without Ray: the job config, the step, the schedule and checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pyarrow import fs as pafs

from crossdiff.models.crossdiff import CrossDiff
from crossdiff.models.pretrain import CrossPretrainer
from crossdiff.platform.train.checkpoints import (
    CorruptCheckpointError,
    checkpoint_dir_name,
    list_checkpoints,
    read_checkpoint,
    resume_point,
    write_checkpoint,
)
from crossdiff.platform.train.config import OptimSection, PretrainConfig, load_pretrain_config
from crossdiff.platform.train.step import build_train_state, lr_factor, train_step

TINY = {"bands": 4, "p2m": {"base_width": 8}, "m2p": {"base_width": 8}}


def _job(tmp_path: Path, **sections) -> Path:
    body = {"data": {"manifest": "m.parquet"}, "model": TINY, **sections}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _batch(b: int = 4, size: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pan = torch.rand(b, 1, size, size, generator=g) * 2 - 1
    return {"pan": pan, "lms": (pan.repeat(1, 4, 1, 1) * 0.8 + 0.1).clamp(-1, 1)}


def test_config_reads_yaml_and_overrides(tmp_path):
    cfg = load_pretrain_config(_job(tmp_path, run={"max_steps": 7}), {"run": {"name": "x"}, "optim": {"lr": 1e-3}})
    assert (cfg.run.max_steps, cfg.run.name, cfg.optim.lr, cfg.run.roles) == (7, "x", 1e-3, ("p2m", "m2p"))
    assert PretrainConfig.from_dict(cfg.to_dict()) == cfg  # the resolved config round-trips


@pytest.mark.parametrize(("sections", "message"), [
    ({"run": {"max_step": 5}}, "unknown key"),
    ({"optim": {"lr": "fast"}}, "lr"),
    ({"run": {"nets": "all"}}, "nets"),
    ({"model": {"bands": 4, "p2m": {"widths": 3}}}, "model"),
    ({"scale": {"num_workers": 0}}, "num_workers"),
    ({"data": {"manifest": ""}}, "manifest is required"),
    ({"data": {"manifest": "m.parquet", "lms_on": "gpu"}}, "lms_on"),
])
def test_config_errors_name_the_problem(tmp_path, sections, message):
    with pytest.raises(ValueError, match=message):
        load_pretrain_config(_job(tmp_path, **sections))


def test_trained_inputs_compute_lms_unless_the_readers_sent_it():
    from crossdiff.platform.stream.samples import make_samples
    from crossdiff.platform.train.worker_loop import stream_columns, trained_inputs

    assert stream_columns("readers") == ["pan", "lms"]
    assert stream_columns("trainer") == ["pan", "ms", "ms_shift_x", "ms_shift_y"]
    rng = np.random.default_rng(1)
    pan_dn = rng.integers(1, 2047, (2, 1, 32, 32), dtype=np.uint16)
    ms_dn = rng.integers(1, 2047, (2, 4, 8, 8), dtype=np.uint16)
    shift = np.array([0.25, -0.5])
    ref = make_samples(pan_dn, ms_dn, bits=np.full(2, 11), ratio=4, shift_x=shift, shift_y=-shift,
                       sensors=["generic"] * 2)
    lean = {"pan": torch.from_numpy(ref["pan"]), "ms": torch.from_numpy(ref["ms"]),
            "ms_shift_x": torch.from_numpy(shift).float(), "ms_shift_y": torch.from_numpy(-shift).float()}
    got = trained_inputs(lean)
    assert set(got) == {"pan", "lms"}
    torch.testing.assert_close(got["lms"], torch.from_numpy(ref["lms"]), rtol=0, atol=0)
    sent = {"pan": lean["pan"], "lms": torch.zeros(2, 4, 32, 32)}
    assert trained_inputs(sent)["lms"] is sent["lms"]  # shipped by the readers: used as is


def test_lr_schedule_warmup_then_cosine():
    optim = OptimSection(lr=1.0, warmup_steps=4, schedule="cosine", min_lr_ratio=0.1)
    assert [lr_factor(s, optim, 104) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, optim, 104) == pytest.approx(1.0)
    assert lr_factor(54, optim, 104) == pytest.approx(0.55)
    assert lr_factor(104, optim, 104) == pytest.approx(0.1)


@pytest.mark.parametrize("nets", [("p2m", "m2p"), ("m2p",)])
def test_train_step_learns_and_touches_only_trained_nets(nets):
    torch.manual_seed(0)
    model = CrossDiff.from_config(TINY)
    trained = CrossPretrainer(model, nets)
    state = build_train_state(trained, OptimSection(lr=3e-3, ema_decay=0.9), max_steps=30)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(nets)}
    batch = _batch()
    gen = torch.Generator().manual_seed(1)
    fixed = {"t": torch.full((4,), 300), "noise": {"p2m": torch.randn(4, 4, 16, 16, generator=gen),
                                                   "m2p": torch.randn(4, 1, 16, 16, generator=gen)}}
    before = model.pretrain_losses(batch, nets=nets, **fixed)["loss"].item()
    for _ in range(25):
        row = train_step(trained, batch, state, grad_clip=1.0)
    after = model.pretrain_losses(batch, nets=nets, **fixed)["loss"].item()
    assert after < 0.7 * before and state.step == 25 and row["lr"] == pytest.approx(3e-3)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in frozen.items())
    ema_params = dict(state.ema.module.named_parameters())
    assert any(not torch.equal(p, ema_params[n]) for n, p in trained.named_parameters())


def _checkpoint(tmp_path: Path, step: int) -> tuple[Path, CrossDiff]:
    torch.manual_seed(step)
    model = CrossDiff.from_config(TINY)
    state = build_train_state(CrossPretrainer(model), OptimSection(), max_steps=10)
    state.step, state.epoch, state.batch_in_epoch = step, 1, 3
    path = write_checkpoint(tmp_path / checkpoint_dir_name(step), model, state.state_dict(), {"config": {}})
    return path, model


def test_checkpoint_round_trip_and_corruption_fallback(tmp_path):
    local = pafs.LocalFileSystem()
    old, _ = _checkpoint(tmp_path, 5)
    new, model = _checkpoint(tmp_path, 10)
    loaded = read_checkpoint(local, str(new))
    assert loaded.train_state["step"] == 10 and loaded.train_state["batch_in_epoch"] == 3
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict.items())
    assert list_checkpoints(local, str(tmp_path)) == [str(new), str(old)]

    data = bytearray((new / "state.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    (new / "state.pt").write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="SHA-256"):
        read_checkpoint(local, str(new))
    fallback = resume_point(None, local, str(tmp_path))
    assert fallback is not None and fallback.train_state["step"] == 5

    (old / "state.pt").write_bytes(b"")  # truncated to nothing
    assert resume_point(None, local, str(tmp_path)) is None
