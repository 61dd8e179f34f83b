"""summarize_screen and ``deepnoise-engine inspect`` through a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepnoise_engine.screen import open_screen
from deepnoise_engine.screen.inspect import format_summary, summarize_screen

SAMPLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "rxrx1-sample"
TRAIN = "id_code,experiment,plate,well,sirna\n" + "".join(
    f"HUVEC-01_{p}_{w},HUVEC-01,{p},{w},{i}\n"
    for i, (p, w) in enumerate([(1, "B02"), (1, "B03"), (2, "B02"), (2, "C04")])
)
TEST_CONTROLS = (
    "id_code,experiment,plate,well,sirna,well_type\n"
    "RPE-03_1_B02,RPE-03,1,B02,30,negative_control\n"
    "RPE-03_1_B03,RPE-03,1,B03,31,positive_control\n"
    "RPE-03_1_Z99,RPE-03,1,Z99,31,positive_control\n"
)


def make_screen(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "train.csv").write_text(TRAIN)
    (root / "test_controls.csv").write_text(TEST_CONTROLS)
    (root / "test.csv").write_text("id_code,experiment,plate,well\nRPE-03_1_C02,RPE-03,1,C02\n")
    rng = np.random.default_rng(0)
    for split, exp, plate, well in [
        ("train", "HUVEC-01", 1, "B02"),
        ("train", "HUVEC-01", 1, "B03"),
        ("train", "HUVEC-01", 2, "B02"),
        ("test", "RPE-03", 1, "B02"),
        ("test", "RPE-03", 1, "C02"),
    ]:
        folder = root / split / exp / f"Plate{plate}"
        folder.mkdir(parents=True, exist_ok=True)
        for c in (1, 2):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{well}_s1_w{c}.png")
    return root


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "deepnoise_engine", "inspect", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_summarize_screen(tmp_path: Path) -> None:
    screen = open_screen(make_screen(tmp_path / "s"))
    summary = summarize_screen(screen)
    json.dumps(summary)  # JSON-safe
    assert summary["counts"] == {
        "experiments": 2,
        "train_experiments": 1,
        "test_experiments": 1,
        "plates": 3,
        "wells": 7,
        "sites": 7,
        "usable_sites": 5,
        "classes": 6,
    }
    assert summary["channels"] == [1, 2] and summary["image_size"] == [8, 8]
    assert summary["site_indices"] == [1] and summary["cell_types"] == ["HUVEC", "RPE"]
    rpe = summary["experiments"][1]
    assert (rpe["name"], rpe["cell_type"], rpe["split"], rpe["batch"]) == (
        "RPE-03",
        "RPE",
        "test",
        "RPE-03",
    )
    assert rpe["plates"][0]["wells"]["treatment"] == 1
    assert rpe["plates"][0]["format"] == {"wells": 96, "rows": 8, "columns": 12}
    assert summary["problems"]["by_kind"] == {"missing_image": 2, "bad_well": 1}
    assert summary["problems"]["total"] == 3
    assert summarize_screen(screen, max_problems=2)["problems"]["items"][0]["kind"] == "bad_well"
    text = format_summary(summary)
    assert "RPE-03  cell type RPE  split test" in text and "bad_well: 1" in text
    assert "Z99" in text and "test_controls.csv, row 4" in text


def test_inspect_cli_json_and_text(tmp_path: Path) -> None:
    root = make_screen(tmp_path / "s")
    result = run_cli(str(root), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["counts"]["wells"] == 7 and doc["verified"] is False
    assert len(doc["problems"]["items"]) == doc["problems"]["total"] == 3
    text = run_cli(str(root))
    assert text.returncode == 0 and "Problems: 3" in text.stdout
    assert "missing_image: 2" in text.stdout


def test_inspect_cli_verify_and_failures(tmp_path: Path) -> None:
    root = make_screen(tmp_path / "s")
    png = root / "train" / "HUVEC-01" / "Plate2" / "B02_s1_w2.png"
    png.write_bytes(png.read_bytes()[:40])  # truncated
    result = run_cli(str(root), "--json", "--verify")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["verified"] is True and doc["problems"]["by_kind"]["corrupt_image"] == 1
    corrupt = [p for p in doc["problems"]["items"] if p["kind"] == "corrupt_image"]
    assert corrupt[0]["file"] == str(png) and corrupt[0]["site_id"] == "HUVEC-01_2_B02_1"

    strict = run_cli(str(root), "--strict")
    assert strict.returncode == 2 and strict.stdout == ""
    assert "test_controls.csv, row 4" in strict.stderr and len(strict.stderr.splitlines()) == 1

    missing = run_cli(str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip() == (
        f"deepnoise-engine inspect: error: {tmp_path / 'nowhere'}: no such screen folder"
    )
    (tmp_path / "empty").mkdir()
    empty = run_cli(str(tmp_path / "empty"))
    assert empty.returncode == 2 and "no screen metadata" in empty.stderr


def test_inspect_cli_real_sample() -> None:
    if not (SAMPLE / "train.csv").is_file():
        pytest.skip(f"RxRx1 sample not found at {SAMPLE.resolve()}")
    result = run_cli(str(SAMPLE), "--json", "--max-problems", "5")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["counts"]["experiments"] == 51 and doc["counts"]["usable_sites"] == 18
    assert doc["problems"]["by_kind"]["missing_channel"] == 18
    assert doc["problems"]["by_kind"]["missing_image"] == doc["counts"]["sites"] - 36
    assert len(doc["problems"]["items"]) == 5
    assert {p["kind"] for p in doc["problems"]["items"]} == {"missing_channel", "missing_image"}
