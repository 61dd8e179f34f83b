"""Well profiles in the Cell Painting profiling convention (pycytominer's layout).

``score`` writes ``{out}/profiles/``: one Parquet file per profile kind, one row per scored
well, ``Metadata_*`` columns first, then numeric feature columns whose prefix names the
kind (pycytominer's ``infer_cp_features(df, compartments=[prefix])`` finds them):

- ``embedding.parquet``: the ensemble's embedding (``Embedding_0000`` ...);
- ``embedding_model{i}.parquet``: each model's own embedding (i from 1, see profiles.json);
- ``log_prob.parquet``: log-probabilities before balancing (``Logprob_<class>``), so a
  plate can be re-balanced with another method without new inference;
- ``log_prob_model{i}.parquet``: each model's own log-probabilities (the review queue's
  "models disagree");
- ``pixels_raw.parquet`` / ``pixels_normalised.parquet``: per-channel intensity statistics
  of the usable sites before and after the models' normalisation (``Image_Intensity_*``),
  the "before the model" reference for QC;
- ``profiles.json``: what each file holds. ``score`` writes these files with its reports
  as one set (``manifest.json`` says when it is complete).

Torch-free: the QC step and the app read these files with pandas.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepnoise_engine.atomic_io import atomic_write_bytes
from deepnoise_engine.report.io import ReportError, check_free

PROFILE_DIR = "profiles"
INDEX_NAME = "profiles.json"
EMBEDDING = "embedding"
LOG_PROB = "log_prob"
PIXELS_RAW = "pixels_raw"
PIXELS_NORMALISED = "pixels_normalised"

#: feature prefix per profile kind (title case: pycytominer title-cases compartments)
PREFIX = {EMBEDDING: "Embedding", LOG_PROB: "Logprob", PIXELS_RAW: "Image",
          PIXELS_NORMALISED: "Image"}

METADATA = ["Metadata_IdCode", "Metadata_Experiment", "Metadata_Plate", "Metadata_Well",
            "Metadata_CellType", "Metadata_WellType", "Metadata_siRNA", "Metadata_SitesUsed"]


def profile_dir(score_dir: Path) -> Path:
    return Path(score_dir) / PROFILE_DIR


def profile_paths(score_dir: Path, n_models: int) -> list[Path]:
    """Every file ``write_profiles`` writes for ``n_models`` distinct models."""
    folder = profile_dir(score_dir)
    names = [EMBEDDING, *[f"{EMBEDDING}_model{i}" for i in range(1, n_models + 1)],
             LOG_PROB, *[f"{LOG_PROB}_model{i}" for i in range(1, n_models + 1)],
             PIXELS_RAW, PIXELS_NORMALISED]
    return [folder / f"{n}.parquet" for n in names] + [folder / INDEX_NAME]


def well_metadata(screen: Any, wells: Sequence[str], answers: Mapping[str, str],
                  sites_used: Mapping[str, int]) -> pd.DataFrame:
    """``Metadata_*`` columns for ``wells`` (id codes) of ``screen``; the siRNA is the
    screen's label, else the hidden answer, else missing."""
    index = {w.id_code: (e, p, w) for e, p, w in screen.wells()}
    rows = []
    for id_code in wells:
        exp, plate, well = index[id_code]
        rows.append({
            "Metadata_IdCode": id_code, "Metadata_Experiment": exp.name,
            "Metadata_Plate": int(plate.index), "Metadata_Well": well.name,
            "Metadata_CellType": exp.cell_type, "Metadata_WellType": well.well_type.value,
            "Metadata_siRNA": well.sirna if well.sirna is not None else answers.get(id_code),
            "Metadata_SitesUsed": int(sites_used.get(id_code, 0)),
        })
    frame = pd.DataFrame(rows, columns=METADATA)
    for column in METADATA:
        if column not in ("Metadata_Plate", "Metadata_SitesUsed"):
            frame[column] = frame[column].astype("string")
    return frame.astype({"Metadata_Plate": "int64", "Metadata_SitesUsed": "int64"})


