"""RxRx1 reader: the Kaggle CSVs or the later ``metadata.csv``, one PNG per channel.

Also holds what every reader shares (CSV rows -> ``WellRecord``s, one listing per plate
folder, records -> ``Screen``); ``tiff.py`` reuses it. Speed: each plate folder is listed
once with ``os.scandir`` and file names are parsed; no file is stat'ed or decoded except
the first readable image (for the image size). ``verify_images`` decodes everything.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepnoise_engine.screen.errors import ImageError, MetadataError, ScreenError, error_class
from deepnoise_engine.screen.model import (
    STANDARD_FORMATS,
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

#: Kaggle files, read in this order (an experiment's split comes from its first file).
KAGGLE_FILES = ("train.csv", "train_controls.csv", "test.csv", "test_controls.csv")
METADATA_FILE = "metadata.csv"
SPLITS = ("train", "test")

_PNG_RE = re.compile(r"^([A-Za-z]{1,2}\d{1,3})_s(\d+)_w(\d+)\.png$", re.IGNORECASE)
_TIFF_RE = re.compile(r"^([A-Za-z]{1,2}\d{1,3})_s(\d+)\.tiff?$", re.IGNORECASE)
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_LABEL_RE = re.compile(r"^(\d+|sirna_\d+)$", re.IGNORECASE)
_LARGEST = PlateFormat.from_well_count(max(STANDARD_FORMATS))
#: How many unreadable images to skip while looking for the image size.
_SIZE_ATTEMPTS = 50


class ProblemLog:
    """Collects ``Problem``s; with ``strict`` it raises the first one as its typed error."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.items: list[Problem] = []

    def add(
        self,
        kind: str,
        message: str,
        file: str | Path | None = None,
        row: int | None = None,
        site: Site | None = None,
    ) -> Problem:
        if self.strict:
            raise error_class(kind)(message, file=file, row=row)
        problem = Problem(
            kind,
            message,
            str(file) if file is not None else None,
            row,
            site.site_id if site is not None else None,
        )
        self.items.append(problem)
        if site is not None:
            site.problems.append(problem)
        return problem

    def add_error(self, exc: ScreenError, site: Site | None = None) -> Problem:
        if self.strict:
            raise exc
        return self.add(exc.kind, exc.detail, exc.file, exc.row, site)


@dataclass
class WellRecord:
    """One well as listed in the metadata, before images are looked for."""

    experiment: str
    plate: int
    well: str  # canonical name, e.g. "B02"
    row: int
    column: int
    well_type: WellType
    sirna: str | None
    cell_type: str
    batch: str
    split: str
    file: Path
    line: int
    sites: set[int] = field(default_factory=set)  # sites the metadata lists (metadata.csv)

    @classmethod
    def from_row(
        cls, values: dict[str, str], experiment: str, plate: int, well: str, row: int,
        column: int, well_type: WellType, sirna: str | None, split: str, file: Path, line: int,
    ) -> WellRecord:
        """A record from a metadata row; cell type and batch default from the experiment."""
        return cls(
            experiment, plate, well, row, column, well_type, sirna,
            values.get("cell_type") or cell_type_of(experiment),
            values.get("batch") or experiment, split, file, line,
        )

    @property
    def source(self) -> str:
        return f"{self.file.name}:{self.line}"


