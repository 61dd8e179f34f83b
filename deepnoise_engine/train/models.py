"""The networks a run trains: device, students, their EMA teachers, the optimiser (torch)."""

from __future__ import annotations

import copy
import math
from typing import Any

from deepnoise_engine.train.epoch_plan import Stage, lr_at


def resolved_arcface_s(cfg: dict[str, Any], n_classes: int) -> float:
    """``model.arcface_s``, or with 0 the fixed AdaCos scale ``sqrt(2) ln(K - 1)``: the
    paper's s = 30 was set for about a thousand classes (method-notes)."""
    s = float(cfg["model"]["arcface_s"])
    if s > 0:
        return s
    return float(math.sqrt(2.0) * math.log(max(n_classes - 1, 2)))


def training_device(cfg: dict[str, Any], local_rank: int = 0) -> Any:
    """``runtime.device`` as a torch device (``auto``: CUDA when available)."""
    import torch

    want = cfg["runtime"]["device"]
    if want == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device: cuda requested but no CUDA device is available")
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def create_network(cfg: dict[str, Any], name: str, index: int, in_chans: int,
                   n_classes: int, arcface_s: float) -> Any:
    """Model ``index`` of the ensemble (only the first one starts from
    ``model.pretrained_file``); 0 / negative size keys keep the architecture's default."""
    from deepnoise_engine.model.registry import create_model

    m = cfg["model"]
    kwargs: dict[str, Any] = {}
    if m["width"] > 0:
        kwargs["width"] = m["width"]
    if m["middle_blocks"] >= 0:
        kwargs["middle_blocks"] = m["middle_blocks"]
    if m["first_stride"] > 0:
        kwargs["first_stride"] = m["first_stride"]
    if m["first_kernel"] > 0:
        kwargs["first_kernel"] = m["first_kernel"]
    pretrained = m["pretrained_file"] if (m["pretrained_file"] and index == 0) else None
    return create_model(name, in_chans=in_chans, num_classes=n_classes, head=m["head"],
                        arcface_s=arcface_s, arcface_m=m["arcface_m"],
                        pretrained_file=pretrained, **kwargs)


def new_teacher(student: Any) -> Any:
    """A frozen copy of ``student`` (the EMA teacher)."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def make_optimizer(cfg: dict[str, Any], stage: Stage, students: list[Any]) -> Any:
    """The stage's optimiser over every student (one parameter group each)."""
    import torch

    if stage.cell_type is None:
        name, mom = cfg["optim"]["name"], cfg["optim"]["momentum"]
    else:
        name, mom = cfg["finetune"]["optimizer"], cfg["finetune"]["momentum"]
    wd = cfg["optim"]["weight_decay"]
    params = [{"params": [p for p in s.parameters() if p.requires_grad]} for s in students]
    lr = lr_at(cfg, stage, 0.0)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd)
