"""What training measures and what it teaches itself: predictions on wells, validation
accuracy on the treatment wells, the selection score, and pseudo labels.

Balanced accuracy and balanced pseudo labels need the plate prior (plate groups, each
siRNA once per plate); it is handed in by the workflow that trains a screen (any object
with :class:`PlatePriorLike`'s members), so train imports no balancing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from deepnoise_engine.train.data import ScreenData, SiteDataset
from deepnoise_engine.train.epoch_plan import Batches
from deepnoise_engine.train.views import ImageViews

VAL_KEYS = ("val_acc_student_raw", "val_acc_student_balanced", "val_acc_teacher_raw",
            "val_acc_teacher_balanced")


class PlatePriorLike(Protocol):
    """What training needs from the plate prior (``balance.plate_prior.PlatePrior``)."""

    treatment: np.ndarray
    groups: list[list[str]]

    def accuracy(self, log_probs: np.ndarray, wells: np.ndarray,
                 labels: np.ndarray) -> tuple[float, float]: ...

    def balanced_calls(self, log_probs: np.ndarray, wells: np.ndarray, *,
                       use_labels: bool) -> np.ndarray: ...

    def treatment_wells(self, wells: np.ndarray) -> np.ndarray: ...


def selection_score(raw: float, balanced: float) -> float:
    """The number that picks the served weights and refreshes pseudo labels: the mean of
    raw and balanced treatment accuracy (balanced alone saturates at 100% early)."""
    return 0.5 * (raw + balanced)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


class Evaluator:
    """Mean logits of wells over their usable sites, and the validation metrics.

    ``on_batch`` is called after every batch (progress events keep flowing during long
    validations).
    """

    def __init__(self, cfg: dict[str, Any], sd: ScreenData, dataset: SiteDataset,
                 views: ImageViews, prior: PlatePriorLike, on_batch: Callable[[], None]) -> None:
        self.cfg, self.sd, self.dataset, self.views = cfg, sd, dataset, views
        self.prior = prior
        self.on_batch = on_batch
        self.n_classes = len(sd.classes)

    def _loader(self, rows: np.ndarray) -> tuple[Any, int]:
        import torch

        bs = self.cfg["model"]["eval_batch_size"]
        batches = Batches()
        batches.batches = [rows[i:i + bs].tolist() for i in range(0, len(rows), bs)]
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=batches,
            num_workers=min(self.cfg["data"]["workers"], len(batches.batches)),
            pin_memory=self.views.cuda and self.cfg["data"]["pin_memory"])
        return loader, bs

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
        loader, bs = self._loader(rows)
        was = [m.training for m in models]
        for m in models:
            m.eval()
        try:
            with torch.no_grad(), self.views.autocast():
                for b, imgs in enumerate(loader):
                    r = rows[b * bs:(b + 1) * bs]
                    x = self.views.plain(imgs.to(self.views.device, non_blocking=True), r)
                    o = owner[b * bs:(b + 1) * bs]
                    for k, m in enumerate(models):
                        out[k].index_add_(0, torch.as_tensor(o), m(x).double().cpu())
                    self.on_batch()
        finally:
            for m, w in zip(models, was, strict=True):
                m.train(w)
        return [(o.numpy() / counts).astype(np.float32) for o in out]

    def validate(self, wells: np.ndarray, names: list[str], students: list[Any],
                 teachers: list[Any] | None) -> dict[str, Any]:
        """Accuracy of students, teachers (None: no mean teacher) and the ensemble on the
        treatment ``wells`` over the treatment classes (raw and plate-balanced)."""
        wells = self.prior.treatment_wells(wells)
        keys = ("val_loss", *VAL_KEYS, "val_acc_ensemble_raw", "val_acc_ensemble_balanced")
        if len(wells) == 0:
            return {k: None for k in keys} | {"per_model": {}}
        models = list(students) + list(teachers or [])
        lp = [log_softmax(x) for x in self.predict(models, wells)]
        n = len(students)
        labels = self.sd.well_label[wells]
        per_model: dict[str, dict[str, Any]] = {}
        for j, name in enumerate(names):
            s_raw, s_bal = self.prior.accuracy(lp[j], wells, labels)
            t_raw, t_bal = (self.prior.accuracy(lp[n + j], wells, labels) if teachers
                            else (s_raw, s_bal))
            per_model[name] = {
                "val_loss": float(-lp[j][np.arange(len(wells)), labels].mean()),
                "val_acc_student_raw": s_raw, "val_acc_student_balanced": s_bal,
                "val_acc_teacher_raw": t_raw, "val_acc_teacher_balanced": t_bal,
            }
        ens = np.mean(lp[n:] if teachers else lp[:n], axis=0)
        e_raw, e_bal = self.prior.accuracy(ens, wells, labels)
        rec: dict[str, Any] = {k: float(np.mean([p[k] for p in per_model.values()]))
                               for k in ("val_loss", *VAL_KEYS)}
        rec.update(val_acc_ensemble_raw=e_raw, val_acc_ensemble_balanced=e_bal)
        for p in per_model.values():
            p.update(val_acc_ensemble_raw=e_raw, val_acc_ensemble_balanced=e_bal)
        rec["per_model"] = per_model
        return rec


class PseudoLabels:
    """One row per unlabelled training well (any cell type): blended teacher log-probs,
    whether they were set, and the balanced call that training learns from."""

    def __init__(self, cfg: dict[str, Any], sd: ScreenData) -> None:
        self.cfg = cfg["pseudo_labels"]
        self.wells = sd.select("train", labelled=False)
        self.pos = {int(w): i for i, w in enumerate(self.wells)}
        self.index = np.full(len(sd.wells), -1, np.int64)  # well -> pseudo-label row
        self.index[self.wells] = np.arange(len(self.wells))
        self.logits = np.zeros((len(self.wells), len(sd.classes)), np.float32)
        self.valid = np.zeros(len(self.wells), bool)
        self.labels = np.full(len(self.wells), -1, np.int64)

    def for_wells(self, wells: np.ndarray) -> np.ndarray:
        """The pseudo label of each well (-1: none, or a labelled well)."""
        if not len(self.labels):
            return np.full(len(wells), -1, np.int64)
        idx = self.index[wells]
        return np.where(idx >= 0, self.labels[np.maximum(idx, 0)], -1)

    def weight(self) -> float:
        """The pseudo-label loss weight: 0 until the first refresh."""
        return self.cfg["weight"] if self.cfg["enabled"] and self.valid.any() else 0.0

    def due(self, shared_stage: bool, epoch: int, improved: bool) -> bool:
        """Pseudo labels follow the teachers once they are worth following (from
        ``pseudo_labels.start_epoch`` of the shared stage on), refreshed when the
        teachers' validation score improves."""
        if not self.cfg["enabled"]:
            return False
        if shared_stage and epoch + 1 < self.cfg["start_epoch"]:
            return False
        return improved or not self.valid.any()

    def update(self, wells: np.ndarray, log_probs: np.ndarray, prior: PlatePriorLike) -> None:
        """Blend (old_weight * old + (1 - old_weight) * new) the teachers' ``log_probs``
        of ``wells``, then balance per plate over the treatment classes of the plate's
        group (inferred from the predictions)."""
        idx = np.array([self.pos[int(w)] for w in wells])
        old_w = self.cfg["old_weight"]
        valid = self.valid[idx]
        new = log_probs.copy()
        new[valid] = old_w * self.logits[idx][valid] + (1 - old_w) * log_probs[valid]
        self.logits[idx] = new
        self.valid[idx] = True
        self.labels[idx] = prior.balanced_calls(new, wells, use_labels=True)

    def state_dict(self) -> dict[str, Any]:
        return {"pl_logits": self.logits, "pl_valid": self.valid, "pl_labels": self.labels}

    def load_state(self, st: dict[str, Any]) -> None:
        self.logits = np.array(st["pl_logits"], np.float32)
        self.valid = np.array(st["pl_valid"], bool)
        self.labels = np.array(st["pl_labels"], np.int64)
