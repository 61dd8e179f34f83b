"""The training loop: shared stage, per-cell-type fine-tuning, mean teacher, pseudo
labels, validation, checkpoints, resume, cancel, progress (torch).

The parts live next to it: ``run_folder`` (files), ``epoch_plan`` (stages, learning
rate, the plan of each epoch), ``evaluation`` (predictions, validation, pseudo labels),
``serving`` (which weights are served), ``models`` (networks and optimiser). The plate
prior is handed in by the workflow that trains a screen.

Determinism: all data randomness (item order, site choice, augmentation, jitter) comes
from ``numpy.random.default_rng([seed, stage, epoch])`` in the main process, and the LR
is a pure function of (stage, fractional epoch); the checkpoint holds weights, EMA
teachers, optimiser state, RNG states, pseudo labels and the position inside the epoch.
On CPU a resumed run therefore ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from deepnoise_engine import __version__
from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.screen.skipped import describe_skipped, skipped_report
from deepnoise_engine.train.data import ScreenData, SiteDataset
from deepnoise_engine.train.ddp import DistInfo, barrier, max_divergence, sync_buffers
from deepnoise_engine.train.epoch_plan import Batches, EpochPlanner, Stage, lr_at, plan_stages
from deepnoise_engine.train.evaluation import (
    Evaluator,
    PlatePriorLike,
    PseudoLabels,
    log_softmax,
    selection_score,
)
from deepnoise_engine.train.mean_teacher import (
    arcface_margin,
    consistency_class_scale,
    consistency_weight,
    ema_alpha,
    ema_update,
    softmax_mse,
)
from deepnoise_engine.train.models import (
    create_network,
    make_optimizer,
    new_teacher,
    resolved_arcface_s,
)
from deepnoise_engine.train.run_folder import RunFolder, RunFolderError
from deepnoise_engine.train.serving import ServeChoice, ServedModels
from deepnoise_engine.train.views import ImageViews

__all__ = ["STATE_VERSION", "Stage", "Trainer", "lr_at", "plan_stages", "resolved_arcface_s"]

STATE_VERSION = 1


class Trainer:
    """One training run in one process (one DDP rank)."""

    def __init__(self, cfg: dict[str, Any], sd: ScreenData, out: Path, dist: DistInfo,
                 device: Any, reporter: Reporter, prior: PlatePriorLike) -> None:
        self.cfg, self.sd, self.out, self.dist = cfg, sd, out, dist
        self.device = device
        # only rank 0 reports; every rank stops on the same cancel
        self.reporter = reporter if dist.is_main else Reporter(cancel=reporter.cancel_event)
        self.folder = RunFolder(out, dist.is_main)
        self.prior = prior
        self.n_classes = len(sd.classes)
        self.arcface_s = resolved_arcface_s(cfg, self.n_classes)
        self.mt = cfg["mean_teacher"]["enabled"]
        self.names = list(cfg["model"]["names"])
        # a cell type without labelled training wells has nothing to fine-tune on
        self.stages = [s for s in plan_stages(cfg, sd.cell_types) if s.cell_type is None
                       or len(sd.select("train", s.cell_type, labelled=True))]
        self.planner = EpochPlanner(cfg, sd, self.stages, prior.treatment, dist, self.mt)
        self.views = ImageViews(cfg, sd, device)
        self.dataset = SiteDataset(sd.cache, sd.channel_idx, sd.n_channels_all)
        self.train_batches = Batches()
        self.loader = self._make_loader(self.train_batches)
        self.pseudo = PseudoLabels(cfg, sd)
        self.evaluator = Evaluator(cfg, sd, self.dataset, self.views, prior,
                                   on_batch=lambda: self._progress(self.current_stage))
        self.served = ServedModels(self.names, self.mt)
        self.history: list[dict[str, Any]] = []
        self.data_path = str(Path(getattr(sd.cache.screen, "root", "")).resolve()) if hasattr(
            sd.cache, "screen") else ""
        self.skipped: dict[str, Any] | None = None
        # what run.json says at the end: "running" while later repeats are still to train
        self.complete_status = "complete"
        # the networks (build_models) and the stage's optimiser (_start_stage)
        self.students: list[Any] = []
        self.teachers: list[Any] = []
        self.fwd: list[Any] = []
        self.optimizer: Any = None
        # where the run is; saved with the training state
        self.stage_index = self.epoch = self.step = 0
        self.global_step = self.shared_steps = 0
        self.alpha_epoch_offset = 0
        self.acc: dict[str, float] = {}
        self.best_val = -1.0
        self.train_time = 0.0
        self.epoch_elapsed = 0.0
        # progress of this session
        self.total_steps = 0
        self._last_progress = 0.0
        self._session_steps = 0
        self._session_start = time.perf_counter()

    # -- infrastructure ----------------------------------------------------------------
    def _make_loader(self, batches: Batches) -> Any:
        import torch

        workers = self.cfg["data"]["workers"]
        return torch.utils.data.DataLoader(
            self.dataset, batch_sampler=batches, num_workers=workers,
            pin_memory=self.views.cuda and self.cfg["data"]["pin_memory"],
            persistent_workers=workers > 0)

    @property
    def current_stage(self) -> Stage:
        return self.stages[min(self.stage_index, len(self.stages) - 1)]

    def log(self, message: str) -> None:
        self.folder.log(message)
        if self.dist.is_main:
            self.reporter.log(message)

    def _progress(self, stage: Stage, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_progress < self.cfg["runtime"]["progress_every_s"]:
            return
        self._last_progress = now
        done = self.planner.steps_done(self.stage_index, self.epoch, self.step)
        total = self.total_steps
        rate = self._session_steps / max(now - self._session_start, 1e-9)
        eta = (total - done) / rate if rate > 0 else None
        self.reporter.progress(stage.name, done, total,
                               eta_s=None if eta is None else round(eta, 1))

    # -- models ------------------------------------------------------------------------
    def build_models(self) -> None:
        import torch

        torch.manual_seed(self.cfg["runtime"]["seed"])
        self.students = [
            create_network(self.cfg, n, i, len(self.sd.channels), self.n_classes,
                           self.arcface_s).to(self.device)
            for i, n in enumerate(self.names)]
        if self.views.channels_last:
            for s in self.students:
                s.to(memory_format=torch.channels_last)
        self.teachers = [new_teacher(s) for s in self.students]

    def _wrap(self) -> None:
        """DDP wrappers for the students' forward (gradients are all-reduced)."""
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.views.cuda else None
            self.fwd = [DDP(s, device_ids=ids) for s in self.students]
        else:
            self.fwd = list(self.students)

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
            **self.pseudo.state_dict(), "best_val": self.best_val,
            "acc": dict(self.acc), "history": json.dumps(self.history),
            "train_time": self.train_time, **self.served.state_dict(),
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
            self.optimizer = make_optimizer(self.cfg, self.stages[self.stage_index],
                                            self.students)
            self.optimizer.load_state_dict(st["optimizer"])
        torch.set_rng_state(st["rng"]["torch"])
        np_state = np.random.get_state()
        np.random.set_state((np_state[0], np.asarray(st["rng"]["numpy"], np.uint32),
                             st["rng"]["numpy_pos"], 0, 0.0))
        py = json.loads(st["rng"]["python"])
        random.setstate((py[0], tuple(py[1]), py[2]))
        self.pseudo.load_state(st)
        self.best_val = float(st["best_val"])
        self.acc = {k: float(v) for k, v in st["acc"].items()}
        self.history = json.loads(st["history"])
        self.served.load_state(st)
        self.train_time = float(st["train_time"])
        self.epoch_elapsed = float(st["epoch_start_elapsed"])

    def save_state(self) -> None:
        if self.dist.is_main:
            self.folder.save_state("last", self.state_dict())

    def _meta(self, role: str, stage: Stage, metrics: dict[str, Any],
              served: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "channels": self.sd.channels, "classes": self.sd.classes,
            "normalisation": self.sd.normalisation, "image_size": self.views.size,
            "config": self.cfg, "metrics": metrics, "data_fingerprint": self.sd.fingerprint,
            "cell_types": [stage.cell_type] if stage.cell_type else self.sd.cell_types,
            "role": role, "stage": stage.name, "engine_version": __version__,
            "plate_groups": self.prior.groups, "served": served or {},
        }

    def save_last(self, stage: Stage, metrics: dict[str, Any]) -> None:
        """This epoch's students and teachers in checkpoints/ (for inspection and resume)."""
        if not self.dist.is_main:
            return
        for name, s, t in zip(self.names, self.students, self.teachers, strict=True):
            self.folder.save_model(f"checkpoints/last_student_{name}", s,
                                   self._meta("student", stage, metrics))
            if self.mt:
                self.folder.save_model(f"checkpoints/last_teacher_{name}", t,
                                       self._meta("teacher", stage, metrics))

    def serve(self, stage: Stage, choices: list[ServeChoice], metrics: dict[str, Any]) -> None:
        """Write each chosen model (its student or teacher) as the stage's served model."""
        for choice in choices:
            stem = self.served.record(stage, choice)
            info = self.served.info[stem]
            model = (self.teachers if choice.role == "teacher" else self.students)[choice.index]
            self.folder.save_model(stem, model, self._meta(choice.role, stage, metrics,
                                                           served=info))

    def finished_ensembles(self) -> dict[str, list[str]]:
        return self.served.finished(self.stages, self.stage_index, self.epoch)

    def write_run_json(self, status: str) -> None:
        if not self.dist.is_main:
            return
        ensembles = self.finished_ensembles()
        if status == "complete":
            status = self.complete_status
        self.folder.write_run({
            "format": "deepnoise-run", "version": 1, "status": status,
            "data": self.data_path, "ensembles": ensembles,
            "classes": self.sd.classes,
            "channels": self.sd.channels, "cell_types": self.sd.cell_types,
            "image_size": self.views.size, "normalisation": self.cfg["data"]["normalisation"],
            "precision": self.views.precision,
            "validation_experiments": self.sd.validation_experiments,
            "stages": [s.name for s in self.stages], "data_fingerprint": self.sd.fingerprint,
            "engine_version": __version__, "skipped": self.skipped,
            "final_metrics": {m["stage"]: m for m in self.history if m.get("stage_end")},
            "served": {stem: info for stems in ensembles.values()
                       for stem in stems if (info := self.served.info.get(stem))},
            "plate_groups": self.prior.groups,
            "arcface_s": self.arcface_s if self.cfg["model"]["head"] == "arcface" else None,
        })

    def write_metrics(self) -> None:
        self.folder.write_metrics(self.history)

    # -- steps -------------------------------------------------------------------------
    def _consistency_weight(self, epoch_f: float) -> float:
        if not self.mt:
            return 0.0
        mtc = self.cfg["mean_teacher"]
        return (consistency_weight(self.alpha_epoch_offset + epoch_f,
                                   mtc["consistency_weight"], mtc["rampup_epochs"])
                * consistency_class_scale(self.n_classes, mtc["reference_classes"]))

    def _margin(self, logits: Any, y: Any) -> Any:
        """ArcFace's margin on the labelled logits (plain logits with another head)."""
        m = self.cfg["model"]
        return arcface_margin(logits, y, self.arcface_s, m["arcface_m"]) \
            if m["head"] == "arcface" else logits

    def _losses(self, xs: Any, xt: Any, labels: Any, pl_t: Any, w_pl: float,
                w_cons: float) -> tuple[Any, dict[str, float]]:
        """The weighted loss summed over the students, and its parts (mean per model)."""
        import torch
        import torch.nn.functional as F

        lab, unl = labels >= 0, pl_t >= 0
        total = torch.zeros((), device=self.device)
        parts = {"sup": 0.0, "cons": 0.0, "pl": 0.0}
        with self.views.autocast():
            for j, fwd in enumerate(self.fwd):
                logits = fwd(xs).float()
                zero = logits.sum() * 0.0  # keeps every rank's graph identical for DDP
                sup = (F.cross_entropy(self._margin(logits[lab], labels[lab]), labels[lab])
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
        return total, parts

    def train_step(self, stage: Stage, plan: dict[str, Any], pos: np.ndarray, imgs: Any,
                   epoch_f: float) -> dict[str, float]:
        """One optimiser step of every student on the plan's positions ``pos``, then the
        teachers' EMA update; returns the loss parts."""
        import torch

        wells, rows = plan["wells"][pos], plan["rows"][pos]
        labels = torch.as_tensor(self.sd.well_label[wells], device=self.device)
        pl_t = torch.as_tensor(self.pseudo.for_wells(wells), device=self.device)
        w_pl = self.pseudo.weight()
        w_cons = self._consistency_weight(epoch_f)
        sub = lambda p: {k: v[pos] for k, v in p.items()}  # noqa: E731
        imgs = imgs.to(self.device, non_blocking=True)
        xs = self.views.views(imgs, rows, sub(plan["student"]))
        xt = self.views.views(imgs, rows, sub(plan["teacher"])) if self.mt else None
        total, parts = self._losses(xs, xt, labels, pl_t, w_pl, w_cons)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if self.mt:
            mtc = self.cfg["mean_teacher"]
            alpha = ema_alpha(self.global_step, self.alpha_epoch_offset + int(epoch_f) + 1,
                              mtc["alphas"], mtc["alpha_epochs"],
                              steps_per_epoch=self.planner.steps_per_epoch(stage),
                              reference_steps_per_epoch=mtc["reference_steps_per_epoch"])
            for t, s in zip(self.teachers, self.students, strict=True):
                ema_update(t, s, alpha)
        self.global_step += 1
        parts["loss"] = float(total.detach()) / len(self.fwd)
        return parts

    # -- evaluation ----------------------------------------------------------------------
    def validate(self, stage: Stage) -> dict[str, Any]:
        """Accuracy of students, teachers and the ensemble on the validation experiments'
        treatment wells over the treatment classes (raw and plate-balanced)."""
        return self.evaluator.validate(self.sd.select("val", stage.cell_type), self.names,
                                       self.students, self.teachers if self.mt else None)

    def refresh_pseudo_labels(self, stage: Stage) -> int:
        """Teacher-ensemble predictions on the stage's unlabelled wells into the pseudo
        labels; returns the number of wells."""
        wells = self.sd.select("train", stage.cell_type, labelled=False)
        if len(wells) == 0:
            return 0
        models = self.teachers if self.mt else self.students
        lp = np.mean([log_softmax(x) for x in self.evaluator.predict(models, wells)], axis=0)
        self.pseudo.update(wells, lp, self.prior)
        return len(wells)

    # -- main loop -----------------------------------------------------------------------
    def _start_stage(self, index: int) -> None:
        """Fresh optimiser; fine-tuning stages start from the shared stage's served
        weights (its best by validation), which stay served unless fine-tuning beats them."""
        stage = self.stages[index]
        self.served.best_by_model = {}
        if stage.cell_type is not None:
            self._load_shared_start()
            self.global_step = self.shared_steps
        self.optimizer = make_optimizer(self.cfg, stage, self.students)
        self.best_val = -1.0
        self.epoch = self.step = 0
        self.acc = {}
        self.epoch_elapsed = 0.0
        if stage.cell_type is not None:
            val = self.validate(stage)
            self.serve(stage, self.served.best_choices(val, 0),
                       {k: v for k, v in val.items() if k != "per_model"})

    def _load_shared_start(self) -> None:
        """Students and teachers <- the shared stage's served models (or its final state
        when nothing was chosen by validation)."""
        shared = self.folder.load_state("shared_final")
        for j, name in enumerate(self.names):
            stem = f"models/shared_{name}"
            if self.served.info.get(stem, {}).get("score") is not None:
                state = self.folder.load_model_state(stem)
                self.students[j].load_state_dict(state)
                self.teachers[j].load_state_dict(state)
            else:
                self.students[j].load_state_dict(shared["students"][j])
                self.teachers[j].load_state_dict(shared["teachers"][j])

    def _resume(self) -> bool:
        """Load the last checkpoint; True when the run was already complete."""
        self.load_state(self.folder.load_state("last", map_location=str(self.device)))
        self.write_metrics()
        if self.stage_index >= len(self.stages):
            self.log("resume: the run is already complete")
            self.write_run_json("complete")  # a kill may have come just before it
            return True
        self.log(f"resumed at {self.stages[self.stage_index].name} epoch {self.epoch + 1} "
                 f"step {self.step}")
        return False

    def run(self, resume: bool) -> dict[str, Any]:
        """Train every stage (from the last checkpoint with ``resume``); returns
        :meth:`result`, raises ``Cancelled`` (``partial``: the result) when cancelled."""
        self.skipped = skipped_report(self.sd.cache.screen)  # in train.log and run.json
        self.log(describe_skipped(self.skipped))
        self.build_models()
        self._start_stage(0)
        if resume and self._resume():
            return self.result(cancelled=False)
        self._wrap()
        self.write_run_json("running")
        self.total_steps = self.planner.total_steps()
        self.log(f"training {', '.join(self.names)} on {self.device} (world {self.dist.world}, "
                 f"{self.views.precision}):"
                 f" {len(self.sd.classes)} classes, stages "
                 f"{', '.join(f'{s.name} x{s.epochs}' for s in self.stages)}")
        while self.stage_index < len(self.stages):
            stage = self.stages[self.stage_index]
            self.alpha_epoch_offset = 0 if stage.cell_type is None else self.stages[0].epochs
            for s in self.students + self.teachers:
                s.train()
            while self.epoch < stage.epochs:
                self.run_epoch(stage)
            self._finish_stage(stage)
        self.save_state()
        self.write_run_json("complete")
        return self.result(cancelled=False)

    def _finish_stage(self, stage: Stage) -> None:
        """Serve the stage's last weights where validation chose none, keep the shared
        stage's final state (fine-tuning starts from it), move to the next stage."""
        if self.dist.enabled:
            div = max_divergence(self.dist, self.students + self.teachers)
            self.log(f"{stage.name}: weights of the {self.dist.world} ranks "
                     f"{'agree' if div == 0 else f'differ by {div:.3g}'}")
        if self.dist.is_main:
            self.history[-1]["stage_end"] = True
            self.serve(stage, self.served.last_choices(stage), self.history[-1])
            if stage.cell_type is None:
                self.shared_steps = self.global_step
                self.folder.save_state("shared_final", {
                    "students": [s.state_dict() for s in self.students],
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

    def run_epoch(self, stage: Stage) -> None:
        """Train the rest of the current epoch, then validate, refresh pseudo labels,
        serve, checkpoint and report it."""
        t0 = time.perf_counter()
        self._train_epoch(stage, t0)
        sync_buffers(self.dist, self.students + self.teachers)
        val = self.validate(stage)
        score = (None if val["val_acc_ensemble_raw"] is None else
                 selection_score(val["val_acc_ensemble_raw"], val["val_acc_ensemble_balanced"]))
        improved = score is None or score > self.best_val
        if improved:
            self.best_val = -1.0 if score is None else score
        n_pl = (self.refresh_pseudo_labels(stage)
                if self.pseudo.due(stage.cell_type is None, self.epoch, improved) else 0)
        rec = self._epoch_record(stage, val, n_pl, t0)
        self.history.append(rec)
        self.epoch += 1
        self.step = 0
        self.acc = {}
        self.epoch_elapsed = 0.0
        self.save_last(stage, rec)
        self.serve(stage, self.served.best_choices(val, rec["epoch"]), rec)
        self.save_state()
        self.write_metrics()
        self.reporter.metrics(rec)
        acc = rec["val_acc_ensemble_balanced"]
        self.log(f"{stage.name} epoch {rec['epoch']}/{stage.epochs}: loss {rec['train_loss']:.4f}"
                 f" val acc (ensemble, balanced) "
                 f"{'-' if acc is None else f'{acc:.3f}'} {rec['images_per_s']:.1f} img/s")
        self._progress(stage, force=True)

    def _train_epoch(self, stage: Stage, t0: float) -> None:
        """The epoch's remaining steps; a cancel saves a resumable state and raises."""
        steps = self.planner.steps_per_epoch(stage)
        plan = self.planner.plan(self.stage_index, self.epoch)
        positions = [self.planner.positions(plan, k) for k in range(steps)]
        self.train_batches.batches = [plan["rows"][p].tolist() for p in positions[self.step:]]
        train_t0 = time.perf_counter()
        images = 0
        for imgs in self.loader:
            if self.reporter.cancelled:
                self._stop(stage, t0, train_t0)
            epoch_f = self.epoch + self.step / steps
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(self.cfg, stage, epoch_f)
            parts = self.train_step(stage, plan, positions[self.step], imgs, epoch_f)
            for k, v in parts.items():
                self.acc[k] = self.acc.get(k, 0.0) + v
            self.acc["n"] = self.acc.get("n", 0.0) + 1
            images += len(positions[self.step]) * self.dist.world
            self.step += 1
            self._session_steps += 1
            self._progress(stage)
        self.acc["images"] = self.acc.get("images", 0.0) + images
        self.acc["train_s"] = self.acc.get("train_s", 0.0) + time.perf_counter() - train_t0

    def _stop(self, stage: Stage, t0: float, train_t0: float) -> None:
        """Cancelled inside an epoch: save the state at this step and raise ``Cancelled``."""
        self.train_time += time.perf_counter() - train_t0
        self.epoch_elapsed += time.perf_counter() - t0
        self.save_state()
        where = f"{stage.name} epoch {self.epoch + 1} step {self.step}"
        self.log(f"cancelled at {where}; resume with --resume")
        self.write_run_json("cancelled")
        raise Cancelled(f"training cancelled at {where}", partial=self.result(cancelled=True))

    def _epoch_record(self, stage: Stage, val: dict[str, Any], n_pl: int,
                      t0: float) -> dict[str, Any]:
        """The epoch's metrics record (metrics.jsonl, the ``metrics`` event)."""
        n = max(self.acc.get("n", 0.0), 1.0)
        return {
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

    def result(self, cancelled: bool) -> dict[str, Any]:
        """The run's summary (``run_training``'s result, a cancel's ``partial``)."""
        return {
            "cancelled": cancelled, "out": str(self.out),
            "stage": self.current_stage.name,
            "epochs_done": len(self.history), "ensembles": self.finished_ensembles(),
            "final": self.history[-1] if self.history else None,
            "validation_experiments": self.sd.validation_experiments,
        }
