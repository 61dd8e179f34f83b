"""``python -m deepnoise_engine.cli``: the engine's command line (torchrun relaunches it)."""

import sys

from deepnoise_engine.cli import main

sys.exit(main())