def profile_frame(meta: pd.DataFrame, features: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """Metadata columns + float32 feature columns (one block, no fragmentation)."""
    feats = pd.DataFrame(np.asarray(features, np.float32), columns=list(names))
    return pd.concat([meta.reset_index(drop=True), feats], axis=1)


def pixel_profiles(
    cache: Any, rows_by_well: Mapping[str, Sequence[int]], normaliser: Any
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-well channel mean and pooled std of the usable sites, raw grey levels and after
    ``normaliser`` (a ``Normalizer`` bound to ``cache``). Returns (raw, normalised, names)."""
    channels = list(cache.channels)
    wells = list(rows_by_well)
    raw = np.zeros((len(wells), 2 * len(channels)), np.float64)
    norm = np.zeros_like(raw)
    for i, well in enumerate(wells):
        rows = np.asarray(rows_by_well[well], np.int64)
        mean = cache.site_mean[rows].astype(np.float64)
        std = cache.site_std[rows].astype(np.float64)
        raw[i] = _pool(mean, std)
        centre, scale = normaliser.mean_std(rows)
        norm[i] = _pool((mean - centre) / scale, std / scale)
    names = [f"Image_Intensity_{stat}_Ch{c}" for stat in ("Mean", "Std") for c in channels]
    return raw, norm, names


def _pool(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Sites' (S, C) means and stds -> the well's (2C,) mean and pooled std."""
    well_mean = mean.mean(axis=0)
    var = (std**2 + mean**2).mean(axis=0) - well_mean**2
    return np.concatenate([well_mean, np.sqrt(np.maximum(var, 0.0))])


def profile_names(n_models: int) -> list[str]:
    """The profile set's files for ``n_models`` distinct models, relative to the score
    folder (``profiles/...``)."""
    return [f"{PROFILE_DIR}/{p.name}" for p in profile_paths(Path("."), n_models)]


def render_profiles(
    meta: pd.DataFrame,
    *,
    log_probs: np.ndarray,
    classes: Sequence[str],
    embeddings: Mapping[str, np.ndarray],
    pixels: tuple[np.ndarray, np.ndarray, list[str]],
    model_log_probs: Mapping[str, np.ndarray] | None = None,
    info: Mapping[str, Any] | None = None,
) -> dict[str, bytes]:
    """The profile set of ``meta``'s wells (rows aligned with every array), rendered in
    memory: ``{"profiles/<name>": bytes}``, so the score step writes it with its reports
    as one set.

    ``embeddings``: ``{"ensemble": (W, D), model key: (W, D_m), ...}`` (NaN rows for wells
    a model did not score); ``model_log_probs``: ``{model key: (W, K)}`` alike.
    """
    model_keys = [k for k in embeddings if k != "ensemble"]
    frames: dict[str, pd.DataFrame] = {}
    if "ensemble" in embeddings:
        frames[EMBEDDING] = _embedding_frame(meta, embeddings["ensemble"])
    for i, key in enumerate(model_keys, start=1):
        frames[f"{EMBEDDING}_model{i}"] = _embedding_frame(meta, embeddings[key])
    class_columns = [f"Logprob_{c}" for c in classes]
    frames[LOG_PROB] = profile_frame(meta, log_probs, class_columns)
    for i, key in enumerate(model_keys, start=1):
        if model_log_probs and key in model_log_probs:
            frames[f"{LOG_PROB}_model{i}"] = profile_frame(meta, model_log_probs[key],
                                                          class_columns)
    raw, norm, names = pixels
    frames[PIXELS_RAW] = profile_frame(meta, raw, names)
    frames[PIXELS_NORMALISED] = profile_frame(meta, norm, names)
    files = {f"{PROFILE_DIR}/{name}.parquet": _parquet_bytes(frame)
             for name, frame in frames.items()}
    index = {
        "version": 1,
        "wells": len(meta),
        "files": {name: f"{name}.parquet" for name in frames},
        "prefix": {name: PREFIX[name.split("_model")[0]] for name in frames},
        "models": {f"{EMBEDDING}_model{i}": key for i, key in enumerate(model_keys, start=1)},
        "model_log_probs": {f"{LOG_PROB}_model{i}": key
                            for i, key in enumerate(model_keys, start=1)
                            if f"{LOG_PROB}_model{i}" in frames},
        **dict(info or {}),
    }
    files[f"{PROFILE_DIR}/{INDEX_NAME}"] = (json.dumps(index, indent=2) + "\n").encode()
    return files


def write_profiles(score_dir: Path, meta: pd.DataFrame, *, overwrite: bool = False,
                   **arrays: Any) -> list[Path]:
    """Render (:func:`render_profiles`, same keywords) and write the profile set on its
    own, the index last; refuses to replace existing files unless ``overwrite``."""
    files = render_profiles(meta, **arrays)
    paths = [Path(score_dir) / name for name in files]
    check_free(paths, overwrite)
    index = f"{PROFILE_DIR}/{INDEX_NAME}"
    written = [atomic_write_bytes(Path(score_dir) / n, d) for n, d in files.items() if n != index]
    written.append(atomic_write_bytes(Path(score_dir) / index, files[index]))
    return written


def render_scoring_profiles(
    *,
    screen: Any,
    cache: Any,
    rows_by_well: Mapping[str, Sequence[int]],
    log_probs: Mapping[str, np.ndarray],
    classes: Sequence[str],
    embeddings: Mapping[str, Mapping[str, np.ndarray]],
    normalisation_of: Mapping[str, Mapping[str, Any]],
    model_log_probs: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    answers: Mapping[str, str],
) -> dict[str, bytes]:
    """The scoring job's profile set, rendered: wells with a prediction, in ``log_probs``
    order.

    ``embeddings``: ``predict_wells``' per-well dicts; ``normalisation_of``: cell type ->
    the normalisation description of the model that scores it (pixel statistics after it).
    """
    from deepnoise_engine.normalise.plate_normalizer import Normalizer

    wells = [w for w in log_probs if w in rows_by_well]
    meta = well_metadata(screen, wells, answers, {w: len(rows_by_well[w]) for w in wells})
    lp = np.stack([np.asarray(log_probs[w], np.float32) for w in wells]) if wells else \
        np.zeros((0, len(classes)), np.float32)
    bound: dict[str, Any] = {}
    raw_parts, norm_parts, names = [], [], []
    for i, well in enumerate(wells):
        cell_type = meta.at[i, "Metadata_CellType"]
        desc = normalisation_of.get(cell_type, normalisation_of.get("*")) or {"mode": "none"}
        key = json.dumps(desc, sort_keys=True)
        if key not in bound:
            bound[key] = Normalizer.from_dict(desc).for_cache(cache)
        raw, norm, names = pixel_profiles(cache, {well: rows_by_well[well]}, bound[key])
        raw_parts.append(raw)
        norm_parts.append(norm)
    width = 2 * len(cache.channels)
    pixels = (np.concatenate(raw_parts) if raw_parts else np.zeros((0, width)),
              np.concatenate(norm_parts) if norm_parts else np.zeros((0, width)),
              names or [f"Image_Intensity_{s}_Ch{c}" for s in ("Mean", "Std")
                        for c in cache.channels])
    modes = sorted({json.loads(k).get("mode", "none") for k in bound})
    member_lp = _embedding_matrices(wells, model_log_probs or {}, ensemble=False)
    return render_profiles(meta, log_probs=lp, classes=classes,
                           embeddings=_embedding_matrices(wells, embeddings), pixels=pixels,
                           model_log_probs=member_lp, info={"normalisation": modes})


def _embedding_matrices(
    wells: Sequence[str], embeddings: Mapping[str, Mapping[str, np.ndarray]],
    ensemble: bool = True,
) -> dict[str, np.ndarray]:
    """Per-well dicts -> ``{key: (W, D)}``; NaN where a model did not score a well (another
    cell type's ensemble), zero-padded ensembles when ensembles differ in width."""
    if not wells or not embeddings:
        return {}
    keys = list(dict.fromkeys(k for w in wells for k in embeddings.get(w, {})))
    out: dict[str, np.ndarray] = {}
    for key in (["ensemble"] if ensemble else []) + [k for k in keys if k != "ensemble"]:
        width = max(len(embeddings[w][key]) for w in wells if key in embeddings.get(w, {}))
        fill = 0.0 if key == "ensemble" else np.nan
        matrix = np.full((len(wells), width), fill, np.float32)
        for i, well in enumerate(wells):
            vec = embeddings.get(well, {}).get(key)
            if vec is not None:
                matrix[i, : len(vec)] = vec
        out[key] = matrix
    return out


def _embedding_frame(meta: pd.DataFrame, matrix: np.ndarray) -> pd.DataFrame:
    names = [f"Embedding_{j:04d}" for j in range(np.asarray(matrix).shape[1])]
    return profile_frame(meta, matrix, names)


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


# -- reading (the QC step and the app) -----------------------------------------------------

def read_profile_index(score_dir: Path) -> dict[str, Any]:
    """``profiles/profiles.json``; ``ReportError`` naming the file when missing or bad."""
    path = profile_dir(score_dir) / INDEX_NAME
    if not path.is_file():
        raise ReportError(f"{path}: no well profiles (score again with this version of "
                          "DeepNoise to write them)")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(index["files"], dict):
            raise TypeError("'files' is not a mapping")
    except (ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"{path}: not a profile index ({exc})") from exc
    return index


def read_profile(score_dir: Path, name: str) -> pd.DataFrame:
    """One profile kind (``embedding``, ``pixels_raw`` ...) as a DataFrame."""
    index = read_profile_index(score_dir)
    if name not in index["files"]:
        raise ReportError(f"{profile_dir(score_dir)}: no {name!r} profile "
                          f"(has {', '.join(index['files'])})")
    path = profile_dir(score_dir) / index["files"][name]
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot read profile ({exc})") from exc


def split_profile(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """(``Metadata_*`` columns, float32 feature matrix) of a profile frame."""
    meta_cols = [c for c in frame.columns if c.startswith("Metadata_")]
    feats = frame[[c for c in frame.columns if not c.startswith("Metadata_")]]
    return frame[meta_cols], feats.to_numpy(np.float32)


__all__ = [
    "EMBEDDING",
    "LOG_PROB",
    "METADATA",
    "PIXELS_NORMALISED",
    "PIXELS_RAW",
    "PROFILE_DIR",
    "pixel_profiles",
    "profile_dir",
    "profile_paths",
    "read_profile",
    "read_profile_index",
    "split_profile",
    "well_metadata",
    "write_profiles",
]
