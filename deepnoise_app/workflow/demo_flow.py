"""First start on the demo screen: train ``tiny``, score, cache and show the predictions.

On the built-in demo screen (``<data dir>/demo-screen-v2``), when no demo predictions are
cached, a background engine job trains the ``tiny`` preset and scores the demo screen;
the per-plate reports are cached in ``<data dir>/demo-predictions-v2`` (written to a temp
folder, then renamed: complete or absent) and loaded into the app state. Later starts load
the cache at once. ``DEEPNOISE_NO_AUTO_DEMO=1`` switches all of this off.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from qtpy.QtCore import QObject, Signal

from deepnoise_app.engine import STOPPED, EngineBridge
from deepnoise_app.models.demo import auto_demo_enabled, is_builtin_demo
from deepnoise_app.models.predictions import report_plate_keys
from deepnoise_app.models.training_runs import is_resumable, run_complete
from deepnoise_engine.screen.synthetic import DEMO_DIRNAME as DEMO_SCREEN
from deepnoise_engine.screen.synthetic import user_data_dir

# the demo screen's folder name carries the demo's version; so do our caches
DEMO_RUN = DEMO_SCREEN.replace("screen", "run")  # demo-run-v2
DEMO_PREDICTIONS = DEMO_SCREEN.replace("screen", "predictions")  # demo-predictions-v2
#: The demo's training: the tiny preset shortened to show predictions within 3 minutes of
#: the first launch on 2 CPU cores (docs/workflow.md has the measured times): fewer epochs,
#: both labelled experiments of each cell type trained on (the demo has two; no validation
#: experiment, so the last epoch is served), one training instead of tiny's two
#: independent repeats, one thread so the viewer keeps a core. No plate-position
#: correction: on the demo's two plates per experiment and 18 epochs it cost 1-7 points of
#: balanced accuracy in each of four runs (docs/science.md).
DEMO_PRESET = "tiny"
DEMO_OVERRIDES: tuple[str, ...] = (
    "model.epochs=18", "model.repeats=1", "optim.lr_milestones=[12, 15]",
    "pseudo_labels.start_epoch=11", "data.validation_per_cell_type=0", "finetune.epochs=1",
    "data.position_correction=none", "runtime.threads=1")
DEMO_TTA = 1


def has_reports(folder: Path) -> bool:
    """The folder holds per-plate reports (a cached demo scoring)."""
    return folder.is_dir() and bool(report_plate_keys(folder))


class DemoFlow(QObject):
    """Drives train -> score -> cache -> load for the demo screen through the bridge."""

    status_changed = Signal(str)
    done = Signal(str)  # the predictions folder, once loaded

    def __init__(
        self,
        bridge: EngineBridge,
        state: Any,
        data_dir: Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.state = state
        self.data_dir = Path(data_dir) if data_dir else user_data_dir()
        self.status = ""
        self.stage = "idle"  # idle | training | scoring | done | failed
        self.request: str | None = None
        self.run_dir = self.data_dir / DEMO_RUN
        self.started_at: float | None = None
        bridge.event.connect(self._on_event)
        bridge.engine_died.connect(self._on_engine_died)
        bridge.state_changed.connect(self._on_engine_state)

    @property
    def predictions_dir(self) -> Path:
        return self.data_dir / DEMO_PREDICTIONS

    def _say(self, text: str) -> None:
        self.status = text
        self.status_changed.emit(text)

    def check(self, *_args: Any) -> str:
        """Called when a screen opens: loads or starts the demo predictions; returns what it did."""
        screen = getattr(self.state, "screen", None)
        if not auto_demo_enabled() or not is_builtin_demo(screen, self.data_dir):
            return "skipped"
        if self.stage in ("training", "scoring"):
            return "running"
        if has_reports(self.predictions_dir):
            self._load()
            return "loaded"
        self.start()
        return "started"

    def start(self) -> None:
        """Train (or resume, or reuse) the demo run, then score the demo screen."""
        self.started_at = time.monotonic()
        screen = self.state.screen
        if run_complete(self.run_dir):
            self._score()
            return
        if is_resumable(self.run_dir):
            self.request = self.bridge.submit(
                "resume", out=str(self.run_dir), data=str(screen.root)
            )
        else:
            if self.run_dir.exists() and any(self.run_dir.iterdir()):
                # a broken earlier attempt: keep it, train into a fresh folder
                self.run_dir = self.data_dir / f"{DEMO_RUN}-{time.strftime('%Y%m%d-%H%M%S')}"
            self.request = self.bridge.submit(
                "train",
                data=str(screen.root),
                out=str(self.run_dir),
                preset=DEMO_PRESET,
                overrides=list(DEMO_OVERRIDES),
            )
        self.stage = "training"
        self._say(
            "Demo: training the tiny model on the demo screen (first start only, about a "
            "minute; curves in the Training tab)…"
        )

    def _score(self) -> None:
        tmp = self.data_dir / f".{DEMO_PREDICTIONS}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)  # our own half-written temp folder
        self.stage = "scoring"
        self.request = self.bridge.submit(
            "score",
            data=str(self.state.screen.root),
            models=[str(self.run_dir)],
            out=str(tmp),
            tta=DEMO_TTA,
            overwrite=True,
        )
        self._say("Demo: scoring the demo screen…")

    def _load(self) -> None:
        try:
            count = self.state.load_predictions(self.predictions_dir)
        except Exception as exc:  # shown, never raised into the event loop
            self.stage = "failed"
            self._say(f"Demo: could not load the cached predictions: {exc}")
            return
        self.stage = "done"
        took = ""
        if self.started_at is not None:
            took = f" after {time.monotonic() - self.started_at:.0f} s"
        self._say(
            f"Demo: predictions for {count} plate(s) loaded{took}; they show on the plate map "
            "and the mosaic. Export… writes them as CSV."
        )
        self.done.emit(str(self.predictions_dir))

    def _on_event(self, event: dict) -> None:
        if self.request is None or event.get("request") != self.request:
            return
        name = event.get("event")
        if name == "progress" and self.stage == "training":
            done, total = event.get("done"), event.get("total")
            if isinstance(done, int | float) and isinstance(total, int | float) and total:
                stage = str(event.get("stage") or "")
                part = f" ({stage})" if stage.startswith("finetune") else ""
                self._say(f"Demo: training the tiny model{part}… {100 * done / total:.0f}%")
        elif name == "result":
            result = event.get("result") or {}
            if self.stage == "training":
                if isinstance(result, dict) and result.get("cancelled"):
                    self._fail("training was cancelled")
                else:
                    self._score()
            elif self.stage == "scoring":
                tmp = self.data_dir / f".{DEMO_PREDICTIONS}.tmp"
                if self.predictions_dir.exists():
                    shutil.rmtree(self.predictions_dir)  # an incomplete cache (no reports)
                os.replace(tmp, self.predictions_dir)
                self.request = None
                if is_builtin_demo(getattr(self.state, "screen", None), self.data_dir):
                    self._load()
                else:
                    self.stage = "done"
        elif name == "error":
            self._fail(str(event.get("message", "error")))
        elif name == "cancelled":
            self._fail("cancelled")

    def _fail(self, why: str) -> None:
        self.stage = "failed"
        self.request = None
        self._say(f"Demo: stopped ({why}). Use Train… to try again.")

    def _on_engine_state(self, state: str) -> None:
        if state == STOPPED and self.stage in ("training", "scoring"):  # restarted
            self._fail("the engine was restarted; reopen the demo screen to go on")

    def _on_engine_died(self, _info: dict) -> None:
        if self.stage in ("training", "scoring"):
            self._fail("the engine stopped; restart it and reopen the demo screen")
