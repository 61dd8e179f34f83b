"""Benchmark per-plate balancing at the size of the RxRx1 test set.

72 plates (18 experiments x 4), 19,897 treatment wells, 1,108 siRNAs in 4 groups of 277.
Logits are random with a planted answer (``--signal`` added to the true class, unit
Gaussian noise elsewhere), so the raw argmax is often wrong and collides. Measures:

- ``assignment`` with the plate groups (277 allowed classes per plate) - goal <= 2 s;
- ``assignment`` without groups (all 1,108 classes allowed);
- ``paper`` (the authors' iterative coefficients) with groups;
- ``infer_plate_groups`` for the 18 experiments (4! permutations each);
- with ``--rxrx1 DIR`` (the real metadata, e.g. ../shared/rxrx1-sample): the scoring job's
  torch-free part (groups learned from the 132 labelled plates, groups of the 72 test
  plates inferred, balancing, building the report rows) on planted test-plate logits.

Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_balance.py [--signal 4.0] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def make_case(seed: int, signal: float, n_experiments: int = 18, n_classes: int = 1108,
              n_groups: int = 4, n_wells: int = 19_897) -> dict:
    """Planted logits per plate: {(exp, plate): (logits (W, K), truth (W,), group)}."""
    rng = np.random.default_rng(seed)
    groups = np.array_split(rng.permutation(n_classes), n_groups)
    n_plates = n_experiments * n_groups
    # spread the wells like RxRx1 (most plates full at 277, some short)
    per_plate = np.full(n_plates, n_wells // n_plates)
    per_plate[: n_wells - per_plate.sum()] += 1
    plates = {}
    for e in range(n_experiments):
        mapping = rng.permutation(n_groups)
        for p in range(n_groups):
            g = int(mapping[p])
            w = min(int(per_plate[e * n_groups + p]), groups[g].size)
            truth = rng.permutation(groups[g])[:w]
            logits = rng.standard_normal((w, n_classes), dtype=np.float32)
            logits[np.arange(w), truth] += signal
            plates[(e, p)] = (logits, truth, g)
    return {"groups": groups, "plates": plates}


def run(case: dict, method: str, use_groups: bool) -> tuple[float, float, float, float, int]:
    """(wall s, CPU s, raw accuracy, balanced accuracy, plates with a repeated call)."""
    from deepnoise_engine.balance import balance_plate

    groups = case["groups"]
    correct_raw = correct = total = repeats = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for logits, truth, g in case["plates"].values():
        calls = balance_plate(logits, groups[g] if use_groups else None, method=method)
        correct += int((calls == truth).sum())
        repeats += int(len(np.unique(calls)) < len(calls))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    for logits, truth, _ in case["plates"].values():
        correct_raw += int((logits.argmax(1) == truth).sum())
        total += truth.size
    return seconds, cpu, correct_raw / total, correct / total, repeats


def run_inference(case: dict) -> tuple[float, float]:
    """(seconds, fraction of plates whose group is recovered) for infer_plate_groups."""
    from scipy.special import softmax

    from deepnoise_engine.plate_groups import infer_plate_groups

    by_exp: dict[int, dict] = {}
    for (e, p), (logits, _, g) in case["plates"].items():
        by_exp.setdefault(e, {})[p] = (logits, g)
    t0 = time.perf_counter()
    hits = n = 0
    for plates in by_exp.values():
        probs = {p: softmax(lg.astype(np.float64), axis=1) for p, (lg, _) in plates.items()}
        inferred = infer_plate_groups(probs, [g.tolist() for g in case["groups"]])
        hits += sum(inferred[p] == g for p, (_, g) in plates.items())
        n += len(plates)
    return time.perf_counter() - t0, hits / n


def run_rxrx1(root: str, seed: int, signal: float) -> dict:
    """The job's balance + report path on the real RxRx1 layout (test plates)."""
    from deepnoise_engine.plate_groups import learn_groups
    from deepnoise_engine.plate_groups import treatment_labels as _treatment_labels
    from deepnoise_engine.screen.model import WellType
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.workflows.score_report import score_plates_from_log_probs

    t0 = time.perf_counter()
    screen = open_screen(root, check_images=False)
    open_s = time.perf_counter() - t0
    classes = screen.classes()
    index = {c: i for i, c in enumerate(classes)}
    groups = learn_groups(_treatment_labels(screen))
    rng = np.random.default_rng(seed)
    test = [e for e in screen.experiments.values() if e.split == "test"]
    log_probs, truth, plates = {}, {}, []
    for exp in test:
        mapping = rng.permutation(len(groups))
        for p, plate in sorted(exp.plates.items()):
            plates.append((exp.name, p))
            pool = rng.permutation(sorted(groups[mapping[(p - 1) % len(groups)]]))
            wells = plate.used_wells()
            treat = [w for w in wells if w.well_type == WellType.TREATMENT]
            for w, label in zip(treat, pool, strict=False):
                truth[w.id_code] = str(label)
            for w in wells:
                label = truth.get(w.id_code, w.sirna)
                x = rng.standard_normal(len(classes)).astype(np.float32)
                if label is not None:
                    x[index[label]] += signal
                log_probs[w.id_code] = x
    t1, c1 = time.perf_counter(), time.process_time()
    frames, group_info = score_plates_from_log_probs(screen, log_probs, classes, plates=plates)
    seconds, cpu = time.perf_counter() - t1, time.process_time() - c1
    import pandas as pd

    rows = pd.concat(frames.values())
    rows = rows[rows["id_code"].isin(list(truth))]
    expected = rows["id_code"].map(truth)
    return {
        "open_screen_s": round(open_s, 2), "plates": len(plates), "treatment_wells": len(rows),
        "wells": int(sum(len(f) for f in frames.values())), "groups": [len(g) for g in groups],
        "seconds": round(seconds, 3), "cpu_s": round(cpu, 3),
        "raw_accuracy": round(float((rows["sirna_raw"] == expected).mean()), 4),
        "accuracy": round(float((rows["sirna"] == expected).mean()), 4),
        "inferred_plates": len(group_info["inferred"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--signal", type=float, default=4.0,
                        help="logit added to the true class (noise is N(0, 1))")
    parser.add_argument("--skip-paper", action="store_true", help="skip the slower paper method")
    parser.add_argument("--rxrx1", metavar="DIR",
                        help="also run the job's balance + report path on this RxRx1 metadata")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    case = make_case(args.seed, args.signal)
    n_wells = sum(v[1].size for v in case["plates"].values())
    results: dict[str, dict] = {
        "setup": {"plates": len(case["plates"]), "wells": n_wells, "classes": 1108,
                  "group_size": int(case["groups"][0].size), "signal": args.signal,
                  "cpu_count": os.cpu_count(), "threads": os.environ.get("OMP_NUM_THREADS"),
                  "generate_s": round(time.perf_counter() - t0, 2)},
    }
    configs = [("assignment", True), ("assignment", False), ("none", True)]
    if not args.skip_paper:
        configs.append(("paper", True))
    for method, use_groups in configs:
        seconds, cpu, raw, bal, repeats = run(case, method, use_groups)
        results[f"{method}{'_groups' if use_groups else '_all_classes'}"] = {
            "seconds": round(seconds, 3), "cpu_s": round(cpu, 3), "raw_accuracy": round(raw, 4),
            "accuracy": round(bal, 4), "plates_with_repeats": repeats,
        }
    seconds, recovered = run_inference(case)
    results["infer_plate_groups"] = {"seconds": round(seconds, 3), "recovered": recovered}
    if args.rxrx1:
        results["rxrx1_job"] = run_rxrx1(args.rxrx1, args.seed, args.signal)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{results['setup']}")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    heads = ("wall s", "cpu s", "raw acc", "acc", "repeats")
    print(f"{'method':24s} " + " ".join(f"{h:>8s}" for h in heads))
    for key, r in results.items():
        if key in ("setup", "infer_plate_groups", "rxrx1_job"):
            continue
        print(f"{key:24s} {r['seconds']:8.3f} {r['cpu_s']:8.3f} {r['raw_accuracy']:8.4f} "
              f"{r['accuracy']:8.4f} {r['plates_with_repeats']:8d}")
    inf = results["infer_plate_groups"]
    print(f"infer_plate_groups: {inf['seconds']:.3f} s, groups recovered {inf['recovered']:.3f}")
    if "rxrx1_job" in results:
        print(f"rxrx1 job path (groups + balance + report rows): {results['rxrx1_job']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
