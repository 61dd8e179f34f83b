"""Score a screen: screen -> pack cache -> models -> per-well predictions -> per-plate
balancing -> reports (per-plate CSVs, submission, summary, well profiles).

``run_scoring`` is what ``deepnoise-engine score`` and the engine's ``score`` request run.
Torch is imported only when the models are loaded (inside ``_predict``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import log_softmax

from deepnoise_engine.balance import check_method
from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.model_sets import ModelSet, channel_notes, check_models_fit, resolve_model_set
from deepnoise_engine.plate_groups import PlateGroups, PlateKey
from deepnoise_engine.report.plate_report import to_report_frame
from deepnoise_engine.report.profiles import profile_names, render_scoring_profiles
from deepnoise_engine.report.summary import summarise
from deepnoise_engine.screen.model import Screen
from deepnoise_engine.screen.skipped import describe_skipped, skipped_report
from deepnoise_engine.train.ddp import DistInfo, barrier, env_world_size, init_from_env, shutdown
from deepnoise_engine.workflows.score_outputs import check_score_outputs, write_score_set
from deepnoise_engine.workflows.score_report import (
    ANSWERS_FILE,
    balance_and_report,
    choose_plates,
    read_answers,
    score_plates_from_log_probs,
)

__all__ = ["ANSWERS_FILE", "run_scoring", "score_plates_from_log_probs"]


@dataclass
class _Inputs:
    """What a scoring run works on, checked before any work."""

    screen: Screen
    plates: list[PlateKey]
    model_set: ModelSet
    copy: Path | None  # the extra submission copy to write


@dataclass
class _Predictions:
    """Per well: log-probabilities, embeddings and each member model's log-probabilities."""

    rows_by_well: dict[str, list[int]]
    cell_types: set[str]
    log_probs: dict[str, np.ndarray] = field(default_factory=dict)
    embeddings: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    model_log_probs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def _check_options(balance: str, tta: int, batch_size: int) -> None:
    check_method(balance)
    if int(tta) not in (1, 8):
        raise ValueError(f"tta must be 1 or 8, got {tta!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")


