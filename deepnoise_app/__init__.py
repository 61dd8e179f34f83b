"""DeepNoise napari application and npe2 plugin (never imports torch: the engine runs apart)."""

from deepnoise_app._pyside_fix import guard_none_refcount

__all__ = ["__version__"]

__version__ = "0.1.0"

# PySide6 6.12.0 drops a reference to None on every void call; napari imports this package
# (for the plugin manifest) at start, so the guard covers plain napari sessions too.
guard_none_refcount()
