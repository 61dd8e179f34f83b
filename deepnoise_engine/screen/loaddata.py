"""CellProfiler LoadData reader: one row per site, ``FileName_<Channel>`` /
``PathName_<Channel>`` columns, ``Metadata_Plate``, ``Metadata_Well``, ``Metadata_Site``.

Layout (docs/screens.md)::

    load_data*.csv[.gz]          (or the files named in deepnoise.toml's [loaddata])
    deepnoise.toml               optional: columns, labels CSV (platemap), well types
    platemap.csv                 optional: labels joined on the well (and the plate)

Channels are the ``FileName_`` columns (``Illum*`` functions left out), named as in the
data less a leading ``Orig``. Plates are numbered 1..N per experiment in name order; the
name stays in ``Plate.name``. Each image folder is listed once; a missing folder is one
problem shared by all its sites. Images (TIFF or PNG, 8 or 16-bit) are not decoded here.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

from deepnoise_engine.screen.errors import ImageError, MetadataError
from deepnoise_engine.screen.images import read_plane
from deepnoise_engine.screen.mapping import Mapping, load_mapping, pick_column
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
from deepnoise_engine.screen.reader_common import (
    SIZE_ATTEMPTS,
    LabelRow,
    ProblemLog,
    no_usable_rows,
    read_labels_csv,
    settle_splits,
    smallest_format,
)

PLATEMAP_FILE = "platemap.csv"  # the labels CSV when deepnoise.toml names none
LOADDATA_GLOBS = ("load_data*.csv", "load_data*.csv.gz", "load_data_csv/**/load_data*.csv",
                  "load_data_csv/**/load_data*.csv.gz")


def find_loaddata(root: Path, mapping: Mapping | None = None) -> list[Path]:
    """The LoadData CSVs of a screen folder, sorted (the mapping's globs, else the usual)."""
    globs = (mapping.loaddata if mapping and mapping.loaddata else None) or LOADDATA_GLOBS
    found: set[Path] = set()
    for pattern in globs:
        found.update(p for p in root.glob(pattern) if p.is_file())
    return sorted(found)


@dataclass
class _WellRows:
    """One well as the LoadData rows list it: site number -> channel -> file."""

    experiment: str
    plate: str
    well: str
    row: int
    column: int
    cell_type: str
    source: str
    # site -> its CSV row and that CSV's (FileName, PathName) columns per channel
    sites: dict[int, tuple[list[str], list[tuple[int, int]]]] = field(default_factory=dict)
    # site -> (CSV file name, line) where it is listed, for duplicate rows' messages
    lines: dict[int, tuple[str, int]] = field(default_factory=dict)


@dataclass
class _Channels:
    """The channels of the screen: data names, shown names and their CSV columns."""

    names: list[str]
    shown: list[str]


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _rows(path: Path, log: ProblemLog) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """Header as written and ``(line, cells)``; ``([], empty)`` after logging."""
    try:
        handle = _open_text(path)
        reader = csv.reader(handle)
        header = next(reader, [])
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
        log.add("metadata_error", f"cannot read CSV ({exc})", path)
        return [], iter(())
    if not any(cell.strip() for cell in header):
        log.add("metadata_error", "CSV is empty (no header line)", path)
        handle.close()
        return [], iter(())

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            with handle:
                for cells in reader:
                    yield reader.line_num, cells
        except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
            log.add("metadata_error", f"cannot read CSV past line {reader.line_num} ({exc})",
                    path)

    return [cell.strip() for cell in header], rows()


def _channels_of(header: list[str], mapping: Mapping) -> list[str]:
    """Channel names of a LoadData header, as written (``OrigDNA``)."""
    lower = {h.lower(): h for h in header}
    names = [h[len("filename_"):] for h in header if h.lower().startswith("filename_")
             and f"pathname_{h[len('filename_'):].lower()}" in lower]
    if mapping.channels:
        return list(mapping.channels)
    return [n for n in names if not n.lower().startswith("illum")]


def _shown_name(name: str, mapping: Mapping) -> str:
    if name in mapping.channel_names:
        return mapping.channel_names[name]
    return name[4:] if name.startswith("Orig") and len(name) > 4 else name


class _Reader:
    """Reads LoadData CSVs into wells, logging every bad row."""

    def __init__(self, root: Path, mapping: Mapping, log: ProblemLog,
                 plate_format: PlateFormat | None):
        self.root, self.mapping, self.log = root, mapping, log
        self.limit = plate_format or PlateFormat.from_well_count(1536)
        self.channels: _Channels | None = None
        self.wells: dict[tuple[str, str, str], _WellRows] = {}
        self._file_name = ""  # of the CSV being read
        self._well_cache: dict[str, tuple[int, int, str] | str] = {}

    def read(self, path: Path) -> None:
        self._file_name = path.name
        header, rows = _rows(path, self.log)
        if not header:
            return
        lower = [h.lower() for h in header]
        cols = self.mapping.columns
        picked = {key: pick_column(lower, getattr(cols, key))
                  for key in ("experiment", "plate", "well", "site", "cell_type")}
        missing = [getattr(cols, k)[0] for k in ("plate", "well") if picked[k] is None]
        names = _channels_of(header, self.mapping)
        if self.channels is None and names:
            self.channels = _Channels(names, [_shown_name(n, self.mapping) for n in names])
        wanted = self.channels.names if self.channels else []
        missing += [f"{kind}_{n}" for n in wanted for kind in ("FileName", "PathName")
                    if f"{kind}_{n}".lower() not in lower]
        if missing or not wanted:
            what = ", ".join(missing) or "FileName_<channel> and PathName_<channel>"
            self.log.add("missing_column", f"missing column(s) {what}; file skipped", path, 1)
            return
        index = {name: i for i, name in enumerate(lower)}
        at = {k: (index[v] if v is not None else None) for k, v in picked.items()}
        files = [(index[f"filename_{n.lower()}"], index[f"pathname_{n.lower()}"])
                 for n in wanted]
        width = len(header)
        for line, cells in rows:
            if len(cells) != width:  # (blank lines come as [])
                if any(cell.strip() for cell in cells):
                    self.log.add("bad_row", f"has {len(cells)} fields, the header has "
                                 f"{width}", path, line)
                continue
            self._row(cells, at, files, path, line)

    def _row(self, cells: list[str], at: dict[str, int | None],
             files: list[tuple[int, int]], path: Path, line: int) -> None:
        plate = cells[at["plate"]].strip()  # type: ignore[index]
        if not plate:
            if any(cell.strip() for cell in cells):  # a row of empty fields is a blank line
                self.log.add("bad_row", "empty plate", path, line)
            return
        exp_at, site_at, cell_at = at["experiment"], at["site"], at["cell_type"]
        experiment = (cells[exp_at].strip() if exp_at is not None else "") \
            or self.mapping.experiment or plate
        location = self._well(cells[at["well"]].strip(), path, line)  # type: ignore[index]
        if location is None:
            return
        raw_site = (cells[site_at].strip() if site_at is not None else "") or "1"
        if not raw_site.isdigit() or int(raw_site) < 1:
            self.log.add("bad_row", f"site {raw_site!r} is not a positive integer", path, line)
            return
        site = int(raw_site)
        row, column, name = location
        key = (experiment, plate, name)
        well = self.wells.get(key)
        if well is not None and site in well.lines:
            first = well.lines[site]
            self.log.add("duplicate_id", f"site {site} of well {name}, plate {plate} is "
                         f"already listed at {first[0]}:{first[1]}", path, line)
            return
        if well is None:
            cell_type = (cells[cell_at].strip() if cell_at is not None else "") \
                or self.mapping.cell_type
            well = _WellRows(experiment, plate, name, row, column, cell_type,
                             f"{self._file_name}:{line}")
            self.wells[key] = well
        well.sites[site] = (cells, files)  # the files are picked out when sites are made
        well.lines[site] = (self._file_name, line)

    def _well(self, raw: str, path: Path, line: int) -> tuple[int, int, str] | None:
        """(row, column, canonical name) of a well name (parsed once per distinct name)."""
        cached = self._well_cache.get(raw)
        if cached is None:
            try:
                row, column = parse_well(raw)
                if row >= self.limit.rows or column >= self.limit.columns:
                    cached = (f"well {raw!r} is outside a {self.limit.well_count}-well plate "
                              f"({self.limit.rows} x {self.limit.columns})")
                else:
                    cached = (row, column, well_name(row, column))
            except ValueError as exc:
                cached = str(exc)
            self._well_cache[raw] = cached
        if isinstance(cached, str):
            self.log.add("bad_well", cached, path, line)
            return None
        return cached


def read_labels(root: Path, mapping: Mapping, log: ProblemLog) -> tuple[
        dict[tuple[str, str], LabelRow], Path | None, bool]:
    """The labels CSV keyed by ``(plate or "", well)``; its path; whether it has plates."""
    if mapping.labels.file is None and not (root / PLATEMAP_FILE).is_file():
        return {}, None, False
    path = root / (mapping.labels.file or PLATEMAP_FILE)
    labels, by_plate = read_labels_csv(path, mapping, log)
    return labels, path, by_plate


def open_loaddata(
    root: Path,
    *,
    strict: bool = False,
    check_images: bool = True,
    plate_format: PlateFormat | None = None,
    max_plate: int | None = None,
    files: list[Path] | None = None,
) -> Screen:
    """Read a LoadData screen folder (see docs/screens.md); ``open_screen`` is the entry.

    ``max_plate`` caps the number of plates per experiment (the rest are
    ``plate_out_of_range``).
    """
    mapping = load_mapping(root)
    log = ProblemLog(strict)
    files = files if files is not None else find_loaddata(root, mapping)
    if not files:
        raise MetadataError("no LoadData CSV (load_data*.csv) found; see docs/screens.md",
                            file=root)
    reader = _Reader(root, mapping, log, plate_format)
    for path in files:
        reader.read(path)
    if not reader.wells or reader.channels is None:
        raise no_usable_rows("LoadData rows", root, log)
    labels, labels_path, by_plate = read_labels(root, mapping, log)
    screen = Screen(root=root, layout="loaddata", channels=[], image_size=None, name=root.name)
    screen.channels = list(range(1, len(reader.channels.names) + 1))
    screen.channel_names = reader.channels.shown
    _build(screen, reader, labels, labels_path, by_plate, mapping, plate_format, max_plate, log)
    _attach_files(screen, reader, mapping, log)
    if check_images:
        _read_size(screen, log)
    screen.problems = log.items
    return screen


def _build(screen: Screen, reader: _Reader, labels: dict, labels_path: Path | None,
           by_plate: bool, mapping: Mapping, plate_format: PlateFormat | None,
           max_plate: int | None, log: ProblemLog) -> None:
    """Experiments, plates (numbered by name) and wells with their labels."""
    rows = reader.wells.values()
    fmt = plate_format or smallest_format(rows)
    plate_names: dict[str, list[str]] = {}
    for w in rows:
        names = plate_names.setdefault(w.experiment, [])
        if w.plate not in names:
            names.append(w.plate)
    numbers = {(exp, name): i for exp, names in plate_names.items()
               for i, name in enumerate(sorted(names), start=1)}
    # plates are numbered in name order, so name order is number order
    for w in sorted(rows, key=attrgetter("experiment", "plate", "row", "column")):
        number = numbers[(w.experiment, w.plate)]
        if max_plate is not None and number > max_plate:
            log.add("plate_out_of_range", f"plate {w.plate} is number {number} of experiment "
                    f"{w.experiment}, above {max_plate}", w.source.rsplit(":", 1)[0], None)
            continue
        found = labels.get((w.plate if by_plate else "", w.well))
        if labels_path is not None and found is None:
            log.add("metadata_error", f"well {w.well} of plate {w.plate} has no row; kept as "
                    "an unlabelled treatment", labels_path)
        exp = screen.experiments.get(w.experiment)
        if exp is None:
            cell_type = (found.cell_type if found and found.cell_type else w.cell_type)
            exp = Experiment(w.experiment, cell_type, w.experiment, mapping.split or "")
            screen.experiments[w.experiment] = exp
        plate = exp.plates.get(number)
        if plate is None:
            plate = exp.plates[number] = Plate(w.experiment, number, fmt, name=w.plate)
        well = Well(w.well, w.row, w.column, found.well_type if found else WellType.TREATMENT,
                    found.label if found else None, id_code(w.experiment, number, w.well),
                    source=w.source)
        plate.wells[w.well] = well
    settle_splits(screen)


def _attach_files(screen: Screen, reader: _Reader, mapping: Mapping, log: ProblemLog) -> None:
    """Sites from the rows; each image folder listed once; missing files flagged."""
    listings: dict[str, tuple[str, set[str] | Problem]] = {}
    for exp in screen.experiments.values():
        for number, plate in exp.plates.items():
            for well in plate.used_wells():
                rows = reader.wells[(exp.name, plate.name, well.name)]
                for index in rows.sites if len(rows.sites) == 1 else sorted(rows.sites):
                    site = Site(index=index, site_id=site_id(exp.name, number, well.name, index),
                                bits=mapping.bits)
                    well.sites.append(site)
                    _check_files(site, rows.sites[index], screen, listings, log)


def _check_files(site: Site, row: tuple[list[str], list[tuple[int, int]]], screen: Screen,
                 listings: dict[str, tuple[str, set[str] | Problem]], log: ProblemLog) -> None:
    """Give the site its files; flag those the folder listing lacks (a missing folder is
    one problem shared by its sites)."""
    cells, columns = row
    absent: list[int] = []
    last_folder: str | None = None
    full, names, first = "", set(), ""
    for channel, (file_at, folder_at) in enumerate(columns, start=1):
        folder = cells[folder_at]
        if folder != last_folder:  # a site's channels share a folder, mostly
            full, names = _listing(folder.strip(), screen, listings, log)
            last_folder = folder
            if isinstance(names, Problem):
                if names not in site.problems:
                    site.problems.append(names)
                continue
        elif isinstance(names, Problem):
            continue
        base = cells[file_at].strip()
        first = first or f"{full}/{base}"
        if base and base in names:
            site.channels[channel] = Path(f"{full}/{base}")
        else:
            absent.append(channel)
    if site.problems or not absent:
        return
    if len(absent) == len(columns):
        log.add("missing_image", f"site {site.site_id} has none of its image files", first,
                site=site)
    else:
        named = ", ".join(screen.channel_name(c) for c in absent)
        log.add("missing_channel", f"site {site.site_id} has no image for channel(s) {named}",
                first, site=site)


def _listing(folder: str, screen: Screen, listings: dict[str, tuple[str, set[str] | Problem]],
             log: ProblemLog) -> tuple[str, set[str] | Problem]:
    """``(full path, file names or the problem)`` of an image folder, listed once."""
    listing = listings.get(folder)
    if listing is None:
        full = folder if os.path.isabs(folder) else os.path.join(screen.root, folder)
        listing = listings[folder] = (full.rstrip("/"), _list_folder(full, log))
    return listing


def _list_folder(folder: str, log: ProblemLog) -> set[str] | Problem:
    try:
        with os.scandir(folder or ".") as entries:
            return {e.name for e in entries}
    except OSError:
        return log.add("missing_image", "image folder is missing; every site with images "
                       "there is flagged", folder)


def _read_size(screen: Screen, log: ProblemLog) -> None:
    """Decode the first readable image for the image size."""
    attempts = 0
    for _, _, well in screen.wells():
        for site in well.sites:
            if not site.ok or not site.channels:
                continue
            attempts += 1
            try:
                plane = read_plane(next(iter(site.channels.values())), bits=site.bits)
            except ImageError as exc:
                log.add_error(exc, site)
                if attempts >= SIZE_ATTEMPTS:
                    return
                continue
            screen.image_size = (int(plane.shape[0]), int(plane.shape[1]))
            return
