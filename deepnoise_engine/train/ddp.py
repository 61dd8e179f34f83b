"""Distributed data parallel helpers (torch.distributed, launched by torchrun).

``torchrun --nproc_per_node N -m deepnoise_engine.cli train ...`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the trainer calls
:func:`init_from_env`, which joins the process group (NCCL on CUDA, gloo on CPU).
``deepnoise-engine train --devices N`` re-executes itself through
``torch.distributed.run`` (:func:`relaunch`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def init_from_env(use_cuda: bool) -> DistInfo:
    """Join the process group described by torchrun's environment (no-op when WORLD_SIZE<=1)."""
    world = env_world_size()
    if world <= 1:
        return DistInfo()
    import torch
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, world=world, local_rank=local_rank)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(info: DistInfo, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. an error message or a stop flag)."""
    if not info.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_buffers(info: DistInfo, modules: list[Any]) -> None:
    """Broadcast rank 0's buffers (batch-norm statistics) to all ranks: each rank's
    last forward updated them from its own shard, and teachers are never DDP-wrapped."""
    if not info.enabled:
        return
    import torch.distributed as dist

    for m in modules:
        for b in m.buffers():
            dist.broadcast(b, src=0)


def max_divergence(info: DistInfo, modules: list[Any]) -> float:
    """Largest difference between ranks of a per-tensor checksum of ``modules``' state
    (0.0 when every rank holds the same weights, as DDP should guarantee)."""
    if not info.enabled:
        return 0.0
    import torch
    import torch.distributed as dist

    sums = torch.tensor([float(t.double().sum()) for m in modules
                         for t in m.state_dict().values() if t.is_floating_point()],
                        dtype=torch.float64)
    gathered = [torch.zeros_like(sums) for _ in range(info.world)]
    dist.all_gather(gathered, sums)
    return float(max((g - gathered[0]).abs().max() for g in gathered))


def shutdown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def relaunch(argv: list[str], devices: int) -> int:
    """Run ``deepnoise-engine <argv>`` in ``devices`` processes via torch.distributed.run.

    ``argv`` must not contain ``--devices`` (the children would re-launch).
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={devices}", "-m", "deepnoise_engine.cli", *argv]
    return subprocess.call(cmd)


def strip_devices(argv: list[str]) -> list[str]:
    """``argv`` without ``--devices N`` / ``--devices=N`` (the children must not re-launch)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--devices":
            skip = True
        elif not arg.startswith("--devices="):
            out.append(arg)
    return out
