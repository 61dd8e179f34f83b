"""The scoring job on a tiny real make_demo screen with a tiny (untrained) checkpoint."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pytest
import torch

from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.model import ModelMismatchError, create_model, save_checkpoint
from deepnoise_engine.report import (
    COLUMNS,
    OutputExistsError,
    list_plate_reports,
    read_plate_report,
    read_submission,
)
from deepnoise_engine.screen.open import open_screen
from deepnoise_engine.screen.synthetic import make_demo
from deepnoise_engine.workflows.score import run_scoring

torch.set_num_threads(1)

PROBLEM_WELL = "HEPG2-02_1_"  # prefix; the first treatment well of this test plate loses its image


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("score")
    root = make_demo(base / "screen", cell_types=("HEPG2",), train_experiments_per_cell_type=1,
                     test_experiments_per_cell_type=1, sirnas_per_plate=4, image_size=32,
                     sites=1, missing_wells=1)
    test = pd.read_csv(root / "test.csv")
    lost = test[test["id_code"].str.startswith(PROBLEM_WELL)].iloc[0]
    (root / "test" / "HEPG2-02" / "Plate1" / f"{lost['well']}_s1_w3.png").unlink()
    classes = open_screen(root).classes()
    torch.manual_seed(0)
    model = create_model("xception_tiny", in_chans=6, num_classes=len(classes))
    run = base / "run"
    save_checkpoint(run / "models" / "shared_tiny", model, {"classes": classes})
    (run / "run.json").write_text(json.dumps({
        "format": "deepnoise-run", "version": 1, "ensembles": {"*": ["models/shared_tiny"]},
        "classes": classes,
    }))
    return {"root": root, "run": run, "ckpt": run / "models" / "shared_tiny",
            "lost": str(lost["id_code"]), "classes": classes, "base": base}


def test_run_scoring_writes_balanced_reports(setup: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    events: list[dict] = []
    result = run_scoring(setup["root"], setup["run"], out, tta=1,
                         reporter=Reporter(events.append))
    assert not result["cancelled"]
    reports = list_plate_reports(out)
    assert len(reports) == 8  # 2 experiments x 4 plates
    frames = {key: read_plate_report(path) for key, path in reports.items()}
    for (exp, plate), frame in frames.items():
        assert list(frame.columns) == COLUMNS
        assert (frame["experiment"] == exp).all() and (frame["plate"] == plate).all()
        treat = frame[(frame["well_type"] == "treatment") & frame["sirna"].notna()]
        assert treat["sirna"].is_unique  # balanced: no siRNA twice on a plate
        assert not treat["sirna"].isin(["16", "17", "18"]).any()  # never a control label
        assert treat["plate_group"].notna().all()
        assert (frame["changed_by_balancing"].fillna(False)
                == (frame["sirna"] != frame["sirna_raw"]).fillna(False)).all()
        assert frame["sirna_true"].notna().all()  # train labels + answers of the test plates
    everything = pd.concat(frames.values())
    lost = everything[everything["id_code"] == setup["lost"]].iloc[0]
    assert lost["sites_used"] == 0 and pd.isna(lost["sirna"])  # problem well kept, no call
    sub = read_submission(out / "submission.csv")
    called = everything[(everything["well_type"] == "treatment") & everything["sirna"].notna()]
    assert sorted(sub["id_code"]) == sorted(called["id_code"])
    summary = json.loads((out / "summary.json").read_text())
    groups = summary["plate_groups"]
    assert [len(g) for g in groups["groups"]] == [4, 4, 4, 4]
    assert sorted(groups["inferred"]) == [f"HEPG2-02/{p}" for p in range(1, 5)]
    assert len({groups["by_plate"][f"HEPG2-02/{p}"] for p in range(1, 5)}) == 4
    assert summary["accuracy"]["labelled_wells"] == len(called)
    assert "answers/test_answers.csv" in summary["labels_from"]
    # accuracy apart for the unlabelled (hidden answers) and labelled experiments
    by_split = summary["by_split"]
    test_wells = called[called["experiment"] == "HEPG2-02"]
    assert by_split["test"]["labelled_wells"] == len(test_wells)
    assert by_split["train"]["labelled_wells"] == len(called) - len(test_wells)
    assert by_split["test"]["balanced"] == test_wells["correct"].astype(bool).mean()
    stages = {e.get("stage") for e in events if e["event"] == "progress"}
    assert {"score", "balance", "report"} <= stages


def test_existing_outputs_are_kept_unless_overwrite(setup: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_scoring(setup["root"], setup["ckpt"], out, tta=1, plates="HEPG2-02:1")
    assert [p.name for p in list_plate_reports(out).values()] == ["HEPG2-02_Plate1.csv"]
    report = out / "HEPG2-02_Plate1.csv"
    report.write_text("edited by hand\n")
    with pytest.raises(OutputExistsError, match=r"HEPG2-02_Plate1\.csv"):
        run_scoring(setup["root"], setup["ckpt"], out, tta=1, plates=["HEPG2-02:1"])
    assert report.read_text() == "edited by hand\n"
    run_scoring(setup["root"], setup["ckpt"], out, tta=1, plates=[("HEPG2-02", 1)],
                overwrite=True, balance="paper")
    assert len(read_plate_report(report)) > 0
    assert json.loads((out / "summary.json").read_text())["balance"] == "paper"


def test_cancel_during_scoring_writes_nothing(setup: dict, tmp_path: Path) -> None:
    cancel = threading.Event()

    def progress(event: dict) -> None:
        if event.get("stage") == "score":
            cancel.set()

    out = tmp_path / "out"
    with pytest.raises(Cancelled) as stopped:
        run_scoring(setup["root"], setup["ckpt"], out, tta=1,
                    reporter=Reporter(progress, cancel))
    assert stopped.value.partial == {"cancelled": True, "stage": "score"}
    assert not out.exists() or not any(out.iterdir())


def test_bad_plate_method_and_class_mismatch(setup: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HEPG2-09:1"):
        run_scoring(setup["root"], setup["ckpt"], tmp_path / "a", plates="HEPG2-09:1")
    with pytest.raises(ValueError, match="unknown balancing"):
        run_scoring(setup["root"], setup["ckpt"], tmp_path / "a", balance="greedy")
    other = create_model("xception_tiny", in_chans=6, num_classes=3)
    save_checkpoint(tmp_path / "other", other, {"classes": ["a", "b", "c"]})
    with pytest.raises(ModelMismatchError, match="classes of the screen are unknown"):
        run_scoring(setup["root"], tmp_path / "other", tmp_path / "b")
    with pytest.raises(ModelMismatchError, match="disagree on their classes"):
        run_scoring(setup["root"], [setup["ckpt"], tmp_path / "other"], tmp_path / "c")
    assert not (tmp_path / "b").exists()


def test_planted_predictions_infer_groups_and_balancing_helps(setup: dict) -> None:
    """Torch-free path of the job: planted log-probs on the demo screen."""
    import numpy as np

    from deepnoise_engine.workflows.score_report import read_answers as _read_answers
    from deepnoise_engine.workflows.score_report import score_plates_from_log_probs

    screen = open_screen(setup["root"])
    classes = screen.classes()
    answers = _read_answers(screen.root)
    rng = np.random.default_rng(0)
    log_probs = {}
    for _, _, well in screen.wells():
        x = rng.normal(size=len(classes))
        x[classes.index(well.sirna or answers[well.id_code])] += 1.5
        log_probs[well.id_code] = x
    frames, groups = score_plates_from_log_probs(screen, log_probs, classes)
    # each test plate's inferred group is the group of its hidden answers
    for p in range(1, 5):
        held = {answers[i] for i in answers if i.startswith(f"HEPG2-02_{p}_")}
        assert held <= set(groups["groups"][groups["by_plate"][f"HEPG2-02/{p}"]])
    rows = pd.concat(frames.values())
    treat = rows[rows["well_type"] == "treatment"]
    assert treat["correct"].mean() > treat["correct_raw"].mean()
    none, _ = score_plates_from_log_probs(screen, log_probs, classes, balance="none")
    plain = pd.concat(none.values())
    plain_treat = plain[plain["well_type"] == "treatment"]
    assert not plain_treat["sirna"].isin(["16", "17", "18"]).any()  # never a control label
    assert plain_treat["plate_group"].isna().all()  # "none" uses no plate prior
    assert treat["correct"].mean() > plain_treat["correct"].mean()


def test_plate_groups_stored_with_the_model_serve_a_screen_without_labels(
        setup: dict, tmp_path: Path) -> None:
    """A screen with no labelled treatment plate: the groups come from the model."""
    import shutil

    root = tmp_path / "unlabelled"
    shutil.copytree(setup["root"], root, ignore=shutil.ignore_patterns(".deepnoise"))
    train = pd.read_csv(root / "train.csv")
    train.iloc[:0].to_csv(root / "train.csv", index=False)  # no labelled treatment wells
    groups = [[str(c) for c in g] for g in json.loads((root / "demo.json").read_text())
              ["plate_groups"]]
    torch.manual_seed(0)
    classes = setup["classes"]
    model = create_model("xception_tiny", in_chans=6, num_classes=len(classes))
    ckpt = tmp_path / "with_groups"
    save_checkpoint(ckpt, model, {"classes": classes, "plate_groups": groups})
    plates = "HEPG2-02:1,HEPG2-02:2"
    with_groups = run_scoring(root, [ckpt], tmp_path / "a", plates=plates, tta=1)
    summary = json.loads(Path(with_groups["summary"]).read_text())
    assert summary["plate_groups"]["groups"] == groups
    assert set(summary["plate_groups"]["by_plate"]) == {"HEPG2-02/1", "HEPG2-02/2"}
    rows = pd.concat(read_plate_report(p) for p in list_plate_reports(tmp_path / "a").values())
    treat = rows[(rows["well_type"] == "treatment") & rows["sirna"].notna()]
    assert len(treat) > 4
    for _, row in treat.iterrows():  # every call lies in the plate's (model) group
        assert str(row["sirna"]) in groups[int(row["plate_group"])]
    # the same model without stored groups balances over all treatment classes
    plain = tmp_path / "without_groups"
    save_checkpoint(plain, model, {"classes": classes})
    run_scoring(root, [plain], tmp_path / "b", plates=plates, tta=1)
    rows_b = pd.concat(read_plate_report(p) for p in list_plate_reports(tmp_path / "b").values())
    assert rows_b[rows_b["well_type"] == "treatment"]["plate_group"].isna().all()
