"""make_demo / ensure_demo_screen / `make-demo`: layout, plate groups, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.screen.synthetic import DEMO_DIRNAME, ensure_demo_screen, make_demo

SAMPLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "rxrx1-sample"
SMALL = dict(
    cell_types=("HEPG2", "U2OS"),
    train_experiments_per_cell_type=1,
    test_experiments_per_cell_type=1,
    plates_per_experiment=4,
    sirnas_per_plate=5,
    positive_controls=2,
    image_size=24,
    sites=2,
    channels=6,
    missing_wells=2,
)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("demo") / "screen", seed=7, **SMALL)


def _all_wells(root: Path) -> pd.DataFrame:
    """Every well of the four CSVs plus the answers' labels for the test treatments."""
    answers = pd.read_csv(root / "answers" / "test_answers.csv")
    frames = [
        pd.read_csv(root / "train.csv").assign(well_type="treatment", split="train"),
        pd.read_csv(root / "test.csv")
        .merge(answers[["id_code", "sirna"]], on="id_code")
        .assign(well_type="treatment", split="test"),
        pd.read_csv(root / "train_controls.csv").assign(split="train"),
        pd.read_csv(root / "test_controls.csv").assign(split="test"),
    ]
    return pd.concat(frames, ignore_index=True)


def test_same_seed_gives_identical_bytes_other_seed_differs(tmp_path: Path, demo: Path) -> None:
    again = make_demo(tmp_path / "again", seed=7, **SMALL)
    other = make_demo(tmp_path / "other", seed=8, **SMALL)
    first, second, third = _files(demo), _files(again), _files(other)
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)
    changed = [k for k in first if k.endswith(".png") and third.get(k) != first[k]]
    assert len(changed) > len(first) // 2
    assert (demo / "train.csv").read_bytes() != (other / "train.csv").read_bytes()


def test_kaggle_columns_and_files(demo: Path) -> None:
    expected = {
        "train.csv": "id_code,experiment,plate,well,sirna",
        "test.csv": "id_code,experiment,plate,well",
        "train_controls.csv": "id_code,experiment,plate,well,sirna,well_type",
        "test_controls.csv": "id_code,experiment,plate,well,sirna,well_type",
    }
    for name, header in expected.items():
        assert (demo / name).read_text().splitlines()[0] == header
        if SAMPLE.is_dir():  # the real files have the same columns
            assert (SAMPLE / name).open().readline().strip() == header
    wells = _all_wells(demo)
    assert wells["sirna"].dtype.kind == "i"  # labels written as integers
    assert wells["id_code"].is_unique
    expected_ids = wells.experiment + "_" + wells.plate.astype(str) + "_" + wells.well
    assert (wells["id_code"] == expected_ids).all()
    # every well has `sites` x `channels` 8-bit PNGs of image_size
    for row in wells.itertuples():
        folder = demo / row.split / row.experiment / f"Plate{row.plate}"
        for s in (1, 2):
            for c in range(1, 7):
                assert (folder / f"{row.well}_s{s}_w{c}.png").is_file()
    with Image.open(demo / "train" / "HEPG2-01" / "Plate1" / "B02_s1_w1.png") as image:
        assert image.mode == "L" and image.size == (24, 24)
    n_png = sum(1 for _ in demo.rglob("*.png"))
    assert n_png == len(wells) * 2 * 6
    meta = json.loads((demo / "demo.json").read_text())
    assert meta["seed"] == 7 and meta["parameters"]["sirnas_per_plate"] == 5
    names = [e["name"] for e in meta["experiments"]]
    assert names == ["HEPG2-01", "HEPG2-02", "U2OS-01", "U2OS-02"]


