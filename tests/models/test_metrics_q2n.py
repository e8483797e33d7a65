"""Q2n against hand-worked cases and a plain-Python quaternion implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crossdiff.models.metrics import onion_mult, q2n, to_uint16_grid
from crossdiff.models.metrics.q2n import q2n_blocks


def _pair(bands: int, h: int = 64, w: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An integer-valued DN reference and a noisy, slightly biased fused image."""
    rng = np.random.default_rng(seed)
    ref = np.round(rng.uniform(200, 1800, (bands, h, w)))
    fused = np.round(ref * rng.uniform(0.9, 1.1, (bands, 1, 1)) + rng.normal(0, 60, ref.shape))
    return fused, ref


# --- plain-Python quaternions (Hamilton), independent of the library ---------------------

def _qmul(p, q):
    a1, b1, c1, d1 = p
    a2, b2, c2, d2 = q
    return (a1 * a2 - b1 * b2 - c1 * c2 - d1 * d2,
            a1 * b2 + b1 * a2 + c1 * d2 - d1 * c2,
            a1 * c2 - b1 * d2 + c1 * a2 + d1 * b2,
            a1 * d2 + b1 * c2 - c1 * b2 + d1 * a2)


def _qconj(p):
    return (p[0], -p[1], -p[2], -p[3])


def _qabs2(p):
    return sum(c * c for c in p)


def _naive_q4_block(ref: np.ndarray, fused: np.ndarray) -> float:
    """Q4 of one block (4, n, n) by the hypercomplex formula of Garzelli & Nencini.

    Both blocks are normalised with the reference block's band mean and N-1
    standard deviation (+1), as the toolbox does, then
    Q4 = 4 |s_zv| |m_z| |m_v| / ((s_z^2 + s_v^2)(|m_z|^2 + |m_v|^2)).
    """
    n = ref.shape[1] * ref.shape[2]
    zs, vs = [], []
    stats = []
    for b in range(4):
        vals = [float(v) for v in ref[b].ravel()]
        mean = sum(vals) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
        stats.append((mean, std))
    for i in range(n):
        r, c = divmod(i, ref.shape[2])
        zs.append(tuple((float(ref[b, r, c]) - stats[b][0]) / stats[b][1] + 1 for b in range(4)))
        vs.append(tuple((float(fused[b, r, c]) - stats[b][0]) / stats[b][1] + 1 for b in range(4)))
    mz = tuple(sum(z[k] for z in zs) / n for k in range(4))
    mv = tuple(sum(v[k] for v in vs) / n for k in range(4))
    cov = [0.0] * 4
    for z, v in zip(zs, vs, strict=True):
        prod = _qmul(tuple(a - b for a, b in zip(z, mz, strict=True)),
                     _qconj(tuple(a - b for a, b in zip(v, mv, strict=True))))
        cov = [c + p / (n - 1) for c, p in zip(cov, prod, strict=True)]
    var_z = sum(_qabs2(tuple(a - b for a, b in zip(z, mz, strict=True))) for z in zs) / (n - 1)
    var_v = sum(_qabs2(tuple(a - b for a, b in zip(v, mv, strict=True))) for v in vs) / (n - 1)
    return (4 * math.sqrt(_qabs2(cov)) * math.sqrt(_qabs2(mz)) * math.sqrt(_qabs2(mv))
            / ((var_z + var_v) * (_qabs2(mz) + _qabs2(mv))))


def test_one_block_matches_plain_quaternion_formula():
    fused, ref = _pair(4, 16, 16, seed=3)
    expected = _naive_q4_block(ref, fused)
    assert 0.3 < expected < 0.999
    assert q2n(fused, ref, block=16) == pytest.approx(expected, rel=1e-12)


def test_identical_images_score_one():
    for bands in (1, 3, 4, 8):
        _, ref = _pair(bands, seed=bands)
        assert q2n(ref, ref) == pytest.approx(1.0, abs=1e-12)


