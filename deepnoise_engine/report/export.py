"""Export a scoring run's results: chosen per-plate CSVs, the submission CSV and
optionally a plate-map PNG per plate. The app's export dialog and the engine's
``export`` request call ``export_reports``."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from deepnoise_engine.report.figure import write_plate_map
from deepnoise_engine.report.io import ReportError, atomic_write, check_free
from deepnoise_engine.report.plate_report import (
    list_plate_reports,
    plate_report_name,
    read_plate_report,
)
from deepnoise_engine.report.review import read_decisions, with_decisions
from deepnoise_engine.report.submission import write_submission

SUBMISSION_NAME = "submission.csv"

PlateKey = tuple[str, int]


def parse_plates(plates: Iterable[str | tuple[str, int]] | str | None) -> list[PlateKey] | None:
    """``"HEPG2-01:1,HEPG2-01:2"`` or ``["HEPG2-01:1", ("U2OS-01", 3)]`` -> keys; None = all.

    ``EXP/P`` (``Plate.key``) is accepted too. Raises ``ValueError`` naming the bad item.
    """
    if plates is None:
        return None
    items = plates.split(",") if isinstance(plates, str) else list(plates)
    keys: list[PlateKey] = []
    for item in items:
        if isinstance(item, tuple):
            keys.append((str(item[0]), int(item[1])))
            continue
        text = str(item).strip()
        exp, sep, plate = text.rpartition(":") if ":" in text else text.rpartition("/")
        if not sep or not exp or not plate.strip().isdigit():
            raise ValueError(f"bad plate {text!r}: expected EXPERIMENT:PLATE, e.g. HEPG2-01:1")
        keys.append((exp.strip(), int(plate)))
    return keys


def export_reports(
    score_dir: Path,
    out: Path,
    *,
    plates: Iterable[str | tuple[str, int]] | str | None = None,
    submission: bool = True,
    figures: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Copy the chosen plates' CSVs from ``score_dir`` to ``out`` (with the review queue's
    ``review_decision`` / ``review_note`` columns when ``review.csv`` exists); write the submission
    for those plates (``submission.csv``) and, with ``figures``, ``{exp}_Plate{p}.png``.

    Checks every target first: existing files are kept and reported (``OutputExistsError``)
    unless ``overwrite``. Returns the written paths.
    """
    from deepnoise_engine.report.output_set import check_score_folder

    score_dir, out = Path(score_dir), Path(out)
    listed = check_score_folder(score_dir)  # never export a partial set
    available = {k: p for k, p in list_plate_reports(score_dir).items()
                 if listed is None or p.name in listed}  # not another run's leftovers
    if not available:
        raise ReportError(f"{score_dir}: no per-plate reports (*_PlateN.csv) found")
    wanted = parse_plates(plates)
    if wanted is None:
        chosen = available
    else:
        missing = [f"{e}:{p}" for e, p in wanted if (e, p) not in available]
        if missing:
            raise ReportError(f"{score_dir}: no report for plate(s) {', '.join(missing)}")
        chosen = {key: available[key] for key in wanted}
    if out.resolve() == score_dir.resolve():
        raise ReportError(f"{out}: export folder must differ from the score folder")
    targets = [out / path.name for path in chosen.values()]
    if submission:
        targets.append(out / SUBMISSION_NAME)
    figure_names = {key: plate_report_name(*key, suffix=".png") for key in chosen}
    if figures:
        targets += [out / name for name in figure_names.values()]
    check_free(targets, overwrite)
    frames = {key: read_plate_report(path) for key, path in chosen.items()}  # validates
    decisions = read_decisions(score_dir)
    written: list[Path] = []
    for path in chosen.values():
        if len(decisions):  # the review queue's decisions become two more columns
            copy = lambda tmp, src=path: with_decisions(  # noqa: E731
                pd.read_csv(src, dtype=str, keep_default_na=False), decisions
            ).to_csv(tmp, index=False, encoding="utf-8")
        else:
            copy = lambda tmp, src=path: shutil.copyfile(src, tmp)  # noqa: E731
        written.append(atomic_write(out / path.name, copy))
    if submission:
        combined = pd.concat(frames.values(), ignore_index=True)
        written.append(write_submission(combined, out / SUBMISSION_NAME, overwrite=True))
    if figures:
        for key, name in figure_names.items():
            written.append(write_plate_map(frames[key], out / name, overwrite=True))
    return written
