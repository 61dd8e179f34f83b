"""The quick requests the app asks instead of copying the engine's rules: presets,
configuration defaults, configuration checks and the default validation split."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepnoise_engine.contract.config import (
    CheckConfigAnswer,
    ConfigDefaultsAnswer,
    DefaultSplitAnswer,
    PresetsAnswer,
)
from deepnoise_engine.serve.client import EngineClient, EngineRequestError
from deepnoise_engine.train import config


def test_presets_are_resolved_by_the_engine(engine: EngineClient) -> None:
    answer = PresetsAnswer.model_validate(engine.request("presets"))
    assert answer.names[0] == answer.default == "tiny" and "paper" in answer.names
    assert answer.presets["tiny"] == config.resolve("tiny")


def test_config_defaults_and_choices(engine: EngineClient) -> None:
    answer = ConfigDefaultsAnswer.model_validate(engine.request("config_defaults"))
    assert answer.config == config.defaults()
    assert "plate" in answer.choices["data.normalisation"]


def test_check_config_names_the_key(engine: EngineClient) -> None:
    good = CheckConfigAnswer.model_validate(
        engine.request("check_config", preset="tiny", overrides=["model.epochs=3"])
    )
    assert good.config["model"]["epochs"] == 3
    with pytest.raises(EngineRequestError) as info:
        engine.request("check_config", overrides=["model.epochs=many"])
    assert info.value.kind == "config_error" and "model.epochs" in info.value.message


def test_default_split_matches_training(engine: EngineClient, tmp_path: Path) -> None:
    from deepnoise_engine.screen.synthetic import make_demo

    root = make_demo(tmp_path / "screen", image_size=16, sirnas_per_plate=4,
                     plates_per_experiment=1, sites=1, channels=3, missing_wells=0)
    answer = DefaultSplitAnswer.model_validate(engine.request("default_split", data=str(root)))
    assert answer.per_cell_type == 1
    # the last labelled experiment of each cell type (the demo has two per cell type)
    assert sorted(answer.validation_experiments) == ["HEPG2-02", "U2OS-02"]
    with pytest.raises(EngineRequestError) as info:
        engine.request("default_split", data=str(tmp_path / "nowhere"))
    assert info.value.kind == "screen_not_found"
