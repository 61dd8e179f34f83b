"""DeepNoise engine: everything that computes. Never imports Qt or napari.

Importing this package is cheap: torch and timm are imported only by the modules that
need them (model, train, score), so the app can use the screen data layer directly.
"""

__version__ = "0.1.0"
