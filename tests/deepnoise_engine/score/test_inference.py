"""predict_wells on a tiny synthetic pack cache; dihedral TTA sanity."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.model import ModelMismatchError, create_model, save_checkpoint
from deepnoise_engine.score.inference import (
    LoadedModel,
    _apply,
    load_models,
    predict_wells,
    tta_transforms,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    synthetic = pytest.importorskip("deepnoise_engine.screen.synthetic")
    open_mod = pytest.importorskip("deepnoise_engine.screen.open")
    pack_mod = pytest.importorskip("deepnoise_engine.screen.pack_cache")
    root = tmp_path_factory.mktemp("inference")
    screen_dir = synthetic.make_demo(
        root / "screen", cell_types=("HEPG2", "U2OS"), train_experiments_per_cell_type=1,
        test_experiments_per_cell_type=0, plates_per_experiment=4, sirnas_per_plate=3,
        positive_controls=1, image_size=32, sites=2, missing_wells=0,
    )
    screen = open_mod.open_screen(screen_dir)
    return pack_mod.pack_screen(screen, root / "pack")


def tta_logits(model: torch.nn.Module, x: torch.Tensor, tta: int = 8) -> torch.Tensor:
    """The test's oracle: ``(B, C, H, W)`` -> ``(B, K)`` logits averaged over ``tta``
    dihedral transforms, one plain forward pass each."""
    transforms = tta_transforms(tta)
    return sum(model(_apply(x, t, f)).float() for t, f in transforms) / len(transforms)


def _classes(cache) -> list[str]:  # type: ignore[no-untyped-def]
    return cache.screen.classes()


def _model(cache, seed: int, channels: list[int] | None = None,  # type: ignore[no-untyped-def]
           mode: str = "plate") -> LoadedModel:
    from deepnoise_engine.normalise.plate_normalizer import Normalizer

    channels = channels or [1, 2, 3, 4, 5, 6]
    torch.manual_seed(seed)
    model = create_model("xception_tiny", in_chans=len(channels),
                         num_classes=len(_classes(cache))).eval()
    meta = {"channels": channels, "classes": _classes(cache),
            "normalisation": Normalizer.fit(cache, mode).to_dict()}
    return LoadedModel(model, meta)


def _rows_by_well(cache) -> dict[str, list[int]]:  # type: ignore[no-untyped-def]
    rows: dict[str, list[int]] = {}
    for i, (well, ok) in enumerate(zip(cache.sites["id_code"], cache.sites["ok"], strict=True)):
        if ok:
            rows.setdefault(well, []).append(i)
    return rows


def _reference(lm: LoadedModel, cache, rows: list[int], tta: int = 8) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Per-site: normalise by the plate's statistics, pick channels, TTA; mean over sites."""
    from deepnoise_engine.normalise.plate_normalizer import Normalizer

    norm = Normalizer.fit(cache, "plate")
    idx = [cache.channels.index(c) for c in lm.meta["channels"]]
    xs = np.stack([norm(cache.read(r).astype(np.float32), r)[idx] for r in rows])
    with torch.no_grad():
        logits = tta_logits(lm.model, torch.from_numpy(xs), tta).double()
    return logits.mean(0).numpy()


def _log_softmax(v: np.ndarray) -> np.ndarray:
    return torch.log_softmax(torch.from_numpy(v), 0).numpy()


def test_tta_transforms_are_the_dihedral_group() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    from deepnoise_engine.score.inference import _apply

    images = {tuple(_apply(x, t, f).flatten().tolist()) for t, f in tta_transforms(8)}
    assert len(images) == 8  # 8 distinct images of an asymmetric input
    assert [len(tta_transforms(n)) for n in (1, 2, 4, 8)] == [1, 2, 4, 8]
    with pytest.raises(ValueError, match="tta"):
        tta_transforms(3)


