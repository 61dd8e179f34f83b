"""Training data: splits by experiment, labels, unlabelled wells, problem sites skipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepnoise_engine.train.config import resolve
from deepnoise_engine.train.data import TrainDataError, build_screen_data, open_data


def test_splits_and_labels(tiny_screen: Path) -> None:
    screen, cache = open_data(tiny_screen)
    # the engine's default holds one labelled experiment per cell type out (the last one),
    # never an unlabelled one; tiny trains on all of them
    assert build_screen_data(screen, cache, resolve("tiny")).validation_experiments == []
    sd = build_screen_data(screen, cache, resolve("paper"))
    w = sd.wells
    assert sd.validation_experiments == ["HEPG2-02", "U2OS-02"]
    val = w[w["experiment"].isin(sd.validation_experiments)]
    assert set(val["role"]) == {"val"} and (val["label"] >= 0).all()
    # test experiments: treatments unlabelled, controls labelled, both used for training
    test_exps = {e.name for e in screen.experiments.values() if e.split == "test"}
    t = w[w["experiment"].isin(test_exps)]
    assert set(t["role"]) == {"train"}
    assert (t.loc[t["well_type"] == "treatment", "label"] == -1).all()
    ctrl = t[t["well_type"] != "treatment"]
    assert len(ctrl) and (ctrl["label"] >= 0).all()
    # classes: every label in the data, controls included, numerically sorted
    answers = pd.read_csv(tiny_screen / "answers" / "test_answers.csv")
    assert sd.classes == sorted(sd.classes, key=int)
    assert set(answers["sirna"].astype(str)) <= set(sd.classes)
    assert len(sd.select("train", labelled=False)) == (t["label"] == -1).sum()
    # normalisation statistics per cache row (plate mode: equal within a plate)
    assert sd.mean.shape == (len(cache.sites), 6) and (sd.std > 0).all()
    rows = np.flatnonzero((cache.sites["experiment"] == "HEPG2-01") & (cache.sites["plate"] == 1)
                          & cache.sites["ok"])
    assert np.allclose(sd.mean[rows], sd.mean[rows[0]])


def test_problem_sites_are_skipped(tiny_screen: Path, tmp_path: Path) -> None:
    root = tmp_path / "screen"
    shutil.copytree(tiny_screen, root)
    table = pd.read_csv(root / "train.csv")
    exp, plate, well = table.iloc[0][["experiment", "plate", "well"]]
    (root / "train" / exp / f"Plate{plate}" / f"{well}_s1_w3.png").unlink()
    screen, cache = open_data(root)
    sd = build_screen_data(screen, cache, resolve("tiny"))
    bad = cache.sites.index[(cache.sites["id_code"] == f"{exp}_{plate}_{well}")
                            & (cache.sites["site"] == 1)]
    assert len(bad) == 1 and not cache.sites.loc[bad[0], "ok"]
    i = int(np.flatnonzero(sd.wells["id_code"] == f"{exp}_{plate}_{well}")[0])
    assert bad[0] not in sd.well_sites[i] and len(sd.well_sites[i]) == 1
    used = np.concatenate(sd.well_sites)
    assert cache.sites["ok"].to_numpy()[used].all()


def test_bad_data_options_are_named(tiny_screen: Path) -> None:
    screen, cache = open_data(tiny_screen)
    with pytest.raises(TrainDataError, match=r"data\.validation_experiments"):
        build_screen_data(screen, cache, resolve("tiny", overrides=[
            'data.validation_experiments=["NOPE-01"]']))
    with pytest.raises(TrainDataError, match=r"data\.channels"):
        build_screen_data(screen, cache, resolve("tiny", overrides=["data.channels=[1, 9]"]))
    sd = build_screen_data(screen, cache, resolve("tiny", overrides=["data.channels=[1, 3]"]))
    assert sd.channels == [1, 3] and sd.mean.shape[1] == 2


def test_split_validation_keeps_one_labelled_experiment_per_cell_type() -> None:
    from deepnoise_engine.train.data import split_validation

    cells = {"HEPG2-01": "HEPG2", "HEPG2-02": "HEPG2", "HEPG2-03": "HEPG2",
             "U2OS-01": "U2OS", "RPE-01": "RPE", "RPE-02": "RPE"}
    labelled = ["HEPG2-02", "HEPG2-01", "U2OS-01", "RPE-01"]  # HEPG2-03, RPE-02: test only
    assert split_validation(cells, labelled) == ["HEPG2-02"]
    assert split_validation(cells, labelled, per_cell_type=5) == ["HEPG2-02"]
    assert split_validation(cells, [*labelled, "RPE-02"], per_cell_type=0) == []
    assert split_validation(cells, labelled, explicit=["U2OS-01"]) == ["U2OS-01"]
    with pytest.raises(TrainDataError, match="unknown experiment"):
        split_validation(cells, labelled, explicit=["NOPE-01"])
