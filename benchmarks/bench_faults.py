"""Fault injection: the engine process through random kills and disk faults.

On a small synthetic screen an undisturbed engine first packs, trains and scores once
(the reference). Then each trial picks a step (pack, train or score) and a fault, runs
the step in an engine process that suffers it, and recovers with a clean engine the way a
user would: ``pack`` again, ``resume`` the run folder (``train`` when none was created),
``score`` again into the same folder without ``overwrite``. It checks that:

- a disk fault ends the job with an ``error`` of kind ``disk_full`` carrying ``path``,
  then ``finished``, and that the engine answers the next request;
- between fault and recovery nothing reads as complete that is not (a score folder's
  manifest, run.json's status);
- the recovered result equals the reference byte for byte: the pack arrays, the trained
  models' weights (``models/*.safetensors``) and the score reports (plate CSVs and
  submission; ``summary.json`` holds timestamps).

Faults: ``kill@random`` (SIGKILL after a random fraction of the undisturbed step's time
from its ``started`` event; ``kill@training`` from its first training log line) and,
through ``DEEPNOISE_FAULT`` (see ``deepnoise_engine/faults.py``), ENOSPC or SIGKILL at a
named point: the pack's space reservation, a checkpoint or training-state write,
the score set's staging and its move into place.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_faults.py [--trials 100] [--seed 0]
[--work DIR] [--json FILE]``. ``tests/deepnoise_engine/test_fault_injection.py`` runs a
short version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from deepnoise_engine.serve.client import EngineClient, EngineDiedError  # noqa: E402

SCREEN = {"seed": 7, "cell_types": ("U2OS",), "train_experiments_per_cell_type": 1,
          "test_experiments_per_cell_type": 1, "plates_per_experiment": 2,
          "sirnas_per_plate": 4, "image_size": 32, "sites": 2, "missing_wells": 1}
TRAIN = ["data.image_size=32", "data.workers=0", "model.batch_size=16", "runtime.threads=1",
         "model.eval_batch_size=64", "model.epochs=2", "finetune.enabled=true",
         "finetune.epochs=1"]
FAULTS: dict[str, list[str]] = {
    "pack": ["kill@random", "enospc:reserve", "kill:reserve", "enospc:write:*.json"],
    "train": ["kill@random", "kill@training", "enospc:write:last.state.safetensors",
              "kill:write:last.state.json", "enospc:write:*_xception_tiny.safetensors",
              "kill:write:run.json"],
    "score": ["kill@random", "enospc:score-stage", "kill:score-move", "kill:score-stage"],
}


def _env(fault: str | None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("DEEPNOISE_FAULT", None)
    if fault and not fault.startswith("kill@"):
        env["DEEPNOISE_FAULT"] = fault
    return env


def _events(client: EngineClient, job: str, timeout: float) -> list[dict[str, Any]]:
    """The job's events up to ``finished``, each with ``_t`` (monotonic arrival time)."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not events or events[-1]["event"] != "finished":
        event = client.next_event(timeout=max(deadline - time.monotonic(), 0.1))
        if event.get("job") == job:
            events.append({**event, "_t": time.monotonic()})
    return events


def _is_anchor(event: dict[str, Any], fault: str) -> bool:
    """``kill@random`` counts from the job's start, ``kill@training`` from the first
    training step's log line (the run folder exists by then)."""
    if fault == "kill@training":
        return event.get("event") == "log" and event.get("message", "").startswith("training ")
    return event.get("event") == "started"


def _digest(folder: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob(pattern)) if p.is_file()}


def _request(step: str, screen: Path, target: Path, run: Path) -> tuple[str, dict[str, Any]]:
    if step == "pack":
        return "pack", {"data": str(screen), "out": str(target)}
    if step == "train":
        return "train", {"data": str(screen), "out": str(target), "overrides": TRAIN,
                         "device": "cpu"}
    return "score", {"data": str(screen), "models": [str(run)], "out": str(target),
                     "tta": 1, "batch_size": 8, "device": "cpu"}


def _result_of(step: str, target: Path) -> dict[str, str]:
    if step == "pack":
        return _digest(target, "plates/*.npy")
    if step == "train":
        return _digest(target, "models/*.safetensors")
    return {**_digest(target, "*_Plate*.csv"), **_digest(target, "submission.csv")}


def _looks_complete(step: str, target: Path) -> bool | None:
    """Whether the output says it is complete (None: the step has no such mark)."""
    if step == "train":
        run = target / "run.json"
        return run.is_file() and json.loads(run.read_text()).get("status") == "complete"
    if step == "score":
        from deepnoise_engine.report.output_set import PartialOutputError, check_score_folder

        try:
            return check_score_folder(target) is not None
        except PartialOutputError:
            return False
    return None