def test_tta_sanity_symmetric_input_and_invariance() -> None:
    torch.manual_seed(0)
    model = create_model("xception_tiny", in_chans=2, num_classes=5).eval()
    base = torch.randn(1, 2, 32, 32)
    from deepnoise_engine.score.inference import _apply

    # averaging an image over the dihedral group makes it symmetric under every transform
    sym = sum(_apply(base, t, f) for t, f in tta_transforms(8)) / 8
    with torch.no_grad():
        plain = model(sym)
        for t, f in tta_transforms(8):
            assert torch.allclose(model(_apply(sym, t, f)), plain, atol=1e-5)
        assert torch.allclose(tta_logits(model, sym, 8), plain, atol=1e-5)
        # TTA over a group is invariant to transforming the input by a group element
        ref = tta_logits(model, base, 8)
        assert not torch.allclose(model(base), ref, atol=1e-4)  # TTA really averages
        for t, f in [(1, False), (2, True), (0, True)]:
            assert torch.allclose(tta_logits(model, _apply(base, t, f), 8), ref, atol=1e-4)


def test_predict_wells_matches_a_manual_computation(cache) -> None:  # type: ignore[no-untyped-def]
    lm = _model(cache, 0)
    rows = _rows_by_well(cache)
    events: list[dict] = []
    got = predict_wells({"*": [lm]}, cache, rows, tta=8, batch_size=7,
                        reporter=Reporter(events.append))
    assert set(got) == set(rows)
    for well in list(rows)[:3] + list(rows)[-2:]:
        out = got[well]
        assert out.shape == (len(_classes(cache)),) and out.dtype == np.float32
        assert np.exp(out).sum() == pytest.approx(1.0, abs=1e-5)  # log-probabilities
        expected = _log_softmax(_reference(lm, cache, rows[well]))
        assert np.allclose(out, expected, atol=1e-4)
    assert events[-1]["done"] == events[-1]["total"] == sum(len(r) for r in rows.values())
    assert all(e["event"] == "progress" and e["stage"] == "score" for e in events)
    # batch size changes nothing
    again = predict_wells({"*": [lm]}, cache, rows, tta=2, batch_size=1)
    bigger = predict_wells({"*": [lm]}, cache, rows, tta=2, batch_size=64)
    for well in rows:
        assert np.allclose(again[well], bigger[well], atol=1e-5)


