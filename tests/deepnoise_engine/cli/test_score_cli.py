"""``deepnoise-engine score`` through a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepnoise_engine.model import create_model, save_checkpoint
from deepnoise_engine.report import list_plate_reports, read_plate_report, read_submission
from deepnoise_engine.screen.open import open_screen
from deepnoise_engine.screen.synthetic import make_demo

torch.set_num_threads(1)

SMALL = {"cell_types": ("U2OS",), "train_experiments_per_cell_type": 1,
         "test_experiments_per_cell_type": 1, "sirnas_per_plate": 3, "image_size": 32,
         "sites": 1, "missing_wells": 0}


def _engine(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "deepnoise_engine", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def screen_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("cli")
    root = make_demo(base / "screen", **SMALL)
    classes = open_screen(root).classes()
    model = create_model("xception_tiny", in_chans=6, num_classes=len(classes))
    save_checkpoint(base / "tiny", model, {"classes": classes})
    return root, base / "tiny"


def test_score_subprocess_writes_reports(screen_and_model: tuple[Path, Path],
                                         tmp_path: Path) -> None:
    root, ckpt = screen_and_model
    out = tmp_path / "scores"
    extra = tmp_path / "kaggle" / "my_submission.csv"
    proc = _engine("score", "--data", root, "--model", f"{ckpt}.json", "--out", out,
                   "--submission", extra, "--plates", "U2OS-02:1,U2OS-02:3", "--batch-size", "4")
    assert proc.returncode == 0, proc.stderr
    assert "scored 2 plate(s)" in proc.stdout
    # only the chosen plates' experiment was packed (not the training experiment)
    packed = list((root / ".deepnoise" / "pack").rglob("*.npy"))
    assert packed and all("U2OS-02" in p.name for p in packed)
    assert [p.name for p in list_plate_reports(out).values()] == ["U2OS-02_Plate1.csv",
                                                                   "U2OS-02_Plate3.csv"]
    frame = read_plate_report(out / "U2OS-02_Plate3.csv")
    treat = frame[frame["well_type"] == "treatment"]
    assert len(treat) == 3 and treat["sirna"].is_unique
    assert frame["top1_prob"].between(0, 1).all()
    assert (frame["top1_prob"] >= frame["top2_prob"]).all()
    assert extra.read_bytes() == (out / "submission.csv").read_bytes()
    assert len(read_submission(extra)) == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tta"] == 8 and summary["balance"] == "assignment"
    # a second run without --overwrite is refused and names the file
    again = _engine("score", "--data", root, "--model", ckpt, "--out", out,
                    "--plates", "U2OS-02:1")
    assert again.returncode == 2
    assert "already exists" in again.stderr and "U2OS-02_Plate1.csv" in again.stderr


def test_model_with_wrong_channel_count_is_refused(screen_and_model: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    _, ckpt = screen_and_model  # a 6-channel model
    five = make_demo(tmp_path / "five", channels=5, **SMALL)
    proc = _engine("score", "--data", five, "--model", ckpt, "--out", tmp_path / "o")
    assert proc.returncode == 2
    assert "expects 6 channels (1-6) but the screen has 5 (1-5)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_distributed_scoring_matches_one_process(screen_and_model: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    """``--devices 2`` shards the wells over 2 gloo processes; rank 0 writes the same reports."""
    root, ckpt = screen_and_model
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--data", root, "--model", ckpt, "--plates", "U2OS-02:1,U2OS-02:2", "--tta", "1",
              "--device", "cpu"]
    assert _engine("score", *common, "--out", one).returncode == 0
    proc = _engine("score", *common, "--out", two, "--devices", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("scored 2 plate(s)") == 1  # rank 0 alone reports
    for name in ("U2OS-02_Plate1.csv", "U2OS-02_Plate2.csv"):
        a, b = read_plate_report(one / name), read_plate_report(two / name)
        assert list(a["sirna"]) == list(b["sirna"])
        assert a["confidence"].to_numpy() == pytest.approx(b["confidence"].to_numpy(), abs=1e-5)