def test_plate_groups_disjoint_and_once_per_plate(demo: Path) -> None:
    meta = json.loads((demo / "demo.json").read_text())
    groups = [set(g) for g in meta["plate_groups"]]
    n_sirnas = meta["n_sirnas"]
    assert n_sirnas == 4 * 5
    assert set().union(*groups) == set(range(n_sirnas))
    assert sum(len(g) for g in groups) == n_sirnas  # disjoint
    wells = _all_wells(demo)
    treatments = wells[wells.well_type == "treatment"]
    for exp in meta["experiments"]:
        used_groups = set()
        for plate, group in exp["plate_groups"].items():
            on_plate = treatments[
                (treatments.experiment == exp["name"]) & (treatments.plate == int(plate))
            ]
            assert on_plate["sirna"].is_unique  # each siRNA at most once per plate
            assert set(on_plate["sirna"]) <= groups[group]
            used_groups.add(group)
        assert used_groups == set(range(4))  # each plate of an experiment: another group
    # the edge row and column are never used (like RxRx1)
    rows = wells.well.str[0]
    cols = wells.well.str[1:].astype(int)
    assert not rows.isin(["A", "H"]).any() and not cols.isin([1, 12]).any()


def test_controls_missing_wells_and_answers(demo: Path) -> None:
    meta = json.loads((demo / "demo.json").read_text())
    wells = _all_wells(demo)
    negative, positives = meta["negative_control_label"], meta["positive_control_labels"]
    assert negative == 22 and positives == [20, 21]
    for (_, _), plate in wells.groupby(["experiment", "plate"]):
        neg = plate[plate.well_type == "negative_control"]
        assert list(neg.sirna) == [negative] and list(neg.well) == ["B02"]
        assert sorted(plate[plate.well_type == "positive_control"].sirna) == positives
    # missing wells: absent from the CSVs and from the images, and there are exactly 2
    assert len(meta["missing_wells"]) == 2
    assert not wells.id_code.isin(meta["missing_wells"]).any()
    n_treat = (wells.well_type == "treatment").sum()
    assert n_treat == 2 * 2 * 4 * 5 - 2
    # answers: exactly the test treatment wells, with labels of the plate's group
    answers = pd.read_csv(demo / "answers" / "test_answers.csv")
    test = pd.read_csv(demo / "test.csv")
    assert list(answers.columns) == ["id_code", "experiment", "plate", "well", "sirna"]
    assert sorted(answers.id_code) == sorted(test.id_code)
    exps = {e["name"]: e for e in meta["experiments"]}
    for row in answers.itertuples():
        group = meta["plate_groups"][exps[row.experiment]["plate_groups"][str(row.plate)]]
        assert row.sirna in group


def test_open_screen_reads_the_demo(demo: Path) -> None:
    open_module = pytest.importorskip("deepnoise_engine.screen.open")
    screen = open_module.open_screen(demo)
    assert screen.layout == "rxrx1"
    assert screen.problems == []
    assert screen.channels == [1, 2, 3, 4, 5, 6]
    assert tuple(screen.image_size) == (24, 24)
    assert sorted(screen.experiments) == ["HEPG2-01", "HEPG2-02", "U2OS-01", "U2OS-02"]
    assert screen.experiments["HEPG2-01"].split == "train"
    assert screen.experiments["U2OS-02"].split == "test"
    assert screen.experiments["U2OS-02"].cell_type == "U2OS"
    assert len(screen.classes()) == 23  # 20 siRNAs + 2 positive + 1 negative
    assert screen.site_count() == len(_all_wells(demo)) * 2


def test_signal_differs_between_sirnas_and_batches_dominate(demo: Path) -> None:
    """The phenotype is there but weak: batch (plate) effects move intensities more."""
    wells = _all_wells(demo)

    def means(row: pd.Series) -> np.ndarray:
        folder = demo / row.split / row.experiment / f"Plate{row.plate}"
        return np.array(
            [np.asarray(Image.open(folder / f"{row.well}_s1_w{c}.png")).mean() for c in range(1, 7)]
        )

    feats = np.log(np.array([means(r) for _, r in wells.iterrows()]) + 1.0)
    plate_key = wells.experiment + "/" + wells.plate.astype(str)
    plate_means = pd.DataFrame(feats).groupby(plate_key.to_numpy()).transform("mean").to_numpy()
    between_plates = plate_means.std(axis=0).mean()
    within_plate = (feats - plate_means).std(axis=0).mean()
    assert between_plates > 0.15  # strong batch effects
    assert within_plate > 0.05  # wells still differ within a plate


