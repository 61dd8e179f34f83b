"""Well predictions: dihedral TTA x usable sites x ensemble models (torch).

``predict_wells`` returns, per well, the **log-probabilities** ``log_softmax(mean logits)``
where the mean runs over the TTA transforms, the well's usable sites and the models of
the well's ensemble (the paper averages logits; the final ``log_softmax`` only shifts
each vector by a constant, so argmax is unchanged and balancing can use ``-log p``).
Each model normalises its input with the normaliser stored in its checkpoint, bound to
the screen being scored (``Normalizer.for_cache``: plate/experiment/site/controls
statistics are recomputed from that screen, global/cell-type ones carry over).
Images are scored at the cache's full size (the networks pool globally).

With ``embeddings={}`` it also fills, per well, each model's embedding (its L2-normalised
backbone output averaged over the TTA transforms and sites, then L2-normalised again)
and the ensemble's (the members' embeddings concatenated, divided by sqrt(members): unit
length, and its cosine is the mean of the members' cosines).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepnoise_engine.contract import Reporter
from deepnoise_engine.model.checkpoint import check_fits, load_checkpoint, resolve_models
from deepnoise_engine.model.errors import ModelMismatchError

if TYPE_CHECKING:
    import torch

    from deepnoise_engine.model.registry import DeepNoiseNet

__all__ = [
    "LoadedModel",
    "load_models",
    "model_key",
    "predict_wells",
    "resolve_device",
    "resolve_models",
    "tta_transforms",
]

@dataclass
class LoadedModel:
    """A model with its checkpoint metadata and where it came from."""

    model: DeepNoiseNet
    meta: dict[str, Any]
    path: Path | None = None


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` (``cuda:LOCAL_RANK`` under DDP) when available, else ``"cpu"``."""
    import torch

    if device != "auto":
        return device
    if not torch.cuda.is_available():
        return "cpu"
    if _dist_world()[1] > 1:  # one GPU per rank
        return f"cuda:{int(os.environ.get('LOCAL_RANK', torch.cuda.current_device()))}"
    return "cuda"


