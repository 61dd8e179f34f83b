"""Fixtures shared by the app tests (Qt / napari). Engine tests do not need any of them.

- ``isolated_user_dirs``: points DEEPNOISE_CONFIG_DIR / _CACHE_DIR / _DATA_DIR at tmp_path and
  switches off the engine autostart and the automatic demo training, so app tests never touch
  the user's folders nor start background engines unless they ask for one.
- ``small_screen_path`` (session): a 96-well, 32 px make_demo screen (2 cell types x 1+1
  experiments x 2 plates, 6 channels, 2 sites), generated once; treat it as read-only.
- ``small_screen``: that screen opened with open_screen (a fresh Screen object per test).
- ``rxrx1_sample``: the real RxRx1 excerpt (../shared/rxrx1-sample), skipped when absent.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

# torch imports triton lazily (optimisers, dynamo). Loading triton's LLVM *after* napari's
# OpenGL canvas has pulled Mesa's LLVM into the same process segfaults; loading it first is
# fine. Only this test process mixes the two: the app and the engine never share a process.
with contextlib.suppress(ImportError):
    import triton  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
RXRX1_SAMPLE = REPO / ".." / "shared" / "rxrx1-sample"


@pytest.fixture
def isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "user"
    for name, sub in (("DEEPNOISE_CONFIG_DIR", "config"), ("DEEPNOISE_CACHE_DIR", "cache"),
                      ("DEEPNOISE_DATA_DIR", "data")):
        monkeypatch.setenv(name, str(root / sub))
    monkeypatch.setenv("DEEPNOISE_NO_ENGINE_AUTOSTART", "1")
    monkeypatch.setenv("DEEPNOISE_NO_AUTO_DEMO", "1")
    return root


@pytest.fixture(scope="session")
def small_screen_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deepnoise_engine.screen.synthetic import make_demo

    out = tmp_path_factory.mktemp("screens") / "small96"
    return make_demo(
        out, seed=3, train_experiments_per_cell_type=1, test_experiments_per_cell_type=1,
        plates_per_experiment=2, plate_format=96, sirnas_per_plate=12, image_size=32,
    )


@pytest.fixture
def small_screen(small_screen_path: Path):
    from deepnoise_engine.screen import open_screen

    return open_screen(small_screen_path)


@pytest.fixture
def rxrx1_sample() -> Path:
    path = RXRX1_SAMPLE.resolve()
    if not (path / "train.csv").is_file():
        pytest.skip(f"the RxRx1 sample is not at {path}")
    return path


def plate_prediction_frame(plate, confidence: dict[str, float] | None = None, *,
                           wrong: set[str] = frozenset(), changed: set[str] = frozenset()):
    """A per-plate report frame written by hand for ``plate``.

    Every used well is called; the call is the true label except for wells in ``wrong``;
    ``confidence`` maps well -> probability of the call (default 0.5). Raw calls equal the
    balanced ones except for ``changed`` wells.
    """
    import pandas as pd

    confidence = confidence or {}
    rows = []
    for well in plate.used_wells():
        truth = well.sirna
        call = "9999" if well.name in wrong else (truth or "0")
        raw = "8888" if well.name in changed else call
        conf = float(confidence.get(well.name, 0.5))
        rows.append({
            "id_code": well.id_code, "experiment": plate.experiment, "plate": plate.index,
            "well": well.name, "row": well.name[:-2], "column": well.column + 1,
            "cell_type": plate.experiment.split("-")[0], "well_type": well.well_type.value,
            "sites_used": len(well.usable_sites), "sirna_true": truth, "sirna_raw": raw,
            "prob_raw": conf, "sirna": call, "confidence": conf, "margin": conf / 2,
            "changed_by_balancing": well.name in changed,
            "correct_raw": None if truth is None else raw == truth,
            "correct": None if truth is None else call == truth,
            "plate_group": 1,
            "top1_sirna": call, "top1_prob": conf, "top2_sirna": "7", "top2_prob": 0.1,
            "top3_sirna": "8", "top3_prob": 0.05,
        })
    try:
        from deepnoise_engine.report.plate_report import to_report_frame
    except ImportError:
        return pd.DataFrame(rows)
    return to_report_frame(rows)


@pytest.fixture
def prediction_frame():
    """The ``plate_prediction_frame`` builder (see its docstring)."""
    return plate_prediction_frame
