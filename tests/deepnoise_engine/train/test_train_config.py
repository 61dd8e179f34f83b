"""Configuration: presets resolve, overrides are typed, bad values name the key."""

from __future__ import annotations

import pytest

from deepnoise_engine.train import config


def test_presets_resolve_with_paper_values() -> None:
    paper = config.resolve("paper")
    assert paper["model"]["names"] == ["xception", "xception_wide"]
    assert paper["data"]["image_size"] == 512 and paper["model"]["batch_size"] == 64
    assert paper["optim"]["lr_values"] == [3e-4, 1e-4, 1e-5]
    assert paper["optim"]["lr_milestones"] == [100, 140] and paper["model"]["epochs"] == 160
    assert paper["model"]["arcface_s"] == 30.0 and paper["model"]["arcface_m"] == 0.1
    assert paper["finetune"]["epochs_by_cell_type"]["U2OS"] == 165
    tiny = config.resolve("tiny")
    assert tiny["model"]["names"] == ["plain_cnn"]
    assert tiny["data"]["image_size"] < paper["data"]["image_size"]


def test_tiny_learns_its_pseudo_labels_late_and_harder_than_the_paper() -> None:
    """A few hundred unlabelled wells need more weight than the paper's 0.05; learnt from
    the start, the early teacher's mistakes would survive balancing (docs/science.md)."""
    paper, tiny = config.resolve("paper"), config.resolve("tiny")
    pl, epochs = tiny["pseudo_labels"], tiny["model"]["epochs"]
    assert paper["pseudo_labels"]["weight"] == 0.05 and pl["weight"] > 0.05
    assert pl["enabled"] and epochs / 2 < pl["start_epoch"] <= epochs


def test_tiny_trains_on_every_labelled_experiment() -> None:
    """Two training wells per siRNA and cell type were the limit (docs/science.md): tiny
    holds no experiment out unless asked; the engine's default and the paper hold one."""
    assert config.resolve("tiny")["data"]["validation_per_cell_type"] == 0
    assert config.resolve("paper")["data"]["validation_per_cell_type"] == 1
    held_out = config.resolve("tiny", overrides=["data.validation_per_cell_type=1"])
    assert held_out["data"]["validation_per_cell_type"] == 1


def test_tiny_ensembles_two_independent_repeats_and_the_paper_one_run() -> None:
    """Two trainings from other seeds make different mistakes (docs/science.md); the paper
    ensembles two backbones of one run. The count is a bounded integer."""
    assert config.resolve("tiny")["model"]["repeats"] == 2
    assert config.resolve("paper")["model"]["repeats"] == 1
    with pytest.raises(config.ConfigError, match=r"model\.repeats"):
        config.resolve("tiny", overrides=["model.repeats=0"])


def test_tiny_divides_plate_position_effects_out_and_the_paper_does_not() -> None:
    assert config.resolve("tiny")["data"]["position_correction"] == "ring"
    assert config.resolve("paper")["data"]["position_correction"] == "none"


def test_tiny_trains_in_bf16_on_a_cpu_that_has_it_and_the_paper_in_float32() -> None:
    """bf16 autocast on a CPU is the tiny preset's choice (a laptop's CPU trains it); the
    paper preset is meant for a GPU (bf16 there: ``runtime.amp``) and keeps float32 on a
    CPU."""
    assert config.resolve("tiny")["runtime"]["cpu_amp"] is True
    assert config.resolve("paper")["runtime"]["cpu_amp"] is False


def test_overrides_are_typed() -> None:
    cfg = config.resolve("tiny", overrides=["model.epochs=3", "data.normalisation=none",
                                            "mean_teacher.enabled=false",
                                            "model.names=[\"resnet18\", \"xception_tiny\"]",
                                            "optim.weight_decay=0"])
    assert cfg["model"]["epochs"] == 3
    assert cfg["data"]["normalisation"] == "none"
    assert cfg["mean_teacher"]["enabled"] is False
    assert cfg["model"]["names"] == ["resnet18", "xception_tiny"]
    assert cfg["optim"]["weight_decay"] == 0.0 and isinstance(cfg["optim"]["weight_decay"], float)


