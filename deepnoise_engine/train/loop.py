"""The training loop: shared stage, per-cell-type fine-tuning, mean teacher, pseudo
labels, validation, checkpoints, resume, cancel, progress (torch).

Determinism: all data randomness (item order, site choice, augmentation, jitter) comes
from ``numpy.random.default_rng([seed, stage, epoch])`` in the main process, and the LR
is a pure function of (stage, fractional epoch); the checkpoint holds weights, EMA
teachers, optimiser state, RNG states, pseudo labels and the position inside the epoch.
On CPU a resumed run therefore ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepnoise_engine import __version__
from deepnoise_engine.atomic_io import atomic_write_text
from deepnoise_engine.balance.plate_prior import PlatePrior
from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.screen.skipped import describe_skipped, skipped_report
from deepnoise_engine.train import augment
from deepnoise_engine.train import config as cfgmod
from deepnoise_engine.train.data import ScreenData, SiteDataset, build_screen_data, open_data
from deepnoise_engine.train.ddp import (
    DistInfo,
    barrier,
    init_from_env,
    max_divergence,
    shutdown,
    sync_buffers,
)
from deepnoise_engine.train.evaluation import selection_score
from deepnoise_engine.train.mean_teacher import (
    arcface_margin,
    consistency_class_scale,
    consistency_weight,
    ema_alpha,
    ema_update,
    softmax_mse,
)
from deepnoise_engine.train.precheck import check_training_inputs

VAL_KEYS = ("val_acc_student_raw", "val_acc_student_balanced", "val_acc_teacher_raw",
            "val_acc_teacher_balanced")
STATE_VERSION = 1


class RunFolderError(RuntimeError):
    """The run folder exists and cannot be (re)used as asked."""


@dataclass(frozen=True)
class Stage:
    name: str  # "shared" or "finetune:<cell type>"
    epochs: int
    cell_type: str | None = None


def plan_stages(cfg: dict[str, dict[str, Any]], cell_types: Sequence[str]) -> list[Stage]:
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


# -- run folder ------------------------------------------------------------------------

#: Config keys that may differ between a run and its resume (they do not change results).
_RESUME_FREE = {("runtime", "device"), ("runtime", "progress_every_s"), ("data", "workers"),
                ("data", "pin_memory"), ("runtime", "threads")}


def _config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    keys = []
    for sec in sorted(set(a) | set(b)):
        for k in sorted(set(a.get(sec, {})) | set(b.get(sec, {}))):
            if (sec, k) in _RESUME_FREE:
                continue
            if a.get(sec, {}).get(k) != b.get(sec, {}).get(k):
                keys.append(f"{sec}.{k}")
    return keys


def prepare_run_folder(out: Path, cfg: dict[str, Any], resume: bool) -> bool:
    """Create or check the run folder; returns True when a checkpoint should be resumed.

    A folder that exists and is not empty is refused unless ``resume``; with ``resume``
    its config.toml must match (except runtime-only keys).
    """
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out}: exists and is not a folder")
    existing = out.is_dir() and any(out.iterdir())
    if existing and not resume:
        raise RunFolderError(f"{out}: folder exists and is not empty; pass --resume to "
                             "continue the run in it, or choose a new --out folder")
    if existing:
        cfg_file = out / "config.toml"
        if not cfg_file.is_file():
            raise RunFolderError(f"{out}: not a training run folder (no config.toml); "
                                 "refusing to write into it")
        try:
            old = cfgmod.validate(cfgmod.load_toml(cfg_file))
        except cfgmod.ConfigError as exc:
            raise RunFolderError(f"{cfg_file}: cannot resume: {exc}") from None
        diff = _config_diff(old, cfg)
        if diff:
            raise RunFolderError(f"{out}: cannot resume: the configuration differs in "
                                 f"{', '.join(diff)}; use a new --out folder")
        return (out / "checkpoints" / "last.state.json").is_file()
    for sub in ("checkpoints", "models"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.toml", cfgmod.dumps(cfg))
    return False


# -- the trainer -------------------------------------------------------------------------

class _Batches:
    """Mutable batch sampler: the trainer swaps ``batches`` each epoch (persistent workers)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Any:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class Trainer:
    """One training run in one process (one DDP rank)."""

    def __init__(self, cfg: dict[str, Any], sd: ScreenData, out: Path, dist: DistInfo,
                 device: Any, reporter: Reporter):
        import torch

        self.cfg, self.sd, self.out, self.dist = cfg, sd, out, dist
        self.device = device
        # only rank 0 reports; every rank stops on the same cancel
        self.reporter = reporter if dist.is_main else Reporter(cancel=reporter.cancel_event)
        self.cuda = device.type == "cuda"
        self.n_classes = len(sd.classes)
        self.prior = PlatePrior.from_wells(sd.wells, sd.classes)
        self.arcface_s = resolved_arcface_s(cfg, self.n_classes)
        self.size = cfg["data"]["image_size"]
        self.mt = cfg["mean_teacher"]["enabled"]
        self.names = list(cfg["model"]["names"])
        # a cell type without labelled training wells has nothing to fine-tune on
        self.stages = [s for s in plan_stages(cfg, sd.cell_types) if s.cell_type is None
                       or len(sd.select("train", s.cell_type, labelled=True))]
        self.amp = (self.cuda and cfg["runtime"]["amp"] and torch.cuda.is_bf16_supported())
        self.channels_last = self.cuda and cfg["runtime"]["channels_last"]
        self.mean_t = torch.as_tensor(sd.mean, device=device)
        self.std_t = torch.as_tensor(sd.std, device=device)
        self.dataset = SiteDataset(sd.cache, sd.channel_idx, sd.n_channels_all)
        self.train_batches = _Batches()
        self.loader = self._make_loader(self.train_batches)
        # pseudo labels: one row per unlabelled training well (any cell type)
        self.unl_wells = sd.select("train", labelled=False)
        self.unl_pos = {int(w): i for i, w in enumerate(self.unl_wells)}
        self.unl_index = np.full(len(sd.wells), -1, np.int64)  # well -> pseudo-label row
        self.unl_index[self.unl_wells] = np.arange(len(self.unl_wells))
        self.pl_logits = np.zeros((len(self.unl_wells), self.n_classes), np.float32)
        self.pl_valid = np.zeros(len(self.unl_wells), bool)
        self.pl_labels = np.full(len(self.unl_wells), -1, np.int64)
        self.history: list[dict[str, Any]] = []
        self.data_path = str(Path(getattr(sd.cache.screen, "root", "")).resolve()) if hasattr(
            sd.cache, "screen") else ""
        self.served: dict[str, list[str]] = {}
        # per served checkpoint stem: which epoch and role it holds, and why
        self.served_info: dict[str, dict[str, Any]] = {}
        self.best_val = -1.0
        self.best_by_model: dict[str, float] = {}
        self._item_counts: dict[str, int] = {}
        self.log_lines = 0
        self._last_progress = 0.0
        self._session_steps = 0
        self._session_start = time.perf_counter()

    # -- infrastructure ----------------------------------------------------------------
    def _make_loader(self, batches: _Batches) -> Any:
        import torch

        workers = self.cfg["data"]["workers"]
        return torch.utils.data.DataLoader(
            self.dataset, batch_sampler=batches, num_workers=workers,
            pin_memory=self.cuda and self.cfg["data"]["pin_memory"],
            persistent_workers=workers > 0)

    def log(self, message: str) -> None:
        if not self.dist.is_main:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.out / "train.log", "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {message}\n")
        self.reporter.log(message)

    def _progress(self, stage: Stage, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_progress < self.cfg["runtime"]["progress_every_s"]:
            return
        self._last_progress = now
        done, total = self.steps_done_total(), self.total_steps
        rate = self._session_steps / max(now - self._session_start, 1e-9)
        eta = (total - done) / rate if rate > 0 else None
        self.reporter.progress(stage.name, done, total,
                               eta_s=None if eta is None else round(eta, 1))

    def steps_per_epoch(self, stage: Stage) -> int:
        if stage.name not in self._item_counts:
            self._item_counts[stage.name] = len(self.epoch_items(stage))
        n = self._item_counts[stage.name]
        batch = self.cfg["model"]["batch_size"]
        steps = max(1, n // batch)
        cap = self.cfg["runtime"]["max_steps_per_epoch"]
        return min(steps, cap) if cap else steps

    def steps_done_total(self) -> int:
        done = 0
        for i, st in enumerate(self.stages):
            if i < self.stage_index:
                done += st.epochs * self.steps_per_epoch(st)
            elif i == self.stage_index:
                done += self.epoch * self.steps_per_epoch(st) + self.step
        return done

    def stage_items(self, stage: Stage) -> np.ndarray:
        return self.sd.select("train", stage.cell_type)

    def _control_cap(self, items: np.ndarray) -> int | None:
        """Wells per control class and epoch: as many as the median siRNA has (controls
        have several times more labelled wells and would pull raw calls to them)."""
        if not self.cfg["data"]["balance_controls"]:
            return None
        labels = self.sd.well_label[items]
        treat = labels[np.isin(labels, self.prior.treatment)]
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
        control = (labels >= 0) & ~np.isin(labels, self.prior.treatment)
        keep = ~control
        for c in np.unique(labels[control]):
            idx = np.flatnonzero(labels == c)
            if len(idx) > cap:
                idx = idx[:cap] if rng is None else np.sort(rng.choice(idx, cap, replace=False))
            keep[idx] = True
        return items[keep]

    def val_wells(self, stage: Stage) -> np.ndarray:
        return self.sd.select("val", stage.cell_type)

    # -- models ------------------------------------------------------------------------
    def _create(self, name: str, index: int) -> Any:
        from deepnoise_engine.model.registry import create_model

        m = self.cfg["model"]
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
        return create_model(name, in_chans=len(self.sd.channels), num_classes=self.n_classes,
                            head=m["head"], arcface_s=self.arcface_s, arcface_m=m["arcface_m"],
                            pretrained_file=pretrained, **kwargs)

    def build_models(self) -> None:
        import torch

        torch.manual_seed(self.cfg["runtime"]["seed"])
        self.students = [self._create(n, i).to(self.device) for i, n in enumerate(self.names)]
        if self.channels_last:
            for s in self.students:
                s.to(memory_format=torch.channels_last)
        self.teachers = [self._new_teacher(s) for s in self.students]

    def _new_teacher(self, student: Any) -> Any:
        teacher = copy.deepcopy(student)
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    def _wrap(self) -> None:
        """DDP wrappers for the students' forward (gradients are all-reduced)."""
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.cuda else None
            self.fwd = [DDP(s, device_ids=ids) for s in self.students]
        else:
            self.fwd = list(self.students)

    def _optimizer(self, stage: Stage) -> Any:
        import torch

        if stage.cell_type is None:
            name, mom = self.cfg["optim"]["name"], self.cfg["optim"]["momentum"]
        else:
            name, mom = self.cfg["finetune"]["optimizer"], self.cfg["finetune"]["momentum"]
        wd = self.cfg["optim"]["weight_decay"]
        params = [{"params": [p for p in s.parameters() if p.requires_grad]}
                  for s in self.students]
        lr = lr_at(self.cfg, stage, 0.0)
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        import torch

        return {
            "version": STATE_VERSION, "fingerprint": self.sd.fingerprint,
            "stage_index": self.stage_index, "epoch": self.epoch, "step": self.step,
            "global_step": self.global_step, "shared_steps": self.shared_steps,
            "students": [s.state_dict() for s in self.students],
            "teachers": [t.state_dict() for t in self.teachers],
            "optimizer": self.optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1],
                    "numpy_pos": int(np.random.get_state()[2]),
                    "python": json.dumps(random.getstate())},
            "pl_logits": self.pl_logits, "pl_valid": self.pl_valid,
            "pl_labels": self.pl_labels, "best_val": self.best_val,
            "acc": dict(self.acc), "history": json.dumps(self.history),
            "served": json.dumps(self.served), "train_time": self.train_time,
            "served_info": json.dumps(self.served_info),
            "best_by_model": json.dumps(self.best_by_model),
            "epoch_start_elapsed": self.epoch_elapsed,
        }

    def load_state(self, st: dict[str, Any]) -> None:
        import torch

        if st.get("fingerprint") != self.sd.fingerprint:
            raise RunFolderError(f"{self.out}: cannot resume: the screen's data changed since "
                                 "the checkpoint was written")
        self.stage_index, self.epoch, self.step = st["stage_index"], st["epoch"], st["step"]
        self.global_step, self.shared_steps = st["global_step"], st["shared_steps"]
        for s, sd in zip(self.students, st["students"], strict=True):
            s.load_state_dict(sd)
        for t, sd in zip(self.teachers, st["teachers"], strict=True):
            t.load_state_dict(sd)
        if self.stage_index < len(self.stages):
            self.optimizer = self._optimizer(self.stages[self.stage_index])
            self.optimizer.load_state_dict(st["optimizer"])
        torch.set_rng_state(st["rng"]["torch"])
        np_state = np.random.get_state()
        np.random.set_state((np_state[0], np.asarray(st["rng"]["numpy"], np.uint32),
                             st["rng"]["numpy_pos"], 0, 0.0))
        py = json.loads(st["rng"]["python"])
        random.setstate((py[0], tuple(py[1]), py[2]))
        self.pl_logits = np.array(st["pl_logits"], np.float32)
        self.pl_valid = np.array(st["pl_valid"], bool)
        self.pl_labels = np.array(st["pl_labels"], np.int64)
        self.best_val = float(st["best_val"])
        self.acc = {k: float(v) for k, v in st["acc"].items()}
        self.history = json.loads(st["history"])
        self.served = json.loads(st["served"])
        self.served_info = json.loads(st["served_info"])
        self.best_by_model = json.loads(st["best_by_model"])
        self.train_time = float(st["train_time"])
        self.epoch_elapsed = float(st["epoch_start_elapsed"])

    def save_state(self) -> None:
        if not self.dist.is_main:
            return
        from deepnoise_engine.model.checkpoint import save_training_state

        save_training_state(self.out / "checkpoints" / "last", self.state_dict())

    def _meta(self, role: str, stage: Stage, metrics: dict[str, Any],
              served: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "channels": self.sd.channels, "classes": self.sd.classes,
            "normalisation": self.sd.normalisation, "image_size": self.size,
            "config": self.cfg, "metrics": metrics, "data_fingerprint": self.sd.fingerprint,
            "cell_types": [stage.cell_type] if stage.cell_type else self.sd.cell_types,
            "role": role, "stage": stage.name, "engine_version": __version__,
            "plate_groups": self.prior.groups, "served": served or {},
        }

    def save_last(self, stage: Stage, metrics: dict[str, Any]) -> None:
        """This epoch's students and teachers in checkpoints/ (for inspection and resume)."""
        if not self.dist.is_main:
            return
        from deepnoise_engine.model.checkpoint import save_checkpoint

        for name, s, t in zip(self.names, self.students, self.teachers, strict=True):
            save_checkpoint(self.out / "checkpoints" / f"last_student_{name}", s,
                            self._meta("student", stage, metrics))
            if self.mt:
                save_checkpoint(self.out / "checkpoints" / f"last_teacher_{name}", t,
                                self._meta("teacher", stage, metrics))

    def serve(self, stage: Stage, index: int, role: str, metrics: dict[str, Any],
              info: dict[str, Any]) -> None:
        """Write model ``index`` (its student or teacher) as the stage's served model."""
        key = "*" if stage.cell_type is None else stage.cell_type
        prefix = "shared" if stage.cell_type is None else stage.cell_type
        stems = [f"models/{prefix}_{name}" for name in self.names]
        info = {"stage": stage.name, "role": role, **info}
        self.served_info[stems[index]] = info
        self.served[key] = stems
        if not self.dist.is_main:
            return
        from deepnoise_engine.model.checkpoint import save_checkpoint

        model = self.teachers[index] if role == "teacher" else self.students[index]
        save_checkpoint(self.out / stems[index], model,
                        self._meta(role, stage, metrics, served=info))

    def serve_best(self, stage: Stage, val: dict[str, Any], epoch: int,
                   metrics: dict[str, Any]) -> None:
        """Serve each model's student or teacher when it beats the stage's best so far on
        the validation treatment wells (:func:`selection_score`)."""
        for j, name in enumerate(self.names):
            m = val["per_model"].get(name)
            if not m:
                continue
            roles = ["teacher", "student"] if self.mt else ["student"]
            scored = [(selection_score(m[f"val_acc_{r}_raw"], m[f"val_acc_{r}_balanced"]), r)
                      for r in roles]
            score, role = max(scored, key=lambda x: x[0])  # a tie keeps the teacher
            if score <= self.best_by_model.get(name, -1.0):
                continue
            self.best_by_model[name] = score
            why = ("best validation score so far (mean of raw and balanced accuracy on the "
                   "validation experiments' treatment wells)" if epoch else
                   "the shared stage's served weights, before fine-tuning")
            self.serve(stage, j, role, metrics, {
                "epoch": epoch, "score": score,
                "val_acc_raw": m[f"val_acc_{role}_raw"],
                "val_acc_balanced": m[f"val_acc_{role}_balanced"], "why": why})

    def serve_last(self, stage: Stage, metrics: dict[str, Any]) -> None:
        """Stage end without validation: the last epoch's teachers (students without a
        mean teacher) are served."""
        role = "teacher" if self.mt else "student"
        for j, name in enumerate(self.names):
            if name in self.best_by_model:
                continue
            self.serve(stage, j, role, metrics, {
                "epoch": stage.epochs, "score": None, "val_acc_raw": None,
                "val_acc_balanced": None,
                "why": "last epoch (no validation experiment to choose by)"})

    def finished_ensembles(self) -> dict[str, list[str]]:
        """The served models of the stages that have finished (a stage still running has
        a best-so-far model on disk, but it is not offered for scoring yet)."""
        out = {}
        for i, st in enumerate(self.stages):
            done = i < self.stage_index or (i == self.stage_index and self.epoch >= st.epochs)
            key = "*" if st.cell_type is None else st.cell_type
            if done and key in self.served:
                out[key] = self.served[key]
        return out

    def write_run_json(self, status: str) -> None:
        if not self.dist.is_main:
            return
        doc = {
            "format": "deepnoise-run", "version": 1, "status": status,
            "data": self.data_path, "ensembles": self.finished_ensembles(),
            "classes": self.sd.classes,
            "channels": self.sd.channels, "cell_types": self.sd.cell_types,
            "image_size": self.size, "normalisation": self.cfg["data"]["normalisation"],
            "validation_experiments": self.sd.validation_experiments,
            "stages": [s.name for s in self.stages], "data_fingerprint": self.sd.fingerprint,
            "engine_version": __version__, "skipped": getattr(self, "skipped", None),
            "final_metrics": {m["stage"]: m for m in self.history if m.get("stage_end")},
            "served": {stem: info for stems in self.finished_ensembles().values()
                       for stem in stems if (info := self.served_info.get(stem))},
            "plate_groups": self.prior.groups,
            "arcface_s": self.arcface_s if self.cfg["model"]["head"] == "arcface" else None,
        }
        atomic_write_text(self.out / "run.json", json.dumps(doc, indent=1) + "\n")

    def write_metrics(self) -> None:
        if self.dist.is_main:
            atomic_write_text(self.out / "metrics.jsonl",
                               "".join(json.dumps(m) + "\n" for m in self.history))

    # -- data plan -----------------------------------------------------------------------
    def epoch_plan(self, stage_index: int, epoch: int) -> dict[str, Any]:
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
                                        erase=not self.mt)
        teacher = augment.sample_params(rng, len(order), c, aug, jitter=jit, hard=True,
                                        erase=True)
        return {"wells": order, "rows": rows, "student": student, "teacher": teacher}

    def _slice(self, plan: dict[str, Any], step: int) -> np.ndarray:
        """Positions in the plan for this rank at ``step`` (wraps when items < batch)."""
        batch = self.cfg["model"]["batch_size"]
        per_rank = max(1, batch // self.dist.world)
        start = step * per_rank * self.dist.world + self.dist.rank * per_rank
        return np.arange(start, start + per_rank) % len(plan["wells"])

    # -- steps -------------------------------------------------------------------------
    def _autocast(self) -> Any:
        import torch

        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _views(self, imgs: Any, rows: np.ndarray, params: augment.Params) -> Any:
        import torch

        r = torch.as_tensor(rows, device=self.device)
        x = augment.apply(imgs, self.mean_t[r], self.std_t[r], params, self.size)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def train_step(self, stage: Stage, plan: dict[str, Any], pos: np.ndarray, imgs: Any,
                   epoch_f: float) -> dict[str, float]:
        import torch
        import torch.nn.functional as F

        cfg = self.cfg
        wells = plan["wells"][pos]
        rows = plan["rows"][pos]
        labels = torch.as_tensor(self.sd.well_label[wells], device=self.device)
        idx = self.unl_index[wells]
        pl = np.where(idx >= 0, self.pl_labels[np.maximum(idx, 0)], -1) if len(
            self.pl_labels) else np.full(len(wells), -1, np.int64)
        pl_t = torch.as_tensor(pl, device=self.device)
        w_pl = (cfg["pseudo_labels"]["weight"]
                if cfg["pseudo_labels"]["enabled"] and self.pl_valid.any() else 0.0)
        mtc = cfg["mean_teacher"]
        w_cons = (consistency_weight(self.alpha_epoch_offset + epoch_f,
                                     mtc["consistency_weight"], mtc["rampup_epochs"])
                  * consistency_class_scale(self.n_classes, mtc["reference_classes"])
                  if self.mt else 0.0)
        sub = lambda p: {k: v[pos] for k, v in p.items()}  # noqa: E731
        imgs = imgs.to(self.device, non_blocking=True)
        xs = self._views(imgs, rows, sub(plan["student"]))
        xt = self._views(imgs, rows, sub(plan["teacher"])) if self.mt else None
        lab, unl = labels >= 0, pl_t >= 0
        head = cfg["model"]["head"]
        s_, m_ = self.arcface_s, cfg["model"]["arcface_m"]

        def margin(logits: Any, y: Any) -> Any:
            return arcface_margin(logits, y, s_, m_) if head == "arcface" else logits

        total = torch.zeros((), device=self.device)
        parts = {"sup": 0.0, "cons": 0.0, "pl": 0.0}
        with self._autocast():
            for j, fwd in enumerate(self.fwd):
                logits = fwd(xs).float()
                zero = logits.sum() * 0.0  # keeps every rank's graph identical for DDP
                sup = (F.cross_entropy(margin(logits[lab], labels[lab]), labels[lab])
                       if bool(lab.any()) else zero)
                cons = zero
                if self.mt:
                    with torch.no_grad():
                        t_logits = self.teachers[j](xt).float()
                    cons = softmax_mse(logits, t_logits)
                # pseudo labels are guesses: plain logits, no margin (as the authors)
                plo = (F.cross_entropy(logits[unl], pl_t[unl])
                       if w_pl > 0 and bool(unl.any()) else zero)
                total = total + (1 - w_pl) * sup + w_cons * cons + w_pl * plo
                parts["sup"] += float(sup.detach()) / len(self.fwd)
                parts["cons"] += float(cons.detach()) / len(self.fwd)
                parts["pl"] += float(plo.detach()) / len(self.fwd)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if self.mt:
            alpha = ema_alpha(self.global_step, self.alpha_epoch_offset + int(epoch_f) + 1,
                              mtc["alphas"], mtc["alpha_epochs"],
                              steps_per_epoch=self.steps_per_epoch(stage),
                              reference_steps_per_epoch=mtc["reference_steps_per_epoch"])
            for t, s in zip(self.teachers, self.students, strict=True):
                ema_update(t, s, alpha)
        self.global_step += 1
        parts["loss"] = float(total.detach()) / len(self.fwd)
        return parts

    # -- evaluation ----------------------------------------------------------------------
    def predict(self, models: Sequence[Any], wells: np.ndarray) -> list[np.ndarray]:
        """Mean plain logits over each well's usable sites: per model (n_wells, K)."""
        import torch

        out = [torch.zeros((len(wells), self.n_classes), dtype=torch.float64) for _ in models]
        if len(wells) == 0:
            return [o.numpy().astype(np.float32) for o in out]
        rows = np.concatenate([self.sd.well_sites[w] for w in wells])
        owner = np.concatenate([np.full(len(self.sd.well_sites[w]), i)
                                for i, w in enumerate(wells)])
        counts = np.bincount(owner, minlength=len(wells))[:, None]
        bs = self.cfg["model"]["eval_batch_size"]
        batches = _Batches()
        batches.batches = [rows[i:i + bs].tolist() for i in range(0, len(rows), bs)]
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=batches,
            num_workers=min(self.cfg["data"]["workers"], len(batches.batches)),
            pin_memory=self.cuda and self.cfg["data"]["pin_memory"])
        was = [m.training for m in models]
        for m in models:
            m.eval()
        try:
            with torch.no_grad(), self._autocast():
                for b, imgs in enumerate(loader):
                    r = rows[b * bs:(b + 1) * bs]
                    imgs = imgs.to(self.device, non_blocking=True)
                    x = self._views(imgs, r, augment.identity_params(len(r),
                                                                      len(self.sd.channels)))
                    o = owner[b * bs:(b + 1) * bs]
                    for k, m in enumerate(models):
                        out[k].index_add_(0, torch.as_tensor(o), m(x).double().cpu())
                    # keep progress events flowing during long validations
                    self._progress(self.stages[min(self.stage_index, len(self.stages) - 1)])
        finally:
            for m, w in zip(models, was, strict=True):
                m.train(w)
        return [(o.numpy() / counts).astype(np.float32) for o in out]

    @staticmethod
    def _log_softmax(logits: np.ndarray) -> np.ndarray:
        z = logits - logits.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    def validate(self, stage: Stage) -> dict[str, Any]:
        """Accuracy of students, teachers and the ensemble on the validation experiments'
        treatment wells over the treatment classes (raw and plate-balanced)."""
        wells = self.prior.treatment_wells(self.val_wells(stage))
        keys = ("val_loss", *VAL_KEYS, "val_acc_ensemble_raw", "val_acc_ensemble_balanced")
        if len(wells) == 0:
            return {k: None for k in keys} | {"per_model": {}}
        models = list(self.students) + (list(self.teachers) if self.mt else [])
        lp = [self._log_softmax(x) for x in self.predict(models, wells)]
        n = len(self.students)
        labels = self.sd.well_label[wells]
        per_model: dict[str, dict[str, Any]] = {}
        for j, name in enumerate(self.names):
            s_raw, s_bal = self.prior.accuracy(lp[j], wells, labels)
            t_raw, t_bal = (self.prior.accuracy(lp[n + j], wells, labels) if self.mt
                            else (s_raw, s_bal))
            per_model[name] = {
                "val_loss": float(-lp[j][np.arange(len(wells)), labels].mean()),
                "val_acc_student_raw": s_raw, "val_acc_student_balanced": s_bal,
                "val_acc_teacher_raw": t_raw, "val_acc_teacher_balanced": t_bal,
            }
        ens = np.mean(lp[n:] if self.mt else lp[:n], axis=0)
        e_raw, e_bal = self.prior.accuracy(ens, wells, labels)
        rec: dict[str, Any] = {k: float(np.mean([p[k] for p in per_model.values()]))
                               for k in ("val_loss", *VAL_KEYS)}
        rec.update(val_acc_ensemble_raw=e_raw, val_acc_ensemble_balanced=e_bal)
        for p in per_model.values():
            p.update(val_acc_ensemble_raw=e_raw, val_acc_ensemble_balanced=e_bal)
        rec["per_model"] = per_model
        return rec

    def pseudo_labels_due(self, stage: Stage, improved: bool) -> bool:
        """Pseudo labels follow the teachers once they are worth following (from
        ``pseudo_labels.start_epoch`` of the shared stage on), refreshed when the
        teachers' validation score improves."""
        if not self.cfg["pseudo_labels"]["enabled"]:
            return False
        if stage.cell_type is None and self.epoch + 1 < self.cfg["pseudo_labels"]["start_epoch"]:
            return False
        return improved or not self.pl_valid.any()

    def refresh_pseudo_labels(self, stage: Stage) -> int:
        """Teacher-ensemble predictions on the stage's unlabelled wells, blended
        (old_weight * old + (1 - old_weight) * new), then balanced per plate over the
        treatment classes of the plate's group (inferred from the predictions)."""
        wells = self.sd.select("train", stage.cell_type, labelled=False)
        if len(wells) == 0:
            return 0
        models = self.teachers if self.mt else self.students
        lp = np.mean([self._log_softmax(x) for x in self.predict(models, wells)], axis=0)
        idx = np.array([self.unl_pos[int(w)] for w in wells])
        old_w = self.cfg["pseudo_labels"]["old_weight"]
        valid = self.pl_valid[idx]
        new = lp.copy()
        new[valid] = old_w * self.pl_logits[idx][valid] + (1 - old_w) * lp[valid]
        self.pl_logits[idx] = new
        self.pl_valid[idx] = True
        self.pl_labels[idx] = self.prior.balanced_calls(new, wells, use_labels=True)
        return len(wells)

    # -- main loop -----------------------------------------------------------------------
    def _start_stage(self, index: int) -> None:
        """Fresh optimiser; fine-tuning stages start from the shared stage's served
        weights (its best by validation), which stay served unless fine-tuning beats them."""
        stage = self.stages[index]
        self.best_by_model = {}
        if stage.cell_type is not None:
            self._load_shared_start()
            self.global_step = self.shared_steps
        self.optimizer = self._optimizer(stage)
        self.best_val = -1.0
        self.epoch = self.step = 0
        self.acc = {}
        self.epoch_elapsed = 0.0
        if stage.cell_type is not None:
            val = self.validate(stage)
            self.serve_best(stage, val, 0, {k: v for k, v in val.items() if k != "per_model"})

    def _load_shared_start(self) -> None:
        """Students and teachers <- the shared stage's served models (or its final state
        when nothing was chosen by validation)."""
        from deepnoise_engine.model.checkpoint import load_checkpoint, load_training_state

        shared = load_training_state(self.out / "checkpoints" / "shared_final")
        for j, name in enumerate(self.names):
            stem = f"models/shared_{name}"
            if self.served_info.get(stem, {}).get("score") is not None:
                state = load_checkpoint(self.out / stem)[0].state_dict()
                self.students[j].load_state_dict(state)
                self.teachers[j].load_state_dict(state)
            else:
                self.students[j].load_state_dict(shared["students"][j])
                self.teachers[j].load_state_dict(shared["teachers"][j])

    def run(self, resume: bool) -> dict[str, Any]:
        self.skipped = skipped_report(self.sd.cache.screen)  # in train.log and run.json
        self.log(describe_skipped(self.skipped))
        self.build_models()
        self.stage_index, self.epoch, self.step = 0, 0, 0
        self.global_step = self.shared_steps = 0
        self.train_time = 0.0
        self._start_stage(0)
        if resume:
            from deepnoise_engine.model.checkpoint import load_training_state

            self.load_state(load_training_state(self.out / "checkpoints" / "last",
                                                map_location=str(self.device)))
            self.write_metrics()
            if self.stage_index >= len(self.stages):
                self.log("resume: the run is already complete")
                self.write_run_json("complete")  # a kill may have come just before it
                return self.result(cancelled=False)
            self.log(f"resumed at {self.stages[self.stage_index].name} epoch {self.epoch + 1} "
                     f"step {self.step}")
        self._wrap()
        self.write_run_json("running")
        self.total_steps = sum(s.epochs * self.steps_per_epoch(s) for s in self.stages)
        self.log(f"training {', '.join(self.names)} on {self.device} (world {self.dist.world}):"
                 f" {len(self.sd.classes)} classes, stages "
                 f"{', '.join(f'{s.name} x{s.epochs}' for s in self.stages)}")
        while self.stage_index < len(self.stages):
            stage = self.stages[self.stage_index]
            self.alpha_epoch_offset = 0 if stage.cell_type is None else self.stages[0].epochs
            for s in self.students + self.teachers:
                s.train()
            while self.epoch < stage.epochs:
                self.run_epoch(stage)
            # stage finished
            if self.dist.enabled:
                div = max_divergence(self.dist, self.students + self.teachers)
                self.log(f"{stage.name}: weights of the {self.dist.world} ranks "
                         f"{'agree' if div == 0 else f'differ by {div:.3g}'}")
            if self.dist.is_main:
                self.history[-1]["stage_end"] = True
                self.serve_last(stage, self.history[-1])
                if stage.cell_type is None:
                    self.shared_steps = self.global_step
                    from deepnoise_engine.model.checkpoint import save_training_state

                    save_training_state(self.out / "checkpoints" / "shared_final",
                                        {"students": [s.state_dict() for s in self.students],
                                         "teachers": [t.state_dict() for t in self.teachers]})
                self.write_metrics()
                self.write_run_json("running")  # "complete" only once everything is written
            if stage.cell_type is None:
                self.shared_steps = self.global_step
            barrier(self.dist)
            self.stage_index += 1
            if self.stage_index < len(self.stages):
                self._start_stage(self.stage_index)
                self.save_state()
                self.log(f"stage {self.stages[self.stage_index].name}")
        self.save_state()
        self.write_run_json("complete")
        return self.result(cancelled=False)

    def run_epoch(self, stage: Stage) -> None:
        t0 = time.perf_counter()
        steps = self.steps_per_epoch(stage)
        plan = self.epoch_plan(self.stage_index, self.epoch)
        positions = [self._slice(plan, k) for k in range(steps)]
        self.train_batches.batches = [plan["rows"][p].tolist() for p in positions[self.step:]]
        train_t0 = time.perf_counter()
        images = 0
        for imgs in self.loader:
            if self.reporter.cancelled:
                self.train_time += time.perf_counter() - train_t0
                self.epoch_elapsed += time.perf_counter() - t0
                self.save_state()
                where = f"{stage.name} epoch {self.epoch + 1} step {self.step}"
                self.log(f"cancelled at {where}; resume with --resume")
                self.write_run_json("cancelled")
                raise Cancelled(f"training cancelled at {where}",
                                partial=self.result(cancelled=True))
            epoch_f = self.epoch + self.step / steps
            lr = lr_at(self.cfg, stage, epoch_f)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            parts = self.train_step(stage, plan, positions[self.step], imgs, epoch_f)
            for k, v in parts.items():
                self.acc[k] = self.acc.get(k, 0.0) + v
            self.acc["n"] = self.acc.get("n", 0.0) + 1
            images += len(positions[self.step]) * self.dist.world
            self.step += 1
            self._session_steps += 1
            self._progress(stage)
        train_s = time.perf_counter() - train_t0
        self.acc["images"] = self.acc.get("images", 0.0) + images
        self.acc["train_s"] = self.acc.get("train_s", 0.0) + train_s
        sync_buffers(self.dist, self.students + self.teachers)
        val = self.validate(stage)
        score = (None if val["val_acc_ensemble_raw"] is None else
                 selection_score(val["val_acc_ensemble_raw"], val["val_acc_ensemble_balanced"]))
        improved = score is None or score > self.best_val
        if improved:
            self.best_val = -1.0 if score is None else score
        n_pl = self.refresh_pseudo_labels(stage) if self.pseudo_labels_due(stage, improved) else 0
        n = max(self.acc.get("n", 0.0), 1.0)
        rec = {
            "epoch": self.epoch + 1, "stage": stage.name,
            "lr": lr_at(self.cfg, stage, self.epoch + 1 - 1e-9),
            "train_loss": self.acc.get("loss", 0.0) / n,
            "train_loss_sup": self.acc.get("sup", 0.0) / n,
            "train_loss_cons": self.acc.get("cons", 0.0) / n,
            "train_loss_pl": self.acc.get("pl", 0.0) / n,
            **{k: v for k, v in val.items() if k != "per_model"},
            "images_per_s": self.acc["images"] / max(self.acc["train_s"], 1e-9),
            "time_s": self.epoch_elapsed + time.perf_counter() - t0,
            "pseudo_labels_refreshed": n_pl,
            "per_model": val["per_model"],
        }
        self.history.append(rec)
        self.epoch += 1
        self.step = 0
        self.acc = {}
        self.epoch_elapsed = 0.0
        self.save_last(stage, rec)
        self.serve_best(stage, val, rec["epoch"], rec)
        self.save_state()
        self.write_metrics()
        self.reporter.metrics(rec)
        acc = rec["val_acc_ensemble_balanced"]
        self.log(f"{stage.name} epoch {rec['epoch']}/{stage.epochs}: loss {rec['train_loss']:.4f}"
                 f" val acc (ensemble, balanced) "
                 f"{'-' if acc is None else f'{acc:.3f}'} {rec['images_per_s']:.1f} img/s")
        self._progress(stage, force=True)

    def result(self, cancelled: bool) -> dict[str, Any]:
        return {
            "cancelled": cancelled, "out": str(self.out),
            "stage": self.stages[min(self.stage_index, len(self.stages) - 1)].name,
            "epochs_done": len(self.history), "ensembles": self.finished_ensembles(),
            "final": self.history[-1] if self.history else None,
            "validation_experiments": self.sd.validation_experiments,
        }


