"""Scoring on a real synthetic screen: inference sites/s and `assignment` vs `paper` vs `none`.

Unlike ``bench_balance.py`` (random logits with a planted answer) this trains a real model:

1. a synthetic screen from ``make_demo`` (defaults; ``--big``: 384-well plates, 60 siRNAs
   per plate, 64 px) or an existing one (``--screen DIR``);
2. the ``tiny`` preset trained on it with ``run_training`` (``--epochs`` overrides the
   shared epochs) or an existing run folder (``--run DIR``);
3. ``predict_wells`` on the test experiments' usable sites at TTA 1 and 8 with 1 and 2
   torch threads (sites/s; the log-probabilities of the first run of each TTA are kept);
4. the scoring job's own balancing (``_balance_and_report``: plate groups learned from the
   labelled plates and inferred for the test plates, then per-plate balancing and report
   rows) with ``assignment``, ``paper`` and ``none`` on the same log-probabilities: wall
   and CPU time, accuracy on the test experiments' treatment wells against
   ``answers/test_answers.csv``, plates with a repeated call, groups inferred correctly
   (best of 2 timings); plus ``assignment`` over all treatment classes without groups.

``--full-size`` adds a CPU forward of the full ``xception`` at 512 px (random weights,
1,108 classes) to extrapolate to a whole RxRx1 screen.

Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_score.py [--big] [--out DIR] [--run DIR]
[--screen DIR] [--epochs N] [--full-size] [--json FILE]``; prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: ``make_demo`` keyword arguments of the ``--big`` screen (the 384-well format, 64 px).
BIG = {"plate_format": 384, "sirnas_per_plate": 100, "positive_controls": 10, "image_size": 64}


def make_screen(out: Path, big: bool) -> tuple[Path, float]:
    """(screen folder, seconds): a make_demo screen, reused when ``out`` already holds one."""
    from deepnoise_engine.screen.synthetic import make_demo

    if (out / "demo.json").is_file():
        return out, 0.0
    t0 = time.perf_counter()
    make_demo(out, **(BIG if big else {}))
    return out, time.perf_counter() - t0


def train(screen: Path, run: Path, epochs: int | None) -> tuple[float, dict[str, Any]]:
    """(seconds, run_training's result) for the tiny preset."""
    from deepnoise_engine.workflows.train import run_training

    overrides = [f"model.epochs={epochs}"] if epochs else []
    if epochs:  # keep the learning-rate steps inside the shorter schedule
        first = max(1, epochs * 3 // 4)
        overrides.append(f"optim.lr_milestones=[{first}, {max(first + 1, epochs * 9 // 10)}]")
    t0 = time.perf_counter()
    result = run_training(screen, run, preset="tiny", overrides=overrides)
    return time.perf_counter() - t0, result


def test_sites(screen: Any, cache: Any) -> tuple[list[tuple[str, int]], dict[str, list[int]]]:
    """The test experiments' plates and ``{id_code: usable cache rows}`` (as the job builds it)."""
    plates = [(p.experiment, p.index) for p in screen.plates()
              if screen.experiments[p.experiment].split == "test"]
    chosen = set(plates)
    sites = cache.sites
    keep = np.array([(e, int(p)) in chosen for e, p in zip(sites["experiment"], sites["plate"],
                                                          strict=True)], dtype=bool)
    usable = sites[keep & sites["ok"].to_numpy()]
    rows = {str(k): [int(i) for i in v] for k, v in usable.groupby("id_code").groups.items()}
    return plates, rows


def time_inference(run: Path, cache: Any, rows: dict[str, list[int]], tta: int, threads: int,
                   repeats: int) -> tuple[float, dict[str, np.ndarray]]:
    """(best sites/s over ``repeats``, log-probabilities) of ``predict_wells`` on the CPU."""
    import torch

    from deepnoise_engine.score.inference import load_models, predict_wells

    torch.set_num_threads(threads)
    models = load_models(run)  # loaded once, outside the timing (the job loads them once)
    n_sites = sum(map(len, rows.values()))
    best, scores = 0.0, {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        scores = predict_wells(models, cache, rows, tta=tta, batch_size=32, device="cpu")
        best = max(best, n_sites / (time.perf_counter() - t0))
    return best, scores


def balance(screen: Any, plates: list[tuple[str, int]], classes: list[str],
            scores: dict[str, np.ndarray], method: str, answers: dict[str, str]) -> dict:
    """The job's groups + balancing + report rows for one method; timing and accuracy."""
    from scipy.special import log_softmax

    from deepnoise_engine.workflows.score_report import balance_and_report as _balance_and_report

    log_probs = {k: log_softmax(np.asarray(v, dtype=np.float64)) for k, v in scores.items()}
    wall = cpu = float("inf")
    for _ in range(2):  # best of 2: the first call also pays for imports and warm caches
        t0, c0 = time.perf_counter(), time.process_time()
        frames, groups, _ = _balance_and_report(screen, plates, classes, log_probs, method)
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    correct = raw_correct = total = repeats = group_hits = group_n = 0
    for frame in frames.values():
        treat = frame[(frame["well_type"] == "treatment") & frame["sirna"].notna()]
        truth = treat["id_code"].map(answers)
        if truth.isna().any():
            missing = treat["id_code"][truth.isna()].iloc[0]
            raise SystemExit(f"answers/test_answers.csv has no answer for well {missing}")
        correct += int((treat["sirna"] == truth).sum())
        raw_correct += int((treat["sirna_raw"] == truth).sum())
        total += len(treat)
        repeats += int(treat["sirna"].duplicated().any())
        if method != "none" and len(treat):
            group = treat["plate_group"].iloc[0]
            group_n += 1
            members = groups.groups[int(group)] if group == group else frozenset()
            group_hits += int(set(truth) <= set(members))
    return {"method": method, "wall_s": wall, "cpu_s": cpu, "wells": total,
            "raw_accuracy": raw_correct / max(total, 1), "accuracy": correct / max(total, 1),
            "plates_with_repeats": repeats, "plates": len(frames),
            "groups_right": None if method == "none" else f"{group_hits}/{group_n}"}


def balance_without_groups(screen: Any, plates: list[tuple[str, int]], classes: list[str],
                           scores: dict[str, np.ndarray], answers: dict[str, str]) -> dict:
    """``assignment`` over every treatment class (no plate groups), for comparison."""
    from scipy.special import log_softmax

    from deepnoise_engine.balance import assign_once_per_plate
    from deepnoise_engine.screen.model import WellType

    controls = {w.sirna for _, _, w in screen.wells() if w.well_type.is_control}
    allowed = np.array([i for i, c in enumerate(classes) if c not in controls], dtype=np.int64)
    t0, c0 = time.perf_counter(), time.process_time()
    correct = total = 0
    for key in plates:
        ids = [w.id_code for w in screen.plate(*key).used_wells()
               if w.well_type == WellType.TREATMENT and w.id_code in scores]
        if not ids:
            continue
        lp = log_softmax(np.stack([scores[i] for i in ids]).astype(np.float64), axis=1)
        calls, _ = assign_once_per_plate(lp, allowed)
        correct += sum(classes[c] == answers[i] for i, c in zip(ids, calls, strict=True))
        total += len(ids)
    return {"method": "assignment, no groups", "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0, "wells": total, "raw_accuracy": float("nan"),
            "accuracy": correct / max(total, 1), "plates_with_repeats": 0,
            "plates": len(plates), "groups_right": None}


def full_size_forward(threads: int, batch: int = 2) -> float:
    """Seconds per 512 px image for a full ``xception`` forward on the CPU (random weights)."""
    import torch

    from deepnoise_engine.model.registry import create_model

    torch.set_num_threads(threads)
    model = create_model("xception", in_chans=6, num_classes=1108).eval()
    x = torch.randn(batch, 6, 512, 512)
    with torch.inference_mode():
        model(x[:1])  # warm-up
        t0 = time.perf_counter()
        model(x)
    return (time.perf_counter() - t0) / batch


def _pct(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"  # NaN: not measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one, kept)")
    parser.add_argument("--screen", type=Path, help="an existing make_demo screen")
    parser.add_argument("--run", type=Path, help="an existing train run folder (skip training)")
    parser.add_argument("--big", action="store_true", help="384-well plates, 100 siRNAs/plate")
    parser.add_argument("--epochs", type=int, help="override the tiny preset's shared epochs")
    parser.add_argument("--threads", default="1,2", help="torch threads to time, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="inference repeats (best kept)")
    parser.add_argument("--full-size", action="store_true",
                        help="also time a full xception forward at 512 px")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    from deepnoise_engine.model_sets import resolve_model_set
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.screen.pack_cache import PackCache
    from deepnoise_engine.workflows.score_report import read_answers as _read_answers

    out = args.out or Path(tempfile.mkdtemp(prefix="deepnoise-bench-score-"))
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"load_start": os.getloadavg()[0], "cpu_count": os.cpu_count(),
                           "torch": torch.__version__, "out": str(out)}
    screen_dir, res["make_demo_s"] = (args.screen, 0.0) if args.screen else make_screen(
        out / ("screen-big" if args.big else "screen"), args.big)
    run = args.run
    if run is None:
        run = out / ("run-big" if args.big else "run")
        if (run / "run.json").is_file():
            res["train_s"] = 0.0
        else:
            res["train_s"], result = train(screen_dir, run, args.epochs)
            res["train_final"] = result.get("final")
    screen = open_screen(screen_dir)
    t0 = time.perf_counter()
    cache = PackCache.open(screen)
    res["pack_s"] = time.perf_counter() - t0
    plates, rows = test_sites(screen, cache)
    answers = _read_answers(screen.root)
    if not answers:
        raise SystemExit(f"{screen.root}: no answers/test_answers.csv (not a make_demo screen?)")
    classes = resolve_model_set([run]).classes
    res["setup"] = {"screen": str(screen_dir), "run": str(run), "classes": len(classes),
                    "test_plates": len(plates), "wells": len(rows),
                    "sites": sum(map(len, rows.values())),
                    "image": list(cache.read(next(iter(rows.values()))[0]).shape)}

    res["inference"], scores_by_tta = [], {}
    for tta in (1, 8):
        for threads in [int(t) for t in args.threads.split(",")]:
            rate, scores = time_inference(run, cache, rows, tta, threads, args.repeats)
            scores_by_tta.setdefault(tta, scores)
            res["inference"].append({"tta": tta, "threads": threads, "sites_per_s": rate,
                                     "load": os.getloadavg()[0]})
    res["balance"] = [dict(balance(screen, plates, classes, scores_by_tta[tta], m, answers),
                           tta=tta)
                      for tta in (1, 8) for m in ("assignment", "paper", "none")]
    res["balance"] += [dict(balance_without_groups(screen, plates, classes, scores_by_tta[tta],
                                                   answers), tta=tta) for tta in (1, 8)]
    if args.full_size:
        res["xception_512_s_per_image"] = {t: full_size_forward(int(t))
                                           for t in args.threads.split(",")}
    res["load_end"] = os.getloadavg()[0]

    s = res["setup"]
    print(f"screen {s['screen']}: {s['test_plates']} test plates, {s['wells']} wells, "
          f"{s['sites']} sites of {s['image']}, {s['classes']} classes; make_demo "
          f"{res['make_demo_s']:.0f} s, train {res.get('train_s', 0):.0f} s, pack "
          f"{res['pack_s']:.1f} s; load average {res['load_start']:.1f} -> {res['load_end']:.1f}")
    print("\n| TTA | threads | sites/s | load |\n| ---: | ---: | ---: | ---: |")
    for r in res["inference"]:
        print(f"| {r['tta']} | {r['threads']} | {r['sites_per_s']:.0f} | {r['load']:.1f} |")
    print("\n| TTA | method | wall s | CPU s | raw acc | acc | plates with a repeated call "
          "| groups right |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for b in res["balance"]:
        print(f"| {b['tta']} | `{b['method']}` | {b['wall_s']:.3f} | {b['cpu_s']:.3f} | "
              f"{_pct(b['raw_accuracy'])} | {b['accuracy']:.1%} | {b['plates_with_repeats']}/"
              f"{b['plates']} | {b['groups_right'] or '-'} |")
    if args.full_size:
        for t, sec in res["xception_512_s_per_image"].items():
            print(f"xception 512 px forward, {t} thread(s): {sec:.2f} s/image")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
