"""Benchmark: stage-1 training throughput on CPU, three ways, on the same data in one run.

All sides train the paper's 4-band nets at batch 8 on 64-px PAN tiles of one
small synthetic archive (GeoEye-1, written by ``crossdiff.platform.synthetic``
and tiled by ``ingest_archive``), with 2 CPU threads in all:

1. **plain loop**: our ``CrossPretrainer`` + ``build_train_state`` +
   ``train_step`` (the very step the Ray workers call) over the tiles
   pre-loaded in memory, both nets and P2M alone, with the platform's CPU
   defaults (fused AdamW, gradient clipping at 1.0; bf16 autocast in NCHW on
   CPUs with native bfloat16, else float32 channels-last: see
   ``models.performance``), and P2M in float32 as well, the authors'
   precision; a precision check trains P2M 200 steps both ways from the same
   start and draws and prints the two losses;
2. **AUTHORS' BASELINE**: a re-implementation of the released P2M training
   step (codgodtao/CrossDiff, see the section below), timed in the same
   process, interleaved with (1) round by round, on the same batches;
3. **Ray Train**: ``build_trainer`` + ``build_dataset`` (Ray Data reading
   the archive, DDP, checkpoints) with 1 worker (2 CPUs, 2 threads) and with
   2 workers (0.75 CPU, 1 thread each); samples/s is measured inside the
   workers over the steps after a warm-up and reported through Ray Train's
   metrics (checkpoint writes excluded).

Throughput is the median over windows of steps (plain loops: rounds of 5
steps, one round of each side in turn; Ray: the reports every 8 steps) of
each window's samples/s, which keeps a burst of load from other processes
out of the result. The plain loop is measured again right after the
1-worker Ray run and the Ray ratio is taken against the faster of the two
measurements (the conservative choice when the machine is shared). The
process keeps freed activation memory (``keep_freed_memory``) for every side
alike.

Run: ``python -m benchmarks.bench_pretrain`` (about 4 minutes on 2 cores).
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from crossdiff.models.diffusion import cosine_betas

THREADS = 2
BATCH = 8
TILE = 64
SENSOR = "GeoEye-1"  # 4 bands
SCENES, SCENE_PX = 4, 256  # 16 tiles per scene: 64 tiles, 8 batches an epoch
ROUNDS, STEPS_PER_ROUND = 6, 5  # plain-loop measurement, after one warm-up round
RAY_WARMUP, RAY_STEPS = 8, 64  # Ray Train: warm-up steps, then measured steps (reports every RAY_WARMUP)
PRECISION_STEPS = 200  # bf16 vs float32 loss check
TARGET_RAY, TARGET_AUTHORS = 0.9, 1.2
QUOTED_AUTHORS = 62.0  # samples/s, the figure for the released code (batch 8, 64 px, 2 threads)

Batch = dict[str, torch.Tensor]


def log(msg: str) -> None:
    print(f"[bench_pretrain] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# AUTHORS' BASELINE: the released P2M training step (codgodtao/CrossDiff).
#
# Reproduced operation for operation for timing only, not platform code:
# - the net (model/easy_unet/pan_ms_v2.py, Multi_branch_Unet): Linear(32, 256)
#   time embedding, a hand-written SiLU (x * sigmoid(x): two kernels forward
#   and backward), three down blocks and one up block of
#   h + Dense(emb)[..., None, None] -> GroupNorm -> SiLU -> conv, three decoder
#   stages that add the time projection in place on the previous output, the
#   output conv over cat[h, x_t, cond]; 1,087,320 parameters with 4 bands,
#   like ours (checked in run());
# - the loss (diffusion_pan2ms.py, p_losses_dynamic): timesteps drawn with
#   NumPy, a float64 NumPy table of sqrt(alpha_bar) indexed every step into a
#   new float32 tensor, sqrt(1 - a^2) recomputed, one condition-dropout coin
#   for the whole batch, MSELoss(reduction="sum") (their config: "l2");
# - the update (model/model.py, DDPM.optimize_parameters): zero_grad(), the
#   summed loss divided by b*c*h*w, backward(), AdamW(lr 3e-4, weight decay 0,
#   constructor defaults: the single-tensor loop on CPU), loss.item() for the
#   log. No gradient clipping; their schedule steps once per epoch (untimed).
# Data loading is excluded on both sides (batches come from memory).
# ---------------------------------------------------------------------------

def _gamma_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Their sinusoidal code: frequencies rebuilt on every call, cos half first."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / half).to(t.device)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _silu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)  # their SiLU module: two kernels, not the fused F.silu


class _Block(nn.Module):
    """``conv(SiLU(GroupNorm(x + Dense(emb))))``; a stride-2 conv down or transposed conv up."""

    def __init__(self, c_in: int, c_out: int, groups: int, up: bool) -> None:
        super().__init__()
        self.dense = nn.Linear(256, c_in)
        self.norm = nn.GroupNorm(groups, c_in)
        self.conv = (nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=1) if up
                     else nn.Conv2d(c_in, c_out, 3, 2, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.conv(_silu(self.norm(x + self.dense(emb)[..., None, None])))


class AuthorsP2MNet(nn.Module):
    """The released P2M UNet (widths 32/64/128/256), same layers in the same order."""

    def __init__(self, bands: int = 4) -> None:
        super().__init__()
        w = (32, 64, 128, 256)
        self.embed = nn.Linear(32, 256)
        self.conv1 = nn.Conv2d(1 + bands, w[0], 3, 1, 1)
        self.res3 = _Block(w[0], w[1], 4, up=False)
        self.down1 = _Block(w[1], w[2], 32, up=False)
        self.down2 = _Block(w[2], w[3], 32, up=False)
        self.up1 = _Block(w[3], w[2], 32, up=True)
        self.dense2, self.norm2 = nn.Linear(256, w[2]), nn.GroupNorm(32, w[2])
        self.up2 = nn.ConvTranspose2d(2 * w[2], w[1], 3, 2, 1, output_padding=1)
        self.dense3, self.norm3 = nn.Linear(256, w[1]), nn.GroupNorm(32, w[1])
        self.up3 = nn.ConvTranspose2d(2 * w[1], w[0], 3, 2, 1, output_padding=1)
        self.dense4, self.norm4 = nn.Linear(256, w[0]), nn.GroupNorm(4, w[0])
        self.final1 = nn.Conv2d(2 * w[0], w[0], 3, 1, 1)
        self.dense5, self.norm5 = nn.Linear(256, w[0]), nn.GroupNorm(4, w[0])
        self.final2 = nn.Conv2d(w[0] + bands + 1, bands, 3, 1, 1)
        for m in self.modules():  # their init_type "orthogonal"
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
                nn.init.orthogonal_(m.weight, gain=1)
                nn.init.zeros_(m.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        emb = _silu(self.embed(_gamma_embedding(t.view(-1), 32)))
        h1 = self.conv1(torch.cat([x_t, cond], dim=1))
        h2 = self.res3(h1, emb)
        h3 = self.down1(h2, emb)
        h4 = self.down2(h3, emb)
        h = self.up1(h4, emb)
        h += self.dense2(emb)[..., None, None]  # in place on the conv output, as released
        h = self.up2(torch.cat([_silu(self.norm2(h)), h3], dim=1))
        h += self.dense3(emb)[..., None, None]
        h = self.up3(torch.cat([_silu(self.norm3(h)), h2], dim=1))
        h += self.dense4(emb)[..., None, None]
        h = self.final1(torch.cat([_silu(self.norm4(h)), h1], dim=1))
        h += self.dense5(emb)[..., None, None]
        return self.final2(torch.cat([_silu(self.norm5(h)), x_t, cond], dim=1))


class AuthorsP2MStep:
    """One released P2M training step: loss as in ``p_losses_dynamic``, update as in ``optimize_parameters``."""

    def __init__(self, bands: int = 4, timesteps: int = 1000, p_uncond: float = 0.1, lr: float = 3e-4) -> None:
        self.net = AuthorsP2MNet(bands)
        self.num_timesteps = timesteps
        self.p_uncond = p_uncond
        alpha_bar = np.cumprod(1.0 - cosine_betas(timesteps).numpy())
        self.sqrt_alphas_cumprod_prev = np.sqrt(np.append(1.0, alpha_bar))  # float64 NumPy, as released
        self.loss_func = nn.MSELoss(reduction="sum")  # their config: loss_type "l2"
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=lr, weight_decay=0)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x_start, pan = batch["lms"], batch["pan"]
        b = x_start.shape[0]
        time_in = torch.from_numpy(np.random.randint(1, self.num_timesteps + 1, size=b))
        a = torch.FloatTensor(self.sqrt_alphas_cumprod_prev[time_in]).to(x_start.device).view(b, -1)
        time_in = time_in.to(x_start.device).view(b, -1)
        noise = torch.randn_like(x_start)
        a = a.view(-1, 1, 1, 1)
        x_noisy = a * x_start + (1 - a**2).sqrt() * noise
        cond = pan if torch.rand(1) > self.p_uncond else torch.zeros_like(pan)  # one coin per batch
        return self.loss_func(noise, self.net(x_noisy, time_in, cond))

    def step(self, batch: dict[str, torch.Tensor]) -> float:
        self.optimizer.zero_grad()
        loss = self._loss(batch)
        b, c, h, w = batch["lms"].shape
        loss = loss.sum() / int(b * c * h * w)
        loss.backward()
        self.optimizer.step()
        return loss.item()


# ---------------------------------------------------------------------------
# Data and our side.
# ---------------------------------------------------------------------------

def build_manifest(root: Path) -> Path:
    """The synthetic archive and its 64-px tile manifest."""
    from crossdiff.platform.archive.ingest import IngestConfig, ingest_archive
    from crossdiff.platform.synthetic import write_synthetic_archive

    write_synthetic_archive(root / "archive", SCENES, seed=3, sensors=(SENSOR,), pan_size=SCENE_PX)
    manifest = root / "manifest.parquet"
    ingest_archive(str(root / "archive"), str(manifest), IngestConfig(tile=TILE), workers=0, progress=False)
    return manifest


def stage1_config(manifest: Path, root: Path, *, nets: str = "both", workers: int = 1,
                  cpus_per_worker: float = 2.0, name: str = "bench"):
    """The stage-1 job both the plain loop and Ray Train run (the demo's, resized)."""
    from crossdiff.platform.train.config import PretrainConfig

    return PretrainConfig.from_dict({
        "data": {"manifest": str(manifest), "split": None, "batch_size": BATCH, "readers": 1, "reader_cpus": 0.5},
        "model": {"bands": 4, "ratio": 4},
        "optim": {"lr": 3e-4, "grad_clip": 1.0},
        "run": {"name": name, "storage_path": str(root / "runs"), "max_steps": RAY_WARMUP + RAY_STEPS,
                "checkpoint_every": RAY_WARMUP, "keep_checkpoints": 1 + RAY_STEPS // RAY_WARMUP,
                "log_every": RAY_WARMUP, "nets": nets},
        "scale": {"num_workers": workers, "cpus_per_worker": cpus_per_worker},
        "tracking": {"register_as": None},
    })


def load_tiles(cfg) -> list[Batch]:
    """Every batch of the archive, read once through the platform's stream (in manifest order)."""
    from crossdiff.platform.train.driver import build_dataset
    from crossdiff.platform.train.worker_loop import trained_inputs

    ds = build_dataset(cfg, shuffle=False).limit(SCENES * (SCENE_PX // TILE) ** 2)
    return [{k: v.contiguous() for k, v in trained_inputs(b).items()}
            for b in ds.iter_torch_batches(batch_size=BATCH, drop_last=True, dtypes=torch.float32)]


def our_step(cfg, *, bf16: bool | None = None, channels_last: bool | None = None,
             seed: int = 0) -> Callable[[Batch], dict[str, float]]:
    """A plain-loop step of our stage 1, built like a Ray worker builds it (its defaults unless told)."""
    from crossdiff.models.crossdiff import CrossDiff
    from crossdiff.models.performance import default_channels_last, native_bf16, to_channels_last
    from crossdiff.models.pretrain import CrossPretrainer
    from crossdiff.platform.train.step import build_train_state, train_step

    bf16 = native_bf16("cpu") if bf16 is None else bf16
    cl = default_channels_last("cpu", bf16) if channels_last is None else channels_last
    torch.manual_seed(seed)
    model = CrossDiff.from_config(cfg.model_config())
    if cl:
        to_channels_last(model)
    trained = CrossPretrainer(model, cfg.run.roles)
    state = build_train_state(trained, cfg.optim, 10**9)
    return lambda batch: train_step(trained, batch, state, grad_clip=cfg.optim.grad_clip, bf16=bf16,
                                    channels_last=cl)


def precision_check(cfg, tiles: list[Batch], steps: int = PRECISION_STEPS) -> tuple[float, float]:
    """Mean P2M loss over the last quarter of ``steps`` steps in bfloat16 autocast and in float32.

    Both runs start from the same weights and see the same batches, timesteps
    and noise (the global RNG is reseeded before every step).
    """
    means = []
    for bf16 in (True, False):
        step = our_step(cfg, bf16=bf16, seed=1)
        losses = []
        for i in range(steps):
            torch.manual_seed(10_000 + i)
            losses.append(step(tiles[i % len(tiles)])["loss"])
        means.append(statistics.mean(losses[-steps // 4:]))
    return means[0], means[1]


def time_interleaved(steps: dict[str, Callable[[Batch], object]], tiles: list[Batch],
                     rounds: int = ROUNDS) -> dict[str, float]:
    """Samples/s of each step function, round-robin: a warm-up round, then ``rounds`` measured ones.

    Each round runs ``STEPS_PER_ROUND`` steps of every function; the result is
    the median over rounds of each round's samples/s.
    """
    rates: dict[str, list[float]] = {name: [] for name in steps}
    k = 0
    for r in range(rounds + 1):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(STEPS_PER_ROUND):
                step(tiles[k % len(tiles)])
                k += 1
            if r:
                rates[name].append(BATCH * STEPS_PER_ROUND / (time.perf_counter() - t0))
    return {name: statistics.median(r) for name, r in rates.items()}


def ray_train_samples_per_s(cfg) -> tuple[float, float, int]:
    """Samples/s measured inside the Ray Train workers after warm-up, the share of that time spent
    in ``train_step`` (the rest: waiting for data, loop overhead), and the workers' torch threads."""
    from crossdiff.platform.train.driver import build_dataset, build_trainer

    loop_config = {"config": cfg.to_dict(), "run_id": None, "tracking_uri": None}
    result = build_trainer(cfg, loop_config, {"train": build_dataset(cfg)}).fit()
    if result.error is not None:
        raise RuntimeError(f"Ray Train run {cfg.run.name} failed: {result.error}")
    reports = sorted((m for _, m in result.best_checkpoints or []), key=lambda m: m["step"])
    measured = [m for m in reports if m["step"] > RAY_WARMUP]
    if not measured:
        raise RuntimeError(f"Ray Train run {cfg.run.name} reported no step after the warm-up: {reports}")
    return (statistics.median(m["samples_per_s"] for m in measured),
            statistics.median(m["step_time_share"] for m in measured), int(measured[-1]["torch_threads"]))


# ---------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------

def run() -> list[str]:
    """Measure everything; return (and print) the report lines."""
    import ray

    from crossdiff.models.crossdiff import CrossDiff
    from crossdiff.models.performance import default_channels_last, keep_freed_memory, native_bf16
    from crossdiff.platform.ray_runtime import ensure_ray

    bf16 = native_bf16("cpu")
    defaults = f"{'bf16 autocast' if bf16 else 'float32'}, {'NHWC' if default_channels_last('cpu', bf16) else 'NCHW'}"

    threads_before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    keep_freed_memory()
    torch.manual_seed(0)
    np.random.seed(0)
    lines: list[str] = []
    # Logical CPUs: 2 for training threads, the Ray Data reader's 0.5 and room for Ray Data's own tasks
    # (1 worker: 2 + 0.5; 2 workers: 2 x 0.75 + 0.5). With no CPU left over the 2-worker run stalls.
    started_ray = ensure_ray(num_cpus=3, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        with tempfile.TemporaryDirectory(prefix="bench_pretrain_") as tmp:
            root = Path(tmp)
            t0 = time.perf_counter()
            manifest = build_manifest(root)
            both = stage1_config(manifest, root)
            p2m = stage1_config(manifest, root, nets="p2m")
            tiles = load_tiles(both)
            log(f"archive, manifest and {len(tiles)} batches of {BATCH} in memory: {time.perf_counter() - t0:.0f} s")

            authors = AuthorsP2MStep()
            ours_p2m = CrossDiff.from_config(p2m.model_config()).p2m
            n_theirs, n_ours = (sum(p.numel() for p in m.parameters()) for m in (authors.net, ours_p2m))
            if n_theirs != n_ours:
                raise RuntimeError(f"authors' P2M has {n_theirs:,} parameters, ours {n_ours:,}: not the same net")

            t0 = time.perf_counter()
            plain = time_interleaved({"authors": authors.step, "p2m": our_step(p2m),
                                      "p2m_fp32": our_step(p2m, bf16=False),
                                      "p2m_fp32_nchw": our_step(p2m, bf16=False, channels_last=False),
                                      "both": our_step(both)}, tiles)
            log(f"plain loops ({time.perf_counter() - t0:.0f} s): "
                + ", ".join(f"{k} {v:.1f}" for k, v in plain.items()) + " samples/s")

            t0 = time.perf_counter()
            loss_bf16, loss_fp32 = precision_check(p2m, tiles) if bf16 else (math.nan, math.nan)
            log(f"precision check ({time.perf_counter() - t0:.0f} s): P2M loss bf16 {loss_bf16:.4f}, "
                f"float32 {loss_fp32:.4f}")

            t0 = time.perf_counter()
            ray1, share1, threads1 = ray_train_samples_per_s(stage1_config(manifest, root, name="bench-1w"))
            log(f"Ray Train, 1 worker: {ray1:.1f} samples/s with {threads1} threads, {share1:.0%} in train_step")
            again = time_interleaved({"both": our_step(both)}, tiles, rounds=ROUNDS // 2)["both"]
            ray2, share2, threads2 = ray_train_samples_per_s(stage1_config(manifest, root, name="bench-2w",
                                                                           workers=2, cpus_per_worker=0.75))
            log(f"Ray Train, 2 workers: {ray2:.1f} samples/s with {threads2} thread(s) each, "
                f"{share2:.0%} in train_step")
            log(f"Ray Train runs: {time.perf_counter() - t0:.0f} s")
    finally:
        torch.set_num_threads(threads_before)
        if started_ray:
            ray.shutdown()

    plain_both = max(plain["both"], again)  # the faster of the two: the conservative reference
    lines.append(f"setup: {THREADS} threads, batch {BATCH}, {TILE}-px PAN tiles, 4 bands ({SENSOR}, synthetic), "
                 f"{ROUNDS * STEPS_PER_ROUND} measured steps per plain loop, {RAY_STEPS} per Ray run; samples/s "
                 f"are medians over windows of {STEPS_PER_ROUND} and {RAY_WARMUP} steps")
    lines.append(f"stage1 (both nets): plain loop {plain['both']:.1f} samples/s before the 1-worker Ray run, "
                 f"{again:.1f} after it")
    lines.append(f"stage1: ray-train 1 worker ({threads1} threads) {ray1:.1f} samples/s vs plain loop "
                 f"{plain_both:.1f} samples/s -> {ray1 / plain_both:.2f}x (target >= {TARGET_RAY}); "
                 f"{share1:.0%} of the worker's time in train_step")
    lines.append(f"stage1: ray-train 2 workers ({threads2} thread each) {ray2:.1f} samples/s "
                 f"-> {ray2 / ray1:.2f}x of 1 worker, {ray2 / plain_both:.2f}x of the plain loop")
    lines.append(f"stage1 P2M: plain loop {plain['p2m']:.1f} vs authors' step {plain['authors']:.1f} samples/s "
                 f"-> {plain['p2m'] / plain['authors']:.2f}x (target >= {TARGET_AUTHORS}), measured side by side; "
                 f"our CPU defaults here: {defaults} (the authors' step: float32)")
    lines.append(f"stage1 P2M in float32 (channels-last): plain loop {plain['p2m_fp32']:.1f} vs authors' step "
                 f"{plain['authors']:.1f} samples/s -> {plain['p2m_fp32'] / plain['authors']:.2f}x, the same "
                 f"precision on both sides; NCHW float32 {plain['p2m_fp32_nchw']:.1f} samples/s -> channels-last "
                 f"{plain['p2m_fp32'] / plain['p2m_fp32_nchw']:.2f}x")
    lines.append(f"stage1 P2M: plain loop {plain['p2m']:.1f} vs {QUOTED_AUTHORS:.0f} samples/s QUOTED for the "
                 f"authors' implementation on this machine type (not measured here) -> "
                 f"{plain['p2m'] / QUOTED_AUTHORS:.2f}x")
    if bf16:
        lines.append(f"stage1 P2M precision: mean loss of steps {3 * PRECISION_STEPS // 4}-{PRECISION_STEPS} from "
                     f"the same start and draws: bf16 autocast {loss_bf16:.4f} vs float32 {loss_fp32:.4f} "
                     f"-> {loss_bf16 / loss_fp32:.3f}")
    else:
        lines.append("stage1 P2M precision: this CPU has no native bfloat16; training runs in float32")
    return lines


if __name__ == "__main__":
    for line in run():
        print(line)
