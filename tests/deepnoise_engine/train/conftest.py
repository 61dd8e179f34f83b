"""Shared fixtures for the training tests: one tiny synthetic screen per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

#: Small and fast: 32 px, 2 cell types, 2 plates per experiment, 6 siRNAs per plate.
DEMO_KW = dict(seed=3, cell_types=("HEPG2", "U2OS"), train_experiments_per_cell_type=2,
               test_experiments_per_cell_type=1, plates_per_experiment=2, sirnas_per_plate=6,
               positive_controls=2, image_size=32, sites=2, missing_wells=1)

#: Overrides that make any preset a seconds-long CPU run on the tiny screen; one labelled
#: experiment per cell type validates (``tiny`` trains on all of them) so that validation,
#: serving and pseudo-label refreshes are exercised; one training (``tiny`` repeats it;
#: test_train_repeats.py covers that).
FAST = ["data.image_size=32", "data.workers=0", "model.batch_size=16", "runtime.threads=1",
        "runtime.device=cpu", "model.eval_batch_size=64", "data.validation_per_cell_type=1",
        "model.repeats=1"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_screen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A packed tiny demo screen (packing happens once, on first training use)."""
    from deepnoise_engine.screen.pack_cache import PackCache
    from deepnoise_engine.screen.synthetic import make_demo

    root = make_demo(tmp_path_factory.mktemp("screen") / "demo", **DEMO_KW)
    PackCache.open(root)
    return Path(root)
