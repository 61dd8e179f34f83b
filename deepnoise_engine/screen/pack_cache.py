"""The pack cache: every site's pixels in one memory-mappable ``.npy`` per plate.

Layout of a cache folder (see docs/architecture.md, docs/performance.md):

- ``cache.json``: format version, screen root, channels, image size (informational).
- ``plates/{EXP}_Plate{P}.npy``: ``(n, C, H, W)`` uint8, one row per site that had no
  known problem when packed, in screen order (wells row-major, then site number); a site
  that failed to read keeps an all-zero row. ``sites.array_row`` is the row (-1: none).
- ``plates/{EXP}_Plate{P}.json``: the plate's source fingerprint, site ids, ``ok`` flags,
  per-site per-channel mean/std and the read problems found while packing. It is
  written after the array, so it is the commit mark of a plate.

A plate is reused while its fingerprint (site ids, channel files' names, sizes and
mtimes, channels, image size, format version) is unchanged; everything is written to a
temporary file and renamed, so an interrupted pack leaves only complete plates.
Torch-free.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deepnoise_engine.atomic_io import atomic_write_text, remove_stale_temps, temp_token
from deepnoise_engine.contract import Cancelled, Reporter
from deepnoise_engine.disk_space import ensure_free, reserve
from deepnoise_engine.screen.errors import ImageError
from deepnoise_engine.screen.images import read_site, stat_signature
from deepnoise_engine.screen.model import Plate, Problem, Screen, Site, Well
from deepnoise_engine.screen.model import id_code as make_id_code
from deepnoise_engine.screen.model import site_id as make_site_id
from deepnoise_engine.screen.pack_location import default_cache_dir

CACHE_VERSION = 1
SITE_COLUMNS = [
    "site_id",
    "id_code",
    "experiment",
    "plate",
    "well",
    "site",
    "cell_type",
    "well_type",
    "sirna",
    "ok",
    "array_row",
    "split",
]

def _safe_name(text: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    if safe != text:  # keep distinct names distinct
        safe += "-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return safe


def plate_stem(experiment: str, plate: int) -> str:
    """File stem of a plate in the cache: ``HEPG2-01_Plate1``."""
    return f"{_safe_name(experiment)}_Plate{int(plate)}"


@dataclass
class _SiteRef:
    """A site with its place in the screen."""

    site_id: str
    well: Well
    site: Site


def _plate_sites(plate: Plate) -> list[_SiteRef]:
    refs = []
    for well in plate.used_wells():
        for site in sorted(well.sites, key=lambda s: s.index):
            sid = site.site_id or make_site_id(plate.experiment, plate.index, well.name, site.index)
            refs.append(_SiteRef(sid, well, site))
    return refs


def _fingerprint(refs: list[_SiteRef], channels: list[int], size: tuple[int, int] | None) -> str:
    """Hash of what the plate's pixels come from: ids, file names, sizes, mtimes."""
    digest = hashlib.sha1()
    digest.update(json.dumps([CACHE_VERSION, channels, list(size or ())]).encode())
    for ref in refs:
        # not ``site.ok``: packing itself adds read problems to the sites
        digest.update(f"|{ref.site_id}".encode())
        paths = (
            [ref.site.tiff]
            if ref.site.tiff is not None
            else [ref.site.channels.get(c) for c in channels]
        )
        for path in paths:
            if path is None:
                digest.update(b";none")
                continue
            digest.update(f";{Path(path).name}:{stat_signature(path)}".encode())
    return digest.hexdigest()


def _problem_key(p: Problem) -> tuple:
    return (p.kind, p.file, p.site_id, p.message)


class _Problems:
    """Adds problems to a screen and its sites once (a set, the screen may list 100k)."""

    def __init__(self, screen: Screen):
        self.screen = screen
        self.seen = {_problem_key(p) for p in screen.problems}

    def add(self, site: Site, problem: Problem) -> None:
        key = _problem_key(problem)
        if all(_problem_key(p) != key for p in site.problems):
            site.problems.append(problem)
        if key not in self.seen:
            self.seen.add(key)
            self.screen.problems.append(problem)