def test_refuses_non_empty_folder_and_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "screen"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    params = dict(SMALL, cell_types=("RPE",), test_experiments_per_cell_type=0, missing_wells=0)
    with pytest.raises(FileExistsError, match="not empty"):
        make_demo(out, **params)
    assert (out / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["screen"]  # no temp folder left
    make_demo(out, overwrite=True, **params)
    assert not (out / "keep.txt").exists() and (out / "train.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["screen"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"plate_format": 100}, "plate_format"),
        ({"sirnas_per_plate": 58}, "sirnas_per_plate"),
        ({"cell_types": ("HEP_G2",)}, "cell_types"),
        ({"image_size": 4}, "image_size"),
        ({"missing_wells": 1000}, "missing_wells"),
    ],
)
def test_bad_parameters_name_the_field(tmp_path: Path, change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make_demo(tmp_path / "x", **{**SMALL, **change})
    assert not (tmp_path / "x").exists()


def test_cli_make_demo_384(tmp_path: Path) -> None:
    out = tmp_path / "demo384"
    cmd = [
        sys.executable, "-m", "deepnoise_engine", "make-demo", "--out", str(out), "--seed", "3",
        "--cell-types", "HUVEC", "--experiments-per-cell-type", "1",
        "--test-experiments-per-cell-type", "0", "--plates-per-experiment", "1",
        "--plate-format", "384", "--sirnas-per-plate", "40", "--image-size", "16", "--sites", "1",
        "--channels", "3", "--json",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["n_classes"] == 43 and Path(info["out"]) == out
    train = pd.read_csv(out / "train.csv")
    assert len(train) == 40 - 2 and train.sirna.is_unique
    rows = pd.read_csv(out / "train_controls.csv").well.str[0]
    assert set(rows) <= set("BCDEFGHIJKLMNO")  # 384 inner rows
    assert sorted(p.name for p in (out / "train" / "HUVEC-01" / "Plate1").iterdir())[:3] == [
        "B02_s1_w1.png", "B02_s1_w2.png", "B02_s1_w3.png",
    ]  # fmt: skip
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_ensure_demo_screen_generates_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPNOISE_DATA_DIR", str(tmp_path / "data"))
    events: list[dict] = []
    root = ensure_demo_screen(reporter=Reporter(events.append))
    assert root == tmp_path / "data" / DEMO_DIRNAME
    assert (root / "demo.json").is_file() and (root / "train.csv").is_file()
    # the demo looks like a real plate: 55 of the 60 inner wells of each 96-well plate used
    wells = pd.concat(pd.read_csv(root / f) for f in ("train.csv", "test.csv",
                                                      "train_controls.csv",
                                                      "test_controls.csv"))
    per_plate = wells.groupby(["experiment", "plate"]).size()
    assert per_plate.min() >= 53 and per_plate.max() == 55
    assert events and events[-1]["done"] == events[-1]["total"]
    stamp = os.stat(root / "demo.json").st_mtime_ns
    assert ensure_demo_screen() == root
    assert os.stat(root / "demo.json").st_mtime_ns == stamp  # reused, not regenerated
    assert sorted(p.name for p in root.parent.iterdir()) == [DEMO_DIRNAME]


def test_cancelled_make_demo_leaves_nothing(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled, match="make-demo cancelled"):
        make_demo(tmp_path / "demo", reporter=Reporter(cancel=cancel), **SMALL)
    assert sorted(tmp_path.iterdir()) == []  # neither ``demo`` nor its temporary folder