# -- CSV helpers ------------------------------------------------------------------------
def read_csv(
    path: Path, log: ProblemLog, required: Iterable[str] = ()
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (lower-cased) and ``(line, row)`` pairs; ``([], [])`` after logging a problem
    (unreadable or empty file, ``required`` columns missing).

    Blank lines are skipped; rows with the wrong number of fields are logged as ``bad_row``.
    """
    try:
        # bytes that are not UTF-8 become lone surrogates: their rows are named and skipped
        text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
        reader = csv.reader(io.StringIO(text, newline=""))
        raw = [(reader.line_num, row) for row in reader]
    except (OSError, csv.Error) as exc:
        log.add("metadata_error", f"cannot read CSV ({exc})", path)
        return [], []
    if not raw or not any(cell.strip() for cell in raw[0][1]):
        log.add("metadata_error", "CSV is empty (no header line)", path)
        return [], []
    if _not_utf8(raw[0][1]):
        log.add("metadata_error", f"header line {_not_utf8(raw[0][1])}; file skipped", path, 1)
        return [], []
    header = [cell.strip().lower() for cell in raw[0][1]]
    if not require_columns(header, required, path, log):
        return [], []
    rows: list[tuple[int, dict[str, str]]] = []
    for line, cells in raw[1:]:
        if not any(cell.strip() for cell in cells):
            continue
        bad_text = _not_utf8(cells)
        if bad_text:
            log.add("bad_row", f"line {line} {bad_text}; row skipped", path, line)
            continue
        if len(cells) != len(header):
            log.add("bad_row", f"has {len(cells)} fields, the header has {len(header)}", path, line)
            continue
        rows.append((line, {k: v.strip() for k, v in zip(header, cells, strict=True)}))
    return header, rows


def _not_utf8(cells: list[str]) -> str | None:
    """What is wrong when a row holds bytes that are not UTF-8 (None when it does not)."""
    for column, cell in enumerate(cells, start=1):
        match = _NOT_UTF8.search(cell)
        if match:
            byte = ord(match.group()) - 0xDC00
            return (f"is not UTF-8 text (byte 0x{byte:02X} in field {column}): save the "
                    "file as UTF-8")
    return None


def require_columns(header: list[str], columns: Iterable[str], path: Path, log: ProblemLog) -> bool:
    missing = [c for c in columns if c not in header]
    if missing:
        log.add(
            "missing_column",
            f"missing column(s) {', '.join(missing)} (has {', '.join(header)}); file skipped",
            path,
            1,
        )
        return False
    return True


def parse_label(raw: str) -> str | None:
    """``"513"`` / ``"sirna_250"`` as written; ``""`` -> None; anything else -> ValueError."""
    raw = raw.strip()
    if not raw:
        return None
    if not _LABEL_RE.match(raw):
        raise ValueError(f"unknown label form {raw!r}: expected an integer or 'sirna_N'")
    return raw


def cell_type_of(experiment: str) -> str:
    """RxRx1 convention: the experiment prefix before '-' (``HEPG2-01`` -> ``HEPG2``)."""
    return experiment.split("-", 1)[0]


@dataclass
class ReadOptions:
    """What the readers check rows against; ``seen`` remembers wells across files."""

    plate_format: PlateFormat | None = None
    max_plate: int | None = None
    seen: dict[tuple[str, int, str], str] = field(default_factory=dict)

    def is_duplicate(
        self, key: tuple[str, int, str], path: Path, line: int, log: ProblemLog
    ) -> bool:
        """Log a ``duplicate_id`` when the well was listed before (in any file)."""
        first = self.seen.get(key)
        if first is not None:
            log.add(
                "duplicate_id", f"well {id_code(*key)} is already listed at {first}", path, line
            )
            return True
        self.seen[key] = f"{path.name}:{line}"
        return False


def parse_location(
    values: dict[str, str], path: Path, line: int, log: ProblemLog, opts: ReadOptions
) -> tuple[str, int, str, int, int] | None:
    """experiment, plate, canonical well, row, column of a row, or None after logging."""
    experiment = values.get("experiment", "")
    if not experiment:
        log.add("bad_row", "empty experiment", path, line)
        return None
    raw_plate = values.get("plate", "")
    try:
        plate = int(raw_plate)
    except ValueError:
        log.add("bad_row", f"plate {raw_plate!r} is not an integer", path, line)
        return None
    if plate < 1 or (opts.max_plate is not None and plate > opts.max_plate):
        upper = f"1..{opts.max_plate}" if opts.max_plate is not None else ">= 1"
        log.add("plate_out_of_range", f"plate {plate} is out of range ({upper})", path, line)
        return None
    raw_well = values.get("well", "")
    try:
        row, column = parse_well(raw_well)
    except ValueError as exc:
        log.add("bad_well", str(exc), path, line)
        return None
    limit = opts.plate_format or _LARGEST
    if row >= limit.rows or column >= limit.columns:
        log.add(
            "bad_well",
            f"well {raw_well!r} is outside a {limit.well_count}-well plate "
            f"({limit.rows} x {limit.columns})",
            path,
            line,
        )
        return None
    name = well_name(row, column)
    code = values.get("id_code") or values.get("well_id") or ""
    allowed = (id_code(experiment, plate, raw_well), id_code(experiment, plate, name))
    if code and code not in allowed:
        log.add(
            "bad_row",
            f"id {code!r} does not match experiment/plate/well "
            f"({id_code(experiment, plate, name)})",
            path,
            line,
        )
        return None
    return experiment, plate, name, row, column


def parse_well_type(raw: str, path: Path, line: int, log: ProblemLog) -> WellType | None:
    try:
        return WellType(raw.strip().lower())
    except ValueError:
        allowed = ", ".join(t.value for t in WellType)
        log.add("bad_row", f"unknown well_type {raw!r} (expected one of {allowed})", path, line)
        return None


# -- Kaggle and metadata.csv schemas ----------------------------------------------------
def read_kaggle_csv(path: Path, log: ProblemLog, opts: ReadOptions) -> list[WellRecord]:
    """``train.csv`` / ``test.csv`` / ``*_controls.csv``: one row per well."""
    split = "test" if path.name.startswith("test") else "train"
    controls = "controls" in path.name
    required = ["experiment", "plate", "well"]
    if controls:
        required += ["sirna", "well_type"]
    elif split == "train":
        required.append("sirna")
    header, rows = read_csv(path, log, required)
    if not header:
        return []
    records = []
    for line, values in rows:
        location = parse_location(values, path, line, log, opts)
        if location is None:
            continue
        experiment, plate, name, row, column = location
        well_type = WellType.TREATMENT
        if "well_type" in values:
            parsed = parse_well_type(values["well_type"], path, line, log)
            if parsed is None:
                continue
            well_type = parsed
        if controls and not well_type.is_control and well_type != WellType.EMPTY:
            log.add("bad_row", f"well_type {well_type.value!r} in a controls file", path, line)
            continue
        label = _row_label(values.get("sirna", ""), split, well_type, path, line, log)
        if label is False:
            continue
        if opts.is_duplicate((experiment, plate, name), path, line, log):
            continue
        records.append(WellRecord.from_row(
            values, experiment, plate, name, row, column, well_type, label, split, path, line
        ))
    return records


def _row_label(
    raw: str, split: str, well_type: WellType, path: Path, line: int, log: ProblemLog
) -> str | bool | None:
    """The row's label; None when unlabelled; False after logging a problem.

    Test treatments are unlabelled whatever the file says (they are what gets scored).
    """
    if split == "test" and well_type == WellType.TREATMENT:
        return None
    try:
        label = parse_label(raw)
    except ValueError as exc:
        log.add("unknown_label_form", str(exc), path, line)
        return False
    if label is None and split == "train" and well_type == WellType.TREATMENT:
        log.add("bad_row", "empty sirna for a training treatment well", path, line)
        return False
    return label


def read_metadata_csv(path: Path, log: ProblemLog, opts: ReadOptions) -> list[WellRecord]:
    """The later RxRx1 ``metadata.csv``: one row per site; label ``sirna_id`` else ``sirna``."""
    header, rows = read_csv(path, log, ["experiment", "plate", "well", "dataset", "well_type"])
    if not header:
        return []
    label_column = "sirna_id" if "sirna_id" in header else "sirna"
    if not require_columns(header, [label_column], path, log):
        return []
    wells: dict[tuple[str, int, str], WellRecord] = {}
    seen_sites: dict[tuple[str, int, str, int], int] = {}
    for line, values in rows:
        location = parse_location(values, path, line, log, opts)
        if location is None:
            continue
        experiment, plate, name, row, column = location
        raw_site = values.get("site", "1") or "1"
        if not raw_site.isdigit() or int(raw_site) < 1:
            log.add("bad_row", f"site {raw_site!r} is not a positive integer", path, line)
            continue
        site = int(raw_site)
        split = values["dataset"].lower()
        if split not in SPLITS:
            log.add("bad_row", f"dataset {values['dataset']!r} is not train or test", path, line)
            continue
        well_type = parse_well_type(values["well_type"], path, line, log)
        if well_type is None:
            continue
        label = _row_label(values[label_column], split, well_type, path, line, log)
        if label is False:
            continue
        site_key = (experiment, plate, name, site)
        if site_key in seen_sites:
            log.add(
                "duplicate_id",
                f"site {site_id(experiment, plate, name, site)} already listed at line "
                f"{seen_sites[site_key]}",
                path,
                line,
            )
            continue
        seen_sites[site_key] = line
        record = wells.get((experiment, plate, name))
        if record is None:
            record = WellRecord.from_row(
                values, experiment, plate, name, row, column, well_type, label, split, path, line
            )
            wells[(experiment, plate, name)] = record
        elif (record.well_type, record.sirna, record.split) != (well_type, label, split):
            log.add(
                "bad_row",
                f"well {id_code(experiment, plate, name)} differs from line {record.line} "
                f"(well_type/sirna/dataset)",
                path,
                line,
            )
            continue
        record.sites.add(site)
    return list(wells.values())


def read_rxrx1_records(root: Path, log: ProblemLog, opts: ReadOptions) -> list[WellRecord]:
    """Records of an RxRx1 folder: ``metadata.csv`` when present, else the Kaggle files."""
    if (root / METADATA_FILE).is_file():
        return read_metadata_csv(root / METADATA_FILE, log, opts)
    records: list[WellRecord] = []
    for name in KAGGLE_FILES:
        if (root / name).is_file():
            records.extend(read_kaggle_csv(root / name, log, opts))
    return records


# -- images -----------------------------------------------------------------------------
@dataclass
class PlateFiles:
    """What one plate folder holds, by (row, column) -> site -> channel -> path."""

    folder: Path
    png: dict[tuple[int, int], dict[int, dict[int, Path]]] = field(default_factory=dict)
    tiff: dict[tuple[int, int], dict[int, Path]] = field(default_factory=dict)


def plate_folders(root: Path, split: str, experiment: str, plate: int) -> list[Path]:
    """Where a plate's images may be, in the order they are tried."""
    sub = Path(experiment) / f"Plate{plate}"
    return [root / split / sub, root / "images" / split / sub, root / sub, root / "images" / sub]


def scan_plate_folder(folder: Path) -> PlateFiles | None:
    """List ``folder`` once and parse the names; None when it is not a folder."""
    try:
        entries = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    files = PlateFiles(folder)
    # pathlib's own fast child constructor (what iterdir uses) where this Python has it:
    # ``folder / name`` re-parses the path and costs seconds over RxRx1's 750k files.
    child = getattr(folder, "_make_child_relpath", folder.joinpath)
    with entries:
        for entry in entries:
            name = entry.name
            match = _PNG_RE.match(name)
            if match:
                key = _well_key(match.group(1))
                if key is not None:
                    sites = files.png.setdefault(key, {})
                    sites.setdefault(int(match.group(2)), {})[int(match.group(3))] = child(name)
                continue
            match = _TIFF_RE.match(name)
            if match:
                key = _well_key(match.group(1))
                if key is not None:
                    files.tiff.setdefault(key, {})[int(match.group(2))] = child(name)
    return files


def _well_key(name: str) -> tuple[int, int] | None:
    try:
        return parse_well(name)
    except ValueError:
        return None


def _find_plate_files(root: Path, split: str, experiment: str, plate: int,
                      log: ProblemLog | None = None) -> PlateFiles | None:
    for folder in plate_folders(root, split, experiment, plate):
        try:
            files = scan_plate_folder(folder)
        except OSError as exc:  # a symlink loop, no permission, ...: a screen problem
            if log is not None:
                log.add("image_error", f"plate folder cannot be listed ({exc.strerror}); "
                        "fix or remove it", folder)
            continue
        if files is not None and (files.png or files.tiff):
            return files
    return None


def build_screen(
    root: Path,
    layout: str,
    records: list[WellRecord],
    log: ProblemLog,
    *,
    plate_format: PlateFormat | None = None,
    check_images: bool = True,
) -> Screen:
    """Records -> ``Screen``: wells, then their sites from the image folders."""
    unique: dict[tuple[str, int, str], WellRecord] = {}
    for record in records:
        key = (record.experiment, record.plate, record.well)
        first = unique.get(key)
        if first is not None:
            log.add(
                "duplicate_id",
                f"well {id_code(*key)} is already listed at {first.source}",
                record.file,
                record.line,
            )
            continue
        unique[key] = record
    if not unique:
        first_problems = "; ".join(str(p) for p in log.items[:3]) or "no rows"
        raise MetadataError(f"no usable metadata rows in {root} ({first_problems})", file=root)

    fmt = plate_format or _smallest_format(unique.values())
    screen = Screen(root=root, layout=layout, channels=[], image_size=None, name=root.name)
    by_well: dict[tuple[str, int, str], tuple[WellRecord, Well]] = {}
    for key, record in sorted(
        unique.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[1].row, kv[1].column)
    ):
        experiment = screen.experiments.get(record.experiment)
        if experiment is None:
            experiment = Experiment(record.experiment, record.cell_type, record.batch, record.split)
            screen.experiments[record.experiment] = experiment
        plate = experiment.plates.get(record.plate)
        if plate is None:
            plate = Plate(record.experiment, record.plate, fmt)
            experiment.plates[record.plate] = plate
        well = Well(
            record.well,
            record.row,
            record.column,
            record.well_type,
            record.sirna,
            id_code(record.experiment, record.plate, record.well),
            source=record.source,
        )
        plate.wells[record.well] = well
        by_well[key] = (record, well)

    _attach_images(screen, by_well, log, decode=check_images)
    screen.problems = log.items
    return screen


