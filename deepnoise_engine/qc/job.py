"""``run_qc``: does normalisation, and then the model, remove the experiment signal and keep
the siRNA signal? Reads a score folder's well profiles (``profiles/``), writes ``qc.json``,
``qc.md`` and figures into ``{score_dir}/qc`` (or ``out``). Torch-free.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepnoise_engine.contract import Reporter
from deepnoise_engine.qc.retrieval import knn_mixing, mean_average_precisions, unit_rows
from deepnoise_engine.report.io import ReportError, atomic_write_text, check_free
from deepnoise_engine.report.profiles import read_profile, read_profile_index, split_profile

QC_DIR = "qc"
FIGURES = ("qc_retrieval", "qc_map")

#: profile kind -> (label in the report, z-score features first)
PROFILES: dict[str, tuple[str, bool]] = {
    "pixels_raw": ("pixel statistics, raw", True),
    "pixels_normalised": ("pixel statistics, normalised", True),
    "embedding": ("model embedding (ensemble)", False),
}


def qc_paths(out: Path) -> list[Path]:
    """Every file ``run_qc`` writes into ``out``."""
    figures = [out / f"{name}.{ext}" for name in FIGURES for ext in ("png", "svg")]
    return [out / "qc.json", out / "qc.md", *figures]


def qc_meta(meta: pd.DataFrame) -> pd.DataFrame:
    """``Metadata_*`` columns -> the short names the tasks use."""
    return pd.DataFrame({
        "id_code": meta["Metadata_IdCode"].astype(str).to_numpy(),
        "sirna": meta["Metadata_siRNA"].astype(object).to_numpy(),
        "experiment": meta["Metadata_Experiment"].astype(str).to_numpy(),
        "plate_key": (meta["Metadata_Experiment"].astype(str) + "/"
                      + meta["Metadata_Plate"].astype(str)).to_numpy(),
        "cell_type": meta["Metadata_CellType"].astype(str).to_numpy(),
        "well_type": meta["Metadata_WellType"].astype(str).to_numpy(),
    })


def profile_sets(score_dir: Path) -> list[tuple[str, str, bool]]:
    """(profile kind, label, standardise) for every profile QC compares, in report order."""
    index = read_profile_index(score_dir)
    sets = [(k, label, z) for k, (label, z) in PROFILES.items() if k in index["files"]]
    models = index.get("models") or {}
    if len(models) > 1:
        sets += [(k, f"model {k.rsplit('model', 1)[1]} ({Path(v).name})", False)
                 for k, v in models.items()]
    return sets


def evaluate(features: np.ndarray, meta: pd.DataFrame, *, standardise: bool, block: int,
             seed: int) -> dict[str, Any]:
    """Every task's mAP and the k-NN mixing scores of one profile (labelled treatment
    wells only: ``meta`` from ``qc_meta``)."""
    keep = (meta["well_type"] == "treatment").to_numpy() & meta["sirna"].notna().to_numpy()
    keep &= np.isfinite(features).all(axis=1)
    meta = meta[keep].reset_index(drop=True)
    x = unit_rows(features[keep], standardise=standardise)
    result: dict[str, Any] = {"wells": len(meta), "dims": int(features.shape[1])}
    result.update(mean_average_precisions(x, meta, block=block, seed=seed))
    result["mixing_experiment"] = knn_mixing(x, meta, "experiment", "cell_type", seed=seed)
    result["mixing_plate"] = knn_mixing(x, meta, "plate_key", "experiment", seed=seed)
    return result


def run_qc(
    score_dir: str | Path,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    block: int = 512,
    seed: int = 0,
    figures: bool = True,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """QC of a score folder; returns the ``qc.json`` content plus ``files`` written.

    Raises ``ReportError`` (names the file) when the profiles are missing or unreadable and
    ``OutputExistsError`` when outputs exist and not ``overwrite``, before any work; a
    cancel raises ``Cancelled`` between two profiles and writes nothing.
    """
    reporter = reporter or Reporter()
    t0 = time.monotonic()
    score_dir = Path(score_dir)
    out = Path(out) if out is not None else score_dir / QC_DIR
    if not score_dir.is_dir():
        raise ReportError(f"{score_dir}: score folder not found")
    sets = profile_sets(score_dir)
    check_free(qc_paths(out) if figures else qc_paths(out)[:2], overwrite)
    results: dict[str, Any] = {}
    maps: dict[str, tuple[np.ndarray, pd.DataFrame]] = {}
    for n, (kind, label, standardise) in enumerate(sets):
        reporter.check_cancelled(f"qc cancelled after {n} of {len(sets)} profiles")
        meta_raw, features = split_profile(read_profile(score_dir, kind))
        meta = qc_meta(meta_raw)
        results[kind] = {"label": label,
                         **evaluate(features, meta, standardise=standardise, block=block,
                                    seed=seed)}
        maps[kind] = (unit_rows(features, standardise=standardise), meta)
        _progress(reporter, n + 1, len(sets) + 1, t0)
    report = _report(score_dir, results, t0)
    written = write_qc(report, out, maps if figures else None)
    _progress(reporter, len(sets) + 1, len(sets) + 1, t0)
    return {**_json_safe(report), "out": str(out), "files": [str(p) for p in written]}


def _progress(reporter: Reporter, done: int, total: int, t0: float) -> None:
    """Progress of stage ``qc`` with the ETA counted from the job's start ``t0``."""
    elapsed = time.monotonic() - t0
    eta = elapsed / done * (total - done) if done else None
    reporter.progress("qc", done, total, eta_s=None if eta is None else round(eta, 1))