@dataclass
class _PlateEntry:
    experiment: str
    plate: int
    refs: list[_SiteRef]
    fingerprint: str
    meta: dict | None = None  # loaded metadata when the plate is packed and current


@dataclass
class PackResult:
    """What a ``pack_screen`` call did."""

    packed: list[str] = field(default_factory=list)  # plate keys written now
    skipped: list[str] = field(default_factory=list)  # plate keys already current
    sites_packed: int = 0
    seconds: float = 0.0
    cancelled: bool = False

    def to_dict(self) -> dict:
        return {
            "packed": self.packed,
            "skipped": self.skipped,
            "sites_packed": self.sites_packed,
            "seconds": round(self.seconds, 3),
            "cancelled": self.cancelled,
        }


class PackCache:
    """An opened pack cache of ``screen``; rows of ``sites`` follow the screen's order.

    ``sites``: DataFrame with ``SITE_COLUMNS`` (one row per site of every packed plate);
    ``site_mean`` / ``site_std``: float32 ``(n_sites, C)`` in raw grey levels, NaN for
    flagged rows (``ok`` False); ``missing_plates``: plate keys not (yet) packed.
    """

    def __init__(self, screen: Screen, folder: Path, entries: list[_PlateEntry]):
        self.screen = screen
        self.folder = Path(folder)
        self.channels: list[int] = list(screen.channels)
        self.image_size: tuple[int, int] | None = None
        self.missing_plates: list[str] = []
        self.last_pack: PackResult | None = None
        self._arrays: dict[tuple[str, int], np.ndarray] = {}
        self._lock = threading.Lock()
        rows: list[dict] = []
        means: list[np.ndarray] = []
        stds: list[np.ndarray] = []
        known = _Problems(screen)
        for entry in entries:
            if entry.meta is None:
                self.missing_plates.append(f"{entry.experiment}/{entry.plate}")
                continue
            if entry.meta.get("image_size") and self.image_size is None:
                self.image_size = tuple(entry.meta["image_size"])
            _restore_problems(entry, known)
            rows.extend(_site_rows(screen, entry))
            means.append(_site_stats(entry, "mean", len(self.channels)))
            stds.append(_site_stats(entry, "std", len(self.channels)))
        self.sites = pd.DataFrame(rows, columns=SITE_COLUMNS)
        self.sites["ok"] = self.sites["ok"].astype(bool)
        self.sites["plate"] = self.sites["plate"].astype(int)
        empty = np.zeros((0, len(self.channels)), np.float32)
        self.site_mean = np.concatenate(means) if means else empty
        self.site_std = np.concatenate(stds) if stds else empty.copy()
        self._row_plate = list(zip(self.sites["experiment"], self.sites["plate"], strict=True))
        self._row_index = self.sites["array_row"].to_numpy()

    def __getstate__(self) -> dict:
        """Picklable for DataLoader workers (spawn): memory maps are reopened on first use."""
        state = self.__dict__.copy()
        state["_arrays"] = {}
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        screen: Screen | str | os.PathLike,
        out: str | os.PathLike | None = None,
        *,
        build: bool = True,
        reporter: Reporter | None = None,
    ) -> PackCache:
        """Open the cache of ``screen``; with ``build`` pack the plates that are missing or stale.

        ``screen`` is a ``Screen`` or a path (opened with ``open_screen``); ``reporter`` as
        in :func:`pack_screen`.
        """
        if build:
            return pack_screen(screen, out, reporter=reporter)
        screen = _as_screen(screen)
        folder = Path(out) if out is not None else default_cache_dir(screen.root, create=False)
        return cls(screen, folder, _scan(screen, folder))

    # -- reading ----------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """True when every plate of the screen is packed."""
        return not self.missing_plates

    def __len__(self) -> int:
        return len(self.sites)

    def plate_array(self, experiment: str, plate: int) -> np.ndarray:
        """The memory-mapped ``(n_sites, C, H, W)`` uint8 array of a packed plate."""
        key = (str(experiment), int(plate))
        array = self._arrays.get(key)
        if array is None:
            with self._lock:
                array = self._arrays.get(key)
                if array is None:
                    path = self.folder / "plates" / f"{plate_stem(*key)}.npy"
                    if f"{key[0]}/{key[1]}" in self.missing_plates or not path.is_file():
                        raise KeyError(f"plate {key[0]}/{key[1]} is not packed in {self.folder}")
                    array = np.load(path, mmap_mode="r")
                    self._arrays[key] = array
        return array

    def read(self, i: int) -> np.ndarray:
        """Pixels of row ``i`` of ``sites`` -> ``(C, H, W)`` uint8 (a copy).

        A flagged site that failed to read reads as zeros; one flagged before packing
        (``array_row`` -1) has no pixels and raises ``ValueError``.
        """
        experiment, plate = self._row_plate[i]
        slot = int(self._row_index[i])
        if slot < 0:
            site = self.sites["site_id"].iat[i]
            raise ValueError(f"site {site} (row {i}) is flagged and has no pixels in the cache")
        return np.array(self.plate_array(experiment, plate)[slot])

    def read_many(self, rows: list[int] | np.ndarray) -> np.ndarray:
        """Rows -> ``(N, C, H, W)`` uint8."""
        return (
            np.stack([self.read(int(i)) for i in rows])
            if len(rows)
            else np.zeros((0, len(self.channels), *(self.image_size or (0, 0))), np.uint8)
        )

    def summary(self) -> dict:
        """JSON-safe facts about the cache (for ``pack --json`` and the app)."""
        ok = self.sites["ok"].to_numpy() if len(self.sites) else np.zeros(0, bool)
        info = {
            "cache": str(self.folder),
            "screen": str(self.screen.root),
            "channels": self.channels,
            "image_size": list(self.image_size) if self.image_size else None,
            "plates_packed": len({p for p in self._row_plate}),
            "plates_missing": self.missing_plates,
            "sites": len(self.sites),
            "sites_ok": int(ok.sum()),
            "sites_flagged": int((~ok).sum()),
            "bytes": int(
                sum(p.stat().st_size for p in (self.folder / "plates").glob("*.npy"))
                if (self.folder / "plates").is_dir()
                else 0
            ),
        }
        if self.last_pack is not None:
            info["run"] = self.last_pack.to_dict()
        return info


