"""``open_screen``: detect a screen folder's layout and read it into a ``Screen``."""

from __future__ import annotations

import gc
from pathlib import Path

from deepnoise_engine.screen.errors import MetadataError, ScreenNotFoundError
from deepnoise_engine.screen.model import PlateFormat, Screen

LAYOUTS = ("rxrx1", "tiff", "loaddata", "ome-zarr")


def detect_layout(root: Path) -> str:
    """The layout of a screen folder, from the files it holds (docs/screens.md): ``"tiff"``
    (screen.csv), ``"rxrx1"`` (metadata.csv or the Kaggle CSVs), ``"loaddata"``
    (load_data*.csv), ``"ome-zarr"`` (NGFF plates); ``layout`` in deepnoise.toml decides
    when it is set."""
    from deepnoise_engine.screen.loaddata import find_loaddata
    from deepnoise_engine.screen.mapping import load_mapping
    from deepnoise_engine.screen.omezarr import find_plates
    from deepnoise_engine.screen.rxrx1 import KAGGLE_FILES, METADATA_FILE
    from deepnoise_engine.screen.tiff import SCREEN_FILE

    mapping = load_mapping(root)
    if mapping.layout is not None:
        if mapping.layout not in LAYOUTS:
            raise MetadataError(f"layout = {mapping.layout!r} is not one of "
                                f"{', '.join(LAYOUTS)}", file=mapping.path)
        return mapping.layout
    if (root / SCREEN_FILE).is_file():
        return "tiff"
    if any((root / name).is_file() for name in (METADATA_FILE, *KAGGLE_FILES)):
        return "rxrx1"
    if find_loaddata(root, mapping):
        return "loaddata"
    if find_plates(root):
        return "ome-zarr"
    raise MetadataError(
        "no screen metadata: expected train.csv / test.csv / *_controls.csv or metadata.csv "
        "(RxRx1 layout), screen.csv (TIFF layout), load_data*.csv (CellProfiler LoadData) "
        "or *.zarr NGFF plates (OME-Zarr); see docs/screens.md",
        file=root,
    )


def _plate_format(value: int | str | PlateFormat | None) -> PlateFormat | None:
    if value is None or isinstance(value, PlateFormat):
        return value
    return PlateFormat.from_well_count(int(value))


def open_screen(
    path: str | Path,
    *,
    strict: bool = False,
    check_images: bool = True,
    plate_format: int | str | PlateFormat | None = None,
    max_plate: int | None = None,
) -> Screen:
    """Open a screen folder (or a CSV inside one) and read it into a ``Screen``.

    Every problem found goes to ``screen.problems`` (and the ``Site`` it concerns) and the
    bad row/site is skipped; ``strict=True`` raises the first as its typed ``ScreenError``.
    Each plate folder is listed once (missing images and channels are flagged from the
    names); ``check_images`` decodes the first readable image for ``screen.image_size``
    (False: nothing is decoded, ``image_size`` stays None). ``plate_format``
    (96/384/1536) forces the plate geometry instead of the smallest one holding the wells;
    ``max_plate`` makes plate numbers above it ``plate_out_of_range``.
    Raises ``ScreenNotFoundError`` / ``MetadataError`` when the screen cannot be opened.
    """
    # A screen is millions of small acyclic objects: the cyclic collector would walk the
    # growing heap again and again while they are made (half the time of a 100-plate
    # LoadData screen). Reference counting frees everything temporary.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _open_screen(path, strict=strict, check_images=check_images,
                            plate_format=plate_format, max_plate=max_plate)
    finally:
        if enabled:
            gc.enable()


def _open_screen(
    path: str | Path,
    *,
    strict: bool = False,
    check_images: bool = True,
    plate_format: int | str | PlateFormat | None = None,
    max_plate: int | None = None,
) -> Screen:
    root = Path(path).expanduser()
    if not root.exists():
        raise ScreenNotFoundError("no such screen folder", file=root)
    loaddata_file = None
    if root.is_file():
        if root.suffix.lower() != ".csv" and not root.name.lower().endswith(".csv.gz"):
            raise ScreenNotFoundError("not a screen folder (or a CSV inside one)", file=root)
        if root.name.lower().startswith("load_data"):
            loaddata_file = root.resolve()
        root = root.parent
    root = root.resolve()
    fmt = _plate_format(plate_format)
    options = {"strict": strict, "check_images": check_images, "plate_format": fmt,
               "max_plate": max_plate}
    layout = "loaddata" if loaddata_file is not None else detect_layout(root)
    if layout == "tiff":
        from deepnoise_engine.screen.tiff import open_tiff_screen

        return open_tiff_screen(root, **options)
    if layout == "loaddata":
        from deepnoise_engine.screen.loaddata import open_loaddata

        files = [loaddata_file] if loaddata_file is not None else None
        return open_loaddata(root, files=files, **options)
    if layout == "ome-zarr":
        from deepnoise_engine.screen.omezarr import open_omezarr

        return open_omezarr(root, **options)
    from deepnoise_engine.screen.rxrx1 import open_rxrx1

    return open_rxrx1(
        root, strict=strict, check_images=check_images, plate_format=fmt, max_plate=max_plate
    )