def _smallest_format(records: Iterable[WellRecord]) -> PlateFormat:
    """The smallest standard format holding every well (rows/columns already parsed)."""
    max_row = max_col = 0
    for record in records:
        max_row, max_col = max(max_row, record.row), max(max_col, record.column)
    for count in sorted(STANDARD_FORMATS):
        fmt = PlateFormat.from_well_count(count)
        if max_row < fmt.rows and max_col < fmt.columns:
            return fmt
    return _LARGEST  # rows are checked against the largest format while reading


def _attach_images(
    screen: Screen,
    by_well: dict[tuple[str, int, str], tuple[WellRecord, Well]],
    log: ProblemLog,
    *,
    decode: bool = True,
) -> None:
    """List every plate folder once; give each well its sites and flag what is missing.

    With ``decode`` the first readable image gives ``screen.image_size`` (and the channel
    count of TIFF sites, read from the header).
    """
    root = screen.root
    plate_files: dict[tuple[str, int], PlateFiles | None] = {}
    channels: set[int] = set()
    site_indices: set[int] = set()
    for exp in screen.experiments.values():
        for index in exp.plates:
            files = _find_plate_files(root, exp.split, exp.name, index, log)
            plate_files[(exp.name, index)] = files
            if files is None:
                continue
            for sites in files.png.values():
                site_indices.update(sites)
                for site_channels in sites.values():
                    channels.update(site_channels)
            for sites in files.tiff.values():
                site_indices.update(sites)
    for record, _ in by_well.values():
        site_indices.update(record.sites)
    any_files = any(f is not None for f in plate_files.values())
    if not any_files:
        log.add(
            "missing_image",
            f"no image files found for any plate (looked in {{split}}/EXP/PlateP and "
            f"images/{{split}}/EXP/PlateP under {root})",
            root,
        )
    screen.channels = sorted(channels)
    sites_sorted = sorted(site_indices) or [1]

    tiff_sites: list[Site] = []
    folders: dict[tuple[str, int], str] = {}  # plain strings: Path joins dominate at 100k sites
    for (exp_name, plate_index), files in plate_files.items():
        split = screen.experiments[exp_name].split
        folders[(exp_name, plate_index)] = str(
            files.folder if files else plate_folders(root, split, exp_name, plate_index)[0]
        )
    for (exp_name, plate_index, name), (_, well) in by_well.items():
        files = plate_files[(exp_name, plate_index)]
        folder = folders[(exp_name, plate_index)]
        source = well.source
        key = (well.row, well.column)
        png = files.png.get(key, {}) if files else {}
        tiff = files.tiff.get(key, {}) if files else {}
        for index in sites_sorted:
            site = Site(index=index, site_id=site_id(exp_name, plate_index, name, index))
            well.sites.append(site)
            if index in tiff:
                site.tiff = tiff[index]
                tiff_sites.append(site)
            elif index in png:
                site.channels = dict(sorted(png[index].items()))
                missing = [c for c in screen.channels if c not in site.channels]
                if missing:
                    log.add(
                        "missing_channel",
                        f"site {site.site_id} has no image for channel(s) "
                        f"{', '.join(f'w{c}' for c in missing)}",
                        f"{folder}{os.sep}{name}_s{index}_w{missing[0]}.png",
                        site=site,
                    )
            else:
                log.add(
                    "missing_image",
                    f"site {site.site_id} has no image files (listed at {source})",
                    f"{folder}{os.sep}{name}_s{index}_w*.png",
                    site=site,
                )
    if decode:
        _read_image_size(screen, by_well, tiff_sites, log)
    else:  # TIFF channel count still needs one header
        _read_image_size(screen, by_well, tiff_sites, ProblemLog(strict=False))
        screen.image_size = None