def run_scoring(
    data: str | Path | Screen,
    models: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    plates: Iterable[str | PlateKey] | str | None = None,
    balance: str = "assignment",
    tta: int = 8,
    submission: str | Path | None = None,
    overwrite: bool = False,
    batch_size: int = 32,
    device: str = "auto",
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Score ``data`` with ``models`` and write the reports into ``out``.

    ``models``: train run folders and/or checkpoints (ensembled per cell type).
    ``plates``: ``"EXP:PLATE,..."`` or keys; None = every plate. ``balance``: assignment,
    paper or none. Writes ``{out}/{EXP}_Plate{p}.csv`` per plate, ``submission.csv``
    (plus a copy at ``submission`` when given), ``summary.json`` and ``summary.md``;
    refuses (``OutputExistsError``) to replace any of them unless ``overwrite``, before
    doing any work. Returns a JSON-safe dict; a cancel raises ``Cancelled`` (``partial``:
    ``{"cancelled": True, "stage"}``) and writes nothing.
    """
    _check_options(balance, tta, batch_size)
    reporter = reporter or Reporter()
    out = Path(out)
    t0 = time.monotonic()
    inputs = _open_inputs(data, models, out, plates, submission, overwrite, reporter)
    dist = _join_process_group(device)
    if dist.enabled and dist.world > 1 and device != "cpu" and _cuda_available():
        device = f"cuda:{dist.local_rank}"
    cache, predictions = _pack(inputs, dist, reporter)
    _predict(inputs, cache, predictions, tta=int(tta), batch_size=int(batch_size),
             device=device, reporter=reporter)
    if dist.enabled:
        shutdown(dist)
        if not dist.is_main:  # rank 0 gathered every shard and writes the reports
            return {"cancelled": False, "rank": dist.rank, "out": str(out), "files": []}
    frames, groups, fallbacks = balance_and_report(
        inputs.screen, inputs.plates, inputs.model_set.classes, predictions.log_probs,
        balance, reporter=reporter, model_groups=inputs.model_set.plate_groups)
    return _write_reports(inputs, out, cache, predictions, frames,
                          {"balance": balance, "tta": int(tta)}, groups, fallbacks,
                          reporter, t0)


def _open_inputs(data: str | Path | Screen, models: str | Path | Sequence[str | Path],
                 out: Path, plates: Iterable[str | PlateKey] | str | None,
                 submission: str | Path | None, overwrite: bool,
                 reporter: Reporter) -> _Inputs:
    """Open the screen, choose its plates, resolve the models and check that they fit
    and that the outputs may be written."""
    from deepnoise_engine.screen.open import open_screen

    model_list = [models] if isinstance(models, (str, Path)) else list(models)
    reporter.log(f"opening screen {data}")
    screen = data if isinstance(data, Screen) else open_screen(data)
    chosen = choose_plates(screen, plates)
    model_set = resolve_model_set(model_list)
    copy = check_score_outputs(out, chosen, Path(submission) if submission else None,
                               overwrite, extra=profile_names(len(model_set.metas)))
    check_models_fit(model_set, screen, chosen)
    for note in channel_notes(model_set, screen):
        reporter.log(note)
    return _Inputs(screen, chosen, model_set, copy)


def _experiments_of(screen: Screen, plates: Sequence[PlateKey]) -> Screen:
    """The screen restricted to the experiments of ``plates`` (whole experiments, so that
    experiment-level normalisation statistics stay right), so scoring a few plates of a
    big screen packs only those experiments. Experiments and plates are shared, not copied."""
    names = {e for e, _ in plates}
    if names >= set(screen.experiments):
        return screen
    return dataclasses.replace(
        screen, experiments={n: e for n, e in screen.experiments.items() if n in names})


def _pack(inputs: _Inputs, dist: DistInfo, reporter: Reporter) -> tuple[Any, _Predictions]:
    """Open the pack cache of the chosen plates' experiments (rank 0 packs what is
    missing); returns it and the usable cache rows of each chosen well."""
    from deepnoise_engine.screen.pack_cache import PackCache

    reporter.log("opening the pack cache (packing what is missing)")
    subset = _experiments_of(inputs.screen, inputs.plates)
    if dist.enabled and not dist.is_main:
        barrier(dist)  # rank 0 packs alone; the others then open the finished cache
    try:
        cache = PackCache.open(subset, reporter=reporter if dist.is_main
                               else Reporter(None, reporter.cancel_event))
    except Cancelled:
        cache = None
    if dist.enabled and dist.is_main:
        barrier(dist)  # after a cancel too, so that the other ranks never hang
    reporter.check_cancelled("scoring cancelled while packing",
                             partial={"cancelled": True, "stage": "pack"})
    chosen_set = set(inputs.plates)
    sites = cache.sites
    in_chosen = np.array([(e, int(p)) in chosen_set
                          for e, p in zip(sites["experiment"], sites["plate"], strict=True)],
                         dtype=bool)
    usable = sites[in_chosen & sites["ok"].to_numpy()]
    rows_by_well = {str(k): [int(i) for i in v]
                    for k, v in usable.groupby("id_code").groups.items()}
    return cache, _Predictions(rows_by_well, set(usable["cell_type"].astype(str)))


def _predict(inputs: _Inputs, cache: Any, predictions: _Predictions, *, tta: int,
             batch_size: int, device: str, reporter: Reporter) -> None:
    """Fill ``predictions`` with ``predict_wells`` (torch), using the ensembles the
    chosen wells' cell types need; a cancel raises ``Cancelled`` with the partial result
    ``{"cancelled", "stage": "score"}``."""
    from deepnoise_engine.score.inference import predict_wells

    model_set, rows_by_well = inputs.model_set, predictions.rows_by_well
    reporter.log(f"predicting {len(rows_by_well)} wells on {len(inputs.plates)} plates "
                 f"(tta {tta}, {sum(map(len, model_set.ensembles.values()))} model(s))")
    needed: dict[str, list[Path]] = {}
    for cell_type in sorted(predictions.cell_types):
        key = cell_type if cell_type in model_set.ensembles else "*"
        needed[key] = model_set.ensembles[key]
    scores: dict[str, np.ndarray] = {}
    try:
        if needed:
            scores = predict_wells(needed, cache, rows_by_well, tta=tta, batch_size=batch_size,
                                   device=device, reporter=reporter,
                                   embeddings=predictions.embeddings,
                                   model_log_probs=predictions.model_log_probs)
        reporter.check_cancelled("scoring cancelled")
    except Cancelled as exc:
        raise Cancelled(str(exc), partial={"cancelled": True, "stage": "score"}) from None
    predictions.log_probs = {k: log_softmax(np.asarray(v, dtype=np.float64), axis=-1)
                             for k, v in scores.items()}


def _join_process_group(device: str) -> DistInfo:
    """Under torchrun (``WORLD_SIZE`` > 1) join the process group: NCCL on GPUs, else gloo."""
    if env_world_size() <= 1:
        return DistInfo()
    return init_from_env(use_cuda=device != "cpu" and _cuda_available())


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _write_reports(inputs: _Inputs, out: Path, cache: Any, predictions: _Predictions,
                   frames: dict[PlateKey, pd.DataFrame], options: dict[str, Any],
                   groups: PlateGroups, fallbacks: int, reporter: Reporter,
                   t0: float) -> dict[str, Any]:
    """Summary, submission, plate reports and well profiles, written as one set;
    returns ``run_scoring``'s result."""
    screen, model_set = inputs.screen, inputs.model_set
    reporter.log(f"writing reports to {out}")
    answers = read_answers(screen.root)
    combined = pd.concat(frames.values(), ignore_index=True) if frames else to_report_frame([])
    skipped = skipped_report(screen, inputs.plates)
    reporter.log(describe_skipped(skipped))
    meta = {
        "data": str(screen.root),
        "models": model_set.sources,
        **options,
        "classes": len(model_set.classes),
        "labels_from": ["screen"] + ([str(ANSWERS_FILE)] if answers else []),
        "plate_groups": groups.to_dict(),
        "balance_fallback_wells": fallbacks,
        "skipped": skipped,
        "channel_notes": channel_notes(model_set, screen),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - t0, 2),
    }
    splits = {name: exp.split for name, exp in screen.experiments.items()}
    summary = summarise(combined, meta, splits=splits)
    profiles = render_scoring_profiles(
        screen=screen, cache=cache, rows_by_well=predictions.rows_by_well,
        log_probs=predictions.log_probs, classes=model_set.classes,
        embeddings=predictions.embeddings, model_log_probs=predictions.model_log_probs,
        answers=answers,
        normalisation_of={ct: model_set.metas[stems[0]].get("normalisation") or {}
                          for ct, stems in model_set.ensembles.items()})
    written = write_score_set(out, frames, combined, summary, inputs.copy, extra=profiles)
    reporter.progress("report", 1, 1, eta_s=0.0)
    return {
        "cancelled": False,
        "out": str(out),
        "plates": [f"{e}/{p}" for e, p in inputs.plates],
        "files": [str(p) for p in written],
        "accuracy": summary["accuracy"],
        "accuracy_by_split": summary.get("by_split", {}),
        "summary": str(out / "summary.json"),
    }
