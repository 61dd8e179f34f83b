"""Reading a site's pixels: one PNG or TIFF per channel (RxRx1, LoadData), one TIFF per
site (TIFF layout) or one OME-Zarr field array (OME-Zarr plates).

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
    ImageError,
    ImageShapeError,
    MissingChannelError,
    MissingImageError,
)
from deepnoise_engine.screen.model import Site, ZarrField

_TIFF_SUFFIXES = (".tif", ".tiff")


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


def to_uint8(array: np.ndarray, bits: int | None, path: str | Path | None) -> np.ndarray:
    """8-bit pixels as they are; 16-bit ones shifted down from ``bits`` significant bits
    (values above ``2**bits - 1`` clip at 255). Anything else is an ``ImageDtypeError``."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16 and bits is not None:
        shifted = np.right_shift(array, max(0, bits - 8))
        return np.minimum(shifted, 255).astype(np.uint8)
    hint = "" if bits is not None else " (16-bit images need `bits` in deepnoise.toml)"
    raise ImageDtypeError(f"expected 8-bit pixels, got {array.dtype}{hint}", file=path)


def read_plane(
    path: Path, expected_size: tuple[int, int] | None = None, bits: int | None = None
) -> np.ndarray:
    """One single-channel PNG or TIFF -> ``(H, W)`` uint8 (16-bit scaled, see ``to_uint8``)."""
    path = Path(path)
    if path.suffix.lower() not in _TIFF_SUFFIXES:
        if bits is None:
            return read_png(path, expected_size)
        return _read_png16(path, expected_size, bits)
    import tifffile

    if not path.is_file():
        raise MissingImageError("image file is missing", file=path)
    try:
        array = tifffile.imread(path)
    except Exception as exc:
        raise CorruptImageError(f"cannot decode TIFF ({exc})", file=path) from exc
    return _checked_plane(np.squeeze(array), expected_size, bits, path)


def _read_png16(path: Path, expected_size: tuple[int, int] | None, bits: int) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise MissingImageError("image file is missing", file=path)
    try:
        with Image.open(path) as image:
            array = np.asarray(image)
    except Exception as exc:
        raise CorruptImageError(f"cannot decode image ({exc})", file=path) from exc
    if array.dtype == np.int32 or array.dtype == np.dtype(">u2"):  # PIL's 16-bit modes
        array = array.astype(np.uint16)
    return _checked_plane(array, expected_size, bits, path)


def _checked_plane(
    array: np.ndarray, expected_size: tuple[int, int] | None, bits: int | None, path: Path
) -> np.ndarray:
    if array.ndim != 2:
        raise ImageShapeError(f"expected one 2-D plane, got shape {array.shape}", file=path)
    if expected_size is not None and tuple(array.shape) != tuple(expected_size):
        raise ImageShapeError(
            f"expected {expected_size[0]}x{expected_size[1]} pixels, got "
            f"{array.shape[0]}x{array.shape[1]}",
            file=path,
        )
    return to_uint8(array, bits, path)


def read_zarr_field(
    field: ZarrField,
    channels: list[int],
    expected_size: tuple[int, int] | None = None,
    bits: int | None = None,
) -> np.ndarray:
    """``channels`` (1-based) of an OME-Zarr field -> ``(C, H, W)`` uint8."""
    import zarr

    try:
        array = zarr.open_array(field.array, mode="r")
    except FileNotFoundError as exc:
        raise MissingImageError("field array is missing", file=field.array) from exc
    except Exception as exc:
        raise CorruptImageError(f"cannot open field array ({exc})", file=field.array) from exc
    axes = field.axes
    if "c" not in axes:  # a single-channel image
        count = 1
    else:
        count = int(array.shape[axes.index("c")])
    missing = [c for c in channels if c > count]
    if missing:
        raise MissingChannelError(f"has {count} channels, missing channel(s) {missing}",
                                  file=field.array)
    index = tuple(
        [c - 1 for c in channels] if axis == "c" else slice(None) if axis in "yx" else 0
        for axis in axes
    )
    try:
        pixels = np.asarray(array[index])
    except Exception as exc:
        raise CorruptImageError(f"cannot decode field ({exc})", file=field.array) from exc
    if "c" not in axes:
        pixels = np.broadcast_to(pixels, (len(channels), *pixels.shape))
    if expected_size is not None and tuple(pixels.shape[1:]) != tuple(expected_size):
        raise ImageShapeError(
            f"expected {expected_size[0]}x{expected_size[1]} pixels, got "
            f"{pixels.shape[1]}x{pixels.shape[2]}",
            file=field.array,
        )
    return np.ascontiguousarray(to_uint8(pixels, bits, field.array))


def read_channel(site: Site, channel: int) -> np.ndarray:
    """One channel of any kind of site -> ``(H, W)`` uint8 (what the app shows)."""
    if site.zarr is not None:
        return read_zarr_field(site.zarr, [channel], bits=site.bits)[0]
    if site.tiff is not None:
        return read_tiff(site.tiff, [channel])[0]
    path = site.channels.get(channel)
    if path is None:
        raise MissingChannelError(f"site {site.site_id or site.index} has no image for "
                                  f"channel {channel}")
    return read_plane(path, bits=site.bits)


def site_errors(
    site: Site, channels: list[int], expected_size: tuple[int, int] | None
) -> list[ImageError]:
    """Every decoding problem of a site (one per bad file), for ``verify_images``."""
    if site.zarr is not None or site.tiff is not None:
        try:
            read_site(site, channels, expected_size)
        except ImageError as exc:
            return [exc]
        return []
    errors: list[ImageError] = []
    for path in site.channels.values():
        try:
            read_plane(path, expected_size, site.bits)
        except ImageError as exc:
            errors.append(exc)
    return errors


def read_site(
    site: Site, channels: list[int], expected_size: tuple[int, int] | None = None
) -> np.ndarray:
    """All ``channels`` of ``site`` -> ``(C, H, W)`` uint8, or a typed ``ImageError``."""
    if site.zarr is not None:
        return read_zarr_field(site.zarr, channels, expected_size, site.bits)
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
        plane = read_plane(site.channels[channel], expected_size, site.bits)
        expected_size = expected_size or plane.shape
        planes.append(plane)
    return np.stack(planes)
