"""ArcFace head (paper eq. 4) and a plain softmax head (torch).

ArcFace: ``cos = normalise(x) . normalise(W)^T``; the target class gets ``s*cos(theta + m)``,
the others ``s*cos(theta)``. Where ``theta + m`` would pass pi (``cos <= cos(pi - m)``)
the target gets ``s*(cos - m*sin(pi - m))`` instead, as in the ArcFace reference
("easy margin" off). Without labels (inference, teacher, unlabelled data) the logits
are ``s*cos``. A label < 0 marks an unlabelled row of a mixed batch: no margin there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def arcface_logits(
    cosine: torch.Tensor, labels: torch.Tensor | None, s: float = 30.0, m: float = 0.1
) -> torch.Tensor:
    """ArcFace logits from cosines: ``(B, K)`` cosines, ``(B,)`` labels -> ``(B, K)``."""
    if labels is None or m == 0.0:
        return s * cosine
    cosine = cosine.float()  # the margin is computed in float32 even under autocast
    labels = labels.to(device=cosine.device, dtype=torch.long)
    # the floor keeps the gradient of sqrt finite where cos = +-1 exactly
    sine = torch.sqrt((1.0 - cosine * cosine).clamp(1e-7, 1.0))
    phi = cosine * math.cos(m) - sine * math.sin(m)  # cos(theta + m)
    threshold = math.cos(math.pi - m)
    phi = torch.where(cosine > threshold, phi, cosine - m * math.sin(math.pi - m))
    labelled = labels >= 0
    one_hot = torch.zeros_like(cosine, dtype=torch.bool)
    rows = torch.nonzero(labelled, as_tuple=True)[0]
    one_hot[rows, labels[rows]] = True
    return s * torch.where(one_hot, phi, cosine)


class ArcFaceHead(nn.Module):
    """``(B, D)`` embedding (+ ``(B,)`` labels) -> ``(B, K)`` ArcFace logits.

    ``weight`` is ``(K, D)``, xavier-normal initialised; rows are L2-normalised on use.
    """

    def __init__(self, in_features: int, num_classes: int, s: float = 30.0, m: float = 0.1):
        super().__init__()
        if num_classes < 1 or in_features < 1:
            raise ValueError(f"ArcFace needs classes >= 1 and features >= 1, got "
                             f"{num_classes} classes, {in_features} features")
        if not 0.0 <= m < math.pi / 2:
            raise ValueError(f"ArcFace margin m={m} must be in [0, pi/2)")
        self.in_features = in_features
        self.num_classes = num_classes
        self.s = float(s)
        self.m = float(m)
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_normal_(self.weight)

    def cosine(self, embedding: torch.Tensor) -> torch.Tensor:
        """``(B, D) -> (B, K)`` cosine similarities to the class centres (float32).

        Autocast is switched off here: bf16 cosines (~3 digits) times s=30 would blur
        the logits by ~0.1 and the margin with them.
        """
        with torch.autocast(device_type=embedding.device.type, enabled=False):
            weight = F.normalize(self.weight.float(), dim=1)
            return F.linear(F.normalize(embedding.float(), dim=1), weight)

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return arcface_logits(self.cosine(embedding), labels, self.s, self.m)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, classes={self.num_classes}, s={self.s}, m={self.m}"


class SoftmaxHead(nn.Module):
    """Plain linear classifier ``(B, D) -> (B, K)``; ``labels`` are accepted and ignored."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(embedding)
