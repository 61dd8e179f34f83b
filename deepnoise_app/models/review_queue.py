"""The review queue (Qt-free): which wells deserve a second look, in what order.

Reasons, each a column of the queue (True/False):
- ``low confidence``: the call's confidence is below ``LOW_CONFIDENCE`` or below the
  run's ``LOWEST_FRACTION`` quantile;
- ``changed by balancing``: the plate assignment changed the raw call;
- ``models disagree``: the ensemble's members call different siRNAs (the score folder's
  ``profiles/log_prob_model{i}.parquet``);
- ``control call``: a treatment well whose raw call is a control siRNA;
- ``site problems``: fewer usable sites than the well has, or none.
Wells are ranked by the number of reasons, then by confidence (lowest first).
Decisions live in ``{score_dir}/review.csv`` (``deepnoise_engine.report.review``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REASONS = ("low confidence", "changed by balancing", "models disagree", "control call",
           "site problems")
LOW_CONFIDENCE = 0.5
LOWEST_FRACTION = 0.1


def model_disagreement(score_dir: Path | None) -> pd.Series:
    """id_code -> True where the ensemble's members' argmax calls differ (empty Series
    when the run has a single model or no per-model log-probabilities)."""
    if score_dir is None:
        return pd.Series(dtype=bool)
    folder = Path(score_dir) / "profiles"
    paths = sorted(folder.glob("log_prob_model*.parquet"))
    if len(paths) < 2:
        return pd.Series(dtype=bool)
    calls = []
    for path in paths:
        table = pd.read_parquet(path)
        features = [c for c in table.columns if c.startswith("Logprob_")]
        values = table[features].to_numpy(np.float32)
        call = np.where(np.isfinite(values).all(axis=1), values.argmax(axis=1), -1)
        calls.append(pd.Series(call, index=table["Metadata_IdCode"].astype(str)))
    stacked = pd.concat(calls, axis=1)
    scored = stacked.where(stacked >= 0)
    return scored.nunique(axis=1) > 1


def screen_facts(screen: Any) -> tuple[set[str], dict[str, int]]:
    """Control siRNA labels and the number of sites of every well (id_code -> sites)."""
    if screen is None:
        return set(), {}
    controls, sites = set(), {}
    for _, _, well in screen.wells():
        if well.well_type.is_control and well.sirna is not None:
            controls.add(str(well.sirna))
        sites[well.id_code] = len(well.sites)
    return controls, sites


def build_queue(predictions: dict[str, pd.DataFrame], *, screen: Any = None,
                score_dir: Path | None = None) -> pd.DataFrame:
    """Every called or problem well with its reasons, ranked (most reasons, lowest
    confidence first). Columns: id_code, experiment, plate, well, sirna, confidence,
    sites_used, one bool column per reason, ``reasons`` (count) and ``why`` (text)."""
    frames = [f for f in predictions.values() if "id_code" in f.columns]
    if not frames:
        return pd.DataFrame(columns=["id_code", *REASONS, "reasons", "why"])
    table = pd.concat(frames, ignore_index=True).drop_duplicates("id_code")
    controls, site_counts = screen_facts(screen)
    conf = pd.to_numeric(table["confidence"], errors="coerce")
    cutoff = conf.quantile(LOWEST_FRACTION) if conf.notna().any() else np.nan
    q = pd.DataFrame({
        "id_code": table["id_code"].astype(str), "experiment": table["experiment"].astype(str),
        "plate": table["plate"].astype(int), "well": table["well"].astype(str),
        "sirna": table["sirna"].astype("string"), "confidence": conf,
        "sites_used": pd.to_numeric(table["sites_used"], errors="coerce").fillna(0).astype(int),
    })
    treatment = table["well_type"].astype(str) == "treatment"
    q["low confidence"] = (conf < LOW_CONFIDENCE) | (conf < cutoff)
    q["changed by balancing"] = table["changed_by_balancing"].astype("boolean").fillna(False)
    q["models disagree"] = q["id_code"].map(model_disagreement(score_dir)).fillna(False)
    q["control call"] = treatment & table["sirna_raw"].astype("string").isin(controls).fillna(
        False)
    expected = q["id_code"].map(site_counts)
    q["site problems"] = (q["sites_used"] == 0) | (expected.notna() & (q["sites_used"]
                                                                       < expected.fillna(0)))
    for reason in REASONS:
        q[reason] = q[reason].astype(bool)
    q["reasons"] = q[list(REASONS)].sum(axis=1)
    q["why"] = q[list(REASONS)].apply(lambda r: ", ".join(x for x in REASONS if r[x]), axis=1)
    q = q.sort_values(["reasons", "confidence"], ascending=[False, True], na_position="first")
    return q.reset_index(drop=True)


def filter_queue(queue: pd.DataFrame, reasons: set[str] | None = None, *,
                 decision: str = "all", decisions: pd.DataFrame | None = None,
                 only_flagged: bool = True) -> pd.DataFrame:
    """The queue's wells with any of ``reasons`` (None: any reason, or every well when not
    ``only_flagged``) and the given review state: all | undecided | accepted | rejected."""
    keep = pd.Series(True, index=queue.index)
    chosen = list(reasons) if reasons is not None else list(REASONS)
    if only_flagged or reasons is not None:
        keep &= queue[chosen].any(axis=1) if chosen else False
    if decision != "all":
        stored = queue["id_code"].map(decisions["decision"]) if decisions is not None and len(
            decisions) else pd.Series("", index=queue.index)
        stored = stored.fillna("")
        keep &= (stored == "") if decision == "undecided" else (stored == decision)
    return queue[keep].reset_index(drop=True)