class Campaign:
    """The reference run and the trials; ``clean`` is the long-lived recovery engine."""

    def __init__(self, work: Path, seed: int):
        self.work, self.rng = work, random.Random(seed)
        self.clean = EngineClient(env=_env(None))
        self.clean.start(timeout=120)
        self.reference: dict[str, dict[str, str]] = {}
        self.seconds: dict[str, float] = {}

    def run_step(self, client: EngineClient, step: str, target: Path,
                 timeout: float = 900) -> list[dict[str, Any]]:
        rtype, params = _request(step, self.screen, target, self.run)
        job = client.request(rtype, timeout=60, **params)
        return _events(client, job, timeout)

    def prepare(self) -> None:
        from deepnoise_engine.screen.synthetic import make_demo

        self.screen = make_demo(self.work / "screen", **SCREEN)
        self.run = self.work / "reference" / "run"
        for step in ("pack", "train", "score"):
            target = self.work / "reference" / step if step != "train" else self.run
            events = self.run_step(self.clean, step, target)
            assert events[-1]["status"] == "succeeded", events[-3:]
            # the time a kill may land in, counted from each anchor (see _is_anchor)
            for fault in ("kill@random", "kill@training"):
                start = next((e["_t"] for e in events if _is_anchor(e, fault)), None)
                if start is not None:
                    self.seconds[f"{step} {fault}"] = events[-1]["_t"] - start
            self.seconds[step] = self.seconds[f"{step} kill@random"]
            self.reference[step] = _result_of(step, target)
            assert self.reference[step], f"reference {step} wrote nothing"

    def trial(self, index: int, step: str, fault: str) -> dict[str, Any]:
        target = self.work / "trials" / f"{index:03d}-{step}"
        engine = EngineClient(env=_env(fault))
        engine.start(timeout=120)
        outcome = {"trial": index, "step": step, "fault": fault}
        try:
            rtype, params = _request(step, self.screen, target, self.run)
            job = engine.request(rtype, timeout=60, **params)
            if fault.startswith("kill@"):  # somewhere in the job (or just after it)
                while not _is_anchor(engine.next_event(timeout=300), fault):
                    pass
                time.sleep(self.rng.uniform(0.0, 1.0) * self.seconds[f"{step} {fault}"])
                engine.kill()
            events = _events(engine, job, timeout=900)
            status = events[-1]["status"]
            errors = [e for e in events if e["event"] == "error"]
            if fault.startswith("enospc") and status == "failed":
                assert errors[0]["kind"] == "disk_full", errors[0]
                assert errors[0].get("path"), errors[0]
                assert engine.request("echo", payload=index, timeout=30) == {
                    "params": {"payload": index}}, "engine stopped serving"
            outcome["first_run"] = status
        except EngineDiedError:  # killed (by us or by the fault): the process is gone
            outcome["first_run"] = "killed"
        finally:
            if engine.alive:
                engine.shutdown(timeout=10)
            else:
                engine.kill()
        complete = _looks_complete(step, target)
        outcome["looked_complete"] = complete
        if outcome["first_run"] != "succeeded" and complete:
            # complete after all: the fault came after the last write (a real finish)
            outcome["finished_before_fault"] = True
        outcome["recovery"] = self.recover(step, target)
        outcome["same_result"] = _result_of(step, target) == self.reference[step]
        if complete is not None:
            assert _looks_complete(step, target), f"trial {index}: not complete after recovery"
        return outcome

    def recover(self, step: str, target: Path) -> str:
        if step == "train" and (target / "config.toml").is_file():
            job = self.clean.request("resume", timeout=60, out=str(target), device="cpu",
                                     data=str(self.screen))
            events = _events(self.clean, job, 900)
            return "resume:" + events[-1]["status"]
        events = self.run_step(self.clean, step, target)
        status = events[-1]["status"]
        if status == "failed" and events[-2].get("kind") == "file_exists":
            return "already-complete"  # a finished score set is never rewritten
        assert status == "succeeded", events[-3:]
        return "rerun:" + status

    def close(self) -> None:
        self.clean.shutdown(timeout=10)


def run_campaign(work: Path, trials: int, seed: int = 0,
                 plan: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Run the reference and ``trials`` random trials (or ``plan``: (step, fault) pairs)."""
    campaign = Campaign(work, seed)
    t0 = time.monotonic()
    try:
        campaign.prepare()
        if plan is None:
            steps = list(FAULTS)
            plan = []
            for _ in range(trials):
                step = campaign.rng.choice(steps)
                plan.append((step, campaign.rng.choice(FAULTS[step])))
        outcomes = [campaign.trial(i, step, fault) for i, (step, fault) in enumerate(plan)]
    finally:
        campaign.close()
    return {
        "trials": len(outcomes),
        "same_result": sum(o["same_result"] for o in outcomes),
        "by_step_fault": dict(Counter(f"{o['step']} {o['fault']}" for o in outcomes)),
        "first_run": dict(Counter(o["first_run"] for o in outcomes)),
        "recovery": dict(Counter(o["recovery"].split(":")[0] for o in outcomes)),
        "reference_seconds": {k: round(v, 1) for k, v in campaign.seconds.items()},
        "seconds": round(time.monotonic() - t0, 1),
        "outcomes": outcomes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="deepnoise-faults-"))
    try:
        report = run_campaign(work, args.trials, args.seed)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"| trials | same result as undisturbed | seconds |\n| ---: | ---: | ---: |\n"
          f"| {report['trials']} | {report['same_result']} | {report['seconds']} |")
    for key in ("by_step_fault", "first_run", "recovery", "reference_seconds"):
        print(f"{key}: {json.dumps(report[key])}")
    bad = [o for o in report["outcomes"] if not o["same_result"]]
    for o in bad:
        print("DIFFERENT:", o)
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