def test_onion_mult_is_a_composition_algebra_up_to_octonions():
    g = torch.Generator().manual_seed(0)
    for n in (2, 4, 8):
        x = torch.randn(50, n, generator=g, dtype=torch.float64)
        y = torch.randn(50, n, generator=g, dtype=torch.float64)
        torch.testing.assert_close(onion_mult(x, y).norm(dim=-1), x.norm(dim=-1) * y.norm(dim=-1))
    # Two components: complex multiplication.
    assert onion_mult(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])).tolist() == [-5.0, 10.0]


def test_integer_cast_quirk_rounds_and_clamps():
    fused, ref = _pair(4, seed=1)
    base = q2n(fused, ref)
    assert q2n(fused + 0.4, ref) == base  # rounds back down
    assert q2n(fused - 0.4, ref + 0.3) == base
    assert q2n(fused + 0.5, ref) == q2n(fused + 1.0, ref)  # MATLAB rounds halves away from zero
    assert q2n(fused + 0.5, ref) != base
    neg = fused.copy()
    neg[:, :8, :8] = -300.0
    zero = fused.copy()
    zero[:, :8, :8] = 0.0
    assert q2n(neg, ref) == q2n(zero, ref)  # negatives clamp to 0
    big = fused.copy()
    big[0, 0, :5] = 1e6
    sat = fused.copy()
    sat[0, 0, :5] = 65535
    assert q2n(big, ref) == q2n(sat, ref)
    torch.testing.assert_close(to_uint16_grid(torch.tensor([0.4, 0.5, 1.49999, 2.5, -3.0, float("nan")],
                                                           dtype=torch.float64)),
                               torch.tensor([0.0, 1.0, 1.0, 3.0, 0.0, 0.0], dtype=torch.float64))


def test_size_not_multiple_of_block_equals_hand_mirror_padding():
    fused, ref = _pair(4, 40, 50, seed=2)

    def pad(x):  # bottom/right, edge pixel repeated: MATLAB ia(:, N+1:N+e) = ia(:, N:-1:N-e+1)
        return np.pad(x, ((0, 0), (0, 64 - 40), (0, 64 - 50)), mode="symmetric")

    assert pad(ref)[0, 40, 3] == ref[0, 39, 3] and pad(ref)[0, 41, 3] == ref[0, 38, 3]
    assert q2n(fused, ref) == pytest.approx(q2n(pad(fused), pad(ref)), rel=1e-14)
    assert q2n_blocks(torch.from_numpy(fused)[None], torch.from_numpy(ref)[None]).shape == (1, 2, 2)


def test_band_counts_are_zero_padded_to_powers_of_two():
    for bands, target in ((3, 4), (5, 8)):
        fused, ref = _pair(bands, seed=bands)
        zeros = np.zeros((target - bands, *ref.shape[1:]))
        expected = q2n(np.concatenate([fused, zeros]), np.concatenate([ref, zeros]))
        assert q2n(fused, ref) == pytest.approx(expected, rel=1e-14)


def test_batches_numpy_and_float32_inputs():
    f1, r1 = _pair(4, seed=4)
    f2, r2 = _pair(4, seed=5)
    out = q2n(torch.from_numpy(np.stack([f1, f2])), torch.from_numpy(np.stack([r1, r2])))
    assert isinstance(out, torch.Tensor) and out.shape == (2,) and out.dtype == torch.float64
    assert out[0].item() == pytest.approx(q2n(f1, r1), rel=1e-14)
    assert out[1].item() == pytest.approx(q2n(f2, r2), rel=1e-14)
    assert q2n(f1.astype(np.float32), r1) == pytest.approx(q2n(f1, r1), rel=1e-14)  # integer values survive
    assert out[0] != out[1]


def test_clear_errors():
    fused, ref = _pair(4)
    with pytest.raises(ValueError, match="shapes differ"):
        q2n(fused[:3], ref)
    with pytest.raises(ValueError, match="too small"):
        q2n(fused[:, :10, :10], ref[:, :10, :10])
