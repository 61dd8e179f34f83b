"""GPU figures for the paper preset: training and scoring throughput of ``xception`` and
``xception_wide`` at 512 px, peak memory, fp32 vs bf16 autocast, NCHW vs channels_last.

The training step is the trainer's (student forward, ArcFace CE, mean-teacher forward +
consistency, backward, Adam step, EMA update) on random 6-channel images already on the
GPU, so the figure is the model's, not the data path's; ``--trainer`` adds a short real
``run_training`` with the paper preset on a 512 px synthetic screen (pack cache, augment on
the GPU) for the end-to-end images/s.

    python benchmarks/bench_gpu.py [--batch 64] [--steps 20] [--trainer] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


def _model(name: str, classes: int) -> Any:
    from deepnoise_engine.model.registry import create_model

    return create_model(name, in_chans=6, num_classes=classes, head="arcface")


def _autocast(bf16: bool) -> Any:
    return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def train_rate(name: str, *, batch: int, size: int, steps: int, bf16: bool,
               channels_last: bool, classes: int = 1139) -> dict[str, Any]:
    """Images/s and peak memory of the mean-teacher training step."""
    from deepnoise_engine.train.mean_teacher import arcface_margin, ema_update, softmax_mse

    torch.cuda.reset_peak_memory_stats()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    student = _model(name, classes).cuda().to(memory_format=fmt)
    teacher = copy.deepcopy(student)
    opt = torch.optim.Adam(student.parameters(), lr=3e-4, weight_decay=2e-4)
    x = torch.randn(batch, 6, size, size, device="cuda").contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (batch,), device="cuda")
    t0 = 0.0
    for step in range(steps + 3):
        if step == 3:  # warm-up (cuDNN autotuning, allocator) excluded
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with _autocast(bf16):
            logits = student(x).float()
            with torch.no_grad():
                t_logits = teacher(x).float()
            loss = F.cross_entropy(arcface_margin(logits, y, 30.0, 0.1), y)
            loss = loss + 100 * softmax_mse(logits, t_logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(teacher, student, 0.999)
    torch.cuda.synchronize()
    rate = steps * batch / (time.perf_counter() - t0)
    return {"model": name, "batch": batch, "size": size, "bf16": bf16,
            "channels_last": channels_last, "images_per_s": round(rate, 1),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


def score_rate(name: str, *, batch: int, size: int, steps: int, bf16: bool,
               channels_last: bool, classes: int = 1139) -> dict[str, Any]:
    """Inference images/s (one forward per image; TTA 8 costs 8 of them)."""
    torch.cuda.reset_peak_memory_stats()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = _model(name, classes).cuda().to(memory_format=fmt).eval()
    x = torch.randn(batch, 6, size, size, device="cuda").contiguous(memory_format=fmt)
    t0 = 0.0
    with torch.no_grad():
        for step in range(steps + 3):
            if step == 3:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            with _autocast(bf16):
                model(x).float().sum().item()
    torch.cuda.synchronize()
    rate = steps * batch / (time.perf_counter() - t0)
    return {"model": name, "batch": batch, "size": size, "bf16": bf16,
            "channels_last": channels_last, "images_per_s": round(rate, 1),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


def trainer_rate(work: Path, steps: int) -> dict[str, Any]:
    """End-to-end ``run_training`` with the paper preset on a 512 px synthetic screen."""
    from deepnoise_engine.screen.synthetic import make_demo
    from deepnoise_engine.workflows.train import run_training

    screen = make_demo(work / "screen", cell_types=("HEPG2",), train_experiments_per_cell_type=2,
                       test_experiments_per_cell_type=1, plates_per_experiment=2,
                       sirnas_per_plate=12, image_size=512, missing_wells=0)
    t0 = time.perf_counter()
    run_training(screen, work / "run", preset="paper", overrides=[
        "model.epochs=3", "finetune.enabled=false", f"runtime.max_steps_per_epoch={steps}",
        "model.batch_size=32", "data.workers=4"])
    recs = [json.loads(x) for x in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    return {"preset": "paper (xception + xception_wide, mean teacher)", "batch": 32,
            "images_per_s_by_epoch": [round(r["images_per_s"], 1) for r in recs],
            "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--trainer", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA device")
    torch.backends.cudnn.benchmark = True
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                           "train": [], "score": []}
    for name in ("xception", "xception_wide"):
        for bf16, cl in ((False, False), (True, False), (True, True)):
            for kind, fn in (("train", train_rate), ("score", score_rate)):
                res = fn(name, batch=args.batch, size=args.size, steps=args.steps, bf16=bf16,
                         channels_last=cl)
                out[kind].append(res)
                print(kind, json.dumps(res), flush=True)
                torch.cuda.empty_cache()
    if args.trainer:
        with tempfile.TemporaryDirectory() as tmp:
            out["trainer"] = trainer_rate(Path(tmp), steps=10)
            print("trainer", json.dumps(out["trainer"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
