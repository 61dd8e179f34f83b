"""Nothing lost, nothing silent: full disks, bad metadata, interrupted outputs (issue 16).

Every case runs the real command line in a subprocess and checks: one line naming the
file and what to do, exit code 2, nothing already there changed, no partial output that
reads as complete, and a re-run after the fix that succeeds. Full disks are real tmpfs
mounts (the ``tmpfs`` fixture; skipped where mounting is refused) or an injected ENOSPC
(``DEEPNOISE_FAULT``); kills are real SIGKILLs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepnoise_engine.report.output_set import PartialOutputError, check_score_folder
from deepnoise_engine.screen.synthetic import make_demo

pytestmark = pytest.mark.slow  # real subprocesses, a trained run folder: about a minute

SMALL = {"cell_types": ("U2OS",), "train_experiments_per_cell_type": 1,
         "test_experiments_per_cell_type": 1, "sirnas_per_plate": 3, "image_size": 32,
         "sites": 1, "missing_wells": 0, "plates_per_experiment": 2}
FAST = ["data.image_size=32", "data.workers=0", "model.batch_size=16", "runtime.threads=1",
        "runtime.device=cpu", "model.eval_batch_size=64", "model.epochs=1",
        "finetune.enabled=false"]


def engine(*args: str | Path, fault: str | None = None, timeout: float = 300
           ) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("DEEPNOISE_FAULT", None)
    if fault:
        env["DEEPNOISE_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "deepnoise_engine", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """rc 2, no traceback, the error on one line holding every needle."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def screen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("robust") / "screen", **SMALL)