def _restore_problems(entry: _PlateEntry, known: _Problems) -> None:
    """The read problems a pack recorded for the plate join its sites and the screen."""
    by_id = {r.site_id: r for r in entry.refs}
    for problem in (entry.meta or {}).get("problems", []):
        ref = by_id.get(problem.get("site_id"))
        if ref is not None:
            known.add(ref.site, Problem(**problem))


def _site_rows(screen: Screen, entry: _PlateEntry) -> list[dict]:
    """One ``SITE_COLUMNS`` row per site of a packed plate."""
    meta = entry.meta or {}
    exp = screen.experiments[entry.experiment]
    return [
        {
            "site_id": ref.site_id,
            "id_code": ref.well.id_code
            or make_id_code(entry.experiment, entry.plate, ref.well.name),
            "experiment": entry.experiment,
            "plate": int(entry.plate),
            "well": ref.well.name,
            "site": int(ref.site.index),
            "cell_type": exp.cell_type,
            "well_type": ref.well.well_type.value,
            "sirna": ref.well.sirna,
            "ok": bool(meta["ok"][i]) and ref.site.ok,
            "array_row": int(meta["array_rows"][i]),
            "split": exp.split,
        }
        for i, ref in enumerate(entry.refs)
    ]


def _site_stats(entry: _PlateEntry, name: str, n_channels: int) -> np.ndarray:
    """The plate's per-site ``mean`` or ``std`` as ``(n_sites, C)`` float32, NaN if flagged."""
    values = (entry.meta or {})[name]
    return np.array(
        [v if v is not None else [np.nan] * n_channels for v in values], np.float32
    ).reshape(len(entry.refs), n_channels)