def resolved_arcface_s(cfg: dict[str, Any], n_classes: int) -> float:
    """``model.arcface_s``, or with 0 the fixed AdaCos scale ``sqrt(2) ln(K - 1)``: the
    paper's s = 30 was set for about a thousand classes (method-notes)."""
    s = float(cfg["model"]["arcface_s"])
    if s > 0:
        return s
    return float(math.sqrt(2.0) * math.log(max(n_classes - 1, 2)))


def _device(cfg: dict[str, Any], dist_local_rank: int = 0) -> Any:
    import torch

    want = cfg["runtime"]["device"]
    if want == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device: cuda requested but no CUDA device is available")
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", dist_local_rank)
    return torch.device("cpu")


def run_training(data: str | Path, out: str | Path, *, preset: str | None = "tiny",
                 config_file: str | Path | None = None, overrides: Sequence[str] = (),
                 resume: bool = False, reporter: Reporter | None = None) -> dict[str, Any]:
    """Train on the screen at ``data`` into the run folder ``out`` (see docs/training.md).

    Returns ``{"cancelled": False, "out", "stage", "epochs_done", "ensembles", "final",
    ...}``; raises ``ConfigError`` / ``RunFolderError`` / ``TrainDataError`` on bad input
    before any training starts, and ``Cancelled`` (``partial``: the same dict with
    ``"cancelled": True``) after writing a resumable checkpoint when cancelled.
    """
    import torch

    cfg = cfgmod.resolve(preset, config_file, overrides)
    out = Path(out)
    want_cuda = cfg["runtime"]["device"] == "cuda" or (
        cfg["runtime"]["device"] == "auto" and torch.cuda.is_available())
    dist = init_from_env(want_cuda)
    threads_before = torch.get_num_threads()
    try:
        if cfg["runtime"]["threads"]:
            # process-wide: restored below (the engine server runs other jobs afterwards)
            torch.set_num_threads(cfg["runtime"]["threads"])
        device = _device(cfg, dist.local_rank)
        # inputs first (screen, labels, pack): a bad screen or a full disk creates no stub
        opened = check_training_inputs(data, out, resume) if dist.is_main else None
        error = None
        do_resume = False
        if dist.is_main:
            try:
                do_resume = prepare_run_folder(out, cfg, resume)
            except RunFolderError as exc:
                error = exc
        if dist.enabled:
            from deepnoise_engine.train.ddp import broadcast_object

            error, do_resume = broadcast_object(dist, (error and str(error), do_resume))
            if error:
                raise RunFolderError(error)
        elif error:
            raise error
        # rank 0 packs the screen first; the others then open the complete cache
        if dist.is_main:
            screen, cache = opened
        barrier(dist)
        if not dist.is_main:
            screen, cache = open_data(data)
        sd = build_screen_data(screen, cache, cfg)
        trainer = Trainer(cfg, sd, out, dist, device, reporter or Reporter())
        return trainer.run(do_resume)
    finally:
        torch.set_num_threads(threads_before)
        shutdown(dist)


def remove_checkpoints(out: Path) -> None:
    """Delete a run's resume checkpoints (keeps models/, run.json, logs)."""
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
