"""Pixel readers: PNG per channel, TIFF per site, and their typed errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from deepnoise_engine.screen.errors import (
    CorruptImageError,
    ImageDtypeError,
    ImageShapeError,
    MissingChannelError,
    MissingImageError,
)
from deepnoise_engine.screen.images import read_png, read_site, read_tiff, tiff_info
from deepnoise_engine.screen.model import Site


def _planes(channels: int = 3, size: tuple[int, int] = (8, 10), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (channels, *size), dtype=np.uint8)


def _png(path: Path, plane: np.ndarray) -> Path:
    Image.fromarray(plane).save(path)
    return path


def test_read_site_png_stacks_channels(tmp_path: Path) -> None:
    planes = _planes()
    site = Site(1, {c + 1: _png(tmp_path / f"w{c + 1}.png", planes[c]) for c in range(3)})
    out = read_site(site, [1, 2, 3])
    assert out.dtype == np.uint8 and out.shape == (3, 8, 10)
    np.testing.assert_array_equal(out, planes)
    np.testing.assert_array_equal(read_site(site, [3, 1]), planes[[2, 0]])
    with pytest.raises(MissingChannelError, match=r"channel\(s\) \[4\]"):
        read_site(site, [1, 4])


def test_png_errors_name_the_file(tmp_path: Path) -> None:
    good = _png(tmp_path / "good.png", _planes(1, (32, 32))[0])
    data = good.read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png at all")
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(rgb)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 1000, np.uint16)).save(deep)

    for path, error in [
        (truncated, CorruptImageError),
        (garbage, CorruptImageError),
        (rgb, ImageShapeError),
        (deep, ImageDtypeError),
        (tmp_path / "absent.png", MissingImageError),
    ]:
        with pytest.raises(error) as info:
            read_png(path)
        assert info.value.file == str(path) and path.name in str(info.value)
    with pytest.raises(ImageShapeError, match="expected 16x16 pixels, got 32x32"):
        read_png(good, expected_size=(16, 16))


def test_tiff_multi_page_and_chw_read_the_same(tmp_path: Path) -> None:
    planes = _planes(4, (6, 7), seed=1)
    chw = tmp_path / "chw.tif"
    tifffile.imwrite(chw, planes)
    pages = tmp_path / "pages.tif"
    with tifffile.TiffWriter(pages) as writer:  # one page (and series) per channel
        for plane in planes:
            writer.write(plane, contiguous=False)
    hwc = tmp_path / "hwc.tif"
    tifffile.imwrite(hwc, np.moveaxis(planes[:3], 0, -1), photometric="rgb")

    for path in (chw, pages):
        assert tiff_info(path)[:2] == (4, (6, 7))
        np.testing.assert_array_equal(read_tiff(path, [1, 2, 3, 4]), planes)
        np.testing.assert_array_equal(read_tiff(path, [4, 2]), planes[[3, 1]])
    np.testing.assert_array_equal(read_tiff(hwc, [1, 2, 3]), planes[:3])
    assert tiff_info(hwc)[:2] == (3, (6, 7))
    site = Site(1, dict.fromkeys([1, 2, 3, 4], chw), tiff=chw)
    np.testing.assert_array_equal(read_site(site, [1, 2, 3, 4]), planes)


def test_tiff_errors(tmp_path: Path) -> None:
    two = tmp_path / "two.tif"
    tifffile.imwrite(two, _planes(2))
    with pytest.raises(MissingChannelError, match=r"has 2 channels, missing channel\(s\) \[3\]"):
        read_tiff(two, [1, 2, 3])
    deep = tmp_path / "deep.tif"
    tifffile.imwrite(deep, _planes(2).astype(np.uint16))
    with pytest.raises(ImageDtypeError, match="uint16"):
        read_tiff(deep, [1])
    bad = tmp_path / "bad.tif"
    bad.write_bytes(two.read_bytes()[:100])
    with pytest.raises(CorruptImageError) as info:
        read_tiff(bad, [1])
    assert info.value.file == str(bad)
    with pytest.raises(ImageShapeError, match="expected 9x9"):
        read_tiff(two, [1], expected_size=(9, 9))
    with pytest.raises(MissingImageError):
        read_tiff(tmp_path / "absent.tif", [1])