def _as_screen(screen: Screen | str | os.PathLike) -> Screen:
    if isinstance(screen, Screen):
        return screen
    from deepnoise_engine.screen.open import open_screen  # late: readers load only for a path

    return open_screen(screen)


def _entries(screen: Screen) -> list[_PlateEntry]:
    size = tuple(screen.image_size) if screen.image_size else None
    entries = []
    for plate in screen.plates():
        refs = _plate_sites(plate)
        entries.append(
            _PlateEntry(
                plate.experiment, plate.index, refs, _fingerprint(refs, screen.channels, size)
            )
        )
    return entries


def _load_meta(folder: Path, entry: _PlateEntry, channels: list[int]) -> dict | None:
    """The plate's metadata when it is current and its array is complete, else None."""
    stem = plate_stem(entry.experiment, entry.plate)
    meta_path = folder / "plates" / f"{stem}.json"
    array_path = folder / "plates" / f"{stem}.npy"
    if not (meta_path.is_file() and array_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("version") != CACHE_VERSION or meta.get("fingerprint") != entry.fingerprint:
            return None
        if meta.get("site_ids") != [r.site_id for r in entry.refs]:
            return None
        header = np.load(array_path, mmap_mode="r")
        size = meta.get("image_size") or [0, 0]
        slots = meta.get("array_rows")
        if not isinstance(slots, list) or len(slots) != len(entry.refs):
            return None
        n_rows = sum(1 for r in slots if r >= 0)
        if header.shape != (n_rows, len(channels), *size) or header.dtype != np.uint8:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta


def _scan(screen: Screen, folder: Path) -> list[_PlateEntry]:
    entries = _entries(screen)
    for entry in entries:
        entry.meta = _load_meta(folder, entry, screen.channels)
    return entries


def _image_size(screen: Screen, entries: list[_PlateEntry]) -> tuple[int, int] | None:
    if screen.image_size:
        return (int(screen.image_size[0]), int(screen.image_size[1]))
    for entry in entries:  # decode one usable site to learn the size
        for ref in entry.refs:
            if ref.site.ok:
                try:
                    return tuple(read_site(ref.site, screen.channels).shape[1:])
                except ImageError:
                    continue
    return None


@dataclass
class _PlateJob:
    """One plate being decoded: its rows, per-site statistics and read problems."""

    entry: _PlateEntry
    channels: list[int]
    size: tuple[int, int] | None
    slots: np.ndarray = field(init=False)  # pixel row of each site, -1: none
    means: np.ndarray = field(init=False)
    stds: np.ndarray = field(init=False)
    ok: np.ndarray = field(init=False)
    problems: list[Problem] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        n, c = len(self.entry.refs), len(self.channels)
        # only sites without known problems get a pixel row (a real screen's sample can list
        # thousands of image-less sites); a site that fails to read keeps an all-zero row
        self.slots = np.full(n, -1, np.int64)
        usable = [i for i, ref in enumerate(self.entry.refs)
                  if ref.site.ok and self.size is not None]
        self.slots[usable] = np.arange(len(usable))
        self.means = np.full((n, c), np.nan, np.float32)
        self.stds = np.full((n, c), np.nan, np.float32)
        self.ok = np.zeros(n, bool)

    @property
    def n_rows(self) -> int:
        return int((self.slots >= 0).sum())

    def decode(self, i: int, array: np.ndarray) -> None:
        """Read site ``i`` into its row of ``array``; a failure becomes a problem."""
        ref = self.entry.refs[i]
        if not ref.site.ok:
            return
        if self.size is None:  # no readable image anywhere in the screen
            self._problem(Problem("missing_image", "no readable image in the screen",
                                  site_id=ref.site_id))
            return
        try:
            pixels = read_site(ref.site, self.channels, self.size)
        except ImageError as exc:
            self._problem(Problem(kind=exc.kind, message=exc.detail, file=exc.file,
                                  site_id=ref.site_id))
            return
        array[self.slots[i]] = pixels
        flat = pixels.reshape(len(self.channels), -1).astype(np.float32)
        self.means[i] = flat.mean(axis=1)
        self.stds[i] = flat.std(axis=1)
        self.ok[i] = True

    def _problem(self, problem: Problem) -> None:
        with self.lock:
            self.problems.append(problem)

    def meta(self, known: _Problems) -> dict:
        """The plate's ``{stem}.json``; its read problems join the sites and the screen."""
        entry = self.entry
        by_id = {r.site_id: r for r in entry.refs}
        for problem in self.problems:
            known.add(by_id[problem.site_id].site, problem)
        # keep every problem of a flagged site, so reopening the cache reports them again
        kept = [
            Problem(p.kind, p.message, p.file, p.row, p.site_id or r.site_id)
            for r, good in zip(entry.refs, self.ok, strict=True)
            if not good
            for p in r.site.problems
        ]
        height, width = self.size or (0, 0)
        return {
            "version": CACHE_VERSION,
            "experiment": entry.experiment,
            "plate": int(entry.plate),
            "fingerprint": entry.fingerprint,
            "channels": list(self.channels),
            "image_size": [int(height), int(width)],
            "site_ids": [r.site_id for r in entry.refs],
            "ok": self.ok.tolist(),
            "array_rows": self.slots.tolist(),
            "mean": [m.tolist() if g else None for m, g in zip(self.means, self.ok, strict=True)],
            "std": [s.tolist() if g else None for s, g in zip(self.stds, self.ok, strict=True)],
            "problems": [p.to_dict() for p in kept],
        }


def _pack_plate(
    screen: Screen,
    entry: _PlateEntry,
    folder: Path,
    size: tuple[int, int] | None,
    workers: int,
    reporter: Reporter,
    on_site: Callable[[], None],
    known: _Problems,
) -> dict | None:
    """Decode every site of a plate into ``{stem}.npy`` + ``{stem}.json``; None if cancelled."""
    job = _PlateJob(entry, list(screen.channels), size)
    n = len(entry.refs)
    height, width = size or (0, 0)
    stem = plate_stem(entry.experiment, entry.plate)
    plates_dir = folder / "plates"
    tmp_array = plates_dir / f".{stem}.{temp_token()}.npy"
    try:
        array: np.ndarray | None = np.lib.format.open_memmap(
            tmp_array, mode="w+", dtype=np.uint8,
            shape=(job.n_rows, len(job.channels), height, width)
        )
        # a full disk under a memory map is SIGBUS: take the space now, or fail with OSError
        reserve(tmp_array, tmp_array.stat().st_size)

        def work(i: int) -> bool:
            if reporter.cancelled:
                return False
            job.decode(i, array)  # type: ignore[arg-type]
            on_site()
            return True

        if workers > 1 and n > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                finished = list(pool.map(work, range(n)))
        else:
            finished = [work(i) for i in range(n)]
        array.flush()
        array = None  # unmap before the rename (Windows cannot rename a mapped file)
        if not all(finished):
            return None
        meta = job.meta(known)
        os.replace(tmp_array, plates_dir / f"{stem}.npy")
        atomic_write_text(plates_dir / f"{stem}.json", json.dumps(meta) + "\n")
        return meta
    finally:
        tmp_array.unlink(missing_ok=True)


class _PackProgress:
    """Counts decoded sites over all plates; progress events at most 5 per second."""

    def __init__(self, reporter: Reporter, total: int) -> None:
        self.reporter, self.total = reporter, total
        self.done = 0
        self.start = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def site(self, plate_key: str) -> None:
        with self._lock:
            self.done += 1
        self.report(plate_key)

    def report(self, plate_key: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        self.reporter.progress("pack", self.done, self.total,
                               eta_s=(self.total - self.done) / rate if rate > 0 else None,
                               plate=plate_key)


def _open_folder(screen: Screen, out: str | os.PathLike | None) -> Path:
    """The cache folder, created, without the temporary files of a dead pack."""
    folder = Path(out).expanduser() if out is not None else default_cache_dir(screen.root)
    (folder / "plates").mkdir(parents=True, exist_ok=True)
    remove_stale_temps(folder / "plates")
    remove_stale_temps(folder)
    return folder


def _write_cache_json(folder: Path, screen: Screen, size: tuple[int, int] | None) -> None:
    info = {
        "version": CACHE_VERSION,
        "screen": str(Path(screen.root).resolve()),
        "channels": list(screen.channels),
        "image_size": list(size) if size else None,
    }
    atomic_write_text(folder / "cache.json", json.dumps(info, indent=2) + "\n")


def pack_screen(
    screen: Screen | str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    reporter: Reporter | None = None,
    workers: int | None = None,
) -> PackCache:
    """Pack every plate of ``screen`` that is missing or stale; returns the opened cache.

    ``out`` defaults to ``default_cache_dir(screen.root)``. Problem sites (from
    ``screen.problems`` or read errors found now) become flagged rows (``ok`` False) and
    read errors are added to ``screen.problems``. ``reporter`` gets progress of stage
    ``pack`` (sites, with the ``plate``); a cancel stops between sites: the current plate
    is dropped, finished plates stay, and ``Cancelled`` is raised with ``partial`` =
    :func:`pack_result` of those plates. ``workers``: decode threads.
    """
    reporter = reporter or Reporter()
    start = time.monotonic()
    screen = _as_screen(screen)
    folder = _open_folder(screen, out)
    entries = _scan(screen, folder)
    size = _image_size(screen, entries)
    _write_cache_json(folder, screen, size)
    result = PackResult()
    todo = [e for e in entries if e.meta is None]
    result.skipped = [f"{e.experiment}/{e.plate}" for e in entries if e.meta is not None]
    if size is not None:  # refuse at once when the arrays cannot fit (checked again per plate)
        usable_sites = sum(1 for e in todo for r in e.refs if r.site.ok)
        ensure_free(folder / "plates", usable_sites * len(screen.channels) * size[0] * size[1])
    workers = workers or min(8, os.cpu_count() or 1)
    known = _Problems(screen)
    counter = _PackProgress(reporter, sum(len(e.refs) for e in todo))
    for entry in todo:
        key = f"{entry.experiment}/{entry.plate}"
        meta = None if reporter.cancelled else _pack_plate(
            screen, entry, folder, size, workers, reporter,
            functools.partial(counter.site, key), known)
        if meta is None:
            result.cancelled = True
            break
        entry.meta = meta
        result.packed.append(key)
        result.sites_packed += len(entry.refs)
        counter.report(key, force=True)
    result.seconds = time.monotonic() - start
    cache = PackCache(screen, folder, entries)
    cache.last_pack = result
    if result.cancelled:
        raise Cancelled(f"pack cancelled after {len(result.packed)} plate(s)",
                        partial=pack_result(cache))
    return cache


def pack_result(cache: PackCache) -> dict:
    """What a pack job reports (JSON-safe): the cache folder, its sites, the screen's
    problems and what this pack did."""
    sites = cache.sites
    last = cache.last_pack
    return {
        "out": str(cache.folder),
        "sites": len(sites),
        "ok_sites": int(sites["ok"].sum()),
        "problems": len(cache.screen.problems),
        "cancelled": bool(last is not None and last.cancelled),
        "pack": last.to_dict() if last is not None else None,
    }
