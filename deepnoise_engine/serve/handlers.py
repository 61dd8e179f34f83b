"""What the engine does for each request type: one handler per type.

Job handlers take ``(reporter, params)`` and run in the job queue; quick handlers take
``params`` and answer from a short-lived thread (they read files). Handlers import the
steps (torch, pandas, ...) lazily so the engine process starts fast.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepnoise_engine.contract import Cancelled
from deepnoise_engine.contract import requests as rq
from deepnoise_engine.contract.config import (
    DEFAULT_PRESET,
    CheckConfigAnswer,
    ConfigDefaultsAnswer,
    DefaultSplitAnswer,
    PresetsAnswer,
)
from deepnoise_engine.contract.run_folder import CONFIG_TOML, RUN_JSON
from deepnoise_engine.serve.errors import OutOfMemoryError
from deepnoise_engine.serve.protocol import ProtocolError, to_jsonable
from deepnoise_engine.serve.queue import Handler, JobReporter

# --- quick requests -----------------------------------------------------------------------


def inspect_screen(params: rq.InspectParams) -> dict[str, Any]:
    """``inspect``: the summary of the screen at ``data`` (docs/screens.md)."""
    from deepnoise_engine.screen.inspect import summarize_screen
    from deepnoise_engine.screen.open import open_screen

    screen = open_screen(params.data, check_images=params.check_images)
    limit = None if params.max_problems < 0 else params.max_problems  # < 0: every problem
    return dict(to_jsonable(summarize_screen(screen, max_problems=limit)))


def describe_model(params: rq.DescribeModelParams) -> dict[str, Any]:
    """``describe_model``: a run folder or a checkpoint, read from JSON only."""
    from deepnoise_engine.model.describe import describe_model as describe

    return dict(to_jsonable(describe(params.path).model_dump()))


def presets(params: rq.PresetsParams) -> dict[str, Any]:
    """``presets``: every shipped preset's name and resolved configuration."""
    from deepnoise_engine.resources import resource_path
    from deepnoise_engine.train import config

    names = sorted(p.stem for p in resource_path("presets").glob("*.toml"))
    names.sort(key=lambda name: name != DEFAULT_PRESET)
    resolved = {name: config.resolve(name) for name in names}
    answer = PresetsAnswer(default=DEFAULT_PRESET, names=names, presets=resolved)
    return dict(to_jsonable(answer.model_dump()))


def config_defaults(params: rq.ConfigDefaultsParams) -> dict[str, Any]:
    """``config_defaults``: the schema defaults and the choices of keys that have them."""
    from deepnoise_engine.normalise.plate_normalizer import MODES
    from deepnoise_engine.train import config

    answer = ConfigDefaultsAnswer(
        config=config.defaults(), choices={"data.normalisation": list(MODES)}
    )
    return dict(to_jsonable(answer.model_dump()))


def check_config(params: rq.CheckConfigParams) -> dict[str, Any]:
    """``check_config``: the configuration a train request would resolve; a fault raises
    ``ConfigError`` naming the key (error kind ``config_error``)."""
    from deepnoise_engine.train import config

    resolved = config.resolve(
        params.preset or DEFAULT_PRESET, params.config_file, params.overrides or ()
    )
    return dict(to_jsonable(CheckConfigAnswer(config=resolved).model_dump()))


def default_split(params: rq.DefaultSplitParams) -> dict[str, Any]:
    """``default_split``: the experiments that validate when a train request names none."""
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.train import config
    from deepnoise_engine.train.split import default_validation_experiments

    screen = open_screen(params.data, check_images=False)
    per_cell_type = int(config.defaults()["data"]["validation_per_cell_type"])
    experiments = screen.experiments
    chosen = default_validation_experiments(
        {name: exp.cell_type for name, exp in experiments.items()},
        [name for name, exp in experiments.items() if exp.labelled],
        per_cell_type,
    )
    answer = DefaultSplitAnswer(validation_experiments=chosen, per_cell_type=per_cell_type)
    return dict(to_jsonable(answer.model_dump()))


#: Quick requests answered from a thread (they read files).
QUICK_HANDLERS: dict[str, Callable[[Any], Any]] = {
    "inspect": inspect_screen,
    "describe_model": describe_model,
    "presets": presets,
    "config_defaults": config_defaults,
    "check_config": check_config,
    "default_split": default_split,
}


# --- job requests -------------------------------------------------------------------------


def pack(reporter: JobReporter, params: rq.PackParams) -> dict[str, Any]:
    """``pack``: decode the screen's sites into the cache (finished plates are kept)."""
    from deepnoise_engine.screen.open import open_screen
    from deepnoise_engine.screen.pack_cache import pack_result, pack_screen

    reporter.progress("open", 0, 1)
    screen = open_screen(params.data)
    reporter.check_cancelled()
    # a cancelled pack raises Cancelled whose ``partial`` is this result for the
    # finished plates
    return pack_result(pack_screen(screen, params.out, reporter=reporter))


