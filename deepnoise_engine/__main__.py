import sys

from deepnoise_engine.cli import main

sys.exit(main())