def test_images_are_resized_to_the_training_size(cache) -> None:  # type: ignore[no-untyped-def]
    """A model trained at 16 px scores 32 px sites through the same bilinear resize."""
    lm = _model(cache, 3)
    small = LoadedModel(lm.model, {**lm.meta, "image_size": 16})
    rows = _rows_by_well(cache)
    well = next(iter(rows))
    got = predict_wells({"*": [small]}, cache, {well: rows[well]}, tta=1)[well]
    same_size = predict_wells({"*": [lm]}, cache, {well: rows[well]}, tta=1)[well]
    from deepnoise_engine.normalise.plate_normalizer import Normalizer

    norm = Normalizer.fit(cache, "plate")
    xs = torch.from_numpy(np.stack([norm(cache.read(r).astype(np.float32), r) for r in rows[well]]))
    xs = torch.nn.functional.interpolate(xs, size=(16, 16), mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = _log_softmax(lm.model(xs).double().mean(0).numpy())
    assert np.allclose(got, expected, atol=1e-4)
    assert not np.allclose(got, same_size, atol=1e-3)


def test_channel_subset_model_reads_its_channels(cache) -> None:  # type: ignore[no-untyped-def]
    lm = _model(cache, 1, channels=[5, 1, 3])
    rows = _rows_by_well(cache)
    well = next(iter(rows))
    got = predict_wells({"*": [lm]}, cache, {well: rows[well]}, tta=1)
    assert np.allclose(got[well], _log_softmax(_reference(lm, cache, rows[well], 1)), atol=1e-4)


def test_cell_type_routing_and_ensemble_average(cache) -> None:  # type: ignore[no-untyped-def]
    a, b = _model(cache, 2), _model(cache, 3)
    rows = _rows_by_well(cache)
    only_a = predict_wells({"*": [a]}, cache, rows, tta=1)
    only_b = predict_wells({"*": [b]}, cache, rows, tta=1)
    routed = predict_wells({"HEPG2": [a], "*": [b]}, cache, rows, tta=1)
    both = predict_wells({"*": [a, b]}, cache, rows, tta=1)
    for well in rows:
        expected = only_a[well] if well.startswith("HEPG2") else only_b[well]
        assert np.allclose(routed[well], expected, atol=1e-5)
        # log_softmax(mean logits) == log_softmax(mean of the models' log-probs)
        mixed = _log_softmax((only_a[well].astype(np.float64) + only_b[well]) / 2)
        assert np.allclose(both[well], mixed, atol=1e-4)
    with pytest.raises(ModelMismatchError, match="no model for cell type 'U2OS'"):
        predict_wells({"HEPG2": [a]}, cache, rows, tta=1)


def test_checkpoints_on_disk_and_run_folder(cache, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    a = _model(cache, 4)
    save_checkpoint(tmp_path / "run" / "models" / "shared", a.model, a.meta)
    (tmp_path / "run" / "run.json").write_text(json.dumps(
        {"format": "deepnoise-run", "version": 1, "ensembles": {"*": ["models/shared"]}}
    ))
    rows = _rows_by_well(cache)
    sub = dict(list(rows.items())[:4])
    direct = predict_wells({"*": [a]}, cache, sub, tta=1)
    by_run = predict_wells(tmp_path / "run", cache, sub, tta=1)
    by_path = predict_wells({"*": [str(tmp_path / "run" / "models" / "shared.json")]}, cache, sub,
                            tta=1)
    loaded = load_models([tmp_path / "run"])
    assert list(loaded) == ["*"] and loaded["*"][0].path == tmp_path / "run" / "models" / "shared"
    for well in sub:
        assert np.allclose(direct[well], by_run[well], atol=1e-6)
        assert np.allclose(direct[well], by_path[well], atol=1e-6)


def test_refusals_cancel_and_empty_wells(cache) -> None:  # type: ignore[no-untyped-def]
    rows = _rows_by_well(cache)
    seven = _model(cache, 5)
    seven.meta = {**seven.meta, "channels": [1, 2, 3, 4, 5, 7]}
    with pytest.raises(ModelMismatchError, match="expects 6 channels"):
        predict_wells({"*": [seven]}, cache, rows, tta=1)
    other = _model(cache, 6)
    other.meta = {**other.meta, "classes": [f"x{i}" for i in range(len(_classes(cache)))]}
    with pytest.raises(ModelMismatchError, match="disagree on their classes"):
        predict_wells({"*": [_model(cache, 7), other]}, cache, rows, tta=1)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        predict_wells({"*": [_model(cache, 8)]}, cache, rows, tta=1,
                      reporter=Reporter(cancel=cancel))
    well = next(iter(rows))
    assert predict_wells({"*": [_model(cache, 8)]}, cache, {well: []}, tta=1) == {}


def test_global_mode_keeps_training_statistics(cache) -> None:  # type: ignore[no-untyped-def]
    lm = _model(cache, 9, mode="global")
    # pretend the training screen was 10 grey levels brighter: scoring must use that mean
    groups = lm.meta["normalisation"]["groups"]
    shifted = {k: {"mean": [m + 10 for m in g["mean"]], "std": g["std"]} for k, g in groups.items()}
    moved = LoadedModel(lm.model, {**lm.meta, "normalisation": {**lm.meta["normalisation"],
                                                                "groups": shifted}})
    rows = _rows_by_well(cache)
    well = next(iter(rows))
    plain = predict_wells({"*": [lm]}, cache, {well: rows[well]}, tta=1)[well]
    shifted_out = predict_wells({"*": [moved]}, cache, {well: rows[well]}, tta=1)[well]
    assert not np.allclose(plain, shifted_out, atol=1e-4)


_DDP_SCRIPT = """
import os, sys, json
import numpy as np, torch, torch.distributed as dist
torch.set_num_threads(1)
from deepnoise_engine.screen.open import open_screen
from deepnoise_engine.screen.pack_cache import PackCache
from deepnoise_engine.contract import Reporter
from deepnoise_engine.score.inference import predict_wells
screen_root, pack_dir, run_dir, store, out = sys.argv[1:6]
rank = int(os.environ["RANK"])
dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
cache = PackCache.open(open_screen(screen_root), pack_dir, build=False)
rows = json.loads(open(os.path.join(run_dir, "rows.json")).read())
seen = []
res = predict_wells(run_dir, cache, rows, tta=2, batch_size=4,
                    reporter=Reporter(lambda e: seen.append(e["total"])))
np.savez(out + f".rank{rank}.npz", **res)
with open(out + f".rank{rank}.json", "w") as fh:
    json.dump({"n": len(res), "total": seen[-1]}, fh)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_ddp_shards_wells_and_gathers_on_rank0(cache, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json
    import os
    import subprocess
    import sys

    lm = _model(cache, 11)
    run = tmp_path / "run"
    save_checkpoint(run / "models" / "m", lm.model, lm.meta)
    (run / "run.json").write_text(json.dumps(
        {"format": "deepnoise-run", "version": 1, "ensembles": {"*": ["models/m"]}}
    ))
    rows = dict(list(_rows_by_well(cache).items())[:9])
    (run / "rows.json").write_text(json.dumps(rows))
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(cache.screen.root), str(cache.folder), str(run),
             str(tmp_path / "store"), str(out)],
            env={**env, "RANK": str(rank)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        for rank in (0, 1)
    ]
    for p in procs:
        output, _ = p.communicate(timeout=120)
        assert p.returncode == 0, output.decode()[-2000:]
    info = [json.loads((tmp_path / f"out.rank{r}.json").read_text()) for r in (0, 1)]
    assert info[0]["n"] == 9 and info[1]["n"] == 0  # rank 0 holds every well
    # each rank scored only its shard of the sites
    assert info[0]["total"] + info[1]["total"] == sum(len(v) for v in rows.values())
    assert 0 < info[1]["total"] < sum(len(v) for v in rows.values())
    single = predict_wells({"*": [lm]}, cache, rows, tta=2)
    gathered = np.load(tmp_path / "out.rank0.npz")
    for well in rows:
        assert np.allclose(gathered[well], single[well], atol=1e-5)


SAMPLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "rxrx1-sample"
# method-notes: global RxRx1 per-channel statistics (raw grey levels)
_RXRX1_MEAN = [6.747, 14.746, 10.513, 10.454, 5.500, 9.815]
_RXRX1_STD = [7.959, 12.173, 5.862, 7.835, 4.701, 5.431]


def test_real_rxrx1_site_through_a_six_channel_model() -> None:
    from PIL import Image

    site = SAMPLE / "images" / "train" / "HEPG2-01" / "Plate1"
    if not site.is_dir():
        pytest.skip(f"RxRx1 sample not found at {SAMPLE}")
    planes = [np.asarray(Image.open(site / f"B02_s1_w{c}.png")) for c in range(1, 7)]
    x = np.stack(planes).astype(np.float32)  # (6, 512, 512)
    assert x.shape == (6, 512, 512)
    x = (x - np.array(_RXRX1_MEAN)[:, None, None]) / np.array(_RXRX1_STD)[:, None, None]
    torch.manual_seed(0)
    model = create_model("xception_tiny", in_chans=6, num_classes=1139).eval()
    with torch.no_grad():
        out = tta_logits(model, torch.from_numpy(x[None].astype(np.float32)), 8)
    assert out.shape == (1, 1139) and torch.isfinite(out).all()
    # site 2 of the sample has channels 1-4 only: a 6-channel model must refuse it
    present = sorted(int(p.stem[-1]) for p in site.glob("B02_s2_w*.png"))
    from deepnoise_engine.model import check_fits

    expected = r"expects 6 channels \(1-6\) but the screen has 4"
    with pytest.raises(ModelMismatchError, match=expected):
        check_fits({"channels": [1, 2, 3, 4, 5, 6], "classes": []}, channels=present)