def make_demo(reporter: JobReporter, params: rq.MakeDemoParams) -> dict[str, Any]:
    """``make_demo``: a synthetic screen (``out`` is left untouched on cancel)."""
    from deepnoise_engine.screen.synthetic import make_demo as make

    options = params.model_dump(exclude={"out"}, exclude_none=True)
    if "cell_types" in options:
        options["cell_types"] = tuple(options["cell_types"])
    return {"out": str(make(params.out, reporter=reporter, **options))}


def _device_overrides(device: str | None) -> list[str]:
    return [f"runtime.device={device}"] if device else []


def train(reporter: JobReporter, params: rq.TrainParams) -> Any:
    """``train``: a new run folder from a preset, a config file and overrides."""
    from deepnoise_engine.workflows.train import run_training

    overrides = list(params.overrides or []) + _device_overrides(params.device)
    return run_training(
        params.data, params.out, overrides=tuple(overrides), resume=False,
        **params.given("preset", "config_file"), reporter=reporter,
    )


def _run_data(out: str) -> str:
    """The screen a run folder was trained on (``data`` recorded in run.json), if any."""
    try:
        run = json.loads((Path(out) / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        run = {}
    for key in ("data", "screen", "data_path"):
        if isinstance(run, dict) and isinstance(run.get(key), str):
            return str(run[key])
    raise ProtocolError(
        "bad_request", f"{out}: the run folder does not record its screen; pass 'data'"
    )


def resume(reporter: JobReporter, params: rq.ResumeParams) -> Any:
    """``resume``: continue a run from its last checkpoint with its own config.toml."""
    from deepnoise_engine.workflows.train import run_training

    out = Path(params.out)
    config = out / CONFIG_TOML
    if not config.is_file():
        raise FileNotFoundError(f"{config}: not a training run folder (no config.toml)")
    data = params.data or _run_data(params.out)
    return run_training(
        data, out, preset=None, config_file=config, resume=True,
        overrides=tuple(_device_overrides(params.device)), reporter=reporter,
    )


def score(reporter: JobReporter, params: rq.ScoreParams) -> Any:
    """``score``: predictions, balanced assignments and reports for the screen's plates."""
    from deepnoise_engine.workflows.score import run_scoring

    options = params.given(
        "plates", "balance", "tta", "submission", "overwrite", "batch_size", "device"
    )
    return run_scoring(params.data, params.models, params.out, reporter=reporter, **options)


def export(reporter: JobReporter, params: rq.ExportParams) -> dict[str, Any]:
    """``export``: copy a score folder's reports (no cancel point: it is quick)."""
    from deepnoise_engine.report.export import export_reports

    options = params.given("plates", "submission", "figures", "overwrite")
    reporter.progress("export", 0, 1)
    files = export_reports(params.score_dir, params.out, **options)
    reporter.progress("export", 1, 1)
    return {"out": params.out, "files": [str(p) for p in files]}


def qc(reporter: JobReporter, params: rq.QcParams) -> dict[str, Any]:
    """``qc``: rank the profiles of a score folder (docs/qc.md)."""
    from deepnoise_engine.qc.job import run_qc

    options = params.given("out", "overwrite", "block", "seed")
    result: dict[str, Any] = run_qc(params.score_dir, reporter=reporter, **options)
    return result


def sleep(reporter: JobReporter, params: rq.SleepParams) -> dict[str, Any]:
    """Diagnostic: sleep ``seconds`` in ``steps`` cancellable steps; optionally fail or
    print ``say`` to stdout (which the server redirects to stderr)."""
    steps = max(params.steps, 1)
    if params.say:  # stray output: must end up on stderr, never in the protocol
        print(params.say)
        os.write(1, (params.say + "\n").encode())
    for i in range(steps):
        if reporter.cancel_event.wait(params.seconds / steps):
            raise Cancelled(partial={"done": i})
        reporter.progress("sleep", i + 1, steps)
        _fail_on_purpose(params.fail)
    return {"slept_s": params.seconds, "steps": steps}


def _fail_on_purpose(fail: str | None) -> None:
    """The diagnostic failures of ``sleep``: a plain error, two out-of-memory forms, and a
    typed screen error."""
    if fail == "error":
        raise ValueError("diagnostic failure")
    if fail == "out_of_memory":
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (diagnostic)")
    if fail == "cuda_out_of_memory":
        raise OutOfMemoryError("CUDA out of memory (diagnostic)")
    if fail == "screen":
        from deepnoise_engine.screen.errors import MissingImageError

        raise MissingImageError("image missing (diagnostic)", file="train.csv", row=7)


JOB_HANDLERS: dict[str, Handler] = {
    "pack": pack,
    "make_demo": make_demo,
    "train": train,
    "resume": resume,
    "score": score,
    "export": export,
    "qc": qc,
    "sleep": sleep,
}
