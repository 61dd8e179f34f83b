"""QC figures with matplotlib (Agg, no display): PNG and SVG of each figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepnoise_engine.qc.layout import pca_2d
from deepnoise_engine.qc.retrieval import TASKS
from deepnoise_engine.report.io import atomic_write

#: points per panel of the map figure (an SVG of 20,000 points per panel is slow and big)
MAP_POINTS = 3000


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, stem: Path) -> list[Path]:
    written = []
    for ext in ("png", "svg"):
        path = stem.with_suffix(f".{ext}")
        written.append(atomic_write(path, lambda tmp, e=ext: fig.savefig(tmp, format=e,
                                                                          dpi=120)))
    _pyplot().close(fig)
    return written


def write_retrieval_figure(profiles: dict[str, Any], stem: Path) -> list[Path]:
    """One panel per task: mAP bars per profile, chance as a black tick."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(TASKS), figsize=(4 * len(TASKS), 3.6), sharey=True)
    labels = [r["label"] for r in profiles.values()]
    colours = plt.get_cmap("tab10")(np.arange(len(labels)) % 10)
    for ax, (name, task) in zip(np.atleast_1d(axes), TASKS.items(), strict=True):
        values = [r[name]["map"] for r in profiles.values()]
        chance = [r[name]["chance"] for r in profiles.values()]
        xs = np.arange(len(values))
        ax.bar(xs, np.nan_to_num(values), color=colours)
        ax.scatter(xs, chance, marker="_", s=600, color="black", label="chance")
        better = "higher" if task.higher_is_better else "lower"
        title = "siRNA" if name == "sirna" else name
        ax.set_title(f"{title} retrieval ({better} is better)", fontsize=10)
        ax.set_xticks(xs, [str(i + 1) for i in xs])
        ax.set_ylim(0, 1)
    np.atleast_1d(axes)[0].set_ylabel("mean average precision")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours]
    fig.legend(handles, [f"{i + 1}: {label}" for i, label in enumerate(labels)],
               loc="lower center", ncol=min(len(labels), 3), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return _save(fig, stem)


def write_map_figure(maps: dict[str, tuple[np.ndarray, pd.DataFrame]],
                     profiles: dict[str, Any], stem: Path) -> list[Path]:
    """PCA of each profile (treatment wells), coloured by experiment."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(maps), figsize=(4 * len(maps), 4), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (kind, (x, meta)) in zip(axes[0], maps.items(), strict=True):
        keep = np.flatnonzero((meta["well_type"] == "treatment").to_numpy())
        if len(keep) > MAP_POINTS:
            keep = np.sort(rng.choice(keep, MAP_POINTS, replace=False))
        xy = pca_2d(x[keep])
        codes, names = pd.factorize(meta["experiment"].to_numpy()[keep])
        cmap = plt.get_cmap("tab20")
        ax.scatter(xy[:, 0], xy[:, 1], c=cmap(codes % 20), s=4, linewidths=0,
                   rasterized=True)  # the SVG embeds the points as one image: small, fast
        ax.set_title(profiles[kind]["label"], fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Line2D([], [], marker="o", ls="", color=plt.get_cmap("tab20")(i % 20))
               for i in range(len(names))]
    fig.legend(handles, list(names), loc="lower center", ncol=min(len(names), 6), fontsize=8,
               frameon=False, title="experiment")
    fig.tight_layout(rect=(0, 0.15, 1, 1))
    return _save(fig, stem)
