"""``run_qc`` / ``deepnoise-engine qc`` / the engine's ``qc`` job on planted profiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepnoise_engine.qc.job import qc_paths, run_qc
from deepnoise_engine.qc.synthetic import planted_metadata, write_planted_profiles
from deepnoise_engine.report import OutputExistsError, ReportError


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    meta = planted_metadata({"HEPG2": 2, "U2OS": 2}, plates=2, sirnas=30)
    return write_planted_profiles(tmp_path_factory.mktemp("qc") / "scores", meta, dims=24)


def test_qc_tells_pixels_from_embedding(scores: Path, tmp_path: Path) -> None:
    out = tmp_path / "qc"
    result = run_qc(scores, out)
    assert sorted(result["files"]) == sorted(str(p) for p in qc_paths(out))
    report = json.loads((out / "qc.json").read_text())
    raw, norm, emb = (report["profiles"][k] for k in
                      ("pixels_raw", "pixels_normalised", "embedding"))
    assert raw["experiment"]["normalised"] > 0.8  # planted: strong experiment signal
    assert norm["experiment"]["map"] < raw["experiment"]["map"]
    assert emb["experiment"]["normalised"] < 0.1 and emb["sirna"]["normalised"] > 0.5
    assert raw["mixing_experiment"] < 0.2 < emb["mixing_experiment"]
    verdict = report["verdict"]
    assert verdict["embedding"] == {"experiment_near_chance": True, "sirna_above_chance": True}
    assert verdict["pixels_raw"]["experiment_near_chance"] is False
    assert verdict["embedding_beats_pixels_on_sirna"] is True
    md = (out / "qc.md").read_text()
    assert "| model embedding (ensemble) | " in md and "| pixel statistics, raw | " in md
    assert (out / "qc_retrieval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "qc_map.svg").read_text()[:500]
    with pytest.raises(OutputExistsError, match=r"qc\.json"):
        run_qc(scores, out)


def test_missing_profiles_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"profiles\.json: no well profiles"):
        run_qc(tmp_path)


@pytest.mark.slow
def test_cli_writes_into_the_score_folder_and_fails_in_one_line(scores: Path,
                                                                tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "deepnoise_engine", "qc"]
    done = subprocess.run([*cmd, str(scores), "--out", str(tmp_path / "q")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "# Noise-removal QC" in done.stdout and (tmp_path / "q" / "qc.md").is_file()
    bad = subprocess.run([*cmd, str(tmp_path / "nowhere")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "nowhere" in bad.stderr


@pytest.mark.slow
def test_engine_process_runs_qc(scores: Path, tmp_path: Path) -> None:
    from deepnoise_engine.serve.client import EngineClient

    client = EngineClient(env={**os.environ, "OMP_NUM_THREADS": "1"})
    client.start(timeout=120)
    try:
        job = client.request("qc", score_dir=str(scores), out=str(tmp_path / "qc"))
        events = []
        while not events or events[-1]["event"] != "finished":
            event = client.next_event(timeout=120)
            if event.get("job") == job:
                events.append(event)
    finally:
        client.shutdown(timeout=10)
    result = next(e for e in events if e["event"] == "result")["result"]
    assert result["profiles"]["embedding"]["sirna"]["normalised"] > 0.5
    assert any(e["event"] == "progress" and e["stage"] == "qc" for e in events)
    assert (tmp_path / "qc" / "qc.json").is_file()


def test_one_experiment_says_not_measurable(tmp_path: Path) -> None:
    meta = planted_metadata({"HEPG2": 1}, plates=1, sirnas=6)
    scores = write_planted_profiles(tmp_path / "scores", meta, dims=8)
    result = run_qc(scores)
    json.dumps(result, allow_nan=False)  # the engine protocol sends it as strict JSON
    assert result["profiles"]["embedding"]["experiment"]["map"] is None
    assert result["verdict"]["embedding"] == {"experiment_near_chance": None,
                                              "sirna_above_chance": None}
    assert "not measurable here" in (scores / "qc" / "qc.md").read_text()