@pytest.mark.parametrize(("override", "message"), [
    ("model.epochs=abc", "model.epochs: expected an integer"),
    ("model.epochs=2.5", "model.epochs: expected an integer"),
    ("model.epochs=0", "model.epochs: 0 is out of range"),
    ("model.colour=3", "model.colour: unknown key"),
    ("modle.epochs=3", "modle.epochs: unknown section"),
    ("data.normalisation=batch", "data.normalisation: 'batch' is not one of"),
    ("mean_teacher.enabled=1", "mean_teacher.enabled: expected true or false"),
    ("optim.weight_decay=x", "optim.weight_decay: expected a number"),
    ("model.names=[]", "model.names: expected one to four"),
    ("optim.lr_values=[1e-3]", "optim.lr_values: expected 3 values"),
    ("augment.erase_area=[0.5, 0.1]", "augment.erase_area: expected [low, high]"),
    ("model.epochs", "expected section.key=value"),
])
def test_bad_override_names_the_key(override: str, message: str) -> None:
    with pytest.raises(config.ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        config.resolve("tiny", overrides=[override])


def test_config_file_errors_name_file_and_key(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nepochs = \"ten\"\n")
    with pytest.raises(config.ConfigError) as err:
        config.resolve("tiny", config_file=bad)
    assert str(bad) in str(err.value) and "model.epochs: expected an integer" in str(err.value)
    broken = tmp_path / "broken.toml"
    broken.write_text("[model\n")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.resolve("tiny", config_file=broken)
    with pytest.raises(config.ConfigError, match="unknown preset 'huge'"):
        config.resolve("huge")


def test_config_file_overrides_preset_and_set_overrides_file(tmp_path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[model]\nepochs = 7\nbatch_size = 8\n")
    cfg = config.resolve("tiny", config_file=f, overrides=["model.epochs=9"])
    assert cfg["model"]["epochs"] == 9 and cfg["model"]["batch_size"] == 8


def test_resolved_config_round_trips_through_toml() -> None:
    import tomllib

    cfg = config.resolve("paper")
    assert config.validate(tomllib.loads(config.dumps(cfg))) == cfg


def test_lr_schedules() -> None:
    import math

    from deepnoise_engine.train.loop import Stage, lr_at, plan_stages

    cfg = config.resolve("paper")
    shared = Stage("shared", 160)
    assert lr_at(cfg, shared, 0) == lr_at(cfg, shared, 99.9) == 3e-4
    assert lr_at(cfg, shared, 100) == lr_at(cfg, shared, 139.5) == 1e-4
    assert lr_at(cfg, shared, 140) == lr_at(cfg, shared, 159.9) == 1e-5
    # fine-tuning: 4 cosine cycles 0.1 -> 1e-3 over 40 epochs, then 5 epochs at 1e-4
    ft = Stage("finetune:HUVEC", 45, "HUVEC")
    assert lr_at(cfg, ft, 0) == pytest.approx(0.1)
    assert lr_at(cfg, ft, 5) == pytest.approx(1e-3 + 0.5 * (0.1 - 1e-3))
    assert lr_at(cfg, ft, 9.999) == pytest.approx(1e-3, abs=1e-5)
    assert lr_at(cfg, ft, 10) == pytest.approx(0.1)  # restart
    assert lr_at(cfg, ft, 40) == lr_at(cfg, ft, 44.9) == 1e-4
    assert math.isclose(lr_at(cfg, ft, 25), lr_at(cfg, ft, 5))
    stages = plan_stages(cfg, ["HEPG2", "HUVEC", "RPE", "U2OS"])
    assert [(s.name, s.epochs) for s in stages] == [
        ("shared", 160), ("finetune:HEPG2", 85), ("finetune:HUVEC", 45), ("finetune:RPE", 85),
        ("finetune:U2OS", 165)]
    off = config.resolve("paper", overrides=["finetune.enabled=false"])
    assert [s.name for s in plan_stages(off, ["HEPG2"])] == ["shared"]


def test_configuration_offers_exactly_the_normaliser_modes() -> None:
    from typing import get_args

    from deepnoise_engine.normalise.plate_normalizer import MODES
    from deepnoise_engine.train.config import Normalisation

    assert set(get_args(Normalisation)) == set(MODES)
