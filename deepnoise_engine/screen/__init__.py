"""Screen data layer: data model, readers, synthetic screens, pack cache.

Torch-free and cheap to import: the app uses it directly.
"""

from deepnoise_engine.screen.errors import (
    CorruptImageError,
    ImageError,
    MetadataError,
    ScreenError,
    ScreenNotFoundError,
)
from deepnoise_engine.screen.model import (
    Experiment,
    Plate,
    PlateFormat,
    Problem,
    Screen,
    Site,
    Well,
    WellType,
    id_code,
    parse_well,
    site_id,
    well_name,
)
from deepnoise_engine.screen.open import open_screen
from deepnoise_engine.screen.verify import verify_images

__all__ = [
    "CorruptImageError",
    "Experiment",
    "ImageError",
    "MetadataError",
    "Plate",
    "PlateFormat",
    "Problem",
    "Screen",
    "ScreenError",
    "ScreenNotFoundError",
    "Site",
    "Well",
    "WellType",
    "id_code",
    "open_screen",
    "parse_well",
    "site_id",
    "verify_images",
    "well_name",
]
