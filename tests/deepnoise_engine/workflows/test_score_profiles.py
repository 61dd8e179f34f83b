"""``score`` writes well profiles that pandas and pycytominer read (real scoring run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepnoise_engine.model import create_model, save_checkpoint
from deepnoise_engine.report import read_plate_report
from deepnoise_engine.report.profiles import profile_dir, read_profile
from deepnoise_engine.screen.open import open_screen
from deepnoise_engine.screen.synthetic import make_demo
from deepnoise_engine.workflows.score import run_scoring

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("profiles")
    root = make_demo(base / "screen", cell_types=("HEPG2",), train_experiments_per_cell_type=1,
                     test_experiments_per_cell_type=1, sirnas_per_plate=4, image_size=32,
                     sites=2)
    classes = open_screen(root).classes()
    run = base / "run"
    for i, name in enumerate(("a", "b")):  # a two-model ensemble
        torch.manual_seed(i)
        model = create_model("xception_tiny", in_chans=6, num_classes=len(classes))
        save_checkpoint(run / "models" / name, model, {
            "classes": classes, "normalisation": {"mode": "plate"}})
    (run / "run.json").write_text(json.dumps({
        "format": "deepnoise-run", "version": 1, "ensembles": {"*": ["models/a", "models/b"]},
        "classes": classes}))
    out = base / "out"
    run_scoring(root, run, out, tta=1, device="cpu")
    return {"out": out, "classes": classes}


def test_profiles_are_pycytominer_tables(scored: dict) -> None:
    from pycytominer import normalize
    from pycytominer.cyto_utils import infer_cp_features, load_profiles

    out = scored["out"]
    index = json.loads((profile_dir(out) / "profiles.json").read_text())
    assert set(index["files"]) == {"embedding", "embedding_model1", "embedding_model2",
                                   "log_prob", "log_prob_model1", "log_prob_model2",
                                   "pixels_raw", "pixels_normalised"}
    plates = pd.concat([read_plate_report(p) for p in sorted(out.glob("*_Plate*.csv"))])
    scored_wells = plates[plates["sites_used"] > 0]
    ens = pd.read_parquet(profile_dir(out) / "embedding.parquet")  # plain pandas
    assert sorted(ens["Metadata_IdCode"]) == sorted(scored_wells["id_code"])
    features = infer_cp_features(ens, compartments=["Embedding"])
    meta = infer_cp_features(ens, metadata=True)
    assert "Metadata_siRNA" in meta and "Metadata_Experiment" in meta
    one = pd.read_parquet(profile_dir(out) / "embedding_model1.parquet")
    dim = len(infer_cp_features(one, compartments=["Embedding"]))
    assert len(features) == 2 * dim  # the ensemble concatenates its two members
    x = ens[features].to_numpy()
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    # pycytominer reads the file itself and normalises its features
    loaded = load_profiles(str(profile_dir(out) / "pixels_raw.parquet"))
    pixel_features = infer_cp_features(loaded, image_features=True, compartments=[])
    assert pixel_features == [f"Image_Intensity_{s}_Ch{c}" for s in ("Mean", "Std")
                              for c in range(1, 7)]
    normed = normalize(loaded, features=pixel_features, meta_features=meta,
                       method="standardize")
    assert np.allclose(normed[pixel_features].mean(), 0.0, atol=1e-5)


def test_log_probs_are_the_raw_calls(scored: dict) -> None:
    out, classes = scored["out"], scored["classes"]
    lp = read_profile(out, "log_prob").set_index("Metadata_IdCode")
    cols = [f"Logprob_{c}" for c in classes]
    assert np.allclose(np.exp(lp[cols]).sum(axis=1), 1.0, atol=1e-4)
    plates = pd.concat([read_plate_report(p) for p in sorted(out.glob("*_Plate*.csv"))])
    called = plates[plates["sirna_raw"].notna()].set_index("id_code")
    raw_call = lp.loc[called.index, cols].to_numpy().argmax(axis=1)
    assert [classes[i] for i in raw_call] == list(called["sirna_raw"])


def test_members_log_probs_average_to_the_ensemble(scored: dict) -> None:
    from scipy.special import log_softmax

    cols = [f"Logprob_{c}" for c in scored["classes"]]
    ens = read_profile(scored["out"], "log_prob")[cols].to_numpy()
    members = [read_profile(scored["out"], f"log_prob_model{i}")[cols].to_numpy()
               for i in (1, 2)]
    assert np.allclose(log_softmax((members[0] + members[1]) / 2, axis=1), ens, atol=1e-4)
    assert not np.allclose(members[0], members[1])  # two different models


def test_pixel_profiles_before_and_after_plate_normalisation(scored: dict) -> None:
    raw = read_profile(scored["out"], "pixels_raw")
    norm = read_profile(scored["out"], "pixels_normalised")
    assert list(raw["Metadata_IdCode"]) == list(norm["Metadata_IdCode"])
    means = [f"Image_Intensity_Mean_Ch{c}" for c in range(1, 7)]
    assert (raw[means] >= 0).all().all()  # grey levels
    # plate normalisation: each plate's wells average to ~0 (equal sites per well)
    per_plate = norm.groupby(["Metadata_Experiment", "Metadata_Plate"])[means].mean()
    assert np.abs(per_plate.to_numpy()).max() < 0.05
    raw_plate = raw.groupby(["Metadata_Experiment", "Metadata_Plate"])[means].mean()
    assert np.abs(raw_plate.to_numpy()).max() > 1


def test_existing_profiles_are_kept_unless_overwrite(scored: dict, tmp_path: Path) -> None:
    from deepnoise_engine.report import OutputExistsError

    with pytest.raises(OutputExistsError, match="profiles"):
        run_scoring(open_screen(scored["out"].parent / "screen"), scored["out"].parent / "run",
                    scored["out"], tta=1, device="cpu")
