"""Training's input checks, run before anything is created in the run folder.

The run folder is checked (without creating it), the screen is opened, it must have
labelled treatment wells, and it is packed: a screen that cannot be used, or a full disk
while packing, leaves no stub run folder that would block the corrected re-run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepnoise_engine.screen.model import WellType


def check_labelled(screen: Any) -> None:
    """Refuse a screen without one labelled treatment well (a controls-only model is useless)."""
    from deepnoise_engine.train.data import TrainDataError

    for _, _, well in screen.wells():
        if well.well_type == WellType.TREATMENT and well.sirna is not None:
            return
    problems = [p for p in screen.problems if p.site_id is None]
    why = (f"; {len(problems)} metadata problem(s), first: {problems[0]}" if problems
           else "")
    raise TrainDataError(
        f"{screen.root}: no labelled treatment wells to train on{why}. Fix the metadata "
        f"(`deepnoise-engine inspect {screen.root}` lists every problem), then train again"
    )


def check_training_inputs(data: Any, out: str | Path, resume: bool) -> tuple[Any, Any]:
    """Check ``out``, open and check the screen, pack it; returns ``(screen, cache)``."""
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.screen.pack_cache import PackCache
    from deepnoise_engine.train.run_folder import check_run_folder

    check_run_folder(Path(out), resume)
    screen = open_screen(Path(data))
    check_labelled(screen)
    return screen, PackCache.open(screen)
