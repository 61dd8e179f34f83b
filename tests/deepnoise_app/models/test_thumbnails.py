"""Site pixels (pack cache or files) and plate thumbnails (memory + disk cache, mosaic)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepnoise_app.models.colours import composite_rgb
from deepnoise_app.models.thumbnails import (
    PixelSource,
    ThumbnailCache,
    downsample,
    mosaic_image,
    thumbnail_sizes,
    tile_at,
    tile_origin,
)
from deepnoise_engine.screen import open_screen
from deepnoise_engine.screen.images import read_site

pytestmark = pytest.mark.usefixtures("isolated_user_dirs")


@pytest.fixture
def screen_copy(small_screen_path: Path, tmp_path: Path) -> Path:
    """A private copy: these tests pack it or delete files."""
    return Path(shutil.copytree(small_screen_path, tmp_path / "screen"))


def test_pixels_from_files_and_from_pack_agree(screen_copy: Path) -> None:
    from deepnoise_engine.screen.pack_cache import pack_screen

    screen = open_screen(screen_copy)
    _, _plate, well = next(screen.wells())
    site = well.sites[0]
    from_files = PixelSource(screen)
    assert not from_files.has_pack
    planes, missing = from_files.read(site, screen.channels)
    assert missing == {}
    np.testing.assert_array_equal(planes, read_site(site, screen.channels))
    pack_screen(screen)
    from_pack = PixelSource(open_screen(screen_copy))
    assert from_pack.has_pack
    packed, missing = from_pack.read(site, [3, 1])  # channel order is honoured
    assert missing == {}
    np.testing.assert_array_equal(packed, planes[[2, 0]])


def test_missing_channel_is_reported_not_raised(screen_copy: Path) -> None:
    screen = open_screen(screen_copy)
    _, _, well = next(screen.wells())
    site = well.sites[0]
    site.channels[5].unlink()
    planes, missing = PixelSource(open_screen(screen_copy)).read(site, screen.channels)
    assert set(missing) == {5}
    assert planes.shape == (6, 32, 32)
    assert not planes[4].any() and planes[0].any()


def test_downsample_box_mean() -> None:
    plane = np.zeros((1, 8, 8), np.uint8)
    plane[0, :4, :4] = 200
    small = downsample(plane, 2)
    assert small.shape == (1, 2, 2)
    assert small[0, 0, 0] == 200 and small[0, 1, 1] == 0
    assert downsample(np.zeros((2, 32, 32), np.uint8), 48).shape == (2, 48, 48)


def test_thumbnail_cache_memory_disk_and_invalidation(screen_copy: Path, tmp_path: Path) -> None:
    screen = open_screen(screen_copy)
    plate = next(screen.plates())
    root = tmp_path / "thumbs"
    cache = ThumbnailCache(screen, size=16, root=root)
    assert cache.get(plate) is None
    seen: list[tuple[int, int]] = []
    thumbs = cache.build(plate, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(plate.wells), len(plate.wells))
    assert thumbs.images.shape == (len(plate.wells), 16, 16, 3)
    assert cache.get(plate) is thumbs  # memory hit
    # the composite of the first well equals the composite of its downsampled site 1
    well = plate.wells[thumbs.wells[0]]
    expected = composite_rgb(downsample(read_site(well.sites[0], screen.channels), 16),
                             screen.channels)
    np.testing.assert_array_equal(thumbs.images[0], expected)
    # a fresh cache (new process) finds the disk copy
    again = ThumbnailCache(open_screen(screen_copy), size=16, root=root)
    disk = again.get(next(again.screen.plates()))
    assert disk is not None and disk is not thumbs
    np.testing.assert_array_equal(disk.images, thumbs.images)
    # changing an image file invalidates the plate's disk copy
    path = well.sites[0].channels[1]
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    third = ThumbnailCache(open_screen(screen_copy), size=16, root=root)
    assert third.get(next(third.screen.plates())) is None


def test_memory_is_bounded(small_screen, tmp_path: Path) -> None:
    cache = ThumbnailCache(small_screen, size=8, root=tmp_path, max_plates=2)
    for plate in small_screen.plates():
        cache.build(plate)
    assert len(cache.memory_plates()) == 2


def test_mosaic_layout_and_hit_testing(screen_copy: Path, tmp_path: Path) -> None:
    screen = open_screen(screen_copy)
    plate = next(screen.plates())
    victim = plate.used_wells()[1]
    for site in victim.sites:  # a well whose images are all gone
        for path in site.channels.values():
            path.unlink()
    screen = open_screen(screen_copy)
    plate = next(screen.plates())
    thumbs = ThumbnailCache(screen, size=12, root=tmp_path).build(plate)
    assert victim.name in thumbs.missing
    image = mosaic_image(plate, thumbs)
    t, gap = 12, 2
    assert image.shape == (8 * (t + gap) + gap, 12 * (t + gap) + gap, 3)
    for well in plate.used_wells():
        y, x = tile_origin(well.row, well.column, t)
        assert tile_at(y + 5, x + 5, plate, t) == well.name
        tile = image[y : y + t, x : x + t]
        if well.name == victim.name:
            assert len(np.unique(tile.reshape(-1, 3), axis=0)) == 2  # stripes
        else:
            i = thumbs.wells.index(well.name)
            np.testing.assert_array_equal(tile, thumbs.images[i])
    assert tile_at(0, 0, plate, t) is None  # the gap
    assert tile_at(10_000, 5, plate, t) is None  # outside


def test_thumbnail_sizes_stop_at_the_image_size() -> None:
    assert thumbnail_sizes((32, 32), 64) == ([32], 32)
    assert thumbnail_sizes((512, 512), 64) == ([32, 48, 64, 96, 128], 64)
    assert thumbnail_sizes(None, 100) == ([32, 48, 64, 96, 128], 96)
    assert thumbnail_sizes((16, 16), 64) == ([32], 32)  # the smallest size at least
