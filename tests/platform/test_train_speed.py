"""Stage-1 step details that are about speed: the fused optimiser, one transfer of the logged values,
and the Ray worker's thread count."""

from __future__ import annotations

import pytest
import torch

from crossdiff.models.crossdiff import CrossDiff
from crossdiff.models.pretrain import CrossPretrainer
from crossdiff.platform.train.config import OptimSection
from crossdiff.platform.train.step import build_train_state, train_step

TINY = {"bands": 4, "p2m": {"base_width": 8}, "m2p": {"base_width": 8}}


def _trained(seed: int = 0) -> CrossPretrainer:
    torch.manual_seed(seed)
    return CrossPretrainer(CrossDiff.from_config(TINY))


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"pan": torch.rand(2, 1, 16, 16, generator=g) * 2 - 1, "lms": torch.rand(2, 4, 16, 16, generator=g) * 2 - 1}


def test_cpu_training_uses_the_fused_adamw_with_the_papers_update():
    fused_model, loop_model = _trained(), _trained()
    fused = build_train_state(fused_model, OptimSection(grad_clip=None), 10)
    assert fused.optimizer.param_groups[0]["fused"] is True and fused.foreach_clip
    loop = torch.optim.AdamW(loop_model.parameters(), lr=3e-4, weight_decay=0.0, foreach=False)
    for model, step in ((fused_model, fused.optimizer.step), (loop_model, loop.step)):
        torch.manual_seed(1)
        model(_batch())["loss"].backward()
        step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_resuming_keeps_this_machines_optimizer_kernel():
    # A state saved by the single-tensor loop (e.g. an older run) must not switch the fused kernel off.
    saved = torch.optim.AdamW(_trained().parameters(), lr=3e-4, foreach=False)
    state = build_train_state(_trained(), OptimSection(), 10)
    ref = state.state_dict()
    ref["optimizer"] = saved.state_dict()
    state.load_state_dict(ref)
    assert state.optimizer.param_groups[0]["fused"] is True
    assert state.optimizer.param_groups[0]["foreach"] is None


def test_step_reports_every_loss_and_the_grad_norm_as_floats():
    trained = _trained()
    state = build_train_state(trained, OptimSection(grad_clip=1.0), 10)
    torch.manual_seed(2)
    row = train_step(trained, _batch(), state, grad_clip=1.0)
    assert set(row) == {"loss", "loss_p2m", "loss_m2p", "grad_norm", "lr", "step_seconds"}
    assert all(isinstance(v, float) for v in row.values())
    assert row["loss"] == pytest.approx(row["loss_p2m"] + row["loss_m2p"], rel=1e-6)
    assert row["grad_norm"] > 0 and state.step == 1


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(("cpus", "threads"), [(2, 2), (0.5, 1)])
def test_a_ray_worker_runs_as_many_threads_as_it_was_allotted_cpus(ray_tmpdir, cpus, threads):
    import ray

    from crossdiff.platform.ray_runtime import ensure_ray

    started = ensure_ray(num_cpus=2)
    try:
        @ray.remote(num_cpus=cpus)
        def allotted() -> int:
            import torch as worker_torch

            from crossdiff.platform.train.worker_loop import _use_allotted_cpus

            worker_torch.set_num_threads(7)  # whatever the process had, the allotment wins
            return _use_allotted_cpus()

        assert ray.get(allotted.remote()) == threads
    finally:
        if started:
            ray.shutdown()


def test_bf16_autocast_runs_the_convolutions_in_bf16_and_tracks_float32():
    """bf16 is the default on CPUs with native bfloat16: it must train like float32."""
    losses, conv_dtypes = {}, {}
    for bf16 in (False, True):
        trained = _trained(seed=3)
        seen = []
        trained.nets["p2m"].stem.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out.dtype))
        state = build_train_state(trained, OptimSection(lr=1e-3, grad_clip=1.0), 40)
        rows = []
        for i in range(40):
            torch.manual_seed(100 + i)  # the same timesteps, noise and dropout on both sides
            rows.append(train_step(trained, _batch(i % 4), state, grad_clip=1.0, bf16=bf16)["loss"])
        losses[bf16], conv_dtypes[bf16] = rows, set(seen)
        assert all(p.dtype == torch.float32 for p in trained.parameters())  # master weights stay float32
    assert conv_dtypes == {False: {torch.float32}, True: {torch.bfloat16}}
    start, end = sum(losses[False][:10]) / 10, sum(losses[False][-10:]) / 10
    assert end < 0.8 * start  # float32 learns on these batches
    assert sum(losses[True][-10:]) / 10 == pytest.approx(end, rel=0.1)
