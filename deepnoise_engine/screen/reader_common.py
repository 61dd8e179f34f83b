"""What every screen reader shares: the problem log, CSV rows and their checks (location,
label, well type, duplicates), well records, the labels CSV of a mapped screen, the
plate format and the default splits.

Readers: ``rxrx1.py`` (Kaggle CSVs, metadata.csv), ``tiff.py`` (screen.csv), ``loaddata.py``
(LoadData CSVs) and ``omezarr.py`` (OME-Zarr plates).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from deepnoise_engine.screen.errors import MetadataError, ScreenError, error_class
from deepnoise_engine.screen.mapping import MAPPING_FILE, Mapping, pick_column
from deepnoise_engine.screen.model import (
    STANDARD_FORMATS,
    PlateFormat,
    Problem,
    Screen,
    Site,
    WellType,
    id_code,
    parse_well,
    well_name,
)

SPLITS = ("train", "test")
#: How many unreadable images a reader skips while looking for the image size.
SIZE_ATTEMPTS = 50

_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_LABEL_RE = re.compile(r"^(\d+|sirna_\d+)$", re.IGNORECASE)
LARGEST_FORMAT = PlateFormat.from_well_count(max(STANDARD_FORMATS))


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
    limit = opts.plate_format or LARGEST_FORMAT
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


def smallest_format(records: Iterable[WellRecord]) -> PlateFormat:
    """The smallest standard format holding every well (rows/columns already parsed)."""
    max_row = max_col = 0
    for record in records:
        max_row, max_col = max(max_row, record.row), max(max_col, record.column)
    for count in sorted(STANDARD_FORMATS):
        fmt = PlateFormat.from_well_count(count)
        if max_row < fmt.rows and max_col < fmt.columns:
            return fmt
    return LARGEST_FORMAT  # rows are checked against the largest format while reading


# -- the labels CSV of a mapped screen (LoadData, OME-Zarr) -------------------------------
@dataclass
class LabelRow:
    """One well of a labels CSV (a plate map), as written."""

    label: str | None
    well_type: WellType
    cell_type: str | None
    line: int
    experiment: str | None = None
    split: str | None = None


def read_labels_csv(path: Path, mapping: Mapping, log: ProblemLog, *, with_split: bool = False
                    ) -> tuple[dict[tuple[str, str], LabelRow], bool]:
    """The labels CSV keyed by ``(plate or "", well)``, and whether it has a plate column.

    The columns are the mapping's ``[labels]`` names; ``with_split`` also reads a
    ``split``/``dataset`` column (train or test). Bad rows are logged and skipped.
    """
    header, rows = read_csv(path, log)
    if not header:
        return {}, False
    spec = mapping.labels
    columns = {k: pick_column(header, getattr(spec, k))
               for k in ("plate", "well", "label", "well_type", "cell_type", "experiment")}
    columns["split"] = pick_column(header, ["split", "dataset"]) if with_split else None
    if columns["well"] is None:
        log.add("missing_column", f"missing column {spec.well[0]} (has {', '.join(header)}); "
                "labels skipped", path, 1)
        return {}, False
    labels: dict[tuple[str, str], LabelRow] = {}
    for line, values in rows:
        found = _label_row(values, columns, mapping, path, line, log)
        if found is None:
            continue
        plate, well, row = found
        if (plate, well) in labels:
            of_plate = f" of plate {plate}" if plate else ""
            log.add("duplicate_id", f"well {well}{of_plate} is already listed at line "
                    f"{labels[(plate, well)].line}", path, line)
            continue
        labels[(plate, well)] = row
    return labels, columns["plate"] is not None


def _label_row(values: dict[str, str], columns: dict[str, str | None], mapping: Mapping,
               path: Path, line: int, log: ProblemLog) -> tuple[str, str, LabelRow] | None:
    """``(plate, well, row)`` of one labels line, or None after logging what is wrong."""
    def get(key: str) -> str:
        column = columns[key]
        return values[column] if column else ""

    try:
        well = well_name(*parse_well(get("well")))
    except ValueError as exc:
        log.add("bad_well", str(exc), path, line)
        return None
    raw_type = get("well_type").lower()
    well_type = mapping.well_types.get(raw_type)
    if well_type is None:
        log.add("bad_row", f"unknown well type {raw_type!r}: name it in [well_types] of "
                f"{MAPPING_FILE}", path, line)
        return None
    split = get("split").lower() or None
    if split not in (None, *SPLITS):
        log.add("bad_row", f"split {split!r} is not train or test", path, line)
        return None
    return get("plate"), well, LabelRow(get("label") or None, well_type,
                                        get("cell_type") or None, line,
                                        get("experiment") or None, split)


# -- after reading ------------------------------------------------------------------------
def settle_splits(screen: Screen) -> None:
    """An experiment without a split is ``train`` when it has labelled treatments, else
    ``test``; a test experiment's treatments lose their labels (they are what gets scored)."""
    for exp in screen.experiments.values():
        if not exp.split:
            exp.split = "train" if exp.labelled else "test"
        if exp.split != "test":
            continue
        for plate in exp.plates.values():
            for well in plate.wells.values():
                if well.well_type == WellType.TREATMENT:
                    well.sirna = None


def no_usable_rows(what: str, root: Path, log: ProblemLog, nothing: str = "no rows"
                   ) -> MetadataError:
    """The error of a screen with nothing usable: ``no usable {what} in ROOT (first
    problems)``."""
    first = "; ".join(str(p) for p in log.items[:3]) or nothing
    return MetadataError(f"no usable {what} in {root} ({first})", file=root)
