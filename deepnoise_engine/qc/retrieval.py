"""Retrieval metrics on well profiles: mean average precision (copairs) and k-NN mixing.

A query well ranks the other wells by cosine similarity; its average precision (AP)
measures how high its *positives* come among its *negatives*. AP and its chance level are
copairs' (the JUMP Cell Painting
consortium's metric: ``ap_contiguous``, ``expected_ap``); DeepNoise builds the rank lists
block-wise instead of copairs' ``find_pairs`` + ``build_rank_lists`` (a global sort of all
pairs): every query is ranked against the wells of its block (a random ~``block`` wells,
whole siRNA groups for replicate retrieval), so 20,000 wells cost ~20,000 x block
similarities instead of 20,000^2, one matrix product and one row sort per block. With one
block holding every well the APs equal copairs' ``average_precision`` (tests check it).

Tasks (``TASKS``):
- ``sirna``: positives are the same siRNA in *other experiments* of the same cell type,
  negatives other siRNAs of that cell type (higher is better: the profile keeps the
  biology; within a cell type because each cell type may have its own model, whose
  embeddings do not compare with another model's);
- ``experiment``: positives the same experiment, negatives other experiments of the same
  cell type, both with other siRNAs (lower is better: the experiment is noise);
- ``plate``: positives the same plate, negatives other plates of the same experiment, both
  with other siRNAs (lower is better).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from copairs.compute import ap_contiguous
from copairs.map.normalization import expected_ap


@dataclass(frozen=True)
class Task:
    """Which pairs are positives and negatives (copairs' sameby/diffby rules)."""

    name: str
    group: str  # the mAP averages per value of this column (copairs' "sameby")
    pos_same: tuple[str, ...]
    pos_diff: tuple[str, ...]
    neg_same: tuple[str, ...]
    neg_diff: tuple[str, ...]
    higher_is_better: bool


TASKS: dict[str, Task] = {
    "sirna": Task("sirna", "sirna", ("sirna", "cell_type"), ("experiment",), ("cell_type",),
                  ("sirna",), higher_is_better=True),
    "experiment": Task("experiment", "experiment", ("experiment",), ("sirna",),
                       ("cell_type",), ("experiment", "sirna"), higher_is_better=False),
    "plate": Task("plate", "plate_key", ("plate_key",), ("sirna",), ("experiment",),
                  ("plate_key", "sirna"), higher_is_better=False),
}

#: the column whose groups a block keeps whole (a siRNA's replicates rank against each other)
BLOCK_BY = "sirna"


def unit_rows(features: np.ndarray, *, standardise: bool) -> np.ndarray:
    """Rows scaled to unit length (cosine = dot product); ``standardise`` first z-scores
    each feature over the wells (pixel statistics: channels on different scales)."""
    x = np.asarray(features, np.float32)
    x = np.where(np.isfinite(x), x, 0.0).astype(np.float32)
    if standardise:
        sd = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def make_blocks(meta: pd.DataFrame, block: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Sorted row indices per block: whole ``BLOCK_BY`` groups in random order, packed
    until a block holds at least ``block`` wells."""
    codes = pd.factorize(meta[BLOCK_BY])[0]
    if not len(codes):
        return []
    by_group = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[by_group], np.arange(codes.max() + 2))
    out, current, size = [], [], 0
    for g in rng.permutation(codes.max() + 1):
        current.append(by_group[starts[g]:starts[g + 1]])
        size += starts[g + 1] - starts[g]
        if size >= block:
            out.append(np.sort(np.concatenate(current)))
            current, size = [], 0
    if current:
        out.append(np.sort(np.concatenate(current)))
    return out


def _codes(meta: pd.DataFrame) -> dict[str, np.ndarray]:
    columns = {c for t in TASKS.values()
               for c in (*t.pos_same, *t.pos_diff, *t.neg_same, *t.neg_diff)}
    return {c: pd.factorize(meta[c])[0] for c in columns}


def _mask(codes: dict[str, np.ndarray], rows: np.ndarray, same: Sequence[str],
          diff: Sequence[str]) -> np.ndarray:
    """(m, m) mask: the two rows agree on every ``same`` column and differ on every ``diff``."""
    keep = np.ones((len(rows), len(rows)), bool)
    for c in same:
        v = codes[c][rows]
        keep &= v[:, None] == v[None, :]
    for c in diff:
        v = codes[c][rows]
        keep &= v[:, None] != v[None, :]
    np.fill_diagonal(keep, False)
    return keep


def _rank_labels(order: np.ndarray, pos: np.ndarray, neg: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's candidates (positives, negatives) in similarity order as copairs'
    relevance labels, concatenated row by row; and the candidates per row."""
    candidate = pos | neg
    ranked_pos = np.take_along_axis(pos, order, axis=1)
    ranked_candidate = np.take_along_axis(candidate, order, axis=1)
    return ranked_pos[ranked_candidate].astype(np.uint32), candidate.sum(axis=1)


def average_precisions(x: np.ndarray, meta: pd.DataFrame, tasks: Sequence[Task], *,
                       block: int = 512, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Per-well AP of each task for unit rows ``x``: ``{task name: frame}`` with columns
    ``row``, ``average_precision``, ``n_pos``, ``n_total``, ``expected_ap`` (random
    ranking); wells without a positive or a negative are left out. One matrix product
    and one row sort per block serve every task."""
    codes = _codes(meta)
    parts: dict[str, list] = {t.name: [] for t in tasks}
    for rows in make_blocks(meta, block, np.random.default_rng(seed)):
        sims = x[rows] @ x[rows].T
        np.fill_diagonal(sims, -np.inf)
        order = np.argsort(-sims, axis=1)
        for task in tasks:
            pos = _mask(codes, rows, task.pos_same, task.pos_diff)
            neg = _mask(codes, rows, task.neg_same, task.neg_diff)
            parts[task.name].append((rows, *_rank_labels(order, pos, neg)))
    return {name: _ap_frame(chunks) for name, chunks in parts.items()}


def _ap_frame(chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """copairs' ``ap_contiguous`` over the blocks' rank lists -> one frame."""
    columns = ["row", "average_precision", "n_pos", "n_total", "expected_ap"]
    if not chunks:
        return pd.DataFrame(columns=columns)
    rows = np.concatenate([c[0] for c in chunks])
    labels = np.concatenate([c[1] for c in chunks])
    counts = np.concatenate([c[2] for c in chunks])
    has = counts > 0
    if not has.any():
        return pd.DataFrame(columns=columns)
    ap, confs = ap_contiguous(labels, counts[has].astype(np.uint32))
    frame = pd.DataFrame({"row": rows[has], "average_precision": ap,
                          "n_pos": confs[:, 0].astype(int), "n_total": confs[:, 1].astype(int)})
    frame = frame[(frame["n_pos"] > 0) & (frame["n_pos"] < frame["n_total"])]
    frame["expected_ap"] = _expected(frame["n_pos"].to_numpy(), frame["n_total"].to_numpy())
    return frame.sort_values("row").reset_index(drop=True)[columns]


def _expected(n_pos: np.ndarray, n_total: np.ndarray) -> np.ndarray:
    """copairs' exact expected AP under random ranking, once per distinct (M, L)."""
    pairs, inverse = np.unique(np.stack([n_pos, n_total], 1), axis=0, return_inverse=True)
    values = np.array([expected_ap(int(m), int(t - m)) for m, t in pairs])
    return values[np.asarray(inverse).ravel()] if len(values) else np.zeros(0)


def summarise_map(aps: pd.DataFrame, meta: pd.DataFrame, task: Task) -> dict[str, float | int]:
    """mAP (mean over ``task.group`` values of their wells' mean AP, as copairs'
    ``mean_average_precision`` groups), its chance level (the same mean of expected APs)
    and the normalised mAP ``(mAP - chance) / (1 - chance)`` (0 at chance, 1 perfect)."""
    if aps.empty:
        return {"map": float("nan"), "chance": float("nan"), "normalised": float("nan"),
                "wells": 0, "groups": 0}
    aps = aps.assign(group=meta[task.group].to_numpy()[aps["row"].to_numpy().astype(int)])
    per_group = aps.groupby("group")[["average_precision", "expected_ap"]].mean()
    value, chance = per_group["average_precision"].mean(), per_group["expected_ap"].mean()
    return {"map": float(value), "chance": float(chance),
            "normalised": float((value - chance) / (1 - chance)) if chance < 1 else 0.0,
            "wells": len(aps), "groups": len(per_group)}


def mean_average_precisions(x: np.ndarray, meta: pd.DataFrame, *, block: int = 512,
                            seed: int = 0) -> dict[str, dict[str, float | int]]:
    """``summarise_map`` of every task in ``TASKS`` (one pass over the blocks)."""
    aps = average_precisions(x, meta, list(TASKS.values()), block=block, seed=seed)
    return {name: summarise_map(aps[name], meta, task) for name, task in TASKS.items()}


def knn_mixing(x: np.ndarray, meta: pd.DataFrame, label: str, within: str, *, k: int = 10,
               queries: int = 1000, seed: int = 0) -> float:
    """How well ``label`` (experiment) values mix among each query's ``k`` nearest wells of
    the same ``within`` value (cell type): ``mean(1 - same fraction) / mean(1 - expected
    same fraction)``; 1 = as mixed as a random draw, 0 = neighbours all share the label."""
    rng = np.random.default_rng(seed)
    labels = pd.factorize(meta[label])[0]
    groups = meta.groupby(within, sort=True).indices
    observed, expected = [], []
    per_group = max(1, queries // max(len(groups), 1))
    for rows in groups.values():
        if len(rows) <= k or len(np.unique(labels[rows])) < 2:
            continue
        chosen = rng.choice(rows, size=min(per_group, len(rows)), replace=False)
        sims = x[chosen] @ x[rows].T
        sims[np.arange(len(chosen)), np.searchsorted(rows, chosen)] = -np.inf  # not itself
        nearest = np.argpartition(-sims, k, axis=1)[:, :k]
        same = labels[rows][nearest] == labels[chosen][:, None]
        observed.append(same.mean(axis=1))
        counts = np.bincount(labels[rows], minlength=labels.max() + 1)
        expected.append((counts[labels[chosen]] - 1) / (len(rows) - 1))
    if not observed:
        return float("nan")
    mixed = 1 - np.concatenate(observed).mean()
    chance = 1 - np.concatenate(expected).mean()
    return float(mixed / chance) if chance > 0 else float("nan")