def load_models(
    paths: str | Path | Sequence[str | Path], map_location: str = "cpu"
) -> dict[str, list[LoadedModel]]:
    """Run folders / checkpoints -> ``{cell type or "*": [LoadedModel, ...]}``.

    Several paths merge their ensembles (a cell type listed twice gets both lists);
    a checkpoint used by several cell types is loaded once.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    loaded: dict[Path, LoadedModel] = {}
    out: dict[str, list[LoadedModel]] = {}
    for path in paths:
        for cell_type, stems in resolve_models(path).items():
            for stem in stems:
                if stem not in loaded:
                    model, meta = load_checkpoint(stem, map_location)
                    loaded[stem] = LoadedModel(model, meta, stem)
                out.setdefault(cell_type, []).append(loaded[stem])
    return out


def _as_loaded(ref: Any, loaded: dict[Any, LoadedModel]) -> LoadedModel:
    if isinstance(ref, LoadedModel):
        return ref
    if isinstance(ref, (str, Path)):
        key = Path(ref)
        if key not in loaded:
            model, meta = load_checkpoint(key)
            loaded[key] = LoadedModel(model, meta, key)
        return loaded[key]
    if isinstance(ref, tuple) and len(ref) == 2:
        key = id(ref[0])
        if key not in loaded:
            loaded[key] = LoadedModel(ref[0], ref[1])
        return loaded[key]
    raise TypeError(f"expected a LoadedModel, (model, meta) or a checkpoint path, got {ref!r}")


# -- test-time augmentation --------------------------------------------------------------

def tta_transforms(tta: int) -> list[tuple[int, bool]]:
    """``(quarter turns, horizontal flip)`` pairs: 1 identity, 2 +flip, 4 rotations, 8 dihedral."""
    if tta == 1:
        return [(0, False)]
    if tta == 2:
        return [(0, False), (0, True)]
    if tta == 4:
        return [(k, False) for k in range(4)]
    if tta == 8:
        return [(k, f) for f in (False, True) for k in range(4)]
    raise ValueError(f"tta must be 1, 2, 4 or 8 (dihedral transforms), got {tta}")


def _apply(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    import torch

    if flip:
        x = x.flip(3)
    return torch.rot90(x, turns, dims=(2, 3)) if turns else x


# -- helpers -------------------------------------------------------------------------------

def _dist_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without an initialised process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _class_list(models: Sequence[LoadedModel]) -> list[str]:
    classes: list[str] | None = None
    first: LoadedModel | None = None
    for lm in models:
        got = [str(c) for c in lm.meta.get("classes") or range(lm.model.num_classes)]
        if classes is None:
            classes, first = got, lm
        elif got != classes:
            raise ModelMismatchError(
                f"models disagree on their classes ({first.path or 'model'}: {len(classes)}, "
                f"{lm.path or 'model'}: {len(got)}): an ensemble needs the same class list"
            )
    return classes or []


@dataclass
class _Prepared:
    """A model ready to score: device, channel indices and per-row normalisation stats."""

    lm: LoadedModel
    channel_index: np.ndarray  # model channel j <- cache channel channel_index[j]
    norm_key: str
    image_size: tuple[int, int] | None  # (H, W) the model was trained at; None: as read


def _prepare(
    lm: LoadedModel, cache: Any, device: str, normalisers: dict[str, Any]
) -> _Prepared:
    import torch

    from deepnoise_engine.normalise.plate_normalizer import Normalizer

    index = np.asarray(check_fits(lm.meta, channels=list(cache.channels)), dtype=np.int64)
    if len(index) != lm.model.in_chans:
        raise ModelMismatchError(
            f"{lm.path or 'model'}: metadata lists {len(index)} channels but the network "
            f"takes {lm.model.in_chans}"
        )
    desc = lm.meta.get("normalisation") or {"mode": "none"}
    key = json.dumps(desc, sort_keys=True)
    if key not in normalisers:
        try:
            normalisers[key] = Normalizer.from_dict(desc).for_cache(cache)
        except ValueError as exc:
            raise ModelMismatchError(f"{lm.path or 'model'}: bad normalisation: {exc}") from exc
    # NHWC on every device: 1.7-2x faster inference on CPUs as well
    lm.model.to(device).eval().to(memory_format=torch.channels_last)
    return _Prepared(lm, index, key, _image_size(lm.meta.get("image_size")))


def _image_size(value: Any) -> tuple[int, int] | None:
    """Checkpoint ``image_size`` (an int or ``[H, W]``) -> ``(H, W)``."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value), int(value)
    height, width = value
    return int(height), int(width)