def _read_image_size(
    screen: Screen,
    by_well: dict[tuple[str, int, str], tuple[WellRecord, Well]],
    tiff_sites: list[Site],
    log: ProblemLog,
) -> None:
    """Decode the first readable PNG (or TIFF header) for the image size and TIFF channels."""
    from deepnoise_engine.screen.images import read_png, tiff_info

    attempts = 0
    tiff_channels = 0
    for _, well in by_well.values():
        for site in well.sites:
            need_size, need_tiff = screen.image_size is None, bool(tiff_sites) and not tiff_channels
            if attempts >= _SIZE_ATTEMPTS or not (need_size or need_tiff):
                break
            if site.tiff is None and not (site.channels and need_size):
                continue
            attempts += 1
            try:
                if site.tiff is not None:
                    count, size, dtype = tiff_info(site.tiff)
                    if dtype != np.uint8:
                        log.add(
                            "wrong_dtype",
                            f"expected 8-bit pixels, got {dtype}",
                            site.tiff,
                            site=site,
                        )
                        continue
                    tiff_channels = tiff_channels or count
                else:
                    size = read_png(next(iter(site.channels.values()))).shape
            except ImageError as exc:
                log.add_error(exc, site)
                continue
            screen.image_size = screen.image_size or (int(size[0]), int(size[1]))
    if tiff_sites:
        tiff_range = list(range(1, tiff_channels + 1))
        screen.channels = sorted(set(screen.channels) | set(tiff_range))
        for site in tiff_sites:
            site.channels = dict.fromkeys(tiff_range, site.tiff)


