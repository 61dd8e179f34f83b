"""The ``deepnoise-engine train`` command: errors name the key, progress on stderr."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from conftest import FAST

from deepnoise_engine.terminal import TerminalProgress


def _train(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "deepnoise_engine.cli", "train", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_bad_set_value_names_the_key(tmp_path: Path) -> None:
    proc = _train("--data", str(tmp_path), "--out", str(tmp_path / "run"),
                  "--set", "model.epochs=abc")
    assert proc.returncode == 2
    assert "model.epochs: expected an integer" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_cli_trains_and_refuses_to_overwrite(tiny_screen: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--data", str(tiny_screen), "--out", str(out), "--preset", "tiny"]
    for s in [*FAST, "model.epochs=1", "finetune.enabled=false"]:
        args += ["--set", s]
    proc = _train(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "shared epoch 1/1" in proc.stderr and "step " in proc.stderr  # log + bar
    assert "validation accuracy (ensemble, balanced): 0." in proc.stderr
    assert (out / "run.json").is_file()
    again = _train(*args)
    assert again.returncode == 2 and "pass --resume" in again.stderr


def test_cli_says_how_to_hold_an_experiment_out_when_none_is(tiny_screen: Path,
                                                             tmp_path: Path) -> None:
    args = ["--data", str(tiny_screen), "--out", str(tmp_path / "run"), "--preset", "tiny"]
    for s in [*FAST, "model.epochs=1", "finetune.enabled=false",
              "data.validation_per_cell_type=0"]:  # tiny's own default
        args += ["--set", s]
    proc = _train(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ("validation accuracy (ensemble, balanced): - (no experiment held out; "
            "--set data.validation_per_cell_type=1") in proc.stderr


def test_cli_trains_tinys_repeats_and_says_so(tiny_screen: Path, tmp_path: Path) -> None:
    """The preset's own repeat count (FAST asks for one): both repeats' log lines, one
    summary line that names them."""
    args = ["--data", str(tiny_screen), "--out", str(tmp_path / "run"), "--preset", "tiny"]
    for s in [*FAST[:-1], "model.epochs=1", "finetune.enabled=false"]:
        args += ["--set", s]
    assert FAST[-1] == "model.repeats=1"
    proc = _train(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "repeat 1/2: shared epoch 1/1" in proc.stderr
    assert "repeat 2/2: shared epoch 1/1" in proc.stderr
    assert "epochs: 1 per repeat, 2 independent repeats;" in proc.stderr
    assert (tmp_path / "run" / "repeats" / "2" / "run.json").is_file()


def test_progress_bar_text() -> None:
    stream = io.StringIO()
    bar = TerminalProgress(stream, lines_every_s=10, unit="step")
    bar({"event": "log", "message": "hello"})
    bar({"event": "progress", "stage": "shared", "done": 5, "total": 5, "eta_s": 0})
    text = stream.getvalue()
    assert "hello" in text and "100.0%" in text and "step 5/5" in text and "ETA 0m00s" in text


def test_ctrl_c_stops_with_a_resumable_checkpoint(tiny_screen: Path, tmp_path: Path) -> None:
    import signal
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "deepnoise_engine.cli", "train", "--data", str(tiny_screen),
           "--out", str(out), "--quiet"]
    for s in [*FAST, "model.epochs=500", "finetune.enabled=false"]:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").is_file():  # first epoch done
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err
    assert (out / "checkpoints" / "last.state.json").is_file()
    assert "cancelled at shared" in (out / "train.log").read_text()
