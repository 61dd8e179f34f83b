"""Training data: the pack cache's site table turned into wells, labels and splits.

Items are wells; each epoch draws one random usable site per well (problem sites,
``ok=False``, are never used). Splits are by experiment: validation experiments (default:
one labelled experiment per cell type that has two or more) are held out completely and
never used as unlabelled data; wells without a label (treatments of test experiments)
are the unlabelled set; every labelled well elsewhere, the control wells of unlabelled
experiments included, is labelled training data.

Torch is only needed by :class:`SiteDataset` (imported lazily).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepnoise_engine.normalise.plate_normalizer import Normalizer
from deepnoise_engine.screen.model import sort_labels
from deepnoise_engine.train.split import default_validation_experiments


class TrainDataError(ValueError):
    """The screen cannot be trained on as configured (no labels, unknown experiment...)."""


def label_str(value: Any) -> str | None:
    """A label cell of the site table -> the label string (None when unlabelled)."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


# -- normalisation statistics -----------------------------------------------------------

def normalisation_stats(cache: Any, mode: str, position: str = "none"
                        ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(mean, std) per cache row, (n_sites, C_all) float32, plus a JSON-safe description
    (the ``Normalizer`` fitted on the cache; flagged rows have no statistics: 0 and 1)."""
    norm = Normalizer.fit(cache, mode, position)
    n, c = np.asarray(cache.site_mean).shape
    mean, std = np.zeros((n, c), np.float32), np.ones((n, c), np.float32)
    ok = np.flatnonzero(cache.sites["ok"].to_numpy(bool))
    if len(ok):
        m, s = norm.mean_std(ok)
        mean[ok], std[ok] = m, s
    return mean, std, norm.to_dict()


# -- wells and splits ---------------------------------------------------------------------

@dataclass
class ScreenData:
    """Everything the trainer needs from a screen, as flat arrays over wells and sites.

    ``mean``/``std``: (n_sites, C) normalisation statistics of the selected channels.
    Per well: ``well_label`` (-1 = unlabelled), ``well_role`` ("train" | "val" | "unused"),
    ``well_sites`` (usable cache rows), ``well_plate`` (plate key), ``well_cell_type``.
    """

    cache: Any
    channels: list[int]
    channel_idx: list[int]
    classes: list[str]
    mean: np.ndarray
    std: np.ndarray
    normalisation: dict[str, Any]
    wells: pd.DataFrame
    well_sites: list[np.ndarray]
    validation_experiments: list[str]
    fingerprint: str
    n_channels_all: int = 0
    cell_types: list[str] = field(default_factory=list)

    @property
    def well_label(self) -> np.ndarray:
        return self.wells["label"].to_numpy(np.int64)

    def select(self, role: str, cell_type: str | None = None, *,
               labelled: bool | None = None) -> np.ndarray:
        """Well indices with ``role`` (and cell type / labelled state when given)."""
        w = self.wells
        mask = (w["role"] == role).to_numpy(bool).copy()
        if cell_type is not None:
            mask &= (w["cell_type"] == cell_type).to_numpy()
        if labelled is not None:
            mask &= (w["label"].to_numpy() >= 0) == labelled
        return np.flatnonzero(mask)


def _fingerprint(sites: pd.DataFrame) -> str:
    cols = [c for c in ("site_id", "ok", "sirna", "well_type") if c in sites.columns]
    data = sites[cols].astype(str).to_csv(index=False).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _channel_indices(screen: Any, cache: Any,
                     wanted: list[int]) -> tuple[list[int], list[int], int]:
    """(the channels to train on, their positions among the screen's channels, how many
    channels the screen has)."""
    all_channels = [int(c) for c in getattr(screen, "channels", [])] or list(
        range(1, np.asarray(cache.site_mean).shape[1] + 1))
    wanted = wanted or all_channels
    missing = [c for c in wanted if c not in all_channels]
    if missing:
        raise TrainDataError(f"data.channels: channel(s) {missing} not in the screen "
                             f"(it has {all_channels})")
    return list(wanted), [all_channels.index(c) for c in wanted], len(all_channels)


def _well_table(sites: pd.DataFrame, classes: list[str], labels: list[str | None]
                ) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """One row per well with a usable site (experiment, plate key, cell type, well type,
    class index or -1) and each well's usable cache rows."""
    class_index = {c: i for i, c in enumerate(classes)}
    sites = sites.assign(_label=[class_index[lab] if lab is not None else -1 for lab in labels],
                         _row=np.arange(len(sites)))
    ok = sites["ok"].to_numpy(bool)
    records, well_sites = [], []
    for id_code, group in sites.groupby("id_code", sort=False):
        rows = group["_row"].to_numpy()[ok[group["_row"].to_numpy()]]
        if len(rows) == 0:
            continue  # every site of the well has a problem: nothing to learn from
        first = group.iloc[0]
        records.append({
            "id_code": id_code, "experiment": str(first["experiment"]),
            "plate": f"{first['experiment']}/{first['plate']}",
            "cell_type": str(first["cell_type"]), "well_type": str(first["well_type"]),
            "label": int(first["_label"]),
        })
        well_sites.append(rows.astype(np.int64))
    wells = pd.DataFrame.from_records(records)
    if wells.empty:
        raise TrainDataError("no well has a usable site")
    return wells, well_sites


def split_validation(experiment_cell_types: Mapping[str, str], labelled: Iterable[str],
                     explicit: Sequence[str] = (), per_cell_type: int = 1) -> list[str]:
    """The held-out validation experiments (the rule of docs/training.md).

    ``experiment_cell_types``: every experiment's cell type; ``labelled``: the experiments
    with labelled treatment wells. ``explicit`` ones when given (each must exist), else
    per cell type the last ``per_cell_type`` labelled experiments in sorted order, always
    keeping at least one for training.
    """
    if explicit:
        unknown = [e for e in explicit if e not in experiment_cell_types]
        if unknown:
            raise TrainDataError(f"data.validation_experiments: unknown experiment(s) {unknown}")
        return list(explicit)
    return default_validation_experiments(experiment_cell_types, labelled, per_cell_type)


def validation_experiments(wells: pd.DataFrame, explicit: Sequence[str],
                           per_cell_type: int) -> list[str]:
    """:func:`split_validation` of a well table (treatment labels decide which
    experiments count as labelled)."""
    treat = wells["well_type"].str.lower().eq("treatment")
    labelled = set(wells.loc[treat & (wells["label"] >= 0), "experiment"])
    exp_cell = wells.groupby("experiment")["cell_type"].first().to_dict()
    return split_validation(exp_cell, labelled, explicit, per_cell_type)


def _assign_roles(wells: pd.DataFrame, val_exps: list[str], use_unlabelled: bool) -> None:
    """``role`` per well: val (labelled, held out), unused (unlabelled in a validation
    experiment, or unlabelled without ``use_unlabelled``) or train."""
    is_val = wells["experiment"].isin(val_exps)
    role = np.where(is_val, np.where(wells["label"] >= 0, "val", "unused"), "train")
    if not use_unlabelled:
        role = np.where((role == "train") & (wells["label"] < 0), "unused", role)
    wells["role"] = role
    if not ((wells["role"] == "train") & (wells["label"] >= 0)).any():
        raise TrainDataError("no labelled training wells left after the validation split")


def build_screen_data(screen: Any, cache: Any, cfg: dict[str, dict[str, Any]]) -> ScreenData:
    """Wells, labels, splits and normalisation statistics for ``cfg``."""
    sites = cache.sites.reset_index(drop=True)
    channels, channel_idx, n_all = _channel_indices(screen, cache, cfg["data"]["channels"])
    labels = [label_str(v) for v in sites["sirna"].tolist()]
    classes = sort_labels({lab for lab in labels if lab is not None})
    if not classes:
        raise TrainDataError(f"{getattr(screen, 'root', 'screen')}: no labelled wells to train on")
    wells, well_sites = _well_table(sites, classes, labels)
    val_exps = validation_experiments(wells, cfg["data"]["validation_experiments"],
                                      cfg["data"]["validation_per_cell_type"])
    _assign_roles(wells, val_exps, cfg["data"]["use_unlabelled"])
    mean_all, std_all, norm_desc = normalisation_stats(cache, cfg["data"]["normalisation"],
                                                       cfg["data"]["position_correction"])
    norm_desc = dict(norm_desc)
    norm_desc.setdefault("mode", cfg["data"]["normalisation"])
    return ScreenData(
        cache=cache, channels=channels, channel_idx=channel_idx, classes=classes,
        mean=np.ascontiguousarray(mean_all[:, channel_idx], np.float32),
        std=np.ascontiguousarray(std_all[:, channel_idx], np.float32),
        normalisation=norm_desc, wells=wells, well_sites=well_sites,
        validation_experiments=val_exps, fingerprint=_fingerprint(sites),
        n_channels_all=n_all,
        cell_types=sorted(set(wells["cell_type"])),
    )


def open_data(data: str | Path) -> tuple[Any, Any]:
    """Open the screen and its pack cache (packing what is missing on first use)."""
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.screen.pack_cache import PackCache

    screen = open_screen(Path(data))
    cache = PackCache.open(screen)
    return screen, cache


class SiteDataset:
    """Map-style dataset over cache rows: ``ds[row] -> (C, H, W) uint8 tensor``.

    Indexed by cache row (the batch sampler yields rows), so it is the same object for
    every epoch and worker processes can be persistent.
    """

    def __init__(self, cache: Any, channel_idx: list[int], n_channels: int) -> None:
        self.cache = cache
        self.channel_idx = None if channel_idx == list(range(n_channels)) else channel_idx

    def __len__(self) -> int:
        return len(self.cache.sites)

    def __getitem__(self, row: int) -> Any:
        import torch

        img = np.asarray(self.cache.read(int(row)))
        if self.channel_idx is not None:
            img = img[self.channel_idx]
        return torch.from_numpy(np.ascontiguousarray(img))
