"""The short version of benchmarks/bench_faults.py: one trial per step and fault family.

A real engine process suffers a SIGKILL or a full disk (ENOSPC) during pack, train and
score; a clean engine resumes or re-runs, and the result must equal the undisturbed
run's byte for byte (pack arrays, model weights, reports).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_faults.py"

PLAN = [
    ("pack", "kill@random"),
    ("pack", "enospc:reserve"),
    ("train", "kill:write:last.state.json"),
    ("train", "enospc:write:last.state.safetensors"),
    ("score", "kill:score-move"),
    ("score", "enospc:score-stage"),
]


@pytest.mark.slow
def test_faults_resume_or_rerun_to_the_undisturbed_result(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_faults", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.run_campaign(tmp_path, 0, seed=1, plan=PLAN)
    outcomes = report["outcomes"]
    assert [o for o in outcomes if not o["same_result"]] == []
    by_fault = {o["fault"]: o for o in outcomes}
    assert by_fault["enospc:reserve"]["first_run"] == "failed"  # disk_full, engine served on
    assert by_fault["kill:score-move"]["first_run"] == "killed"
    assert by_fault["kill:score-move"]["looked_complete"] is False
    assert by_fault["kill:write:last.state.json"]["recovery"].startswith("resume")
