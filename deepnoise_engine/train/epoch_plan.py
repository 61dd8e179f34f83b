"""The epoch plan: stages, learning rate, each epoch's items, their order, sites and
augmentation, and which positions each rank trains on at each step (torch-free).

All data randomness comes from ``numpy.random.default_rng([seed, stage, epoch])``, so a
plan is the same on every rank and after a resume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepnoise_engine.train import augment
from deepnoise_engine.train.data import ScreenData
from deepnoise_engine.train.ddp import DistInfo


@dataclass(frozen=True)
class Stage:
    """One stage of a run: the shared stage or one cell type's fine-tuning."""

    name: str  # "shared" or "finetune:<cell type>"
    epochs: int
    cell_type: str | None = None


def plan_stages(cfg: dict[str, dict[str, Any]], cell_types: Sequence[str]) -> list[Stage]:
    """The shared stage, then one fine-tuning stage per cell type with epochs left."""
    stages = [Stage("shared", cfg["model"]["epochs"])]
    ft = cfg["finetune"]
    if ft["enabled"]:
        for ct in cell_types:
            n = ft["epochs_by_cell_type"].get(ct, ft["epochs"])
            if n > 0:
                stages.append(Stage(f"finetune:{ct}", n, ct))
    return stages


def lr_at(cfg: dict[str, dict[str, Any]], stage: Stage, epoch: float) -> float:
    """Learning rate at 0-based fractional ``epoch`` of ``stage``.

    Shared stage: piecewise constant (``optim.lr_values`` switching at
    ``optim.lr_milestones``). Fine-tuning: cosine from ``lr`` to ``lr_min`` in ``cycles``
    restarts, then ``tail_epochs`` at ``tail_lr`` (method-notes).
    """
    if stage.cell_type is None:
        o = cfg["optim"]
        i = sum(1 for m in o["lr_milestones"] if m <= int(epoch))
        return float(o["lr_values"][i])
    ft = cfg["finetune"]
    main = stage.epochs - min(ft["tail_epochs"], stage.epochs - 1 if stage.epochs > 1 else 0)
    if epoch >= main:
        return float(ft["tail_lr"])
    cycle = main / ft["cycles"]
    t = (epoch % cycle) / cycle
    return float(ft["lr_min"] + 0.5 * (ft["lr"] - ft["lr_min"]) * (1 + math.cos(math.pi * t)))


class Batches:
    """Mutable batch sampler: the trainer swaps ``batches`` each epoch (persistent workers)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Any:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class EpochPlanner:
    """Items, steps and the random plan of each epoch of a run's ``stages``.

    ``treatment``: the class indices of the siRNAs (controls are the other labels).
    """

    def __init__(self, cfg: dict[str, Any], sd: ScreenData, stages: list[Stage],
                 treatment: np.ndarray, dist: DistInfo, mean_teacher: bool) -> None:
        self.cfg, self.sd, self.stages, self.dist = cfg, sd, stages, dist
        self.treatment = treatment
        self.mean_teacher = mean_teacher
        self._item_counts: dict[str, int] = {}

    def stage_items(self, stage: Stage) -> np.ndarray:
        return self.sd.select("train", stage.cell_type)

    def _control_cap(self, items: np.ndarray) -> int | None:
        """Wells per control class and epoch: as many as the median siRNA has (controls
        have several times more labelled wells and would pull raw calls to them)."""
        if not self.cfg["data"]["balance_controls"]:
            return None
        labels = self.sd.well_label[items]
        treat = labels[np.isin(labels, self.treatment)]
        if len(treat) == 0:
            return None
        counts = np.bincount(treat)
        return max(1, int(np.median(counts[counts > 0])))

    def epoch_items(self, stage: Stage, rng: np.random.Generator | None = None) -> np.ndarray:
        """The stage's items for one epoch: every treatment and unlabelled well, and a
        random subset (``rng``; the first ones without) of each over-represented control."""
        items = self.stage_items(stage)
        cap = self._control_cap(items)
        if cap is None:
            return items
        labels = self.sd.well_label[items]
        control = (labels >= 0) & ~np.isin(labels, self.treatment)
        keep = ~control
        for c in np.unique(labels[control]):
            idx = np.flatnonzero(labels == c)
            if len(idx) > cap:
                idx = idx[:cap] if rng is None else np.sort(rng.choice(idx, cap, replace=False))
            keep[idx] = True
        return items[keep]

    def steps_per_epoch(self, stage: Stage) -> int:
        if stage.name not in self._item_counts:
            self._item_counts[stage.name] = len(self.epoch_items(stage))
        n = self._item_counts[stage.name]
        steps = max(1, n // self.cfg["model"]["batch_size"])
        cap = self.cfg["runtime"]["max_steps_per_epoch"]
        return min(steps, cap) if cap else steps

    def total_steps(self) -> int:
        return sum(s.epochs * self.steps_per_epoch(s) for s in self.stages)

    def steps_done(self, stage_index: int, epoch: int, step: int) -> int:
        """Steps of the whole run before (stage_index, epoch, step)."""
        done = 0
        for i, st in enumerate(self.stages):
            if i < stage_index:
                done += st.epochs * self.steps_per_epoch(st)
            elif i == stage_index:
                done += epoch * self.steps_per_epoch(st) + step
        return done

    def plan(self, stage_index: int, epoch: int) -> dict[str, Any]:
        """Order, sites and augmentation of every item of one epoch (same on all ranks)."""
        stage = self.stages[stage_index]
        rng = np.random.default_rng([self.cfg["runtime"]["seed"], stage_index, epoch])
        items = self.epoch_items(stage, rng)
        order = items[rng.permutation(len(items))]
        site_pick = rng.random(len(order))
        rows = np.array([self.sd.well_sites[w][int(u * len(self.sd.well_sites[w]))]
                         for w, u in zip(order, site_pick, strict=True)], np.int64)
        aug, c = self.cfg["augment"], len(self.sd.channels)
        jit = self.cfg["data"]["norm_jitter"]
        student = augment.sample_params(rng, len(order), c, aug, jitter=jit, hard=False,
                                        erase=not self.mean_teacher)
        teacher = augment.sample_params(rng, len(order), c, aug, jitter=jit, hard=True,
                                        erase=True)
        return {"wells": order, "rows": rows, "student": student, "teacher": teacher}

    def positions(self, plan: dict[str, Any], step: int) -> np.ndarray:
        """Positions in the plan for this rank at ``step`` (wraps when items < batch)."""
        batch = self.cfg["model"]["batch_size"]
        per_rank = max(1, batch // self.dist.world)
        start = step * per_rank * self.dist.world + self.dist.rank * per_rank
        return np.arange(start, start + per_rank) % len(plan["wells"])