def _resized(x: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` to the training size the way training does (bilinear,
    ``align_corners=False``); a model scored at another resolution than it learnt at
    loses most of its accuracy."""
    import torch.nn.functional as F

    if size is None or tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _batches(
    cache: Any,
    sites: list[tuple[int, int]],
    batch_size: int,
    norm_keys: list[str],
    normalisers: dict[str, Any],
) -> Iterator[tuple[np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    """Yield ``(well index (N,), raw uint8 (N, C_all, H, W), {norm key: (mean, std) (N, C_all)})``.

    Reading runs one batch ahead in a worker thread (memory-mapped reads release the
    GIL) while the model scores the current batch. Pixels stay uint8 until they reach
    the device: 4x less to copy, and the GPU does the normalisation arithmetic.
    """

    def load(chunk: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, dict]:
        rows = np.array([r for _, r in chunk], dtype=np.int64)
        raw = np.ascontiguousarray(cache.read_many(rows))
        stats = {}
        for key in norm_keys:
            mean, std = normalisers[key].mean_std(rows)
            if mean.shape[1] != raw.shape[1]:
                raise ModelMismatchError(
                    f"normalisation statistics have {mean.shape[1]} channels but the screen "
                    f"has {raw.shape[1]} (the model was trained on another channel set)"
                )
            stats[key] = (mean.astype(np.float32), std.astype(np.float32))
        return np.array([w for w, _ in chunk], dtype=np.int64), raw, stats

    chunks = [sites[i:i + batch_size] for i in range(0, len(sites), batch_size)]
    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepnoise-score-io") as pool:
        future = pool.submit(load, chunks[0])
        for nxt in [*chunks[1:], None]:
            result = future.result()
            if nxt is not None:
                future = pool.submit(load, nxt)
            yield result


def _normalised(
    raw: torch.Tensor, stats: tuple[np.ndarray, np.ndarray], index: np.ndarray, device: str
) -> torch.Tensor:
    """uint8 ``(N, C_all, H, W)`` on ``device`` -> float32 ``(N, C_m, H, W)`` for one model."""
    import torch

    idx = torch.from_numpy(index).to(raw.device)
    mean = torch.from_numpy(stats[0]).to(device)[:, idx, None, None]
    std = torch.from_numpy(stats[1]).to(device)[:, idx, None, None]
    x = (raw.index_select(1, idx).float() - mean) / std
    return x.contiguous(memory_format=torch.channels_last)


# -- the main entry point ------------------------------------------------------------------

def predict_wells(
    models_by_cell_type: Mapping[str, Sequence[Any]] | str | Path,
    cache: Any,
    rows_by_well: Mapping[str, Sequence[int]],
    *,
    tta: int = 8,
    batch_size: int = 32,
    device: str = "cpu",
    reporter: Reporter | None = None,
    embeddings: dict[str, dict[str, np.ndarray]] | None = None,
    model_log_probs: dict[str, dict[str, np.ndarray]] | None = None,
) -> dict[str, np.ndarray]:
    """Score wells: ``{id_code: log-probabilities (K,) float32}``.

    ``models_by_cell_type``: ``{cell type or "*": [LoadedModel | (model, meta) | checkpoint
    path, ...]}`` (or a run folder / checkpoint path); a well uses its cell type's ensemble,
    else ``"*"``. ``cache``: a ``PackCache``; ``rows_by_well``: ``{id_code: cache rows of
    its usable sites}`` (wells with no rows are left out of the result). Classes follow
    the models' ``meta["classes"]`` (all models must agree). ``device``: ``"cpu"``,
    ``"cuda[:n]"`` or ``"auto"``; CUDA uses autocast (bf16/fp16) and channels_last.
    ``reporter``: progress of stage ``score`` in sites, ``Cancelled`` between batches.
    Under ``torch.distributed`` each rank scores a shard of the wells and rank 0 returns
    all of them (other ranks return ``{}``). ``embeddings``: a dict filled in place with
    ``{id_code: {model key: (D,) float32, ..., "ensemble": (D_sum,)}}`` (model key:
    ``model_key(LoadedModel)``); None skips the embeddings. ``model_log_probs``: filled
    the same way with each ensemble member's own log-probabilities (where members disagree).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    run = _ScoringPass(tta_transforms(tta), resolve_device(device), batch_size,
                       reporter or Reporter(), embeddings, model_log_probs)
    if isinstance(models_by_cell_type, (str, Path)):
        models_by_cell_type = load_models(models_by_cell_type)
    seen: dict[Any, LoadedModel] = {}
    ensembles = {str(ct): [_as_loaded(ref, seen) for ref in refs]
                 for ct, refs in models_by_cell_type.items()}
    if not ensembles or not all(ensembles.values()):
        raise ValueError("predict_wells needs at least one model per listed cell type")
    _class_list([lm for refs in ensembles.values() for lm in refs])
    rank, world = _dist_world()
    wells = [(w, [int(r) for r in rows]) for w, rows in rows_by_well.items() if len(rows)]
    wells = wells[rank::world]
    by_ensemble = _wells_by_ensemble(wells, cache, ensembles)
    normalisers: dict[str, Any] = {}
    prepared: dict[int, _Prepared] = {}
    for key in by_ensemble:
        for lm in ensembles[key]:
            if id(lm) not in prepared:
                prepared[id(lm)] = _prepare(lm, cache, run.device, normalisers)
    run.total = sum(len(rows) for _, rows in wells)
    run.report(force=True)
    results: dict[str, np.ndarray] = {}
    for key, members in by_ensemble.items():
        models = [prepared[id(lm)] for lm in ensembles[key]]
        results.update(run.score_ensemble(cache, members, models, normalisers))
    run.report(force=True)
    if world > 1:
        return _gather(results, embeddings, model_log_probs, rank, world)
    return results


def _wells_by_ensemble(wells: list[tuple[str, list[int]]], cache: Any,
                       ensembles: dict[str, list[LoadedModel]]
                       ) -> dict[str, list[tuple[str, list[int]]]]:
    """Which ensemble scores each well (by the cell type of its first site)."""
    cell_types = cache.sites["cell_type"].astype(str).to_numpy()
    by_ensemble: dict[str, list[tuple[str, list[int]]]] = {}
    for well, rows in wells:
        ct = cell_types[rows[0]]
        key = ct if ct in ensembles else "*"
        if key not in ensembles:
            raise ModelMismatchError(
                f"no model for cell type {ct!r} (well {well}); the models cover "
                f"{', '.join(sorted(ensembles))}"
            )
        by_ensemble.setdefault(key, []).append((well, rows))
    return by_ensemble


class _ScoringPass:
    """One ``predict_wells`` call: TTA transforms, device, progress, and the outputs
    filled on the way (embeddings, members' log-probabilities)."""

    def __init__(self, transforms: list[tuple[int, bool]], device: str, batch_size: int,
                 reporter: Reporter, embeddings: dict[str, dict[str, np.ndarray]] | None,
                 model_log_probs: dict[str, dict[str, np.ndarray]] | None) -> None:
        self.transforms, self.device, self.batch_size = transforms, device, batch_size
        self.reporter = reporter
        self.embeddings, self.model_log_probs = embeddings, model_log_probs
        self.cuda = device.startswith("cuda")
        self.total = self.done = 0
        self.last_report = time.monotonic()

    def autocast(self) -> Any:
        """bf16 (fp16 where bf16 is missing) autocast on CUDA; nothing on CPU."""
        import torch

        if not self.cuda:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def report(self, force: bool = False) -> None:
        """Progress in sites, at most every 0.5 s unless ``force``."""
        now = time.monotonic()
        if not force and now - self.last_report < 0.5:
            return
        self.last_report = now
        self.reporter.progress("score", self.done, self.total)  # the reporter times the ETA

    def score_ensemble(self, cache: Any, members: list[tuple[str, list[int]]],
                       models: list[_Prepared], normalisers: dict[str, Any]
                       ) -> dict[str, np.ndarray]:
        """Log-probabilities of ``members`` (well, rows) under one ensemble."""
        import torch

        n_classes = models[0].lm.model.num_classes
        sums = _Sums(len(members), n_classes, models, self.embeddings is not None,
                     self.model_log_probs is not None)
        sites = [(i, r) for i, (_, rows) in enumerate(members) for r in rows]
        norm_keys = sorted({p.norm_key for p in models})
        for well_idx, raw_np, stats in _batches(cache, sites, self.batch_size, norm_keys,
                                                normalisers):
            self.reporter.check_cancelled(
                f"scoring cancelled after {self.done} of {self.total} sites")
            raw = torch.from_numpy(raw_np)
            if self.cuda:
                raw = raw.pin_memory().to(self.device, non_blocking=True)
            self._forward(raw, stats, well_idx, models, sums)
            self.done += len(well_idx)
            self.report()
        wells = [w for w, _ in members]
        if self.embeddings is not None and sums.emb is not None:
            _store_embeddings(self.embeddings, wells, models, sums.emb)
        if self.model_log_probs is not None and sums.member is not None:
            for m, p in enumerate(models):
                member = _log_softmax(sums.member[m] / sums.counts[:, None])
                for i, well in enumerate(wells):
                    self.model_log_probs.setdefault(well, {})[model_key(p.lm, m)] = \
                        member[i].astype(np.float32)
        log_probs = _log_softmax(sums.logits / sums.counts[:, None]).astype(np.float32)
        return {well: log_probs[i] for i, well in enumerate(wells)}

    def _forward(self, raw: torch.Tensor, stats: dict[str, tuple[np.ndarray, np.ndarray]],
                 well_idx: np.ndarray, models: list[_Prepared], sums: _Sums) -> None:
        """One batch of sites through every model and TTA transform, added to ``sums``."""
        import torch

        n_t = len(self.transforms)
        site_logits = torch.zeros(len(well_idx), sums.logits.shape[1], dtype=torch.float64)
        with torch.inference_mode(), self.autocast():
            for m, p in enumerate(models):
                x = _normalised(raw, stats[p.norm_key], p.channel_index, self.device)
                x = _resized(x, p.image_size)
                acc = torch.zeros(len(well_idx), sums.logits.shape[1], device=self.device)
                emb = None
                for turns, flip in self.transforms:
                    feats = p.lm.model.features(_apply(x, turns, flip))
                    acc += p.lm.model.logits(feats).float()
                    if sums.emb is not None:
                        unit = torch.nn.functional.normalize(feats.float(), dim=1)
                        emb = unit if emb is None else emb + unit
                site_logits += acc.double().cpu()
                if sums.member is not None:
                    np.add.at(sums.member[m], well_idx, acc.double().cpu().numpy() / n_t)
                if sums.emb is not None and emb is not None:
                    np.add.at(sums.emb[m], well_idx, emb.double().cpu().numpy() / n_t)
        site_logits /= len(models) * n_t
        np.add.at(sums.logits, well_idx, site_logits.numpy())
        np.add.at(sums.counts, well_idx, 1)


class _Sums:
    """Per-well running sums of one ensemble: logits, site counts, and optionally each
    member's logits and embeddings."""

    def __init__(self, n_wells: int, n_classes: int, models: list[_Prepared],
                 embeddings: bool, members: bool) -> None:
        self.logits = np.zeros((n_wells, n_classes), np.float64)
        self.counts = np.zeros(n_wells, np.int64)
        self.emb = ([np.zeros((n_wells, p.lm.model.embedding_dim), np.float64)
                     for p in models] if embeddings else None)
        self.member = ([np.zeros((n_wells, n_classes), np.float64) for _ in models]
                       if members else None)


def _log_softmax(mean_logits: np.ndarray) -> np.ndarray:
    """torch's log_softmax of (N, K) float64 logits (the same numbers as before)."""
    import torch

    return torch.log_softmax(torch.from_numpy(mean_logits), dim=1).numpy()


def _gather(results: dict[str, np.ndarray], embeddings: dict[str, dict[str, np.ndarray]] | None,
            model_log_probs: dict[str, dict[str, np.ndarray]] | None, rank: int,
            world: int) -> dict[str, np.ndarray]:
    """Every rank's shard gathered on rank 0 (the others return ``{}``)."""
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object((results, embeddings, model_log_probs), gathered, dst=0)
    if rank != 0:
        return {}
    merged: dict[str, np.ndarray] = {}
    for part, part_emb, part_lp in gathered or []:
        merged.update(part or {})
        if embeddings is not None:
            embeddings.update(part_emb or {})
        if model_log_probs is not None:
            model_log_probs.update(part_lp or {})
    return merged


def model_key(lm: LoadedModel, index: int = 0) -> str:
    """The key of a model's embedding: its checkpoint stem path, else ``model{index}``."""
    return str(lm.path) if lm.path is not None else f"model{index}"


def _store_embeddings(
    embeddings: dict[str, dict[str, np.ndarray]],
    wells: list[str],
    models: list[_Prepared],
    emb_sums: list[np.ndarray],
) -> None:
    """Per-well unit embeddings per model and the ensemble's (concatenated / sqrt(M))."""
    units = []
    for sums in emb_sums:
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        units.append((sums / np.maximum(norms, 1e-12)).astype(np.float32))
    ensemble = np.concatenate(units, axis=1) / np.float32(np.sqrt(len(units)))
    for i, well in enumerate(wells):
        entry = {model_key(p.lm, m): units[m][i] for m, p in enumerate(models)}
        entry["ensemble"] = ensemble[i]
        embeddings[well] = entry