def open_rxrx1(
    root: Path,
    *,
    strict: bool = False,
    check_images: bool = True,
    plate_format: PlateFormat | None = None,
    max_plate: int | None = None,
) -> Screen:
    """Read an RxRx1 folder (see docs/screens.md); ``open_screen`` is the usual entry."""
    log = ProblemLog(strict)
    records = read_rxrx1_records(root, log, ReadOptions(plate_format, max_plate))
    return build_screen(
        root, "rxrx1", records, log, plate_format=plate_format, check_images=check_images
    )


# -- full verification ------------------------------------------------------------------
def verify_images(
    screen: Screen,
    progress: Callable[[int, int], None] | None = None,
    *,
    strict: bool = False,
    workers: int | None = None,
) -> list[Problem]:
    """Decode every image of every site that has files; record what is wrong.

    Truncated/corrupt files, wrong shape (not ``screen.image_size``, or not one plane per
    PNG) and wrong dtype become problems on the site and in ``screen.problems``; the new
    problems are returned. ``progress(done, total)`` is called per site. Decoding runs on
    ``workers`` threads (PIL and tifffile release the GIL).
    """
    from deepnoise_engine.screen.images import read_site, site_errors

    log = ProblemLog(strict)
    sites = [
        s for _, _, w in screen.wells() for s in w.sites if s.channels or s.tiff or s.zarr
    ]
    total = len(sites)
    expected = screen.image_size

    def check(site: Site) -> list[ImageError]:
        return site_errors(site, screen.channels, expected)

    if expected is None:  # nothing was readable at open: the first good image sets the size
        for site in sites:
            try:
                expected = tuple(read_site(site, screen.channels[:1]).shape[1:])
            except ImageError:
                continue
            screen.image_size = (int(expected[0]), int(expected[1]))
            break
    pool = ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1))
    try:
        for done, (site, errors) in enumerate(zip(sites, pool.map(check, sites), strict=True)):
            known = {(p.kind, p.file) for p in site.problems}
            for exc in errors:
                if (exc.kind, exc.file) not in known:
                    log.add_error(exc, site)
            if progress is not None:
                progress(done + 1, total)
    finally:  # on a strict error or an interrupt, drop the queued decodes
        pool.shutdown(wait=True, cancel_futures=True)
    screen.problems.extend(log.items)
    return log.items
