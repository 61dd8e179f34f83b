"""Entry point of the desktop bundle: one executable for the app and the engine.

``DeepNoise`` starts the napari app; ``DeepNoise engine ARGS`` runs the engine CLI, which
is how the frozen app starts its engine process (see deepnoise_engine.serve.client).
"""

import multiprocessing
import sys


def main() -> int:
    multiprocessing.freeze_support()
    if len(sys.argv) > 1 and sys.argv[1] == "engine":
        from deepnoise_engine.cli import main as engine_main

        return engine_main(sys.argv[2:])
    from deepnoise_app.main import main as app_main

    return app_main(sys.argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
