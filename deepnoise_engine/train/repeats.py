"""Independent repeats of a training recipe (``model.repeats``), ensembled at scoring.

Two trainings of the same recipe from other seeds (initial weights, item order,
augmentations, and so their own pseudo labels) make different mistakes; averaging their
logits cancels part of them. Models trained together in one run share batches and
pseudo labels, and so share mistakes too (docs/science.md, "Independent repeats").

Repeat 1 is the run folder itself; repeat ``k`` >= 2 is a complete run folder of its
own in ``repeats/{k}`` (``runtime.seed`` + k - 1, ``model.repeats`` = 1). The top
``run.json`` says ``complete`` only once every repeat is, and then lists every repeat's
served models in its ensembles (stems relative to the top folder).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepnoise_engine.atomic_io import atomic_write_text
from deepnoise_engine.contract import Reporter
from deepnoise_engine.contract.run_folder import RUN_COMPLETE, RUN_JSON

#: Where repeat ``k`` >= 2 lives, relative to the top run folder.
REPEATS_DIR = "repeats"


def repeat_folder(out: Path, k: int) -> Path:
    """Repeat ``k``'s run folder (1: ``out`` itself)."""
    return out if k == 1 else out / REPEATS_DIR / str(k)


def repeat_seed(cfg: dict[str, Any], k: int) -> int:
    """Repeat ``k``'s ``runtime.seed``: the recipe's seed + k - 1."""
    return int(cfg["runtime"]["seed"]) + k - 1


def repeat_config(cfg: dict[str, Any], k: int) -> dict[str, Any]:
    """Repeat ``k``'s configuration: the recipe with ``runtime.seed`` + k - 1, one repeat."""
    if k == 1:
        return cfg
    sub = copy.deepcopy(cfg)
    sub["model"]["repeats"] = 1
    sub["runtime"]["seed"] = repeat_seed(cfg, k)
    return sub


def read_run(folder: Path) -> dict[str, Any]:
    """A run folder's ``run.json`` (``{}`` when missing or unreadable)."""
    try:
        doc = json.loads((folder / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def finish_top_run(out: Path, cfg: dict[str, Any]) -> dict[str, list[str]]:
    """Merge repeats 2..``model.repeats`` into the top ``run.json`` (ensembles, served, a
    ``repeats`` list) and mark it complete; returns the merged ensembles."""
    count = int(cfg["model"]["repeats"])
    top = read_run(out)
    ensembles = {key: list(stems) for key, stems in top.get("ensembles", {}).items()}
    served = dict(top.get("served") or {})
    repeats = [{"repeat": 1, "folder": ".", "seed": repeat_seed(cfg, 1)}]
    for k in range(2, count + 1):
        folder = repeat_folder(out, k)
        doc = read_run(folder)
        prefix = folder.relative_to(out).as_posix()
        for key, stems in doc.get("ensembles", {}).items():
            ensembles.setdefault(key, []).extend(f"{prefix}/{s}" for s in stems)
        served.update({f"{prefix}/{stem}": info
                       for stem, info in (doc.get("served") or {}).items()})
        repeats.append({"repeat": k, "folder": prefix, "seed": repeat_seed(cfg, k)})
    top.update(status=RUN_COMPLETE, ensembles=ensembles, served=served, repeats=repeats)
    atomic_write_text(out / RUN_JSON, json.dumps(top, indent=1) + "\n")
    return ensembles


def mark_top_run(out: Path, status: str) -> None:
    """Set the top ``run.json``'s status (a repeat after the first was cancelled)."""
    top = read_run(out)
    if top:
        top["status"] = status
        atomic_write_text(out / RUN_JSON, json.dumps(top, indent=1) + "\n")


class RepeatReporter(Reporter):
    """Repeat ``k`` of ``count``'s events as part of the whole run: progress over every
    repeat's steps, log lines that say which repeat, metrics records with ``repeat``."""

    def __init__(self, inner: Reporter, k: int, count: int) -> None:
        super().__init__(sink=inner.emit, cancel=inner.cancel_event)
        self.inner, self.k, self.count = inner, k, count
        self._s_per_step: float | None = None

    def progress(self, stage: str, done: float, total: float | None,
                 eta_s: float | None = None, **fields: Any) -> None:
        if not total:
            self.inner.progress(stage, done, total, eta_s, repeat=self.k, repeats=self.count,
                                **fields)
            return
        before = (self.k - 1) * total
        left_here = max(total - done, 0)
        left_all = left_here + (self.count - self.k) * total
        if eta_s is not None and left_here:
            self._s_per_step = eta_s / left_here
        # the later repeats take as long per step as this one
        eta_s = None if self._s_per_step is None else self._s_per_step * left_all
        self.inner.progress(stage, before + done, self.count * total, eta_s,
                            repeat=self.k, repeats=self.count, **fields)

    def log(self, message: str, level: str = "info") -> None:
        self.inner.log(f"repeat {self.k}/{self.count}: {message}", level)

    def metrics(self, record: Mapping[str, Any]) -> None:
        self.inner.metrics({**record, "repeat": self.k})
