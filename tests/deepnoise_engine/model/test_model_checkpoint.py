"""Checkpoints, training state and run folders: round trips, refusals, fit checks."""

from __future__ import annotations

import json
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnoise_engine.model import (
    CheckpointError,
    ModelMismatchError,
    check_fits,
    create_model,
    load_checkpoint,
    load_training_state,
    read_metadata,
    resolve_models,
    save_checkpoint,
    save_training_state,
)

torch.set_num_threads(1)

CLASSES = ["1", "2", "3", "1108", "1138"]


def _trained_tiny(seed: int = 0) -> torch.nn.Module:
    """A tiny model with non-default weights and BN statistics."""
    torch.manual_seed(seed)
    model = create_model("xception_tiny", in_chans=6, num_classes=len(CLASSES), arcface_m=0.2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    loss = torch.nn.functional.cross_entropy(
        model(torch.randn(4, 6, 32, 32), torch.tensor([0, 1, 2, 3])), torch.tensor([0, 1, 2, 3])
    )
    loss.backward()
    opt.step()
    return model.eval()


def _meta(**extra: object) -> dict:
    meta = {
        "channels": [1, 2, 3, 4, 5, 6],
        "classes": CLASSES,
        "normalisation": {"mode": "plate", "stats": {"HEPG2-01/1": [[1.0] * 6, [2.0] * 6]}},
        "image_size": 64,
        "cell_types": ["HEPG2"],
        "role": "teacher",
        "metrics": {"val_acc": 0.5},
    }
    meta.update(extra)
    return meta


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = _trained_tiny()
    weights, meta_path = save_checkpoint(tmp_path / "models" / "m", model, _meta())
    assert weights.name == "m.safetensors" and meta_path.name == "m.json"
    assert sorted(p.name for p in weights.parent.iterdir()) == ["m.json", "m.safetensors"]
    x = torch.randn(2, 6, 48, 48)
    labels = torch.tensor([1, 4])
    with torch.no_grad():
        before, before_m = model(x), model(x, labels)
    for form in ("m", "m.json", "m.safetensors"):
        loaded, meta = load_checkpoint(tmp_path / "models" / form)
        assert not loaded.training
        with torch.no_grad():
            assert torch.equal(loaded(x), before)
            assert torch.equal(loaded(x, labels), before_m)
    assert meta["format"] == "deepnoise-checkpoint" and meta["format_version"] == 1
    assert meta["classes"] == CLASSES and meta["channels"] == [1, 2, 3, 4, 5, 6]
    assert meta["head"] == {"type": "arcface", "s": 30.0, "m": 0.2}
    assert meta["architecture"]["name"] == "xception_tiny"
    assert meta["in_chans"] == 6 and meta["role"] == "teacher"
    assert meta["normalisation"]["mode"] == "plate"
    for key in ("created", "engine_version", "config", "data_fingerprint"):
        assert key in meta
    assert read_metadata(tmp_path / "models" / "m.safetensors") == meta


def test_round_trip_timm_backbone_with_kwargs(tmp_path: Path) -> None:
    model = create_model("resnet18", in_chans=3, num_classes=2, head="softmax",
                         embedding_dim=16, drop_rate=0.1).eval()
    save_checkpoint(tmp_path / "r", model, {"channels": [1, 2, 5], "classes": ["a", "b"]})
    loaded, meta = load_checkpoint(tmp_path / "r")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert meta["architecture"]["kwargs"]["drop_rate"] == 0.1


def test_meta_must_match_model(tmp_path: Path) -> None:
    model = create_model("xception_tiny", in_chans=6, num_classes=3)
    with pytest.raises(ValueError, match="3 outputs"):
        save_checkpoint(tmp_path / "m", model, {"classes": ["a", "b"]})
    with pytest.raises(ValueError, match="takes 6"):
        save_checkpoint(tmp_path / "m", model, {"channels": [1, 2]})
    assert not list(tmp_path.iterdir())


def test_failed_save_keeps_existing_checkpoint(tmp_path: Path) -> None:
    model = _trained_tiny()
    save_checkpoint(tmp_path / "m", model, _meta())
    before = (tmp_path / "m.json").read_bytes(), (tmp_path / "m.safetensors").read_bytes()
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "m", _trained_tiny(seed=3), _meta(config={"x": object()}))
    after = (tmp_path / "m.json").read_bytes(), (tmp_path / "m.safetensors").read_bytes()
    assert before == after
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "torch-pickle"}, "unknown format 'torch-pickle'"),
        ({"format": None}, "unknown format None"),
        ({"format_version": 99}, "format_version 99"),
        ({"architecture": "xception"}, "architecture"),
    ],
)
def test_bad_metadata_is_refused(tmp_path: Path, change: dict, message: str) -> None:
    save_checkpoint(tmp_path / "m", _trained_tiny(), _meta())
    meta = json.loads((tmp_path / "m.json").read_text())
    meta.update(change)
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(tmp_path / "m")
    assert "m.json" in str(info.value)


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nothing\.json: metadata file not found"):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(tmp_path / "m", _trained_tiny(), _meta())
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "m")
    save_checkpoint(tmp_path / "m", _trained_tiny(), _meta())
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "m.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"m\.safetensors"):
        load_checkpoint(tmp_path / "m")
    (tmp_path / "m.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"m\.safetensors: weights file not found"):
        load_checkpoint(tmp_path / "m")


def test_weights_of_another_save_are_detected(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "a", _trained_tiny(0), _meta())
    save_checkpoint(tmp_path / "b", _trained_tiny(1), _meta())
    shutil.copy(tmp_path / "b.safetensors", tmp_path / "a.safetensors")
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(tmp_path / "a")


class _Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("drop_sha", [False, True])
def test_pickle_swapped_in_for_weights_is_never_executed(tmp_path: Path, drop_sha: bool) -> None:
    # the payload is live: plain pickle.loads would run it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.exists()

    save_checkpoint(tmp_path / "m", _trained_tiny(), _meta())
    if drop_sha:
        meta = json.loads((tmp_path / "m.json").read_text())
        del meta["weights_sha256"]
        (tmp_path / "m.json").write_text(json.dumps(meta))
    marker = tmp_path / "executed"
    (tmp_path / "m.safetensors").write_bytes(pickle.dumps({"weights": _Payload(marker)}))
    with pytest.raises(CheckpointError, match="pickle") as info:
        load_checkpoint(tmp_path / "m")
    assert "m.safetensors" in str(info.value)
    assert not marker.exists()

    # a torch.save (zip) file is refused too
    torch.save({"weights": torch.zeros(2)}, tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(tmp_path / "m")


def test_check_fits_messages() -> None:
    meta = _meta()
    meta["architecture"] = {"name": "xception", "kwargs": {}}
    fits = check_fits(meta, channels=[1, 2, 3, 4, 5, 6], classes=["1", "1138"])
    assert fits == [0, 1, 2, 3, 4, 5]
    # extra screen channels in another order: the model's channels are picked out
    assert check_fits(meta, channels=[6, 5, 4, 3, 2, 1, 7]) == [5, 4, 3, 2, 1, 0]
    with pytest.raises(ModelMismatchError) as info:
        check_fits(meta, channels=[1, 2, 3, 4, 5])
    assert "expects 6 channels (1-6) but the screen has 5 (1-5)" in str(info.value)
    assert "channel(s) 6 missing" in str(info.value)
    with pytest.raises(ModelMismatchError) as info:
        check_fits(meta, channels=[1, 2, 3, 4, 5, 6], classes=["1", "sirna_7", "sirna_9"])
    text = str(info.value)
    assert "2 of 3 classes of the screen are unknown to the xception model" in text
    assert "'sirna_7'" in text


def test_check_fits_takes_a_screen() -> None:
    class FakeScreen:  # the two attributes check_fits reads from a Screen
        def __init__(self) -> None:
            self.channels = [1, 2, 3, 4]

        def classes(self) -> list[str]:
            return ["1"]

    with pytest.raises(ModelMismatchError, match="screen has 4 \\(1-4\\)"):
        check_fits(_meta(), FakeScreen())


def test_training_state_round_trip_resumes_optimiser(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("xception_tiny", in_chans=2, num_classes=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=2e-4)
    x, y = torch.randn(2, 2, 32, 32), torch.tensor([0, 2])

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x, y), y).backward()
        opt.step()

    step()
    random.seed(5)
    np.random.seed(5)
    state = {
        "optimizer": opt.state_dict(),
        "model": model.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                "python": random.getstate()},
        "epoch": 3,
        "best": float("-inf"),
        "history": [0.1, 0.2],
        "pseudo_logits": np.arange(12, dtype=np.float32).reshape(3, 4),
        "note": None,
    }
    paths = save_training_state(tmp_path / "last", state)
    assert [p.name for p in paths] == ["last.state.safetensors", "last.state.json"]
    loaded = load_training_state(tmp_path / "last.state.json")
    assert loaded["epoch"] == 3 and loaded["best"] == float("-inf") and loaded["note"] is None
    assert isinstance(loaded["pseudo_logits"], np.ndarray)
    assert np.array_equal(loaded["pseudo_logits"], state["pseudo_logits"])
    assert next(iter(loaded["optimizer"]["state"])) == 0  # int keys stay ints
    random.setstate(loaded["rng"]["python"])
    np.random.set_state(loaded["rng"]["numpy"])
    assert random.random() == random.Random(5).random()
    assert np.random.rand() == np.random.RandomState(5).rand()

    # resuming from the loaded state takes the same step as the original run
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    step()
    after_original = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(reference)
    opt2 = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=2e-4)
    opt2.load_state_dict(loaded["optimizer"])
    opt = opt2
    step()
    for key, value in model.state_dict().items():
        assert torch.equal(value, after_original[key]), key


