"""``summary.json`` + ``summary.md``: accuracy (raw vs balanced) overall, per cell type and
per plate when labels are known, well counts and the plate groups used."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from deepnoise_engine.report.io import atomic_write_text, check_free

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"


def _accuracy(frame: pd.DataFrame) -> dict[str, Any]:
    """Accuracy over the treatment wells with a known label and a call."""
    treat = frame[(frame["well_type"] == "treatment") & frame["sirna"].notna()]
    known = treat[treat["sirna_true"].notna()]
    n = len(known)
    return {
        "wells": len(frame),
        "treatment_wells": len(treat),
        "labelled_wells": n,
        "changed_by_balancing": int(treat["changed_by_balancing"].fillna(False).sum()),
        "raw": float(known["correct_raw"].astype(bool).mean()) if n else None,
        "balanced": float(known["correct"].astype(bool).mean()) if n else None,
    }


def _plate_group(frame: pd.DataFrame) -> int | None:
    groups = frame["plate_group"].dropna()
    return int(groups.iloc[0]) if len(groups) else None


def summarise(
    report: pd.DataFrame,
    meta: Mapping[str, Any] | None = None,
    splits: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Summary of a scoring run from its per-plate rows (all plates concatenated).

    ``meta`` (models, balance method, tta, plate groups, ...) is copied in as is.
    ``splits`` (experiment -> "train" | "test") adds ``by_split``: accuracy on the labelled
    experiments (which a model may have trained on) apart from the unlabelled ones (whose
    labels come from hidden answers), the honest measure of generalisation.
    Accuracies are fractions in [0, 1], ``None`` where no label is known.
    """
    calls = report["sirna"].notna()
    controls = report[report["well_type"].isin(["positive_control", "negative_control"]) & calls]
    known_controls = controls[controls["sirna_true"].notna()]
    summary: dict[str, Any] = {
        "wells": len(report),
        "wells_without_call": int((~calls).sum()),
        "plates": int(report[["experiment", "plate"]].drop_duplicates().shape[0]),
        "accuracy": _accuracy(report),
        "controls_accuracy": (
            float(known_controls["correct"].astype(bool).mean()) if len(known_controls) else None
        ),
        "by_cell_type": {
            str(ct): _accuracy(df) for ct, df in report.groupby("cell_type", sort=True)
        },
        "by_plate": {
            f"{exp}/{int(plate)}": {
                **_accuracy(df),
                "plate_group": _plate_group(df),
            }
            for (exp, plate), df in report.groupby(["experiment", "plate"], sort=True)
        },
    }
    if splits:
        split_of = report["experiment"].astype(str).map(dict(splits)).fillna("unknown")
        summary["by_split"] = {
            str(split): _accuracy(df) for split, df in report.groupby(split_of, sort=True)
        }
    if meta:
        summary.update(dict(meta))
    return summary


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_summary_md(summary: Mapping[str, Any]) -> str:
    """A short human-readable Markdown version of ``summary``."""
    acc = summary["accuracy"]
    lines = [
        "# Scoring summary",
        "",
        f"- Plates: {summary['plates']}, wells: {summary['wells']} "
        f"({acc['treatment_wells']} treatment with a call, "
        f"{summary['wells_without_call']} without a call)",
        f"- Balancing: {summary.get('balance', '-')}, TTA: {summary.get('tta', '-')}",
        f"- Calls changed by balancing: {acc['changed_by_balancing']}",
    ]
    if summary.get("models"):
        lines.append(f"- Models: {', '.join(map(str, summary['models']))}")
    if acc["labelled_wells"]:
        lines.append(
            f"- Accuracy on {acc['labelled_wells']} labelled treatment wells: "
            f"raw {_pct(acc['raw'])}, balanced {_pct(acc['balanced'])}"
        )
        if summary.get("labels_from"):
            lines.append(f"- Labels from: {', '.join(summary['labels_from'])}")
        for split, split_acc in (summary.get("by_split") or {}).items():
            if split_acc["labelled_wells"]:
                lines.append(
                    f"- {split} experiments ({split_acc['labelled_wells']} wells): "
                    f"raw {_pct(split_acc['raw'])}, balanced {_pct(split_acc['balanced'])}"
                )
    else:
        lines.append("- No treatment labels known: accuracy not computed")
    lines += ["", "## By cell type", "", "| cell type | labelled | raw | balanced |",
              "| --- | ---: | ---: | ---: |"]
    for ct, a in summary["by_cell_type"].items():
        lines.append(f"| {ct} | {a['labelled_wells']} | {_pct(a['raw'])} | {_pct(a['balanced'])} |")
    lines += ["", "## By plate", "",
              "| plate | group | wells | labelled | raw | balanced | changed |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key, a in summary["by_plate"].items():
        group = "-" if a["plate_group"] is None else str(a["plate_group"])
        lines.append(
            f"| {key} | {group} | {a['wells']} | {a['labelled_wells']} | {_pct(a['raw'])} "
            f"| {_pct(a['balanced'])} | {a['changed_by_balancing']} |"
        )
    groups = summary.get("plate_groups")
    if groups and groups.get("groups"):
        lines += ["", "## Plate groups", "",
                  f"{len(groups['groups'])} groups of sizes "
                  f"{', '.join(str(len(g)) for g in groups['groups'])}; "
                  f"{len(groups.get('inferred', {}))} plates inferred from predictions."]
    return "\n".join(lines) + "\n"


def summary_paths(out: Path) -> list[Path]:
    return [Path(out) / SUMMARY_JSON, Path(out) / SUMMARY_MD]


def write_summary(summary: Mapping[str, Any], out: Path, *, overwrite: bool = False
                  ) -> list[Path]:
    """Write ``summary.json`` and ``summary.md`` into ``out`` atomically."""
    paths = summary_paths(out)
    check_free(paths, overwrite)
    atomic_write_text(paths[0], json.dumps(summary, indent=2, sort_keys=False) + "\n")
    atomic_write_text(paths[1], render_summary_md(summary))
    return paths


def read_summary(out: Path) -> dict[str, Any]:
    """Read ``summary.json`` from a score folder."""
    return json.loads((Path(out) / SUMMARY_JSON).read_text(encoding="utf-8"))
