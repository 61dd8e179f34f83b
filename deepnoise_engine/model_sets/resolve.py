"""Run folders and/or checkpoints -> one ``ModelSet``; does it fit the screen?"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepnoise_engine.model.errors import ModelMismatchError
from deepnoise_engine.screen.model import Screen

PlateKey = tuple[str, int]


@dataclass
class ModelSet:
    """Checkpoint stems per cell type ("*" = any) and their shared class list."""

    ensembles: dict[str, list[Path]]
    metas: dict[Path, dict[str, Any]]
    classes: list[str]
    sources: list[str] = field(default_factory=list)

    def for_cell_type(self, cell_type: str) -> list[Path] | None:
        return self.ensembles.get(cell_type) or self.ensembles.get("*")

    @property
    def plate_groups(self) -> list[list[str]]:
        """The plate groups learnt at training time (label lists), [] when none stored."""
        for meta in self.metas.values():
            if meta.get("plate_groups"):
                return [[str(c) for c in g] for g in meta["plate_groups"]]
        return []


def resolve_model_set(models: Sequence[str | Path]) -> ModelSet:
    """Run folders and/or checkpoints -> one ``ModelSet`` (ensembles merged per cell type).

    Torch-free (reads the JSON metadata only). Raises ``ModelMismatchError`` when the
    models do not share one class list.
    """
    from deepnoise_engine.model.checkpoint import (
        check_run_complete,
        read_metadata,
        resolve_models,
    )

    if not models:
        raise ValueError("no model given: pass a train run folder or a checkpoint")
    ensembles: dict[str, list[Path]] = {}
    for source in models:
        check_run_complete(source)
        for cell_type, stems in resolve_models(source).items():
            bucket = ensembles.setdefault(cell_type, [])
            bucket.extend(s for s in stems if s not in bucket)
    metas = {stem: read_metadata(stem) for stems in ensembles.values() for stem in stems}
    class_lists = {stem: [str(c) for c in meta.get("classes") or []]
                   for stem, meta in metas.items()}
    first_stem, classes = next(iter(class_lists.items()))
    for stem, other in class_lists.items():
        if other != classes:
            raise ModelMismatchError(
                f"models disagree on their classes: {first_stem} has {len(classes)}, "
                f"{stem} has {len(other)} (or another order); ensemble only models trained "
                "on the same labels"
            )
    return ModelSet(ensembles, metas, classes, [str(m) for m in models])


def check_models_fit(model_set: ModelSet, screen: Screen, plates: Iterable[PlateKey]) -> None:
    """Every model must fit the screen's channels and labels, and every cell type of the
    chosen plates must have a model. Raises ``ModelMismatchError`` with a readable message."""
    from deepnoise_engine.model.checkpoint import check_fits

    plates = list(plates)
    labels = sorted({w.sirna for exp, p in plates for w in screen.plate(exp, p).wells.values()
                     if w.sirna is not None})
    for stem, meta in model_set.metas.items():
        try:
            check_fits(meta, channels=screen.channels, classes=labels)
        except ModelMismatchError as exc:
            raise ModelMismatchError(f"model {stem} does not fit screen {screen.root}: {exc}"
                                     ) from exc
    for cell_type in sorted({screen.experiments[exp].cell_type for exp, _ in plates}):
        if model_set.for_cell_type(cell_type) is None:
            raise ModelMismatchError(
                f"no model for cell type {cell_type!r}: the models cover "
                f"{', '.join(sorted(model_set.ensembles))}"
            )


def channel_notes(model_set: ModelSet, screen: Screen) -> list[str]:
    """One line per model that reads only some of the screen's channels (said, not silent)."""
    from deepnoise_engine.model.checkpoint import _ranges

    have = [int(c) for c in screen.channels]
    notes = []
    for stem, meta in model_set.metas.items():
        used = [int(c) for c in meta.get("channels") or []]
        unused = [c for c in have if c not in used]
        if used and unused:
            notes.append(f"model {stem} uses channels {_ranges(used)} of the screen's "
                         f"{_ranges(have)}; channel(s) {_ranges(unused)} are not used")
    return notes
