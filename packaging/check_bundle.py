"""Smoke-check a built DeepNoise bundle (dist/DeepNoise): engine, engine server, app.

Run through packaging/check_bundle.sh (it builds the bundle when missing and provides a
virtual display). Uses the checkout's Python only to drive and inspect the bundle: every
DeepNoise step runs inside the frozen executable. Prints one line per check and a JSON
summary (size, start times); exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deepnoise_app.models import colours
from deepnoise_engine import __version__
from deepnoise_engine.serve.client import EngineClient


class CheckFailed(RuntimeError):
    """A bundle check failed; the message says which and why."""


def folder_size(root: Path) -> int:
    """Bytes of all regular files under ``root`` (links not followed)."""
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def run(cmd: Sequence[str], env: dict[str, str], cwd: Path, timeout: float) -> tuple[str, float]:
    """Run ``cmd``; returns (stdout, seconds). Raises CheckFailed with stderr's tail."""
    start = time.monotonic()
    try:
        done = subprocess.run(
            list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"{' '.join(cmd[1:3])}: no exit within {timeout:.0f} s") from exc
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise CheckFailed(
            f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return done.stdout, seconds


def engine_pids(exe: Path, data_dir: str) -> list[int]:
    """Running ``exe engine serve`` processes whose DEEPNOISE_DATA_DIR is ``data_dir``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile, or not ours
            continue
        if cmd[:3] == [str(exe).encode(), b"engine", b"serve"] and (
            f"DEEPNOISE_DATA_DIR={data_dir}".encode() in environ
        ):
            found.append(int(proc.name))
    return found


def plate_colour_pixels(image: np.ndarray, tolerance: int = 12) -> dict[str, int]:
    """Pixels of ``image`` (H, W, 3) uint8 within ``tolerance`` of each well-type colour."""
    rgb = image[..., :3].astype(np.int16)
    counts = {}
    for name, colour in colours.WELL_TYPE_RGB.items():
        if name == "empty":
            continue
        near = np.abs(rgb - np.array(colour, dtype=np.int16)).max(axis=-1) <= tolerance
        counts[name] = int(near.sum())
    return counts


def check_screenshot(path: Path, min_pixels: int = 200) -> dict[str, Any]:
    """The screenshot shows a window (not blank) with the plate map's well-type colours."""
    if not path.is_file():
        raise CheckFailed(f"the app wrote no screenshot at {path}")
    image = np.asarray(Image.open(path).convert("RGB"))
    height, width = image.shape[:2]
    if height < 300 or width < 300:
        raise CheckFailed(f"screenshot {path} is only {width}x{height} pixels")
    distinct = len(np.unique(image.reshape(-1, 3)[:: max(1, height * width // 200_000)], axis=0))
    if image.std() < 5 or distinct < 16:
        raise CheckFailed(f"screenshot {path} is blank (std {image.std():.1f}, {distinct} colours)")
    counts = plate_colour_pixels(image)
    if counts["treatment"] < min_pixels or (
        counts["negative_control"] + counts["positive_control"] < min_pixels // 10
    ):
        raise CheckFailed(f"screenshot {path} shows no plate map (well-type pixels: {counts})")
    return {"size": [width, height], "distinct_colours": distinct, "plate_pixels": counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="bundle folder (contains DeepNoise)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--skip-train", action="store_true", help="no train/score rounds")
    args = parser.parse_args(argv)

    exe = (args.bundle / "DeepNoise").resolve()
    if not exe.is_file():
        print(f"no bundle executable at {exe}", file=sys.stderr)
        return 1
    work = args.work or Path(tempfile.mkdtemp(prefix="deepnoise-bundle-check-"))
    work.mkdir(parents=True, exist_ok=True)
    # A fresh user: no napari settings, no demo screen yet (the first start generates it).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        XDG_CONFIG_HOME=str(work / "config"), XDG_CACHE_HOME=str(work / "cache"),
        XDG_DATA_HOME=str(work / "share"), DEEPNOISE_DATA_DIR=str(work / "data"),
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
    )
    summary: dict[str, Any] = {"bundle": str(args.bundle.resolve()), "work": str(work)}
    failures: list[str] = []

    def check(name: str, fn: Any) -> None:
        try:
            detail = fn()
        except Exception as exc:  # report every failing check, then go on with the next
            failures.append(name)
            print(f"FAIL {name}: {exc}", flush=True)
            return
        print(f"ok   {name}: {detail}", flush=True)

    def size() -> str:
        summary["size_bytes"] = folder_size(args.bundle)
        summary["files"] = sum(1 for p in args.bundle.rglob("*") if p.is_file())
        return f"{summary['size_bytes'] / 2**30:.2f} GiB in {summary['files']} files"

    def version() -> str:
        out, seconds = run([str(exe), "engine", "--version"], env, work, 120)
        if __version__ not in out:
            raise CheckFailed(f"engine --version printed {out!r}, expected {__version__}")
        summary["engine_version_s"] = round(seconds, 2)
        return f"{out.strip()} in {seconds:.1f} s"

    def serve(command: list[str], key: str) -> str:
        client = EngineClient(command, env=env, cwd=work)
        start = time.monotonic()
        try:
            hello = client.start(timeout=180)
            seconds = time.monotonic() - start
        finally:
            code = client.shutdown(timeout=10)
        if not hello.get("torch"):
            raise CheckFailed(f"the frozen engine has no torch: {hello}")
        if code != 0:
            raise CheckFailed(f"engine exited {code} after shutdown")
        summary[key] = round(seconds, 2)
        return f"hello in {seconds:.1f} s (torch {hello['torch']}, cuda {hello.get('cuda')})"

    def train_and_score() -> str:
        screen, run_dir, scores = work / "screen", work / "run", work / "scores"
        _, t_demo = run([str(exe), "engine", "make-demo", "--out", str(screen), "--seed", "3",
                         "--experiments-per-cell-type", "1",
                         "--test-experiments-per-cell-type", "1", "--sirnas-per-plate", "4",
                         "--image-size", "32", "--cell-types", "HEPG2"], env, work, 300)
        _, t_train = run([str(exe), "engine", "train", "--data", str(screen), "--out",
                          str(run_dir), "--preset", "tiny", "--set", "model.epochs=1",
                          "--set", "finetune.epochs=1", "--quiet"], env, work, 900)
        _, t_score = run([str(exe), "engine", "score", "--data", str(screen), "--model",
                          str(run_dir), "--out", str(scores), "--tta", "1"], env, work, 600)
        reports = sorted(scores.glob("*_Plate*.csv"))
        if not reports:
            raise CheckFailed(f"score wrote no per-plate report in {scores}")
        summary["engine_round_s"] = {"make_demo": round(t_demo, 1), "train": round(t_train, 1),
                                     "score": round(t_score, 1)}
        return (f"make-demo {t_demo:.0f} s, train {t_train:.0f} s, score {t_score:.0f} s, "
                f"{len(reports)} plate reports")

    def train_distributed() -> str:
        """``train --devices 2`` re-launches through ``DeepNoise -m torch.distributed.run``."""
        run_dir = work / "run_ddp"
        _, seconds = run([str(exe), "engine", "train", "--data", str(work / "screen"), "--out",
                          str(run_dir), "--preset", "tiny", "--set", "model.epochs=1",
                          "--set", "finetune.epochs=1", "--quiet", "--devices", "2"],
                         env, work, 900)
        if not (run_dir / "run.json").is_file():
            raise CheckFailed(f"distributed training wrote no {run_dir / 'run.json'}")
        summary["engine_round_s"]["train_devices_2"] = round(seconds, 1)
        return f"2 processes, {seconds:.0f} s"

    def app(key: str, shot: Path) -> str:
        _, seconds = run([str(exe), "--screenshot", str(shot), "--quit-after"], env, work, 600)
        detail = check_screenshot(shot)
        summary[f"{key}_s"] = round(seconds, 2)
        summary[f"{key}_screenshot"] = {"path": str(shot), **detail}
        return f"started, showed the plate and quit in {seconds:.1f} s; {detail}"

    def app_engine(limit_s: float = 400) -> str:
        """The app starts its own engine from the bundle: the first-start demo flow trains
        the tiny model and scores the demo screen through it (reports appear in the data
        folder); then the app is stopped."""
        data = Path(env["DEEPNOISE_DATA_DIR"])
        demo_screen = {p.resolve() for p in data.glob("demo-screen*")}

        def reports() -> list[Path]:
            found = []
            for path in data.rglob("*_Plate*.csv"):
                if not any(path.resolve().is_relative_to(d) for d in demo_screen):
                    found.append(path)
            return found

        before = set(reports())
        log = (work / "app-engine.log").open("w")
        start = time.monotonic()
        proc = subprocess.Popen([str(exe)], env=env, cwd=work, stdout=log, stderr=log,
                                start_new_session=True)
        try:
            while time.monotonic() - start < limit_s:
                if proc.poll() is not None:
                    raise CheckFailed(f"the app exited {proc.returncode}; see {log.name}")
                new = set(reports()) - before
                # scoring writes summary.json after the per-plate reports
                if any((r.parent / "summary.json").is_file() for r in new):
                    break
                time.sleep(2)
            else:
                raise CheckFailed(f"no reports from the app's engine within {limit_s:.0f} s; "
                                  f"see {log.name}")
            seconds = time.monotonic() - start
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()
        # the engine notices that the app is gone (its stdin closes) and exits
        deadline = time.monotonic() + 30
        while (left := engine_pids(exe, env["DEEPNOISE_DATA_DIR"])) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.5)
        if left:
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            raise CheckFailed(f"the engine outlived the app by 30 s (killed pids {left})")
        summary["app_demo_flow_s"] = round(seconds, 1)
        return f"{len(new)} plate reports written by the app's engine after {seconds:.0f} s"

    check("size", size)
    check("engine --version", version)
    check("engine serve (DeepNoise engine serve)",
          lambda: serve([str(exe), "engine", "serve"], "engine_hello_s"))
    check("engine serve (DeepNoise -m deepnoise_engine serve)",
          lambda: serve([str(exe), "-m", "deepnoise_engine", "serve"], "engine_hello_m_s"))
    if not args.skip_train:
        check("engine make-demo/train/score", train_and_score)
        if "engine make-demo/train/score" not in failures:
            check("engine train --devices 2 (torchrun)", train_distributed)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        failures.append("app")
        print("FAIL app: no display (run through check_bundle.sh, which uses xvfb-run)")
    else:
        check("app first start (generates the demo screen)",
              lambda: app("app_first_start", work / "first.png"))
        check("app second start", lambda: app("app_start", work / "second.png"))
        if not args.skip_train:
            check("app drives its engine (first-start demo: train + score)", app_engine)

    summary["failures"] = failures
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, args.json)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
