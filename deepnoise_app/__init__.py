"""DeepNoise napari application and npe2 plugin (never imports torch: the engine runs apart)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
