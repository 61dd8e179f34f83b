"""Checkpoints, training state and run folders, without pickle.

A checkpoint is two files: ``{stem}.safetensors`` (weights) and ``{stem}.json``
(metadata, including the sha256 of the weights so a half-written pair is detected).
Training state for resume is ``{stem}.state.safetensors`` + ``{stem}.state.json``:
tensors and arrays go to safetensors, everything else to JSON. Both are written to
temporary files in the same folder and renamed into place (``os.replace``).

The module itself is torch-free (the app reads metadata with ``read_metadata``);
torch and safetensors are imported inside the functions that need them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepnoise_engine import __version__
from deepnoise_engine.atomic_io import atomic_write_bytes
from deepnoise_engine.contract.run_folder import RUN_COMPLETE, RUN_FORMAT, RUN_JSON
from deepnoise_engine.model.errors import CheckpointError, ModelMismatchError

if TYPE_CHECKING:
    import torch

    from deepnoise_engine.model.registry import DeepNoiseNet

CHECKPOINT_FORMAT = "deepnoise-checkpoint"
STATE_FORMAT = "deepnoise-training-state"
FORMAT_VERSION = 1

#: Metadata keys of a checkpoint; those not given to ``save_checkpoint`` are filled in.
META_KEYS = (
    "format", "format_version", "architecture", "head", "in_chans", "channels", "classes",
    "normalisation", "image_size", "config", "metrics", "engine_version",
    "data_fingerprint", "cell_types", "role", "created", "weights_sha256",
)


# -- paths and atomic writes -------------------------------------------------------------

def checkpoint_stem(path: str | Path) -> Path:
    """``x``, ``x.json`` or ``x.safetensors`` -> ``x`` (the stem both files share)."""
    path = Path(path)
    if path.suffix in (".json", ".safetensors"):
        return path.with_suffix("")
    return path


def _with_suffix(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=False, default=_json_default) + "\n").encode()


def _json_default(obj: Any) -> Any:
    """JSON for numpy scalars/arrays and paths found in metadata."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    from safetensors.torch import save

    # clone: safetensors refuses tensors that share storage (tied weights, views)
    flat = {k: v.detach().to("cpu").clone().contiguous() for k, v in tensors.items()}
    return save(flat, metadata=metadata)


