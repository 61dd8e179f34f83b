"""Which weights a run serves: per model, the student or teacher with the best
validation score of each stage (or the last epoch's when nothing validates)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from deepnoise_engine.train.epoch_plan import Stage
from deepnoise_engine.train.evaluation import selection_score


@dataclass(frozen=True)
class ServeChoice:
    """Serve model ``index``'s ``role`` weights, for the reasons in ``info``."""

    index: int
    role: str
    info: dict[str, Any]


class ServedModels:
    """The served checkpoint stems per cell type ("*": the shared stage), what each holds
    and why, and each model's best score in the current stage."""

    def __init__(self, names: list[str], mean_teacher: bool) -> None:
        self.names = names
        self.mean_teacher = mean_teacher
        self.served: dict[str, list[str]] = {}
        # per served checkpoint stem: which epoch and role it holds, and why
        self.info: dict[str, dict[str, Any]] = {}
        self.best_by_model: dict[str, float] = {}

    def record(self, stage: Stage, choice: ServeChoice) -> str:
        """Note ``choice`` as the stage's served model; returns its stem."""
        key = "*" if stage.cell_type is None else stage.cell_type
        prefix = "shared" if stage.cell_type is None else stage.cell_type
        stems = [f"models/{prefix}_{name}" for name in self.names]
        self.info[stems[choice.index]] = {"stage": stage.name, "role": choice.role,
                                          **choice.info}
        self.served[key] = stems
        return stems[choice.index]

    def best_choices(self, val: dict[str, Any], epoch: int) -> list[ServeChoice]:
        """Each model's student or teacher that beats the stage's best so far on the
        validation treatment wells (:func:`selection_score`)."""
        choices = []
        for j, name in enumerate(self.names):
            m = val["per_model"].get(name)
            if not m:
                continue
            roles = ["teacher", "student"] if self.mean_teacher else ["student"]
            scored = [(selection_score(m[f"val_acc_{r}_raw"], m[f"val_acc_{r}_balanced"]), r)
                      for r in roles]
            score, role = max(scored, key=lambda x: x[0])  # a tie keeps the teacher
            if score <= self.best_by_model.get(name, -1.0):
                continue
            self.best_by_model[name] = score
            why = ("best validation score so far (mean of raw and balanced accuracy on the "
                   "validation experiments' treatment wells)" if epoch else
                   "the shared stage's served weights, before fine-tuning")
            choices.append(ServeChoice(j, role, {
                "epoch": epoch, "score": score,
                "val_acc_raw": m[f"val_acc_{role}_raw"],
                "val_acc_balanced": m[f"val_acc_{role}_balanced"], "why": why}))
        return choices

    def last_choices(self, stage: Stage) -> list[ServeChoice]:
        """Stage end without validation: the last epoch's teachers (students without a
        mean teacher), for the models that validation never chose."""
        role = "teacher" if self.mean_teacher else "student"
        return [ServeChoice(j, role, {
                    "epoch": stage.epochs, "score": None, "val_acc_raw": None,
                    "val_acc_balanced": None,
                    "why": "last epoch (no validation experiment to choose by)"})
                for j, name in enumerate(self.names) if name not in self.best_by_model]

    def finished(self, stages: list[Stage], stage_index: int,
                 epoch: int) -> dict[str, list[str]]:
        """The served models of the stages that have finished (a stage still running has
        a best-so-far model on disk, but it is not offered for scoring yet)."""
        out = {}
        for i, st in enumerate(stages):
            done = i < stage_index or (i == stage_index and epoch >= st.epochs)
            key = "*" if st.cell_type is None else st.cell_type
            if done and key in self.served:
                out[key] = self.served[key]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"served": json.dumps(self.served), "served_info": json.dumps(self.info),
                "best_by_model": json.dumps(self.best_by_model)}

    def load_state(self, st: dict[str, Any]) -> None:
        self.served = json.loads(st["served"])
        self.info = json.loads(st["served_info"])
        self.best_by_model = json.loads(st["best_by_model"])
