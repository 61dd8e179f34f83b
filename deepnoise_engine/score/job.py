"""The scoring job: screen -> pack cache -> models -> per-well predictions -> per-plate
balancing -> reports (per-plate CSVs, submission, summary).

``run_scoring`` is what ``deepnoise-engine score`` and the engine's ``score`` request run.
Torch is imported only when the models are loaded (inside ``_predict``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import log_softmax, softmax

from deepnoise_engine.balance import balanced_calls, check_method
from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.model_sets import ModelSet, channel_notes, check_models_fit, resolve_model_set
from deepnoise_engine.plate_groups import PlateGroups, plate_groups_for
from deepnoise_engine.report.export import SUBMISSION_NAME, parse_plates
from deepnoise_engine.report.output_set import MANIFEST
from deepnoise_engine.report.plate_report import TOP_K, plate_report_name, to_report_frame
from deepnoise_engine.report.profiles import profile_names, render_scoring_profiles
from deepnoise_engine.report.summary import summarise, summary_paths
from deepnoise_engine.score.outputs import check_score_outputs, write_score_set
from deepnoise_engine.screen.model import Screen, WellType, parse_well
from deepnoise_engine.screen.skipped import describe_skipped, skipped_report
from deepnoise_engine.train.ddp import (
    DistInfo,
    barrier,
    env_world_size,
    init_from_env,
    shutdown,
)

PlateKey = tuple[str, int]

#: Hidden labels written by ``make_demo`` for its test experiments (evaluation only).
ANSWERS_FILE = Path("answers") / "test_answers.csv"


def _stage(reporter: Reporter, stage: str, done: int, total: int, t0: float) -> None:
    """Progress of ``stage`` with the ETA counted from the job's start ``t0``."""
    elapsed = time.monotonic() - t0
    eta = elapsed / done * (total - done) if done else None
    reporter.progress(stage, done, total, eta_s=None if eta is None else round(eta, 1))


# -- the job ----------------------------------------------------------------------------

def _read_answers(root: Path) -> dict[str, str]:
    path = Path(root) / ANSWERS_FILE
    if not path.is_file():
        return {}
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"id_code", "sirna"} <= set(frame.columns):
        raise ValueError(f"{path}: expected columns id_code and sirna")
    return dict(zip(frame["id_code"], frame["sirna"], strict=True))


def _choose_plates(screen: Screen, plates: Iterable[str | PlateKey] | str | None
                   ) -> list[PlateKey]:
    wanted = parse_plates(plates)
    every = [(p.experiment, p.index) for p in screen.plates()]
    if wanted is None:
        return every
    unknown = [f"{e}:{p}" for e, p in wanted if (e, p) not in set(every)]
    if unknown:
        raise ValueError(f"plate(s) {', '.join(unknown)} not in screen {screen.root}")
    return list(dict.fromkeys(wanted))


def _experiments_of(screen: Screen, plates: Sequence[PlateKey]) -> Screen:
    """The screen restricted to the experiments of ``plates`` (whole experiments, so that
    experiment-level normalisation statistics stay right), so scoring a few plates of a
    big screen packs only those experiments. Experiments and plates are shared, not copied."""
    names = {e for e, _ in plates}
    if names >= set(screen.experiments):
        return screen
    return dataclasses.replace(
        screen, experiments={n: e for n, e in screen.experiments.items() if n in names})


def output_paths(out: Path, plates: Sequence[PlateKey], submission: Path | None) -> list[Path]:
    """Every file a scoring run writes into ``out`` (and the extra submission copy)."""
    paths = [out / plate_report_name(e, p) for e, p in plates]
    paths += [out / SUBMISSION_NAME, *summary_paths(out), out / MANIFEST]
    if submission is not None:
        paths.append(Path(submission))
    return paths