@pytest.fixture(scope="module")
def run_folder(screen: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    args = ["train", "--data", screen, "--out", out, "--quiet", *fast_sets()]
    proc = engine(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def fast_sets() -> list[str]:
    return [arg for s in FAST for arg in ("--set", s)]


def score_args(screen: Path, model: Path, out: Path, *extra: str | Path) -> list:
    return ["score", "--data", screen, "--model", model, "--out", out, "--tta", "1",
            "--batch-size", "8", *extra]


# -- full disks ---------------------------------------------------------------------------

def test_pack_on_a_full_disk_says_so_and_packs_after_the_fix(tmp_path: Path, tmpfs) -> None:
    demo = make_demo(tmp_path / "demo", cell_types=("HEPG2",), image_size=192,
                     plates_per_experiment=4, plate_format=96,
                     train_experiments_per_cell_type=1, test_experiments_per_cell_type=0)
    with tmpfs(tmp_path / "small", "20m") as disk:
        proc = engine("pack", demo, "--out", disk / "pack")
        line = one_line_error(proc, str(disk / "pack"), "disk full", "needs", "MB")
        assert "free some space or choose another output folder" in line
        assert not [p for p in (disk / "pack").rglob("*") if ".tmp-" in p.name]
        again = engine("pack", demo, "--out", disk / "pack")  # same cause, same answer
        one_line_error(again, "disk full")
    with tmpfs(tmp_path / "big", "200m") as disk:
        fixed = engine("pack", demo, "--out", disk / "pack")
        assert fixed.returncode == 0, fixed.stderr
        assert "4 packed" in fixed.stdout


def test_reserve_turns_a_full_disk_under_a_memory_map_into_an_error(tmp_path: Path,
                                                                    tmpfs) -> None:
    # without the reservation, writing these pages kills the process with SIGBUS
    code = ("import numpy as np, sys\n"
            "from deepnoise_engine.disk_space import reserve, DiskFullError\n"
            "a = np.lib.format.open_memmap(sys.argv[1], mode='w+', dtype=np.uint8,"
            " shape=(40, 1024, 1024))\n"
            "try:\n    reserve(sys.argv[1], 40 << 20)\n"
            "except DiskFullError as e:\n    print(e.needed, e.path); sys.exit(3)\n"
            "a[:] = 1\n")
    with tmpfs(tmp_path / "disk", "20m") as disk:
        proc = subprocess.run([sys.executable, "-c", code, str(disk / "a.npy")],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    assert proc.stdout.split() == [str(40 << 20), str(disk / "a.npy")]


def test_score_on_a_full_disk_changes_nothing(screen: Path, run_folder: Path,
                                              tmp_path: Path) -> None:
    out = tmp_path / "scores"
    first = engine(*score_args(screen, run_folder, out))
    assert first.returncode == 0, first.stderr[-3000:]
    before = tree(out)
    # --overwrite asked for, but the disk fills while the new set is staged
    full = engine(*score_args(screen, run_folder, out, "--overwrite"),
                  fault="enospc:score-stage")
    one_line_error(full, str(out), "disk full", "needs")
    assert tree(out) == before  # the complete earlier set is untouched
    assert check_score_folder(out) is not None


# -- interrupted outputs ------------------------------------------------------------------

def test_score_killed_while_moving_reports_reads_as_partial_and_reruns(
        screen: Path, run_folder: Path, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    assert engine(*score_args(screen, run_folder, clean)).returncode == 0
    out = tmp_path / "killed"
    killed = engine(*score_args(screen, run_folder, out), fault="kill:score-move")
    assert killed.returncode == -9
    assert list(out.glob("*_Plate*.csv"))  # some reports, byte-identical to a full run's ...
    with pytest.raises(PartialOutputError, match="partial score folder"):
        check_score_folder(out)  # ... but the set says it is partial
    from deepnoise_app.state import AppState

    with pytest.raises(ValueError, match="partial score folder"):
        AppState().load_predictions(out)
    from deepnoise_engine.report.export import export_reports

    with pytest.raises(PartialOutputError):
        export_reports(out, tmp_path / "export")
    rerun = engine(*score_args(screen, run_folder, out))  # needs no --overwrite
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    names = check_score_folder(out)
    assert names is not None and not list(out.glob(".score-staging-*"))
    for name in names:
        if name.endswith(".csv"):
            assert (out / name).read_bytes() == (clean / name).read_bytes(), name
    again = engine(*score_args(screen, run_folder, out))  # finished now: refused
    one_line_error(again, "already exists", "--overwrite")


def test_submission_inside_the_out_folder_is_not_a_clash(screen: Path, run_folder: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "scores"
    proc = engine(*score_args(screen, run_folder, out, "--submission",
                              out / "submission.csv"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert check_score_folder(out) is not None and (out / "summary.json").is_file()
    clash = engine(*score_args(screen, run_folder, tmp_path / "o2", "--submission",
                               tmp_path / "o2" / "summary.json"))
    one_line_error(clash, "summary.json", "--submission")
    assert not (tmp_path / "o2").exists()  # refused before any work


def test_train_run_json_is_complete_only_when_everything_is_written(
        screen: Path, run_folder: Path, tmp_path: Path) -> None:
    assert json.loads((run_folder / "run.json").read_text())["status"] == "complete"
    out = tmp_path / "run"
    args = ["train", "--data", screen, "--out", out, "--quiet", *fast_sets()]
    # the disk fills while the training state is written
    full = engine(*args, fault="enospc:write:last.state.safetensors")
    one_line_error(full, "disk full", str(out / "checkpoints" / "last.state.safetensors"),
                   "needs")
    assert json.loads((out / "run.json").read_text())["status"] != "complete"
    refused = engine(*score_args(screen, out, tmp_path / "s"))
    one_line_error(refused, "not complete", "--resume")
    resumed = engine(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert engine(*score_args(screen, out, tmp_path / "s")).returncode == 0


# -- bad input ----------------------------------------------------------------------------

def test_train_on_a_screen_that_cannot_be_opened_leaves_no_stub(screen: Path,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--out", out, "--quiet", *fast_sets()]
    bad = engine("train", "--data", tmp_path / "nowhere", *args)
    one_line_error(bad, str(tmp_path / "nowhere"))
    assert not out.exists()
    assert engine("train", "--data", screen, *args).returncode == 0


def test_train_refuses_a_screen_without_labelled_treatments(tmp_path: Path) -> None:
    root = make_demo(tmp_path / "screen", **SMALL)
    train_csv = root / "train.csv"
    lines = train_csv.read_text().splitlines()
    header = lines[0].split(",")
    at = header.index("sirna")
    rows = [ln.split(",") for ln in lines[1:]]
    for row in rows:
        row[at] = "not-a-label"
    train_csv.write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    out = tmp_path / "run"
    proc = engine("train", "--data", root, "--out", out, "--quiet", *fast_sets())
    one_line_error(proc, "no labelled treatment wells", "train.csv", "inspect")
    assert not out.exists()


def test_a_non_utf8_byte_names_its_line_and_skips_only_that_row(tmp_path: Path) -> None:
    root = make_demo(tmp_path / "screen", **SMALL)
    train_csv = root / "train.csv"
    lines = train_csv.read_bytes().split(b"\n")
    lines[3] += b"\xe9"
    train_csv.write_bytes(b"\n".join(lines))
    proc = engine("inspect", root, "--json")
    assert proc.returncode == 0, proc.stderr
    problems = json.loads(proc.stdout)["problems"]["items"]
    bad = [p for p in problems if p["kind"] == "bad_row"]
    assert len(bad) == 1 and bad[0]["row"] == 4
    assert "line 4 is not UTF-8 text (byte 0xE9" in bad[0]["message"]


def test_skipped_sites_are_stated_in_the_log_and_run_json(run_folder: Path) -> None:
    run = json.loads((run_folder / "run.json").read_text())
    assert set(run["skipped"]) == {"rows", "sites", "wells", "by_reason", "examples"}
    assert "skipped:" in (run_folder / "train.log").read_text()


def test_symlink_loop_plate_folder_is_a_screen_problem(tmp_path: Path, run_folder: Path
                                                       ) -> None:
    root = make_demo(tmp_path / "screen", **SMALL)
    plate = next(root.glob("test/*/Plate2"))
    for f in plate.iterdir():
        f.unlink()
    plate.rmdir()
    plate.symlink_to(plate.name)  # Plate2 -> Plate2
    proc = engine("inspect", root)
    assert proc.returncode == 0, proc.stderr
    assert "plate folder cannot be listed (Too many levels of symbolic links)" in proc.stdout
    scored = engine(*score_args(root, run_folder, tmp_path / "s"))
    assert scored.returncode == 0, scored.stderr[-3000:]
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["skipped"]["rows"] >= 1 and summary["skipped"]["sites"] > 0


def test_model_loose_ends(screen: Path, run_folder: Path, tmp_path: Path) -> None:
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"\x80\x04K\x01.")
    proc = engine(*score_args(screen, pt, tmp_path / "a"))
    one_line_error(proc, "model.pt", "pickled PyTorch files are never loaded")
    # a checkpoint whose JSON lists fewer classes than its weights hold
    stem = sorted((run_folder / "models").glob("*.json"))[0]
    meta = json.loads(stem.read_text())
    meta["architecture"]["kwargs"]["num_classes"] -= 1
    meta["classes"] = meta["classes"][:-1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(meta))
    (tmp_path / "bad.safetensors").write_bytes(stem.with_suffix(".safetensors").read_bytes())
    from deepnoise_engine.model.checkpoint import load_checkpoint
    from deepnoise_engine.model.errors import CheckpointError

    with pytest.raises(CheckpointError, match="'classes' / 'num_classes' give"):
        load_checkpoint(bad)


def test_a_five_channel_model_says_which_channels_it_uses(tmp_path: Path) -> None:
    import torch

    from deepnoise_engine.model import create_model, save_checkpoint
    from deepnoise_engine.screen.open import open_screen

    root = make_demo(tmp_path / "screen", **SMALL)
    classes = open_screen(root).classes()
    torch.manual_seed(0)
    model = create_model("xception_tiny", in_chans=5, num_classes=len(classes))
    save_checkpoint(tmp_path / "five", model, {"classes": classes, "channels": [1, 2, 3, 4, 5]})
    proc = engine(*score_args(root, tmp_path / "five.json", tmp_path / "s"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "uses channels 1-5 of the screen's 1-6; channel(s) 6 are not used" in proc.stderr


def test_problems_pack_found_are_listed_by_plain_inspect(tmp_path: Path) -> None:
    root = make_demo(tmp_path / "screen", **SMALL)
    broken = sorted(root.glob("test/*/Plate2/*.png"))[-1]  # not the one read for the size
    broken.write_bytes(broken.read_bytes()[:40])  # truncated: found only by decoding
    before = engine("inspect", root)
    assert "Problems: 0 (images not decoded: `inspect --verify` decodes them)" in before.stdout
    packed = engine("pack", root)
    assert packed.returncode == 0, packed.stderr
    assert f"inspect --verify {root}" in packed.stdout
    after = engine("inspect", root, "--json")
    kinds = [p["kind"] for p in json.loads(after.stdout)["problems"]["items"]]
    assert "corrupt_image" in kinds
