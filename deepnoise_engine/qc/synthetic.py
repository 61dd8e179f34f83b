"""Profiles with planted structure, for tests and the QC benchmark: a score folder's
``profiles/`` whose pixel statistics carry a strong experiment signal, whose normalised
statistics carry a weaker one and whose embedding carries the siRNA signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepnoise_engine.report.profiles import METADATA, write_profiles


def planted_metadata(experiments_per_cell_type: dict[str, int], plates: int,
                     sirnas: int) -> pd.DataFrame:
    """RxRx1-like layout: each experiment's plates hold every siRNA once."""
    rows = []
    for cell_type, n_exp in experiments_per_cell_type.items():
        for e in range(1, n_exp + 1):
            exp = f"{cell_type}-{e:02d}"
            for i in range(sirnas):
                plate, well = i % plates + 1, f"W{i // plates:03d}"
                rows.append({"Metadata_IdCode": f"{exp}_{plate}_{well}",
                             "Metadata_Experiment": exp, "Metadata_Plate": plate,
                             "Metadata_Well": well, "Metadata_CellType": cell_type,
                             "Metadata_WellType": "treatment", "Metadata_siRNA": str(i),
                             "Metadata_SitesUsed": 2})
    frame = pd.DataFrame(rows, columns=METADATA)
    return frame.astype({c: "string" for c in METADATA
                         if c not in ("Metadata_Plate", "Metadata_SitesUsed")})


def planted_features(meta: pd.DataFrame, dims: int, *, sirna: float, experiment: float,
                     plate: float = 0.0, noise: float = 1.0, seed: int = 0) -> np.ndarray:
    """Gaussian noise plus a random vector per siRNA, experiment and plate, scaled."""
    rng = np.random.default_rng(seed)
    out = noise * rng.standard_normal((len(meta), dims)).astype(np.float32)
    keys = {"sirna": meta["Metadata_siRNA"],
            "experiment": meta["Metadata_Experiment"],
            "plate": meta["Metadata_Experiment"] + "/" + meta["Metadata_Plate"].astype(str)}
    for name, scale in (("sirna", sirna), ("experiment", experiment), ("plate", plate)):
        if scale:
            codes, uniques = pd.factorize(keys[name])
            out += scale * rng.standard_normal((len(uniques), dims)).astype(np.float32)[codes]
    return out


def write_planted_profiles(score_dir: Path, meta: pd.DataFrame, *, dims: int = 64,
                           channels: int = 6, seed: int = 0) -> Path:
    """A score folder's profile set with planted structure; returns ``score_dir``."""
    embedding = planted_features(meta, dims, sirna=1.0, experiment=0.05, seed=seed)
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    names = [f"Image_Intensity_{s}_Ch{c}" for s in ("Mean", "Std") for c in range(1, channels + 1)]
    raw = 30 + 5 * planted_features(meta, len(names), sirna=0.1, experiment=3.0, plate=1.0,
                                    seed=seed + 1)
    norm = planted_features(meta, len(names), sirna=0.1, experiment=0.3, plate=0.1,
                            seed=seed + 2)
    classes = [str(i) for i in range(8)]
    log_probs = np.log(np.full((len(meta), len(classes)), 1 / len(classes), np.float32))
    write_profiles(score_dir, meta, log_probs=log_probs, classes=classes,
                   embeddings={"ensemble": embedding, "model": embedding},
                   pixels=(raw, norm, names), overwrite=True)
    return Path(score_dir)
