"""Pixels for the app: a site's channels (pack cache first, else the image files) and plate
thumbnails (one colour composite per well, cached in memory and on disk).

Qt-free so it runs in worker threads and in benchmarks. Thumbnails are RGB composites (see
``colours.composite_rgb``): the mosaic is then ONE napari RGB layer, which napari draws without
contrast computation and which keeps the layer list short (the well viewer already has one
layer per channel).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepnoise_app.models.colours import composite_rgb
from deepnoise_app.models.screen_cache import PerScreen
from deepnoise_app.models.settings import cache_dir
from deepnoise_engine.atomic_io import atomic_write
from deepnoise_engine.screen.images import read_channel, read_tiff, stat_signature
from deepnoise_engine.screen.model import Plate, Screen, Site, Well

THUMBNAIL_VERSION = 1


# -- site pixels -----------------------------------------------------------------------------
class PixelSource:
    """Reads a site's channels: from the pack cache when it holds the site, else from files.

    ``read(site, channels)`` never raises for missing or unreadable channels: it returns
    ``(planes (C, H, W) uint8, missing)`` with zero planes for the channels in ``missing``
    (channel number -> reason).
    """

    def __init__(self, screen: Screen, *, use_pack: bool = True) -> None:
        self.screen = screen
        self._pack: Any = None
        self._rows: dict[str, int] = {}
        self._ok: dict[str, bool] = {}
        self._lock = threading.Lock()
        if use_pack:
            self._open_pack()

    def _open_pack(self) -> None:
        try:
            from deepnoise_engine.screen.pack_cache import PackCache

            pack = PackCache.open(self.screen, build=False)
            sites = pack.sites
        except Exception:  # no pack yet, or one that cannot be read: read the files
            return
        if sites is None or len(sites) == 0 or "site_id" not in sites.columns:
            return
        self._pack = pack
        ids = sites["site_id"].astype(str).tolist()
        oks = sites["ok"].astype(bool).tolist() if "ok" in sites.columns else [True] * len(ids)
        self._rows = {sid: i for i, sid in enumerate(ids)}
        self._ok = dict(zip(ids, oks, strict=True))

    @property
    def has_pack(self) -> bool:
        return self._pack is not None

    def image_size(self) -> tuple[int, int] | None:
        return self.screen.image_size

    def read(self, site: Site, channels: list[int]) -> tuple[np.ndarray, dict[int, str]]:
        """``(planes (C, H, W) uint8, missing {channel: reason})`` for ``site``."""
        row = self._rows.get(site.site_id)
        if row is not None and self._ok.get(site.site_id, False):
            try:
                with self._lock:  # a pack may keep one file handle per plate
                    planes = np.asarray(self._pack.read(row))
                if planes.shape[0] >= len(channels):
                    index = [self.screen.channels.index(c) for c in channels]
                    return np.ascontiguousarray(planes[index]), {}
            except Exception:  # fall back to the image files
                pass
        return self._read_files(site, channels)

    def _read_files(self, site: Site, channels: list[int]) -> tuple[np.ndarray, dict[int, str]]:
        size = self.screen.image_size
        planes: dict[int, np.ndarray] = {}
        missing: dict[int, str] = {}
        if site.tiff is not None:
            try:
                data = read_tiff(site.tiff, channels)
                planes = {c: data[i] for i, c in enumerate(channels)}
            except Exception as exc:  # shown to the user, never a crash
                missing = {c: str(exc) for c in channels}
        else:
            for channel in channels:
                if site.channels.get(channel) is None:
                    missing[channel] = "no image file"
                    continue
                try:  # PNG, TIFF plane (LoadData) or OME-Zarr field: the engine's reader
                    planes[channel] = read_channel(site, channel)
                except Exception as exc:
                    missing[channel] = str(exc)
        if size is None:
            size = next((p.shape for p in planes.values()), (1, 1))
        out = np.zeros((len(channels), *size), dtype=np.uint8)
        for i, channel in enumerate(channels):
            plane = planes.get(channel)
            if plane is None:
                continue
            if plane.shape != tuple(size):
                missing[channel] = f"wrong size {plane.shape[0]}x{plane.shape[1]}"
                continue
            out[i] = plane
        return out, missing


def downsample(planes: np.ndarray, size: int) -> np.ndarray:
    """``(C, H, W)`` uint8 -> ``(C, size, size)`` uint8 with a box filter (PIL, GIL-free)."""
    from PIL import Image

    out = np.empty((planes.shape[0], size, size), dtype=np.uint8)
    for i, plane in enumerate(planes):
        image = Image.fromarray(plane)
        h, w = plane.shape
        if h == w and h % size == 0 and h >= size:
            image = image.reduce(h // size) if h > size else image
        else:
            image = image.resize((size, size), Image.Resampling.BOX)
        out[i] = np.asarray(image)
    return out


def thumbnail_site(well: Well) -> Site | None:
    """The site shown for a well in the mosaic: the first usable one, else the first."""
    if not well.sites:
        return None
    return next((s for s in well.sites if s.ok), well.sites[0])


# -- plate thumbnails -------------------------------------------------------------------------
@dataclass
class PlateThumbnails:
    """Composite thumbnails of a plate: ``images (N, size, size, 3)`` uint8 in ``wells`` order."""

    plate_key: str
    size: int
    wells: list[str]
    images: np.ndarray
    missing: set[str] = field(default_factory=set)  # wells with no pixels at all

    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.wells)}


def _plate_fingerprint(plate: Plate, size: int) -> str:
    """Names, sizes and mtimes of the thumbnail sites' files: changes when the data does."""
    digest = hashlib.sha1(f"v{THUMBNAIL_VERSION}:{size}:{plate.key}".encode())
    for well in plate.used_wells():
        site = thumbnail_site(well)
        digest.update(well.name.encode())
        if site is None:
            continue
        files = [site.tiff] if site.tiff is not None else [site.channels[c] for c in
                                                           sorted(site.channels)]
        for path in files:
            digest.update(f"{path}:{stat_signature(path)}".encode())
    return digest.hexdigest()