def _predict(
    model_set: ModelSet,
    cache: Any,
    rows_by_well: dict[str, list[int]],
    cell_types: set[str],
    *,
    tta: int,
    batch_size: int,
    device: str,
    reporter: Reporter,
    embeddings: dict[str, dict[str, np.ndarray]] | None = None,
    model_log_probs: dict[str, dict[str, np.ndarray]] | None = None,
) -> dict[str, np.ndarray]:
    """Run ``predict_wells`` (torch) with the ensembles the chosen cell types need; a
    cancel raises ``Cancelled`` with the partial result ``{"cancelled", "stage": "score"}``."""
    from deepnoise_engine.score.inference import predict_wells

    needed: dict[str, list[Path]] = {}
    for cell_type in sorted(cell_types):
        key = cell_type if cell_type in model_set.ensembles else "*"
        needed[key] = model_set.ensembles[key]
    if not needed:
        return {}
    try:
        return predict_wells(needed, cache, rows_by_well, tta=tta, batch_size=batch_size,
                             device=device, reporter=reporter,
                             embeddings=embeddings, model_log_probs=model_log_probs)
    except Cancelled as exc:
        raise Cancelled(str(exc), partial={"cancelled": True, "stage": "score"}) from None


def _join_process_group(device: str) -> DistInfo:
    """Under torchrun (``WORLD_SIZE`` > 1) join the process group: NCCL on GPUs, else gloo."""
    if env_world_size() <= 1:
        return DistInfo()
    return init_from_env(use_cuda=device != "cpu" and _cuda_available())


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


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
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.screen.pack_cache import PackCache

    check_method(balance)
    if int(tta) not in (1, 8):
        raise ValueError(f"tta must be 1 or 8, got {tta!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    reporter = reporter or Reporter()
    out = Path(out)
    model_list = [models] if isinstance(models, (str, Path)) else list(models)
    t0 = time.monotonic()
    reporter.log(f"opening screen {data}")
    screen = data if isinstance(data, Screen) else open_screen(data)
    chosen = _choose_plates(screen, plates)
    model_set = resolve_model_set(model_list)
    copy = check_score_outputs(out, chosen, Path(submission) if submission else None,
                               overwrite, extra=profile_names(len(model_set.metas)))
    check_models_fit(model_set, screen, chosen)
    for note in channel_notes(model_set, screen):
        reporter.log(note)
    classes = model_set.classes

    dist = _join_process_group(device)
    if dist.enabled and dist.world > 1 and device != "cpu" and _cuda_available():
        device = f"cuda:{dist.local_rank}"

    reporter.log("opening the pack cache (packing what is missing)")
    subset = _experiments_of(screen, chosen)
    if dist.enabled and not dist.is_main:
        barrier(dist)  # rank 0 packs alone; the others then open the finished cache
    cache = PackCache.open(subset, progress=reporter.emit if dist.is_main else None,
                           cancel=reporter.cancel_event)
    if dist.enabled and dist.is_main:
        barrier(dist)
    reporter.check_cancelled("scoring cancelled while packing",
                             partial={"cancelled": True, "stage": "pack"})
    chosen_set = set(chosen)
    sites = cache.sites
    in_chosen = np.array([(e, int(p)) in chosen_set
                          for e, p in zip(sites["experiment"], sites["plate"], strict=True)],
                         dtype=bool)
    usable = sites[in_chosen & sites["ok"].to_numpy()]
    rows_by_well = {str(k): [int(i) for i in v]
                    for k, v in usable.groupby("id_code").groups.items()}

    reporter.log(f"predicting {len(rows_by_well)} wells on {len(chosen)} plates "
                   f"(tta {tta}, {sum(map(len, model_set.ensembles.values()))} model(s))")
    embeddings: dict[str, dict[str, np.ndarray]] = {}
    model_log_probs: dict[str, dict[str, np.ndarray]] = {}
    scores = _predict(model_set, cache, rows_by_well, set(usable["cell_type"].astype(str)),
                      tta=int(tta), batch_size=int(batch_size), device=device,
                      reporter=reporter, embeddings=embeddings,
                      model_log_probs=model_log_probs)
    reporter.check_cancelled("scoring cancelled", partial={"cancelled": True, "stage": "score"})
    if dist.enabled:
        shutdown(dist)
        if not dist.is_main:  # rank 0 gathered every shard and writes the reports
            return {"cancelled": False, "rank": dist.rank, "out": str(out), "files": []}
    log_probs = {k: log_softmax(np.asarray(v, dtype=np.float64), axis=-1)
                 for k, v in scores.items()}

    frames, groups, fallbacks = _balance_and_report(
        screen, chosen, classes, log_probs, balance, reporter=reporter, t0=t0,
        model_groups=model_set.plate_groups)

    reporter.log(f"writing reports to {out}")
    answers_used = bool(_read_answers(screen.root))
    combined = pd.concat(frames.values(), ignore_index=True) if frames else to_report_frame([])
    labels_from = ["screen"] + ([str(ANSWERS_FILE)] if answers_used else [])
    skipped = skipped_report(screen, chosen)
    reporter.log(describe_skipped(skipped))
    meta = {
        "data": str(screen.root),
        "models": model_set.sources,
        "balance": balance,
        "tta": int(tta),
        "classes": len(classes),
        "labels_from": labels_from,
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
        screen=screen, cache=cache, rows_by_well=rows_by_well, log_probs=log_probs,
        classes=classes, embeddings=embeddings, model_log_probs=model_log_probs,
        answers=_read_answers(screen.root),
        normalisation_of={ct: model_set.metas[stems[0]].get("normalisation") or {}
                          for ct, stems in model_set.ensembles.items()})
    written = write_score_set(out, frames, combined, summary, copy, extra=profiles)
    _stage(reporter, "report", 1, 1, t0)
    return {
        "cancelled": False,
        "out": str(out),
        "plates": [f"{e}/{p}" for e, p in chosen],
        "files": [str(p) for p in written],
        "accuracy": summary["accuracy"],
        "accuracy_by_split": summary.get("by_split", {}),
        "summary": str(out / "summary.json"),
    }


def _balance_and_report(
    screen: Screen,
    plates: Sequence[PlateKey],
    classes: Sequence[str],
    log_probs: dict[str, np.ndarray],
    method: str,
    *,
    reporter: Reporter | None = None,
    t0: float | None = None,
    model_groups: Sequence[Sequence[str]] = (),
) -> tuple[dict[PlateKey, pd.DataFrame], PlateGroups, int]:
    """Balance each plate's treatment wells and build its report rows.

    ``log_probs``: id_code -> (K,) log-probabilities over ``classes``. Returns the report
    frames per plate, the plate groups used and the number of fallback wells (plates with
    more treatment wells than allowed classes).
    """
    t0 = time.monotonic() if t0 is None else t0
    reporter = reporter or Reporter()
    answers = _read_answers(screen.root)
    class_index = {c: i for i, c in enumerate(classes)}
    control_labels = {w.sirna for _, _, w in screen.wells()
                      if w.well_type.is_control and w.sirna is not None}
    treatment_idx = np.array([i for i, c in enumerate(classes) if c not in control_labels],
                             dtype=np.int64)
    if treatment_idx.size == 0:
        treatment_idx = np.arange(len(classes))

    # Treatment wells with predictions, per plate (for group inference and balancing).
    treat: dict[PlateKey, list[str]] = {}
    for key in plates:
        plate = screen.plate(*key)
        treat[key] = [w.id_code for w in plate.used_wells()
                      if w.well_type == WellType.TREATMENT and w.id_code in log_probs]
    probs = {key: np.exp(np.stack([log_probs[i] for i in ids])) if ids else
             np.zeros((0, len(classes))) for key, ids in treat.items()}
    groups = (plate_groups_for(screen, plates, probs, classes, model_groups)
              if method != "none" else PlateGroups([]))

    frames: dict[PlateKey, pd.DataFrame] = {}
    fallbacks = 0
    for n, key in enumerate(plates, start=1):
        plate = screen.plate(*key)
        exp = screen.experiments[key[0]]
        group = groups.by_plate.get(key)
        allowed = treatment_idx
        if group is not None and method != "none":
            members = np.array(sorted(class_index[c] for c in groups.groups[group]
                                      if c in class_index), dtype=np.int64)
            if members.size:
                allowed = members
        ids = treat[key]
        calls: dict[str, int] = {}
        if ids:
            lp = np.stack([log_probs[i] for i in ids])
            chosen, fallback = balanced_calls(lp, allowed, method)
            fallbacks += int(fallback.sum())
            calls = dict(zip(ids, (int(c) for c in chosen), strict=True))
        rows = [
            _well_row(screen, exp.cell_type, key, well, classes, log_probs.get(well.id_code),
                      calls.get(well.id_code), allowed, answers, group)
            for well in plate.used_wells()
        ]
        frames[key] = to_report_frame(rows)
        _stage(reporter, "balance", n, len(plates), t0)
    return frames, groups, fallbacks


def _well_row(
    screen: Screen,
    cell_type: str,
    key: PlateKey,
    well: Any,
    classes: Sequence[str],
    lp: np.ndarray | None,
    call: int | None,
    allowed: np.ndarray,
    answers: dict[str, str],
    group: int | None,
) -> dict[str, Any]:
    """One report row; ``call`` is the balanced class index of a treatment well (None for
    controls, which keep their raw call)."""
    id_code = well.id_code
    truth = well.sirna if well.sirna is not None else answers.get(id_code)
    sites_used = sum(1 for s in well.sites if s.ok)
    row: dict[str, Any] = {
        "id_code": id_code, "experiment": key[0], "plate": key[1], "well": well.name,
        "row": well.name[: len(well.name) - len(well.name.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))],
        "column": parse_well(well.name)[1] + 1,
        "cell_type": cell_type, "well_type": well.well_type.value, "sites_used": sites_used,
        "sirna_true": truth,
        "plate_group": group if well.well_type == WellType.TREATMENT else None,
    }
    if lp is None:  # a problem well: no usable site, no call
        row["sites_used"] = 0
        return row
    probs = np.exp(lp)
    raw = int(np.argmax(lp))
    top = np.argsort(-probs)[:TOP_K]
    for i, c in enumerate(top, start=1):
        row[f"top{i}_sirna"], row[f"top{i}_prob"] = classes[c], float(probs[c])
    if call is None:  # controls are not balanced: raw call over all classes
        call, cand = raw, np.arange(len(classes))
    else:
        cand = allowed
    # Confidence after balancing: probability renormalised over the plate's allowed classes.
    p_allowed = softmax(lp[cand])
    pos = int(np.flatnonzero(cand == call)[0]) if np.any(cand == call) else None
    conf = float(p_allowed[pos]) if pos is not None else float(probs[call])
    others = np.delete(p_allowed, pos) if pos is not None else p_allowed
    row.update(
        sirna_raw=classes[raw], prob_raw=float(probs[raw]), sirna=classes[call],
        confidence=conf, margin=conf - float(others.max()) if others.size else conf,
        changed_by_balancing=call != raw,
        correct_raw=None if truth is None else classes[raw] == truth,
        correct=None if truth is None else classes[call] == truth,
    )
    return row


def score_plates_from_log_probs(
    screen: Screen,
    log_probs: dict[str, np.ndarray],
    classes: Sequence[str],
    *,
    plates: Iterable[str | PlateKey] | str | None = None,
    balance: str = "assignment",
) -> tuple[dict[PlateKey, pd.DataFrame], dict[str, Any]]:
    """Balance + report rows from precomputed per-well log-probabilities (torch-free; used
    by benchmarks and tests). Returns (frames per plate, plate groups as a dict)."""
    chosen = _choose_plates(screen, plates)
    lp = {k: log_softmax(np.asarray(v, dtype=np.float64)) for k, v in log_probs.items()}
    frames, groups, _ = _balance_and_report(screen, chosen, classes, lp, balance)
    return frames, groups.to_dict()


__all__ = [
    "ANSWERS_FILE",
    "ModelSet",
    "PlateGroups",
    "check_models_fit",
    "output_paths",
    "plate_groups_for",
    "resolve_model_set",
    "run_scoring",
    "score_plates_from_log_probs",
]
