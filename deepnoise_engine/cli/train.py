"""``deepnoise-engine train``: train a DeepNoise ensemble into a run folder.

Imports torch only when the command runs (the CLI must start fast).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a DeepNoise model ensemble",
        description="Train on a screen into a run folder (config.toml, train.log, "
                    "metrics.jsonl, checkpoints/, models/, run.json). See docs/training.md.")
    p.add_argument("--data", required=True, help="screen folder (any layout of docs/screens.md)")
    p.add_argument("--out", required=True, help="run folder to create (or resume)")
    p.add_argument("--preset", default="tiny", help="preset name (tiny, paper); default tiny")
    p.add_argument("--config", dest="config_file", help="TOML file with overrides")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override one key, e.g. model.epochs=3")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--devices", type=int, default=1,
                   help="processes for distributed training (re-launches via torchrun)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None,
                   help="override runtime.device")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"runtime.device={args.device}")
    code = _relaunch_distributed(args, overrides)
    return _train(args, overrides) if code is None else code


def _relaunch_distributed(args: argparse.Namespace, overrides: list[str]) -> int | None:
    """With ``--devices N`` > 1 outside torchrun: check the configuration once, then run
    N processes through torchrun; returns their exit code (None: train in this process)."""
    from deepnoise_engine.train.config import ConfigError, resolve

    if args.devices < 1:
        print("error: --devices must be >= 1", file=sys.stderr)
        return 2
    if args.devices > 1:
        from deepnoise_engine.train.ddp import env_world_size, relaunch, strip_devices

        if env_world_size() <= 1:
            # validate before launching N processes, so errors appear once
            try:
                resolve(args.preset, args.config_file, overrides)
            except ConfigError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            return relaunch(strip_devices(sys.argv[1:]), args.devices)
    return None


def _train(args: argparse.Namespace, overrides: list[str]) -> int:
    """Train in this process; Ctrl-C stops at the next step (twice: aborts)."""
    from deepnoise_engine.contract import Cancelled, Reporter
    from deepnoise_engine.screen.errors import ScreenError
    from deepnoise_engine.terminal import TerminalProgress
    from deepnoise_engine.train.config import ConfigError
    from deepnoise_engine.train.data import TrainDataError
    from deepnoise_engine.train.run_folder import RunFolderError
    from deepnoise_engine.workflows.train import run_training

    bar = None if args.quiet else TerminalProgress(lines_every_s=10, unit="step")
    cancel = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        # first Ctrl-C: stop at the next step with a resumable checkpoint; second: abort
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\nstopping at the next step (Ctrl-C again to abort)...", file=sys.stderr)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    try:
        result = run_training(args.data, args.out, preset=args.preset,
                              config_file=args.config_file, overrides=overrides,
                              resume=args.resume, reporter=Reporter(bar, cancel))
    except (ConfigError, RunFolderError, TrainDataError, ScreenError) as exc:
        if bar:
            bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Cancelled:
        if bar:
            bar.close()
        print(f"stopped; continue with: deepnoise-engine train --data {args.data} "
              f"--out {args.out} --resume (and the same options)", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        if bar:
            bar.close()
        print("interrupted; the last completed epoch can be resumed with --resume",
              file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    if bar:
        bar.close()
    final = result.get("final") or {}
    acc = final.get("val_acc_ensemble_balanced")
    val = ("- (no experiment held out; --set data.validation_per_cell_type=1 holds one out "
           "per cell type)" if not result.get("validation_experiments") else
           "-" if acc is None else f"{acc:.3f}")
    repeats = (f" per repeat, {result['repeats']} independent repeats"
               if result.get("repeats", 1) > 1 else "")
    print(f"run folder: {result['out']}; epochs: {result['epochs_done']}{repeats}; "
          f"validation accuracy (ensemble, balanced): {val}", file=sys.stderr)
    return 0