def _check_safetensors_file(path: Path) -> None:
    """Refuse anything that is not a safetensors file before a parser sees it.

    safetensors starts with a little-endian u64 header length and a JSON header ``{``;
    a pickle starts with ``0x80``, a ``torch.save`` zip with ``PK``.
    """
    if not path.is_file():
        raise CheckpointError("weights file not found", path)
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(9)
    if len(head) < 9:
        raise CheckpointError("weights file is empty or truncated", path)
    (header_len,) = struct.unpack("<Q", head[:8])
    if head[8:9] == b"{" and header_len + 8 <= size:
        return  # a header length may well start with 0x80 or "PK": test the header first
    if head[:1] == b"\x80" or head[:2] == b"PK":
        raise CheckpointError(
            "weights file is a pickle/torch.save file, not safetensors: refused (never unpickled)",
            path,
        )
    raise CheckpointError("weights file is not a safetensors file (bad header)", path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_tensors(path: Path, expected_sha: str | None, device: str) -> dict[str, torch.Tensor]:
    _check_safetensors_file(path)
    if expected_sha and _sha256(path) != expected_sha:
        raise CheckpointError(
            "weights do not match their .json (sha256 differs): incomplete or mixed-up save", path
        )
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except Exception as exc:
        raise CheckpointError(f"cannot read safetensors weights: {exc}", path) from exc


def _read_json(path: Path, expected_format: str) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError("metadata file not found", path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"metadata is not valid JSON: {exc}", path) from exc
    if not isinstance(meta, dict):
        raise CheckpointError("metadata is not a JSON object", path)
    fmt = meta.get("format")
    if fmt != expected_format:
        raise CheckpointError(
            f"unknown format {fmt!r}: expected {expected_format!r} "
            "(pickled .pt/.pth checkpoints are not accepted)",
            path,
        )
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1 or version > FORMAT_VERSION:
        raise CheckpointError(
            f"format_version {version!r} is not supported (this engine reads up to "
            f"{FORMAT_VERSION}); upgrade deepnoise",
            path,
        )
    return meta


# -- checkpoints ---------------------------------------------------------------------------

def save_checkpoint(
    path: str | Path, model: DeepNoiseNet, meta: dict[str, Any]
) -> tuple[Path, Path]:
    """Write ``{path}.safetensors`` and ``{path}.json`` atomically; returns both paths.

    ``architecture``, ``head``, ``in_chans`` come from the model; ``format``,
    ``format_version``, ``engine_version``, ``created`` and missing optional keys are
    filled in. ``classes`` (if given) must have one label per model output.
    """
    model = unwrap_model(model)
    stem = checkpoint_stem(path)
    weights_path, json_path = _with_suffix(stem, ".safetensors"), _with_suffix(stem, ".json")
    full = {key: None for key in META_KEYS}
    full.update({"channels": list(range(1, model.in_chans + 1)), "config": {}, "metrics": {},
                 "normalisation": {"mode": "none"}, "cell_types": [], "role": "student"})
    full.update(meta)
    if full.get("channels") is None:
        full["channels"] = list(range(1, model.in_chans + 1))
    classes = full.get("classes")
    if classes is None:
        full["classes"] = [str(i) for i in range(model.num_classes)]
    elif len(classes) != model.num_classes:
        raise ValueError(
            f"meta['classes'] has {len(classes)} labels but the model has "
            f"{model.num_classes} outputs"
        )
    full["classes"] = [str(c) for c in full["classes"]]
    if len(full["channels"]) != model.in_chans:
        raise ValueError(
            f"meta['channels'] lists {len(full['channels'])} channels but the model takes "
            f"{model.in_chans}"
        )
    full.update(
        format=CHECKPOINT_FORMAT,
        format_version=FORMAT_VERSION,
        architecture=model.spec,
        head=model.head_meta,
        in_chans=model.in_chans,
        engine_version=__version__,
        created=full.get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(),
    )
    data = _safetensors_bytes(model.state_dict(), {"format": "pt"})
    full["weights_sha256"] = hashlib.sha256(data).hexdigest()
    json_data = _json_bytes(full)  # serialise before writing anything: fail early
    atomic_write_bytes(weights_path, data)
    atomic_write_bytes(json_path, json_data)
    return weights_path, json_path


def unwrap_model(model: Any) -> DeepNoiseNet:
    """The ``DeepNoiseNet`` inside a DDP / DataParallel / ``torch.compile`` wrapper."""
    for _ in range(4):
        if hasattr(model, "spec"):
            return model
        model = getattr(model, "_orig_mod", None) or getattr(model, "module", None) or model
    if not hasattr(model, "spec"):
        raise TypeError(f"not a DeepNoise model (from create_model): {type(model).__name__}")
    return model


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The checkpoint's JSON metadata (torch-free; checks format and version only)."""
    return _read_json(_with_suffix(checkpoint_stem(path), ".json"), CHECKPOINT_FORMAT)


def load_checkpoint(
    path: str | Path, map_location: str = "cpu"
) -> tuple[DeepNoiseNet, dict[str, Any]]:
    """Rebuild the model from ``{stem}.json`` and load ``{stem}.safetensors`` (never unpickles).

    ``path`` may be the stem, the ``.json`` or the ``.safetensors`` file. Returns
    ``(model in eval mode on map_location, metadata)``.
    """
    from deepnoise_engine.model.registry import create_model

    stem = checkpoint_stem(path)
    json_path, weights_path = _with_suffix(stem, ".json"), _with_suffix(stem, ".safetensors")
    meta = _read_json(json_path, CHECKPOINT_FORMAT)
    arch = meta.get("architecture")
    if not (isinstance(arch, dict) and isinstance(arch.get("name"), str)
            and isinstance(arch.get("kwargs"), dict)):
        raise CheckpointError("metadata has no valid 'architecture' {name, kwargs}", json_path)
    state = _load_tensors(weights_path, meta.get("weights_sha256"), "cpu")
    try:
        kwargs = dict(arch["kwargs"])
        kwargs.pop("pretrained_file", None)  # the weights come from the checkpoint
        model = create_model(arch["name"], **kwargs)
    except Exception as exc:
        raise CheckpointError(f"cannot rebuild model {arch['name']!r}: {exc}", json_path) from exc
    mismatch = _shape_mismatch(model, state, arch["kwargs"], meta)
    if mismatch:
        raise CheckpointError(f"metadata disagrees with the weights: {mismatch}; the pair "
                              "does not belong together (re-export the checkpoint)", json_path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit the architecture: {exc}", weights_path) from exc
    model.to(map_location).eval()
    return model, meta


def _shape_mismatch(model: Any, state: dict[str, Any], kwargs: dict[str, Any],
                    meta: dict[str, Any]) -> str | None:
    """Which metadata field disagrees with the weights' shapes (None when all fit)."""
    own = model.state_dict()
    diffs = [(k, tuple(own[k].shape), tuple(v.shape)) for k, v in state.items()
             if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if not diffs:
        return None
    n_classes = kwargs.get("num_classes", len(meta.get("classes") or []))
    for key, mine, theirs in diffs:
        if len(mine) == 4 and len(theirs) == 4 and mine[1] != theirs[1]:
            return (f"'in_chans'/'channels' give {mine[1]} channels but the weights ({key}) "
                    f"take {theirs[1]}")
        if mine and mine[0] == n_classes and theirs[0] != n_classes:
            return (f"'classes' / 'num_classes' give {n_classes} classes but the weights "
                    f"({key}) have {theirs[0]}")
    key, mine, theirs = diffs[0]
    return f"'architecture' gives {key} the shape {list(mine)}, the weights {list(theirs)}"


# -- fit to a screen ---------------------------------------------------------------------

def _ranges(numbers: Sequence[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    nums = sorted(set(int(n) for n in numbers))
    parts: list[str] = []
    start = prev = None
    for n in nums:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            parts.append(f"{start}-{prev}" if start != prev else f"{start}")
            start = prev = n
    if start is not None:
        parts.append(f"{start}-{prev}" if start != prev else f"{start}")
    return ", ".join(parts) or "none"


def _examples(items: Iterable[str], n: int = 5) -> str:
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def check_fits(
    meta: dict[str, Any],
    screen: Any = None,
    *,
    channels: Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
) -> list[int]:
    """Raise ``ModelMismatchError`` unless the model fits the screen; else return channel indices.

    ``channels``: the screen's channel numbers; ``classes``: its labels (None: not checked).
    A ``Screen`` may be passed instead (its ``channels`` and ``classes()`` are used). The
    result gives, for each model input channel, its index in the screen's channel list.
    """
    if screen is not None:
        channels = channels if channels is not None else list(screen.channels)
        classes = classes if classes is not None else screen.classes()
    if channels is None:
        raise ValueError("check_fits needs the screen's channels")
    arch = meta.get("architecture")
    name = arch.get("name", "model") if isinstance(arch, dict) else "model"
    wanted = [int(c) for c in meta.get("channels") or range(1, int(meta.get("in_chans", 0)) + 1)]
    have = [int(c) for c in channels]
    missing = [c for c in wanted if c not in have]
    if missing:
        raise ModelMismatchError(
            f"{name} expects {len(wanted)} channels ({_ranges(wanted)}) but the screen has "
            f"{len(have)} ({_ranges(have)}): channel(s) {_ranges(missing)} missing"
        )
    if classes is not None:
        known = {str(c) for c in meta.get("classes") or []}
        unknown = [str(c) for c in classes if str(c) not in known]
        if unknown:
            raise ModelMismatchError(
                f"{len(unknown)} of {len(list(classes))} classes of the screen are unknown to the "
                f"{name} model ({len(known)} classes), e.g. {_examples(unknown)}: "
                "the model was trained on other labels (or another label form)"
            )
    return [have.index(c) for c in wanted]


# -- training state ----------------------------------------------------------------------

_TENSOR, _ARRAY, _TUPLE, _ITEMS = "__tensor__", "__ndarray__", "__tuple__", "__items__"


def _encode(value: Any, tensors: dict[str, Any], where: str) -> Any:
    """JSON-safe tree; tensors/arrays replaced by references into ``tensors``."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value
        return {_TENSOR: key}
    if isinstance(value, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value))
        return {_ARRAY: key}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        plain = all(isinstance(k, str) for k in value) and not (
            set(value) & {_TENSOR, _ARRAY, _TUPLE, _ITEMS}
        )
        if plain:
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in value.items()}
        # non-string keys (optimiser state uses ints) keep their type as [key, value] pairs
        return {_ITEMS: [[_encode(k, tensors, where), _encode(v, tensors, f"{where}[{k!r}]")]
                         for k, v in value.items()]}
    raise TypeError(f"training state {where or 'root'}: cannot store a {type(value).__name__}")


def _decode(value: Any, tensors: dict[str, Any], file: Path) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, file) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, inner), = value.items()
        if key in (_TENSOR, _ARRAY):
            if inner not in tensors:
                raise CheckpointError(f"training state refers to missing tensor {inner!r}", file)
            t = tensors[inner]
            return t.numpy() if key == _ARRAY else t
        if key == _TUPLE:
            return tuple(_decode(v, tensors, file) for v in inner)
        if key == _ITEMS:
            return {_hashable(_decode(k, tensors, file)): _decode(v, tensors, file)
                    for k, v in inner}
    return {k: _decode(v, tensors, file) for k, v in value.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def training_state_paths(path: str | Path) -> tuple[Path, Path]:
    """``(stem.state.safetensors, stem.state.json)`` for ``stem`` (or either file)."""
    p = Path(path)
    name = p.name
    for suffix in (".state.safetensors", ".state.json"):
        if name.endswith(suffix):
            p = p.with_name(name[: -len(suffix)])
    return _with_suffix(p, ".state.safetensors"), _with_suffix(p, ".state.json")


def save_training_state(path: str | Path, state: dict[str, Any]) -> tuple[Path, Path]:
    """Write resume state (tensors, arrays, numbers, str, None, lists, tuples, dicts).

    Files: ``{path}.state.safetensors`` and ``{path}.state.json`` (so the same stem can
    hold a checkpoint too). Dict keys may be str or int; tuples stay tuples.
    """
    if not isinstance(state, dict):
        raise TypeError("training state must be a dict")
    tensors: dict[str, Any] = {}
    tree = _encode(state, tensors, "")
    weights_path, json_path = training_state_paths(path)
    data = _safetensors_bytes(tensors, {"format": "pt"})
    doc = {
        "format": STATE_FORMAT,
        "format_version": FORMAT_VERSION,
        "engine_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "weights_sha256": hashlib.sha256(data).hexdigest(),
        "state": tree,
    }
    json_data = _json_bytes(doc)
    atomic_write_bytes(weights_path, data)
    atomic_write_bytes(json_path, json_data)
    return weights_path, json_path


def load_training_state(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Read what ``save_training_state`` wrote (never unpickles)."""
    weights_path, json_path = training_state_paths(path)
    doc = _read_json(json_path, STATE_FORMAT)
    tensors = _load_tensors(weights_path, doc.get("weights_sha256"), map_location)
    state = _decode(doc.get("state"), tensors, json_path)
    if not isinstance(state, dict):
        raise CheckpointError("training state is not a dict", json_path)
    return state


# -- run folders -------------------------------------------------------------------------

def resolve_models(path: str | Path) -> dict[str, list[Path]]:
    """Cell type (or ``"*"``) -> checkpoint stems, from a run folder or a single checkpoint.

    A run folder has ``run.json`` ``{"format": "deepnoise-run", "version": 1,
    "ensembles": {"*": ["models/shared_xception", ...], "HEPG2": [...]}, ...}``; stems are
    relative to the folder. A checkpoint (stem, .json or .safetensors) gives ``{"*": [stem]}``.
    Every listed checkpoint must exist (its .json and .safetensors).
    """
    path = Path(path)
    if path.is_dir():
        run_json = path / RUN_JSON
        if not run_json.is_file():
            raise CheckpointError(
                "not a train run folder (no run.json) and not a checkpoint", path
            )
        try:
            run = json.loads(run_json.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"run.json is not valid JSON: {exc}", run_json) from exc
        if not isinstance(run, dict) or run.get("format") != RUN_FORMAT:
            raise CheckpointError(f"run.json: format is not {RUN_FORMAT!r}", run_json)
        if not isinstance(run.get("version"), int) or run["version"] > FORMAT_VERSION:
            raise CheckpointError(f"run.json: version {run.get('version')!r} not supported",
                                  run_json)
        ensembles = run.get("ensembles")
        if not isinstance(ensembles, dict) or not ensembles:
            raise CheckpointError("run.json has no 'ensembles' (cell type -> models)", run_json)
        result: dict[str, list[Path]] = {}
        for cell_type, stems in ensembles.items():
            if not (isinstance(stems, list) and stems and all(isinstance(s, str) for s in stems)):
                raise CheckpointError(
                    f"run.json: ensembles[{cell_type!r}] must be a non-empty list of paths",
                    run_json,
                )
            result[str(cell_type)] = [_existing_stem(path / s, run_json) for s in stems]
        return result
    return {"*": [_existing_stem(path, None)]}


def check_run_complete(path: str | Path) -> None:
    """Refuse a run folder whose ``run.json`` does not say ``complete`` (written last, so
    any other status means the training stopped early or is still running)."""
    path = Path(path)
    if not path.is_dir():
        return
    try:
        status = json.loads((path / RUN_JSON).read_text(encoding="utf-8")).get("status")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return  # resolve_models names what is wrong with run.json
    if status not in (None, RUN_COMPLETE):
        raise CheckpointError(
            f"the training run is not complete (run.json status {status!r}): finish it with "
            f"`deepnoise-engine train --out {path} --resume` (and its --data), or pass one "
            "of its checkpoints (models/*.json) to use a finished stage", path / RUN_JSON)


def _existing_stem(path: Path, listed_in: Path | None) -> Path:
    if path.suffix in (".pt", ".pth", ".pkl", ".ckpt"):
        raise CheckpointError(
            "pickled PyTorch files are never loaded (unpickling can run any code); pass a "
            "DeepNoise checkpoint (.json + .safetensors), e.g. a train run's models/*.json",
            path)
    stem = checkpoint_stem(path)
    for suffix in (".json", ".safetensors"):
        file = _with_suffix(stem, suffix)
        if not file.is_file():
            where = f" (listed in {listed_in})" if listed_in else ""
            raise CheckpointError(f"checkpoint file not found{where}", file)
    return stem
