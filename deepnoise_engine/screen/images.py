"""Reading a site's pixels: one PNG per channel (RxRx1) or one TIFF per site.

``read_site`` returns a ``(C, H, W)`` uint8 array or raises a typed ``ImageError`` that
names the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from deepnoise_engine.screen.errors import (
    CorruptImageError,
    ImageDtypeError,
    ImageShapeError,
    MissingChannelError,
    MissingImageError,
)
from deepnoise_engine.screen.model import Site


def stat_signature(path: str | os.PathLike) -> str:
    """``"<size>:<mtime ns>"`` of a file, or ``"missing"``: what cache fingerprints hash, so
    that a replaced or touched image invalidates what was made from it."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def read_png(path: Path, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """One grayscale 8-bit PNG -> ``(H, W)`` uint8."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise MissingImageError("image file is missing", file=path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            array = np.asarray(image)
    except OSError as exc:  # PIL reports truncation and bad data as OSError
        raise CorruptImageError(f"cannot decode image ({exc})", file=path) from exc
    except Exception as exc:
        raise CorruptImageError(f"cannot decode image ({exc})", file=path) from exc
    if array.ndim != 2:
        raise ImageShapeError(
            f"expected a single-channel image, got mode {mode} with shape {array.shape}",
            file=path,
        )
    if mode == "P":  # palette indices are not intensities
        raise ImageDtypeError("expected 8-bit grayscale pixels, got a palette image", file=path)
    if array.dtype != np.uint8:
        raise ImageDtypeError(f"expected 8-bit pixels, got {array.dtype}", file=path)
    if expected_size is not None and tuple(array.shape) != tuple(expected_size):
        raise ImageShapeError(
            f"expected {expected_size[0]}x{expected_size[1]} pixels, got "
            f"{array.shape[0]}x{array.shape[1]}",
            file=path,
        )
    return array


def _tiff_array(tif: Any) -> np.ndarray:  # tifffile.TiffFile (imported lazily)
    """Pixels of an open ``tifffile.TiffFile`` as ``(C, H, W)`` (or whatever rank it has).

    A ``C x H x W`` file is one series; a multi-page file written page by page may hold one
    series per page, so pages are stacked; an ``H x W x S`` (samples per pixel) file is
    moved to channels first.
    """
    series = tif.series
    if not len(tif.pages):
        raise ValueError("no image pages")  # tifffile only warns on a broken header
    if len(series) == 1:
        array = series[0].asarray()
        if array.ndim == 3 and series[0].axes.endswith("S"):
            array = np.moveaxis(array, -1, 0)
        return array
    pages = [page.asarray() for page in tif.pages]
    shapes = {p.shape for p in pages}
    if len(shapes) != 1:
        raise ImageShapeError(f"pages have different shapes {sorted(shapes)}")
    return np.stack(pages)


def tiff_info(path: Path) -> tuple[int, tuple[int, int], np.dtype]:
    """(channels, (H, W), dtype) of a TIFF from its header, without decoding pixels."""
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise MissingImageError("image file is missing", file=path)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series
            if not len(tif.pages):
                raise ValueError("no image pages")
            if len(series) == 1:
                shape, axes = tuple(series[0].shape), series[0].axes
                dtype = np.dtype(series[0].dtype)
                if len(shape) == 3 and axes.endswith("S"):
                    shape = (shape[2], shape[0], shape[1])
            else:
                page = tif.pages[0]
                shape = (len(tif.pages), *page.shape)
                dtype = np.dtype(page.dtype)
    except Exception as exc:
        raise CorruptImageError(f"cannot read TIFF header ({exc})", file=path) from exc
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise ImageShapeError(f"expected C x H x W pixels, got shape {shape}", file=path)
    return shape[0], (shape[1], shape[2]), dtype


def read_tiff(
    path: Path, channels: list[int], expected_size: tuple[int, int] | None = None
) -> np.ndarray:
    """A multi-page or ``(C, H, W)`` TIFF -> ``(len(channels), H, W)`` uint8."""
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise MissingImageError("image file is missing", file=path)
    try:
        with tifffile.TiffFile(path) as tif:
            array = _tiff_array(tif)
    except ImageShapeError as exc:
        raise ImageShapeError(exc.detail, file=path) from exc
    except Exception as exc:
        raise CorruptImageError(f"cannot decode TIFF ({exc})", file=path) from exc
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ImageShapeError(f"expected C x H x W pixels, got shape {array.shape}", file=path)
    if array.dtype != np.uint8:
        raise ImageDtypeError(f"expected 8-bit pixels, got {array.dtype}", file=path)
    missing = [c for c in channels if c > array.shape[0]]
    if missing:
        raise MissingChannelError(
            f"has {array.shape[0]} channels, missing channel(s) {missing}", file=path
        )
    if expected_size is not None and tuple(array.shape[1:]) != tuple(expected_size):
        raise ImageShapeError(
            f"expected {expected_size[0]}x{expected_size[1]} pixels, got "
            f"{array.shape[1]}x{array.shape[2]}",
            file=path,
        )
    return np.ascontiguousarray(array[[c - 1 for c in channels]])


def read_site(
    site: Site, channels: list[int], expected_size: tuple[int, int] | None = None
) -> np.ndarray:
    """All ``channels`` of ``site`` -> ``(C, H, W)`` uint8, or a typed ``ImageError``."""
    if site.tiff is not None:
        return read_tiff(site.tiff, channels, expected_size)
    missing = [c for c in channels if c not in site.channels]
    if missing:
        raise MissingChannelError(
            f"site {site.site_id or site.index} has no image for channel(s) {missing}",
            file=next(iter(site.channels.values()), None),
        )
    planes = []
    for channel in channels:
        plane = read_png(site.channels[channel], expected_size)
        expected_size = expected_size or plane.shape
        planes.append(plane)
    return np.stack(planes)
