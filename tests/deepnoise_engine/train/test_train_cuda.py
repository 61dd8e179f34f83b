"""The CUDA paths (bf16 autocast, channels_last, pinned memory, GPU scoring): skipped
without a GPU; run on one when a GPU machine is at hand (docs/performance.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = [o for o in FAST if not o.startswith("runtime.device")] + [
    "runtime.device=cuda", "runtime.amp=true", "runtime.channels_last=true",
    "data.pin_memory=true", "model.epochs=2", "finetune.epochs=1"]


def test_training_and_scoring_on_the_gpu(tiny_screen: Path, tmp_path: Path) -> None:
    from deepnoise_engine.workflows.score import run_scoring
    from deepnoise_engine.workflows.train import run_training

    result = run_training(tiny_screen, tmp_path / "run", overrides=CUDA)
    assert result["cancelled"] is False
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["train_loss"]) for r in recs)
    gpu = run_scoring(tiny_screen, [tmp_path / "run"], tmp_path / "gpu", device="cuda", tta=8)
    cpu = run_scoring(tiny_screen, [tmp_path / "run"], tmp_path / "cpu", device="cpu", tta=8)
    # bf16 autocast on the GPU vs float32 on the CPU: the same calls almost everywhere
    a, b = (json.loads(Path(r["summary"]).read_text())["accuracy"] for r in (gpu, cpu))
    assert abs(a["raw"] - b["raw"]) <= 0.1, (a, b)
