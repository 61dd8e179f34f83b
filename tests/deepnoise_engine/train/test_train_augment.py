"""Batched augmentation: exact flips/rot90, erasing, normalisation with jitter."""

from __future__ import annotations

import numpy as np
import torch

from deepnoise_engine.train import augment

AUG = {"flip": 0.5, "rot90": 0.5, "shift_scale": 0.5, "shift_scale_limit": 0.1, "erase": 0.5,
       "erase_area": [0.02, 0.4], "teacher_crop": [0.8, 0.99]}


def _img(n: int = 1, c: int = 2, s: int = 8) -> torch.Tensor:
    return torch.arange(n * c * s * s, dtype=torch.int64).reshape(n, c, s, s).remainder(251).to(
        torch.uint8)


def _norm(n: int, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((n, c), 10.0), torch.full((n, c), 2.0)


def test_identity_normalises_only() -> None:
    x = _img()
    mean, std = _norm(1, 2)
    out = augment.apply(x, mean, std, augment.identity_params(1, 2), 8)
    torch.testing.assert_close(out, (x.float() - 10) / 2)


def test_flips_and_rot90_are_exact() -> None:
    x = _img()
    mean, std = _norm(1, 2)
    ref = (x.float() - 10) / 2
    p = augment.identity_params(1, 2)
    p["theta"][0, 0, 0] = -1.0  # x -> -x: horizontal flip
    torch.testing.assert_close(augment.apply(x, mean, std, p, 8), ref.flip(3))
    p = augment.identity_params(1, 2)
    p["theta"][0, :, :2] = [[0.0, -1.0], [1.0, 0.0]]  # 90 degrees
    out = augment.apply(x, mean, std, p, 8)
    assert any(torch.equal(out, torch.rot90(ref, k, (2, 3))) for k in (1, 3))


def test_resize_halves_by_averaging() -> None:
    x = _img(s=8)
    mean, std = torch.zeros(1, 2), torch.ones(1, 2)
    out = augment.apply(x, mean, std, augment.identity_params(1, 2), 4)
    torch.testing.assert_close(out, torch.nn.functional.avg_pool2d(x.float(), 2))


def test_sampled_params_are_deterministic_and_erase_fills_zero() -> None:
    a = augment.sample_params(np.random.default_rng(5), 64, 2, AUG, jitter=0.1, hard=True,
                              erase=True)
    b = augment.sample_params(np.random.default_rng(5), 64, 2, AUG, jitter=0.1, hard=True,
                              erase=True)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert ((a["mean_f"] >= 0.9) & (a["mean_f"] <= 1.1)).all() and a["mean_f"].std() > 0
    erased = (a["erase"][:, 2] > a["erase"][:, 0])
    assert 10 < erased.sum() < 54  # p = 0.5
    x = torch.full((64, 2, 16, 16), 200, dtype=torch.uint8)
    mean, std = _norm(64, 2)
    a["theta"] = augment.identity_params(64, 2)["theta"]
    out = augment.apply(x, mean, std, a, 16)
    zero_frac = (out == 0).float().mean(dim=(1, 2, 3)).numpy()
    assert (zero_frac[erased] > 0).all() and (zero_frac[~erased] == 0).all()
    area = (a["erase"][:, 2] - a["erase"][:, 0]) * (a["erase"][:, 3] - a["erase"][:, 1])
    np.testing.assert_allclose(zero_frac[erased], area[erased], atol=0.15)
