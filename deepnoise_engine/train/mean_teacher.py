"""Mean teacher pieces (method-notes): EMA teacher, alpha schedule, consistency ramp-up,
softmax-MSE consistency and its class scaling, the ArcFace margin on plain logits.
Pseudo labels are kept in ``train/evaluation.py`` and balanced with the plate prior."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def alpha_for_epoch(epoch: int, alphas: Sequence[float], alpha_epochs: Sequence[int]) -> float:
    """EMA decay cap for 1-based ``epoch``: alphas[i] while epoch <= alpha_epochs[i]."""
    for alpha, last in zip(alphas, alpha_epochs, strict=False):
        if epoch <= last:
            return float(alpha)
    return float(alphas[-1])


def ema_alpha(step: int, epoch: int, alphas: Sequence[float],
              alpha_epochs: Sequence[int], *, steps_per_epoch: int = 0,
              reference_steps_per_epoch: int = 0) -> float:
    """``min(1 - 1/(step + 1), alpha_e)``; ``step`` counts optimiser steps from 0.

    With ``reference_steps_per_epoch`` > 0, ``alpha_e`` is rescaled to this run's epoch
    length, ``alpha_e ** (reference / steps_per_epoch)``, so that the teacher averages
    over the same fraction of an epoch as with the reference's (the paper's RxRx1) epochs:
    an alpha of 0.999 means ~1,000 steps, more than a whole run when an epoch is 7 steps.
    """
    cap = alpha_for_epoch(epoch, alphas, alpha_epochs)
    if reference_steps_per_epoch > 0 and steps_per_epoch > 0:
        cap = cap ** (reference_steps_per_epoch / steps_per_epoch)
    return min(1.0 - 1.0 / (step + 1), cap)


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


def consistency_class_scale(n_classes: int, reference_classes: int) -> float:
    """Factor on the consistency weight that keeps its size next to the cross-entropy.

    :func:`softmax_mse` is a mean over the K classes, so the same weight counts
    ``reference / K`` times more on a screen with fewer classes than the reference's
    (the paper's K = 1,139). ``reference_classes`` 0 switches the scaling off.
    """
    if reference_classes <= 0 or n_classes <= 0:
        return 1.0
    return n_classes / reference_classes


def arcface_margin(logits: Any, labels: Any, s: float, m: float) -> Any:
    """Add the ArcFace margin to plain logits ``s*cos`` (B, K) at ``labels`` (B,).

    The head's own margin (``model.arcface.arcface_logits``) applied to the cosines read
    back from the logits, so one forward pass serves the labelled, unlabelled and
    consistency terms.
    """
    from deepnoise_engine.model.arcface import arcface_logits

    if m == 0 or logits.shape[0] == 0:
        return logits
    cos = (logits.float() / s).clamp(-1.0, 1.0)
    return arcface_logits(cos, labels, s, m).to(logits.dtype)