def test_training_state_refuses_unsupported_values(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="sched"):
        save_training_state(tmp_path / "s", {"sched": object()})
    assert not list(tmp_path.iterdir())


def _write_run(folder: Path, ensembles: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"format": "deepnoise-run", "version": 1, "ensembles": ensembles, "classes": CLASSES}
    (folder / "run.json").write_text(json.dumps(doc))


def test_resolve_models(tmp_path: Path) -> None:
    model = _trained_tiny()
    run = tmp_path / "run"
    for name in ("shared_a", "shared_b", "HEPG2_a"):
        save_checkpoint(run / "models" / name, model, _meta())
    _write_run(run, {"*": ["models/shared_a", "models/shared_b"], "HEPG2": ["models/HEPG2_a"]})
    got = resolve_models(run)
    assert got == {
        "*": [run / "models" / "shared_a", run / "models" / "shared_b"],
        "HEPG2": [run / "models" / "HEPG2_a"],
    }
    assert resolve_models(run / "models" / "shared_a.json") == {"*": [run / "models" / "shared_a"]}

    _write_run(run, {"*": ["models/gone"]})
    with pytest.raises(CheckpointError, match=r"gone\.json: checkpoint file not found \(listed in"):
        resolve_models(run)
    with pytest.raises(CheckpointError, match=r"no run\.json"):
        resolve_models(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        resolve_models(tmp_path / "nope")


def test_wrapped_models_are_unwrapped(tmp_path: Path) -> None:
    model = _trained_tiny()
    wrapped = torch.nn.DataParallel(model)  # same .module wrapper shape as DDP
    save_checkpoint(tmp_path / "w", wrapped, _meta())
    loaded, _ = load_checkpoint(tmp_path / "w")
    x = torch.randn(1, 6, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(TypeError, match="not a DeepNoise model"):
        save_checkpoint(tmp_path / "x", torch.nn.Linear(2, 2), _meta())


def test_header_length_that_looks_like_pickle_is_still_safetensors(tmp_path: Path) -> None:
    # a safetensors header of 0x80 + 256 k bytes starts with the pickle opcode 0x80: such
    # valid files were refused as pickles before
    from safetensors.torch import save_file

    from deepnoise_engine.model.checkpoint import _check_safetensors_file

    path = tmp_path / "w.safetensors"
    for pad in range(0, 4096):
        save_file({"x": torch.zeros(1)}, str(path), metadata={"pad": "a" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    _check_safetensors_file(path)  # no error
