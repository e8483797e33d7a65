"""Execution options: channels-last defaults and layout, the CPU allocator setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from crossdiff.models.config import UNetConfig
from crossdiff.models.performance import default_channels_last, keep_freed_memory, native_bf16, to_channels_last
from crossdiff.models.unet import ConditionalUNet

CL = torch.channels_last


def _inputs(cfg: UNetConfig, b: int = 2, size: int = 16):
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(b, cfg.x0_channels, size, size, generator=g)
    cond = torch.randn(b, cfg.cond_channels, size, size, generator=g)
    return x_t, cond, torch.tensor([3, 900][:b])


def test_channels_last_is_the_default_on_cuda_and_on_cpu_in_float32_only():
    assert default_channels_last("cpu") and default_channels_last(torch.device("cuda", 0))
    assert not default_channels_last("meta")
    assert default_channels_last(torch.zeros(1)) and default_channels_last(torch.nn.Linear(2, 2))
    assert not default_channels_last("cpu", bf16=True)  # NCHW was faster under bf16 autocast on CPU
    assert default_channels_last("cuda", bf16=True)


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs Linux's /proc/cpuinfo")
def test_native_bf16_matches_the_cpu_flags():
    flags = set(re.findall(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M)[0].split())
    assert native_bf16("cpu") == bool({"avx512_bf16", "amx_bf16", "amx_tile"} & flags)
    assert not native_bf16("meta")


@pytest.mark.parametrize("role", ["p2m", "m2p"])
def test_joined_input_follows_the_nets_layout(role):
    # PAN has one channel, whose NCHW and NHWC layouts coincide: torch.cat would fall back to NCHW.
    cfg = UNetConfig(bands=4, role=role)
    net = ConditionalUNet(cfg)
    x_t, cond, _ = _inputs(cfg)
    assert net._join_inputs(x_t, cond).is_contiguous()
    to_channels_last(net)
    joined = net._join_inputs(x_t.contiguous(memory_format=CL), cond.contiguous(memory_format=CL))
    assert joined.is_contiguous(memory_format=CL) and not joined.is_contiguous()
    assert torch.equal(joined, torch.cat([x_t, cond], dim=1))


@pytest.mark.parametrize("role", ["p2m", "m2p"])
def test_channels_last_net_computes_the_same_noise_and_gradients(role):
    cfg = UNetConfig(bands=4, role=role)
    torch.manual_seed(0)
    ref = ConditionalUNet(cfg)
    torch.manual_seed(0)
    fast = to_channels_last(ConditionalUNet(cfg))
    x_t, cond, t = _inputs(cfg)
    eps_ref = ref(x_t, cond, t)
    eps_fast = fast(x_t.contiguous(memory_format=CL), cond.contiguous(memory_format=CL), t)
    torch.testing.assert_close(eps_fast, eps_ref, rtol=1e-4, atol=1e-5)
    eps_ref.square().mean().backward()
    eps_fast.square().mean().backward()
    for (name, a), b in zip(ref.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5, msg=name)


def test_keep_freed_memory_is_accepted_here_and_harmless():
    import platform

    applied = keep_freed_memory()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert applied
    x = torch.randn(8, 32, 64, 64)  # allocations still work afterwards
    assert torch.isfinite((x * 2).sum())