_SHARED_PIXELS: PerScreen[PixelSource] = PerScreen(PixelSource)


def shared_pixels(screen: Screen) -> PixelSource:
    """One PixelSource per open screen, shared by the well viewer and the mosaic.

    Opening a source reads the pack cache's index and checks it against the files (~0.1 s
    for 616 sites): the screen opener does it in its worker, the docks then find it here.
    """
    return _SHARED_PIXELS.get(screen)


class ThumbnailCache:
    """Plate thumbnails: memory (LRU over plates) + disk (``<cache>/thumbnails/<screen>/``).

    ``get(plate)`` returns cached thumbnails or None without decoding anything;
    ``build(plate, progress, cancel)`` decodes (thread pool) and stores them.
    """

    def __init__(
        self,
        screen: Screen,
        *,
        size: int = 64,
        root: Path | None = None,
        pixels: PixelSource | None = None,
        max_plates: int = 16,
        workers: int = 2,
    ) -> None:
        self.screen = screen
        self.size = int(size)
        screen_hash = hashlib.sha1(str(Path(screen.root).resolve()).encode()).hexdigest()[:16]
        self.folder = (root or cache_dir() / "thumbnails") / screen_hash
        self._pixels = pixels
        self._memory: OrderedDict[str, PlateThumbnails] = OrderedDict()
        self.max_plates = max_plates
        self.workers = workers
        self._lock = threading.Lock()

    @property
    def pixels(self) -> PixelSource:
        if self._pixels is None:
            self._pixels = PixelSource(self.screen)
        return self._pixels

    def _path(self, plate: Plate) -> Path:
        return self.folder / f"{plate.experiment}_Plate{plate.index}_t{self.size}.npz"

    def _remember(self, thumbs: PlateThumbnails) -> None:
        with self._lock:
            self._memory[thumbs.plate_key] = thumbs
            self._memory.move_to_end(thumbs.plate_key)
            while len(self._memory) > self.max_plates:
                self._memory.popitem(last=False)

    def memory_plates(self) -> list[str]:
        with self._lock:
            return list(self._memory)

    def get(self, plate: Plate) -> PlateThumbnails | None:
        """Thumbnails from memory or disk (checked against the files' fingerprint), else None."""
        with self._lock:
            hit = self._memory.get(plate.key)
        if hit is not None:
            return hit
        path = self._path(plate)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["fingerprint"]) != _plate_fingerprint(plate, self.size):
                    return None
                thumbs = PlateThumbnails(
                    plate_key=plate.key,
                    size=self.size,
                    wells=[str(w) for w in data["wells"]],
                    images=np.array(data["images"]),
                    missing={str(w) for w in data["missing"]},
                )
        except Exception:  # a damaged cache file is rebuilt
            return None
        self._remember(thumbs)
        return thumbs

    def build(
        self,
        plate: Plate,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> PlateThumbnails | None:
        """Decode the thumbnail site of every well; None when cancelled."""
        wells = plate.used_wells()
        channels = list(self.screen.channels)
        images = np.zeros((len(wells), self.size, self.size, 3), dtype=np.uint8)
        missing: set[str] = set()
        pixels = self.pixels

        def one(i: int) -> None:
            if cancel is not None and cancel.is_set():
                return
            well = wells[i]
            site = thumbnail_site(well)
            if site is None:
                missing.add(well.name)
                return
            planes, absent = pixels.read(site, channels)
            if len(absent) == len(channels):
                missing.add(well.name)
                return
            images[i] = composite_rgb(downsample(planes, self.size), channels)

        done = 0
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            for _ in pool.map(one, range(len(wells))):
                done += 1
                if progress is not None and (done % 16 == 0 or done == len(wells)):
                    progress(done, len(wells))
        if cancel is not None and cancel.is_set():
            return None
        thumbs = PlateThumbnails(plate.key, self.size, [w.name for w in wells], images, missing)
        self._remember(thumbs)
        self._save(plate, thumbs)
        return thumbs

    def _save(self, plate: Plate, thumbs: PlateThumbnails) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:  # a handle: np.savez would add ".npz" to a path
                np.savez(
                    handle,
                    fingerprint=np.array(_plate_fingerprint(plate, self.size)),
                    wells=np.array(thumbs.wells),
                    images=thumbs.images,
                    missing=np.array(sorted(thumbs.missing), dtype=str),
                )

        with contextlib.suppress(OSError):  # a read-only cache only costs speed
            atomic_write(self._path(plate), write)


# -- the mosaic image --------------------------------------------------------------------------
MOSAIC_GAP = 2
THUMBNAIL_SIZES = (32, 48, 64, 96, 128)
_UNUSED_GREY = 24
_MISSING_STRIPES = (70, 70, 70)


def thumbnail_sizes(image_size: tuple[int, int] | None, preferred: int
                    ) -> tuple[list[int], int]:
    """The thumbnail sizes a screen of ``image_size`` offers (none larger than its images:
    no upsampled thumbnails) and the one to show: the largest up to ``preferred``."""
    largest = max(image_size) if image_size else None
    sizes = [s for s in THUMBNAIL_SIZES if largest is None or s <= largest]
    sizes = sizes or list(THUMBNAIL_SIZES[:1])
    return sizes, max((s for s in sizes if s <= preferred), default=sizes[0])


def tile_origin(row: int, column: int, size: int, gap: int = MOSAIC_GAP) -> tuple[int, int]:
    """Top-left pixel (y, x) of a well's tile in the mosaic."""
    return gap + row * (size + gap), gap + column * (size + gap)


def tile_at(y: float, x: float, plate: Plate, size: int, gap: int = MOSAIC_GAP) -> str | None:
    """The well name under mosaic pixel (y, x), or None (gaps and outside count as none)."""
    if y < gap or x < gap:
        return None
    row, ry = divmod(int(y) - gap, size + gap)
    col, rx = divmod(int(x) - gap, size + gap)
    if ry >= size or rx >= size:
        return None
    if not (0 <= row < plate.format.rows and 0 <= col < plate.format.columns):
        return None
    return plate.format.well_name(row, col)


def mosaic_image(plate: Plate, thumbs: PlateThumbnails, gap: int = MOSAIC_GAP) -> np.ndarray:
    """All thumbnails tiled in plate layout: ``(rows*(t+gap)+gap, cols*(t+gap)+gap, 3)`` uint8.

    Unused positions stay dark; wells without pixels get grey diagonal stripes.
    """
    t = thumbs.size
    fmt = plate.format
    out = np.full((fmt.rows * (t + gap) + gap, fmt.columns * (t + gap) + gap, 3),
                  _UNUSED_GREY // 2, dtype=np.uint8)
    yy, xx = np.mgrid[0:t, 0:t]
    stripes = ((yy + xx) // 4) % 2 == 0
    for i, name in enumerate(thumbs.wells):
        well = plate.wells.get(name)
        if well is None:
            continue
        y, x = tile_origin(well.row, well.column, t, gap)
        if name in thumbs.missing:
            tile = np.zeros((t, t, 3), dtype=np.uint8)
            tile[stripes] = _MISSING_STRIPES
            out[y : y + t, x : x + t] = tile
        else:
            out[y : y + t, x : x + t] = thumbs.images[i]
    # unused wells: a slightly lighter square so the plate layout stays readable
    used = set(thumbs.wells)
    for r in range(fmt.rows):
        for c in range(fmt.columns):
            if fmt.well_name(r, c) not in used:
                y, x = tile_origin(r, c, t, gap)
                out[y : y + t, x : x + t] = _UNUSED_GREY
    return out
