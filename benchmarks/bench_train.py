"""Training throughput: ``run_training`` vs a bare PyTorch loop doing the same work.

Both read the same pack cache, normalise and augment with the same batched ops
(``deepnoise_engine.train.augment``), run the same model (forward, ArcFace CE, backward,
Adam step) at the same batch size. The trainer's ``images_per_s`` (training steps only,
from metrics.jsonl) is compared with the bare loop's; goal: <= 10 % overhead. Both in
float32; a third trainer run with ``runtime.cpu_amp`` gives bf16 autocast's gain on CPUs
that compute bf16 natively.

    python benchmarks/bench_train.py [--screen DIR] [--size 32] [--epochs 3] [--threads 2]

Without ``--screen`` a default demo screen is generated in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def bare_loop(screen: Path, *, size: int, batch: int, steps: int, model_name: str,
              seed: int = 0) -> float:
    """Images/s of a minimal loop over the same data and model."""
    from deepnoise_engine.model.registry import create_model
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.screen.pack_cache import PackCache
    from deepnoise_engine.train import augment
    from deepnoise_engine.train.config import resolve
    from deepnoise_engine.train.data import build_screen_data
    from deepnoise_engine.train.mean_teacher import arcface_margin

    cfg = resolve("tiny", overrides=[f"data.image_size={size}"])
    sd = build_screen_data(open_screen(screen), PackCache.open(open_screen(screen)), cfg)
    wells = sd.select("train", labelled=True)
    torch.manual_seed(seed)
    model = create_model(model_name, in_chans=len(sd.channels), num_classes=len(sd.classes))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=2e-4)
    rng = np.random.default_rng(seed)
    mean, std = torch.as_tensor(sd.mean), torch.as_tensor(sd.std)
    model.train()
    n = 0
    t0 = time.perf_counter()
    for step in range(steps + 2):
        if step == 2:  # warm-up excluded
            t0, n = time.perf_counter(), 0
        w = rng.choice(wells, batch)
        rows = np.array([sd.well_sites[i][0] for i in w])
        x = torch.from_numpy(np.stack([sd.cache.read(int(r)) for r in rows]))
        p = augment.sample_params(rng, batch, len(sd.channels), cfg["augment"], jitter=0.1,
                                  hard=False, erase=True)
        r = torch.as_tensor(rows)
        x = augment.apply(x, mean[r], std[r], p, size)
        y = torch.as_tensor(sd.well_label[w])
        loss = F.cross_entropy(arcface_margin(model(x), y, 30.0, 0.1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += batch
    return n / (time.perf_counter() - t0)


def trainer(screen: Path, out: Path, *, size: int, batch: int, epochs: int,
            extra: list[str]) -> float:
    from deepnoise_engine.workflows.train import run_training

    run_training(screen, out, overrides=[
        f"data.image_size={size}", f"model.batch_size={batch}", f"model.epochs={epochs}",
        "finetune.enabled=false", "data.workers=0", *extra])
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return float(np.median([r["images_per_s"] for r in recs[1:]] or [recs[0]["images_per_s"]]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--screen", type=Path)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="xception_tiny")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        screen = args.screen
        if screen is None:
            from deepnoise_engine.screen.synthetic import make_demo

            screen = make_demo(Path(tmp) / "demo")
        from deepnoise_engine.screen.pack_cache import PackCache

        PackCache.open(screen)
        common = [f"runtime.threads={args.threads}", f"model.names=[\"{args.model}\"]",
                  "runtime.device=cpu", "runtime.cpu_amp=false"]
        plain = [*common, "mean_teacher.enabled=false", "pseudo_labels.enabled=false"]
        steps = max(10, args.epochs * 8)
        bare, same, mt, bf16 = [], [], [], []
        # alternate the measurements: a shared machine's load changes over minutes
        for r in range(args.repeats):
            bare.append(bare_loop(screen, size=args.size, batch=args.batch, steps=steps,
                                  model_name=args.model))
            same.append(trainer(screen, Path(tmp) / f"plain{r}", size=args.size,
                                batch=args.batch, epochs=args.epochs, extra=plain))
            mt.append(trainer(screen, Path(tmp) / f"mt{r}", size=args.size, batch=args.batch,
                              epochs=args.epochs, extra=common))
            bf16.append(trainer(screen, Path(tmp) / f"bf{r}", size=args.size,
                                batch=args.batch, epochs=args.epochs,
                                extra=[*plain, "runtime.cpu_amp=true"]))
        # best of: least disturbed
        bare, same, mt, bf16 = max(bare), max(same), max(mt), max(bf16)
    print(f"bare PyTorch loop:            {bare:8.1f} images/s")
    print(f"run_training (no MT, no PL):  {same:8.1f} images/s "
          f"(overhead {100 * (bare / same - 1):+.1f} %)")
    print(f"run_training (mean teacher):  {mt:8.1f} images/s "
          f"(teacher forward + EMA: x{bare / mt:.2f} the bare step time)")
    from deepnoise_engine.train.views import cpu_has_native_bf16

    native = "native bf16" if cpu_has_native_bf16() else "no native bf16: float32"
    print(f"run_training (no MT, no PL, runtime.cpu_amp): {bf16:8.1f} images/s "
          f"(x{bf16 / same:.2f}; {native})")


if __name__ == "__main__":
    main()
