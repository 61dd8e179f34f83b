"""Entry point of the desktop bundle: one executable for the app and the engine.

``DeepNoise [ARGS]`` starts the napari app (``deepnoise_app.main``);
``DeepNoise engine ARGS`` runs the engine CLI, which is how the frozen app starts its
engine process (``DeepNoise engine serve``, see deepnoise_engine.serve.client).
``DeepNoise -m MODULE ARGS`` runs a bundled module like ``python -m`` does, so commands
built as ``[sys.executable, "-m", ...]`` (torchrun for multi-process training, the
engine client's non-frozen command) also work from the bundle; interpreter
flags before ``-m`` (torchrun passes ``-u``) are accepted and ignored, except that ``-u``
makes stdout and stderr line-buffered.
"""

from __future__ import annotations

import multiprocessing
import runpy
import sys

#: Python interpreter flags without a value that may precede ``-m`` (``python -u -m ...``).
INTERPRETER_FLAGS = {"-u", "-B", "-E", "-s", "-S", "-I", "-O", "-OO", "-q"}


def run_module(module: str, args: list[str]) -> int:
    """``python -m MODULE ARGS`` inside the bundle; returns the exit status."""
    sys.argv = [sys.argv[0], *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:  # modules end with sys.exit(...)
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch on the first argument: ``engine``, ``-m MODULE`` or the app."""
    # multiprocessing children (spawn) re-enter this executable; freeze_support runs them.
    multiprocessing.freeze_support()
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["engine"]:
        from deepnoise_engine.cli import main as engine_main

        # the engine sees the argv of `deepnoise-engine ARGS` (train --devices re-launches
        # itself from sys.argv[1:])
        sys.argv = [sys.argv[0], *args[1:]]
        return engine_main(args[1:])
    flags = 0
    while flags < len(args) and args[flags] in INTERPRETER_FLAGS:
        flags += 1
    if args[flags : flags + 1] == ["-m"] and len(args) > flags + 1:
        if "-u" in args[:flags]:
            for stream in (sys.stdout, sys.stderr):
                stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        return run_module(args[flags + 1], args[flags + 2 :])
    from deepnoise_app.main import main as app_main

    return app_main(args) or 0


if __name__ == "__main__":
    sys.exit(main())
