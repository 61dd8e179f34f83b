"""Distributed data parallel: 2 CPU processes (gloo) launched by ``train --devices 2``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import FAST


def test_ddp_two_gloo_processes(tiny_screen: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    sets = [*FAST, "model.epochs=2", "finetune.enabled=false"]
    cmd = [sys.executable, "-m", "deepnoise_engine.cli", "train", "--data", str(tiny_screen),
           "--out", str(out), "--devices", "2", "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "train.log").read_text()
    assert "(world 2, " in log
    assert "weights of the 2 ranks agree" in log
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [1, 2]  # written once (rank 0), not per rank
    assert json.loads((out / "run.json").read_text())["ensembles"]["*"] == [
        "models/shared_plain_cnn"]
