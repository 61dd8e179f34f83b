"""Mean teacher pieces (method-notes): EMA teacher, alpha schedule, consistency ramp-up,
softmax-MSE consistency, the ArcFace margin on plain logits, plate-balanced labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def alpha_for_epoch(epoch: int, alphas: Sequence[float], alpha_epochs: Sequence[int]) -> float:
    """EMA decay cap for 1-based ``epoch``: alphas[i] while epoch <= alpha_epochs[i]."""
    for alpha, last in zip(alphas, alpha_epochs, strict=False):
        if epoch <= last:
            return float(alpha)
    return float(alphas[-1])


def ema_alpha(step: int, epoch: int, alphas: Sequence[float],
              alpha_epochs: Sequence[int]) -> float:
    """``min(1 - 1/(step + 1), alpha_e)``; ``step`` counts optimiser steps from 0."""
    return min(1.0 - 1.0 / (step + 1), alpha_for_epoch(epoch, alphas, alpha_epochs))


def consistency_weight(epoch: float, weight: float = 100.0, rampup: float = 5.0) -> float:
    """Sigmoid ramp-up: ``weight * exp(-5 (1 - min(epoch, rampup)/rampup)^2)``.

    ``epoch`` is the 0-based fractional epoch (epoch index + step / steps per epoch).
    """
    if rampup <= 0:
        return float(weight)
    phase = 1.0 - min(max(epoch, 0.0), rampup) / rampup
    return float(weight * math.exp(-5.0 * phase * phase))


def ema_update(teacher: Any, student: Any, alpha: float) -> None:
    """teacher <- alpha * teacher + (1 - alpha) * student, for parameters and float
    buffers (batch-norm statistics); integer buffers are copied. Both: nn.Module."""
    import torch

    with torch.no_grad():
        for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
            t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
        for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
            if t.dtype.is_floating_point:
                t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
            else:
                t.copy_(s)


def softmax_mse(student_logits: Any, teacher_logits: Any) -> Any:
    """Mean over (B, K) of (softmax(student) - softmax(teacher))^2; teacher detached."""
    import torch.nn.functional as F

    return F.mse_loss(F.softmax(student_logits.float(), 1),
                      F.softmax(teacher_logits.detach().float(), 1))


def arcface_margin(logits: Any, labels: Any, s: float, m: float) -> Any:
    """Add the ArcFace margin to plain logits ``s*cos`` (B, K) at ``labels`` (B,).

    Target logit ``s*cos(theta + m)``, or ``s*(cos - m*sin(pi - m))`` where
    ``cos <= cos(pi - m)`` (method-notes); equal to the model's own forward with labels,
    computed here so one forward pass serves the labelled, unlabelled and consistency terms.
    """
    import torch

    if m == 0 or logits.shape[0] == 0:
        return logits
    cos = (logits.float() / s).clamp(-1.0, 1.0)
    target = cos.gather(1, labels[:, None])
    sin = (1.0 - target * target).clamp_min(0.0).sqrt()
    phi = target * math.cos(m) - sin * math.sin(m)
    phi = torch.where(target > math.cos(math.pi - m), phi, target - m * math.sin(math.pi - m))
    out = cos.scatter(1, labels[:, None], phi) * s
    return out.to(logits.dtype)


def balanced_argmax(log_probs: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per group (plate), assign each row a class at most once maximising total log-prob
    (linear sum assignment); rows beyond the class count fall back to argmax.

    log_probs: (N, K); groups: (N,) plate keys. Returns (N,) class indices.
    """
    from scipy.optimize import linear_sum_assignment

    out = log_probs.argmax(1)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        cost = -np.nan_to_num(log_probs[idx].astype(np.float64), nan=-1e9, neginf=-1e9)
        rows, cols = linear_sum_assignment(cost)
        out[idx[rows]] = cols
    return out