def _report(score_dir: Path, results: dict[str, Any], t0: float) -> dict[str, Any]:
    first = next(iter(results.values()), {})
    return {
        "version": 1,
        "score_dir": str(score_dir),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wells": first.get("wells", 0),
        "profiles": results,
        "verdict": verdict(results),
        "seconds": round(time.monotonic() - t0, 2),
    }


def verdict(results: dict[str, Any], near: float = 0.1) -> dict[str, Any]:
    """Plain answers: is the experiment signal near chance (normalised mAP below ``near``)
    and is the siRNA signal above chance, per profile; did the model beat the pixels?
    None where the screen cannot tell (one experiment per cell type, no replicates)."""
    out: dict[str, Any] = {}
    for kind, r in results.items():
        exp, sirna = r["experiment"]["normalised"], r["sirna"]["normalised"]
        out[kind] = {"experiment_near_chance": bool(exp < near) if np.isfinite(exp) else None,
                     "sirna_above_chance": bool(sirna > near) if np.isfinite(sirna) else None}
    pixels = [results[k]["sirna"]["map"] for k in ("pixels_raw", "pixels_normalised")
              if k in results]
    if "embedding" in results and pixels:
        ours = results["embedding"]["sirna"]["map"]
        out["embedding_beats_pixels_on_sirna"] = (
            bool(ours > max(pixels)) if np.isfinite([ours, *pixels]).all() else None)
    return out


def write_qc(report: dict[str, Any], out: Path,
             maps: dict[str, tuple[np.ndarray, pd.DataFrame]] | None) -> list[Path]:
    """qc.json, qc.md and (with ``maps``) the figures, each written atomically."""
    from deepnoise_engine.qc.figures import write_map_figure, write_retrieval_figure

    written = []
    if maps is not None:
        written += write_retrieval_figure(report["profiles"], out / "qc_retrieval")
        written += write_map_figure(maps, report["profiles"], out / "qc_map")
    written.append(atomic_write_text(out / "qc.md", qc_markdown(report)))
    written.append(atomic_write_text(out / "qc.json",
                                     json.dumps(_json_safe(report), indent=2) + "\n"))
    return written


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _answer(value: bool | None, yes: str, no: str) -> str:
    return "not measurable here" if value is None else (yes if value else no)


def _number(value: float) -> str:
    return f"{value:.2f}" if np.isfinite(value) else "n/a"


def _cell(metric: dict[str, Any]) -> str:
    if not np.isfinite(metric["map"]):
        return "n/a"
    return f"{metric['map']:.3f} ({metric['chance']:.3f}; {metric['normalised']:+.2f})"


def qc_markdown(report: dict[str, Any]) -> str:
    """The human-readable report: the one table, then plain-language answers."""
    profiles = report["profiles"]
    lines = [
        "# Noise-removal QC",
        "",
        f"Score folder `{report['score_dir']}`: {report['wells']} labelled treatment wells.",
        "",
        "Each cell: mAP (chance; normalised, 0 = chance, 1 = perfect). siRNA: a well finds "
        "its siRNA's wells in other experiments of its cell type (higher is better). "
        "Experiment / plate: a well finds wells of its own experiment (among the same "
        "cell type) / plate (among the same experiment) with other siRNAs (lower is "
        "better). Mixing: how well experiments mix among the 10 nearest wells "
        "(1 = random, 0 = separated).",
        "",
        "| profile | siRNA mAP (higher is better) | experiment mAP (lower) | plate mAP (lower) "
        "| experiment mixing | plate mixing |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in profiles.values():
        lines.append(f"| {r['label']} | {_cell(r['sirna'])} | {_cell(r['experiment'])} | "
                     f"{_cell(r['plate'])} | {_number(r['mixing_experiment'])} | "
                     f"{_number(r['mixing_plate'])} |")
    lines += ["", "## Answers", ""]
    for kind, v in report["verdict"].items():
        if kind in profiles:
            label = profiles[kind]["label"]
            exp = _answer(v["experiment_near_chance"], "near chance", "present")
            sirna = _answer(v["sirna_above_chance"], "above chance", "absent")
            lines.append(f"- {label}: experiment signal {exp}, siRNA signal {sirna}.")
    beats = report["verdict"].get("embedding_beats_pixels_on_sirna")
    if beats is not None:
        lines.append(f"- The model's embedding {'finds' if beats else 'does not find'} "
                     "replicate siRNAs better than the pixel statistics.")
    lines += ["", "(Experiment retrieval needs two or more experiments per cell type, siRNA "
              "retrieval the same siRNA in two or more experiments; labelled treatment "
              "wells only.)"]
    lines += ["", "Figures: `qc_retrieval.png` (mAP per profile and task, chance marked), "
              "`qc_map.png` (PCA of each profile, coloured by experiment).", ""]
    return "\n".join(lines)
