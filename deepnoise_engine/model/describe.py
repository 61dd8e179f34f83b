"""``describe_model``: what a run folder or a checkpoint holds, read from JSON only.

Torch-free: reads ``run.json`` and the checkpoints' JSON metadata, never the weights.
The answer's type is :class:`deepnoise_engine.contract.model_description.ModelDescription`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepnoise_engine.contract.model_description import (
    CheckpointDescription,
    ModelDescription,
)
from deepnoise_engine.model.checkpoint import checkpoint_stem, read_metadata, resolve_models

#: Validation accuracies of a metrics record, the most telling first.
_VAL_KEYS = (
    "val_acc_ensemble_balanced",
    "val_acc_teacher_balanced",
    "val_acc_student_balanced",
    "val_acc_ensemble_raw",
    "val_acc_teacher_raw",
    "val_acc_student_raw",
    "val_acc",
)


def _number(source: Any, keys: tuple[str, ...] | list[str]) -> float | None:
    """The first of ``keys`` that ``source`` (a dict) holds as a number."""
    if isinstance(source, dict):
        for key in keys:
            if isinstance(source.get(key), (int, float)):
                return float(source[key])
    return None


def _val_accuracy(metrics: dict[str, Any], name: str | None, role: str | None) -> float | None:
    """The model's own validation accuracy (plate-balanced first) from a metrics record."""
    per_model = metrics.get("per_model")
    own = per_model.get(name) if isinstance(per_model, dict) and name else None
    keys = [f"val_acc_{role}_balanced", f"val_acc_{role}_raw"] if role else []
    for source in (own, metrics):
        value = _number(source, [*keys, *_VAL_KEYS])
        if value is not None:
            return value
    return None


def _field(value: Any, key: str) -> Any:
    """``value[key]`` for a dict, else ``value`` (metadata fields are either form)."""
    return value.get(key) if isinstance(value, dict) else value


def describe_checkpoint(stem: Path) -> CheckpointDescription:
    """One checkpoint's description from its JSON metadata."""
    meta = read_metadata(stem)
    arch = meta.get("architecture")
    name = _field(arch, "name")
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    classes = meta.get("classes") or []
    role = meta.get("role")
    ensemble_keys = ("val_acc_ensemble_balanced", "val_acc_ensemble_raw")
    return CheckpointDescription(
        path=str(checkpoint_stem(stem)),
        architecture=name,
        architecture_params=arch,
        head=_field(meta.get("head"), "type"),
        role=role,
        stage=meta.get("stage"),
        classes_count=len(classes),
        classes=classes,
        channels=meta.get("channels"),
        in_chans=meta.get("in_chans"),
        normalisation=_field(meta.get("normalisation"), "mode"),
        image_size=meta.get("image_size"),
        validation_accuracy=_val_accuracy(metrics, name, role),
        validation_accuracy_ensemble=_number(metrics, ensemble_keys),
        cell_types=meta.get("cell_types"),
        engine_version=meta.get("engine_version"),
        created=meta.get("created"),
    )


def describe_model(path: str | Path) -> ModelDescription:
    """A checkpoint or a train run folder (its ``run.json`` ensembles); raises
    ``CheckpointError`` naming the file when it is neither."""
    path = Path(path)
    ensembles = resolve_models(path)
    models: dict[str, CheckpointDescription] = {}
    serves: dict[str, list[str]] = {}
    for cell_type, stems in ensembles.items():
        for stem in stems:
            info = models.get(str(stem)) or describe_checkpoint(stem)
            models[str(stem)] = info
            serves.setdefault(cell_type, []).append(info.path)
    first = next(iter(models.values()))
    accs = [m.validation_accuracy for m in models.values() if m.validation_accuracy is not None]
    cell_types = {c for m in models.values() for c in (m.cell_types or [])}
    return ModelDescription(
        kind="run" if path.is_dir() else "checkpoint",
        path=str(path),
        architecture=sorted({str(m.architecture) for m in models.values()}),
        classes_count=first.classes_count,
        classes=first.classes,
        channels=first.channels,
        normalisation=first.normalisation,
        image_size=first.image_size,
        validation_accuracy=max(accs) if accs else None,
        cell_types=sorted(cell_types | {c for c in serves if c != "*"}),
        serves=serves,
        models=list(models.values()),
    )
