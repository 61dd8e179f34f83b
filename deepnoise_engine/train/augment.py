"""Batched augmentation on the training device (torch).

Random parameters are drawn in numpy from a generator seeded per (seed, stage, epoch),
so a run's randomness does not depend on worker processes, DDP ranks or a resume.
Every geometric transform (h/v flip, rot90, shift/scale, the teacher's extra crop and
the resize to ``image_size``) is folded into one affine matrix per sample and applied
with a single ``grid_sample``; flips and rot90 land exactly on pixel centres, so they
are exact. Normalisation (with the per-sample jitter) happens before resampling, so
pixels outside the image (after a shift) are 0 = the normalisation mean. Random
erasing fills 0 as in method-notes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Keys of the parameter dict: theta (N, 2, 3), erase (N, 4) [y0, x0, y1, x1] in [0, 1]
#: (empty box = no erasing), mean_f / std_f (N, C) jitter factors.
Params = dict[str, np.ndarray]


def identity_params(n: int, channels: int) -> Params:
    theta = np.zeros((n, 2, 3), np.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    return {
        "theta": theta,
        "erase": np.zeros((n, 4), np.float32),
        "mean_f": np.ones((n, channels), np.float32),
        "std_f": np.ones((n, channels), np.float32),
    }


def sample_params(rng: np.random.Generator, n: int, channels: int, aug: dict[str, Any], *,
                  jitter: float, hard: bool, erase: bool) -> Params:
    """Draw augmentation parameters for ``n`` samples.

    ``hard`` adds the teacher's random crop (``aug["teacher_crop"]`` of the side, resized
    back); ``erase`` enables random erasing with probability ``aug["erase"]``.
    """
    p = identity_params(n, channels)
    # flips and rot90 as exact integer matrices acting on output coordinates (x, y)
    fx = np.where(rng.random(n) < aug["flip"], -1.0, 1.0)
    fy = np.where(rng.random(n) < aug["flip"], -1.0, 1.0)
    k = np.where(rng.random(n) < aug["rot90"], rng.integers(1, 4, n), 0)
    cos = np.array([1.0, 0.0, -1.0, 0.0])[k]
    sin = np.array([0.0, 1.0, 0.0, -1.0])[k]
    lin = np.zeros((n, 2, 2))
    lin[:, 0, 0], lin[:, 0, 1] = cos * fx, -sin * fy
    lin[:, 1, 0], lin[:, 1, 1] = sin * fx, cos * fy
    shift = np.zeros((n, 2))
    lim = aug["shift_scale_limit"]
    use = rng.random(n) < aug["shift_scale"]
    scale = np.where(use, rng.uniform(1 - lim, 1 + lim, n), 1.0)
    shift += np.where(use[:, None], rng.uniform(-2 * lim, 2 * lim, (n, 2)), 0.0)
    lin /= scale[:, None, None]  # zoom in by ``scale``
    if hard:
        lo, hi = aug["teacher_crop"]
        c = rng.uniform(lo, hi, n)
        off = rng.uniform(-1, 1, (n, 2)) * (1 - c)[:, None]
        lin *= c[:, None, None]
        shift = shift * c[:, None] + off
    p["theta"][:, :, :2] = lin
    p["theta"][:, :, 2] = shift
    if erase:
        use_e = rng.random(n) < aug["erase"]
        a_lo, a_hi = aug["erase_area"]
        area = rng.uniform(a_lo, a_hi, n)
        ratio = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3), n))
        h = np.minimum(np.sqrt(area * ratio), 1.0)
        w = np.minimum(np.sqrt(area / ratio), 1.0)
        y0 = rng.uniform(0, 1, n) * (1 - h)
        x0 = rng.uniform(0, 1, n) * (1 - w)
        box = np.stack([y0, x0, y0 + h, x0 + w], 1)
        p["erase"] = np.where(use_e[:, None], box, 0.0).astype(np.float32)
    if jitter > 0:
        p["mean_f"] = (1 + jitter * rng.uniform(-1, 1, (n, channels))).astype(np.float32)
        p["std_f"] = (1 + jitter * rng.uniform(-1, 1, (n, channels))).astype(np.float32)
    return p


def apply(images: Any, mean: Any, std: Any, params: Params, size: int) -> Any:
    """Normalise, transform and resize a batch.

    images: (B, C, H, W) uint8 tensor on the device; mean, std: (B, C) float tensors
    (the normalisation statistics of each sample); returns (B, C, size, size) float32.
    """
    import torch
    import torch.nn.functional as F

    dev = images.device
    mean_f = torch.as_tensor(params["mean_f"], device=dev)
    std_f = torch.as_tensor(params["std_f"], device=dev)
    m = (mean * mean_f)[:, :, None, None]
    s = (std * std_f).clamp_min(1e-6)[:, :, None, None]
    x = (images.float() - m) / s
    b, c, h, w = x.shape
    theta = torch.as_tensor(params["theta"], device=dev)
    identity = bool((theta[:, :, :2] == torch.eye(2, device=dev)).all() and
                    (theta[:, :, 2] == 0).all())
    if not (identity and h == size and w == size):
        grid = F.affine_grid(theta, [b, c, size, size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    box = torch.as_tensor(params["erase"], device=dev)
    if bool((box[:, 2] > box[:, 0]).any()):
        coords = (torch.arange(size, device=dev, dtype=torch.float32) + 0.5) / size
        inside_y = (coords[None, :] >= box[:, 0:1]) & (coords[None, :] < box[:, 2:3])
        inside_x = (coords[None, :] >= box[:, 1:2]) & (coords[None, :] < box[:, 3:4])
        mask = inside_y[:, :, None] & inside_x[:, None, :]
        x = x.masked_fill(mask[:, None], 0.0)
    return x
