"""The screen data model: screen -> experiment -> plate -> well -> site -> channels.

Plain dataclasses, no I/O and no torch, so the app can use them directly. Nothing here
is tied to RxRx1's 384 wells, 6 channels, 2 sites or 1,108 classes: readers fill the
model from the data they find.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class WellType(str, Enum):
    """What a well holds. Values match RxRx1's ``well_type`` column."""

    TREATMENT = "treatment"
    POSITIVE_CONTROL = "positive_control"
    NEGATIVE_CONTROL = "negative_control"
    EMPTY = "empty"

    @property
    def is_control(self) -> bool:
        return self in (WellType.POSITIVE_CONTROL, WellType.NEGATIVE_CONTROL)


_WELL_RE = re.compile(r"^([A-Za-z]{1,2})(\d{1,3})$")

#: Standard SBS plate geometries: wells -> (rows, columns).
STANDARD_FORMATS: dict[int, tuple[int, int]] = {96: (8, 12), 384: (16, 24), 1536: (32, 48)}


def _row_letters(index: int) -> str:
    """0 -> 'A', 25 -> 'Z', 26 -> 'AA' (1536-well plates have 32 rows)."""
    if index < 26:
        return chr(ord("A") + index)
    return chr(ord("A") + index // 26 - 1) + chr(ord("A") + index % 26)


def _row_index(letters: str) -> int:
    letters = letters.upper()
    if len(letters) == 1:
        return ord(letters) - ord("A")
    return (ord(letters[0]) - ord("A") + 1) * 26 + ord(letters[1]) - ord("A")


@dataclass(frozen=True)
class PlateFormat:
    """Plate geometry in rows x columns (e.g. 16 x 24 for a 384-well plate)."""

    rows: int
    columns: int

    @classmethod
    def from_well_count(cls, wells: int) -> PlateFormat:
        if wells not in STANDARD_FORMATS:
            raise ValueError(
                f"unknown plate format {wells!r}: expected one of {sorted(STANDARD_FORMATS)}"
            )
        return cls(*STANDARD_FORMATS[wells])

    @classmethod
    def smallest_fitting(cls, wells: list[str]) -> PlateFormat:
        """The smallest standard format that holds every named well."""
        max_row = max((parse_well(w)[0] for w in wells), default=0)
        max_col = max((parse_well(w)[1] for w in wells), default=0)
        for count in sorted(STANDARD_FORMATS):
            fmt = cls.from_well_count(count)
            if max_row < fmt.rows and max_col < fmt.columns:
                return fmt
        raise ValueError(f"wells up to row {max_row + 1}, column {max_col + 1} fit no plate")

    @property
    def well_count(self) -> int:
        return self.rows * self.columns

    def contains(self, well: str) -> bool:
        row, col = parse_well(well)
        return row < self.rows and col < self.columns

    def well_name(self, row: int, column: int) -> str:
        """0-based (row, column) -> 'B02' style name (columns zero-padded to 2 digits)."""
        if not (0 <= row < self.rows and 0 <= column < self.columns):
            raise ValueError(f"({row}, {column}) is outside a {self.rows}x{self.columns} plate")
        return well_name(row, column)

    def all_wells(self) -> list[str]:
        return [well_name(r, c) for r in range(self.rows) for c in range(self.columns)]


def well_name(row: int, column: int) -> str:
    return f"{_row_letters(row)}{column + 1:02d}"


def parse_well(name: str) -> tuple[int, int]:
    """'B02' -> (1, 1), 0-based. Raises ValueError on a malformed name."""
    match = _WELL_RE.match(str(name).strip())
    if not match:
        raise ValueError(f"bad well name {name!r}: expected a row letter and a column number")
    column = int(match.group(2))
    if column < 1:
        raise ValueError(f"bad well name {name!r}: columns start at 1")
    return _row_index(match.group(1)), column - 1


@dataclass
class Problem:
    """One thing wrong with the input, kept so that nothing is dropped silently."""

    kind: str  # e.g. "missing_image", "corrupt_image", "missing_channel", "bad_row"
    message: str
    file: str | None = None
    row: int | None = None  # 1-based line number in ``file`` (header is line 1)
    site_id: str | None = None

    def __str__(self) -> str:
        where = self.file or ""
        if self.row is not None:
            where += f":{self.row}"
        return f"{where}: {self.message}" if where else self.message

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "message": self.message,
            "file": self.file,
            "row": self.row,
            "site_id": self.site_id,
        }


@dataclass(frozen=True)
class ZarrField:
    """Where an OME-Zarr field's full-resolution pixels are: the array folder and its axes
    (``"cyx"``, ``"tczyx"``, ...); other axes than c, y, x are read at index 0."""

    array: str
    axes: str


@dataclass
class Site:
    """One field of view: ``channels`` maps channel number (1-based) -> image file.

    For TIFF screens every channel maps to the same file (``tiff``); for OME-Zarr screens
    ``zarr`` says where the pixels are and ``channels`` maps to the array's metadata file
    (what cache fingerprints stat). ``bits``: significant bits of 16-bit images (LoadData,
    OME-Zarr), scaled down to 8-bit when read; None: 16-bit images are an error.
    ``problems`` non-empty means later stages skip this site.
    """

    index: int
    channels: dict[int, Path] = field(default_factory=dict)
    tiff: Path | None = None
    problems: list[Problem] = field(default_factory=list)
    site_id: str = ""
    zarr: ZarrField | None = None
    bits: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Well:
    name: str
    row: int
    column: int
    well_type: WellType
    sirna: str | None = None  # class label as written in the data ("513", "sirna_250")
    id_code: str = ""
    sites: list[Site] = field(default_factory=list)
    source: str | None = None  # "file:row" the well came from

    @property
    def usable_sites(self) -> list[Site]:
        return [s for s in self.sites if s.ok]


@dataclass
class Plate:
    experiment: str
    index: int  # 1-based plate number within the experiment
    format: PlateFormat
    wells: dict[str, Well] = field(default_factory=dict)
    name: str = ""  # the plate's name in the data (LoadData, OME-Zarr), "" when numbered

    @property
    def key(self) -> str:
        """'HEPG2-01/1': unique within a screen."""
        return f"{self.experiment}/{self.index}"

    def used_wells(self) -> list[Well]:
        return sorted(self.wells.values(), key=lambda w: (w.row, w.column))

    def well_counts(self) -> dict[str, int]:
        counts = {t.value: 0 for t in WellType}
        for well in self.wells.values():
            counts[well.well_type.value] += 1
        return counts


@dataclass
class Experiment:
    name: str
    cell_type: str
    batch: str  # the batch this experiment was run in (RxRx1: the experiment itself)
    split: str  # "train" (labelled) or "test" (unlabelled treatments)
    plates: dict[int, Plate] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        return any(
            w.sirna is not None and w.well_type == WellType.TREATMENT
            for p in self.plates.values()
            for w in p.wells.values()
        )


@dataclass
class Screen:
    """A whole screen as read from disk. ``problems`` lists everything found wrong."""

    root: Path
    layout: str  # "rxrx1", "tiff", "loaddata" or "ome-zarr"
    channels: list[int]
    image_size: tuple[int, int] | None  # (height, width) from the first readable image
    experiments: dict[str, Experiment] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    name: str = ""
    channel_names: list[str] = field(default_factory=list)  # from the data; [] -> "w1".."wN"

    def channel_name(self, channel: int) -> str:
        """The data's name of a channel number (``"DNA"``), else ``"w<channel>"``."""
        index = self.channels.index(channel) if channel in self.channels else -1
        if 0 <= index < len(self.channel_names):
            return self.channel_names[index]
        return f"w{channel}"

    # -- iteration helpers --------------------------------------------------------------
    def plates(self) -> Iterator[Plate]:
        for exp in self.experiments.values():
            yield from (exp.plates[i] for i in sorted(exp.plates))

    def plate(self, experiment: str, index: int) -> Plate:
        try:
            return self.experiments[experiment].plates[int(index)]
        except KeyError:
            raise KeyError(f"no plate {experiment}/{index} in screen {self.root}") from None

    def wells(self) -> Iterator[tuple[Experiment, Plate, Well]]:
        for exp in self.experiments.values():
            for idx in sorted(exp.plates):
                plate = exp.plates[idx]
                for well in plate.used_wells():
                    yield exp, plate, well

    def cell_types(self) -> list[str]:
        return sorted({e.cell_type for e in self.experiments.values()})

    def classes(self) -> list[str]:
        """Every label in the data, controls included, sorted numerically where possible."""
        labels = {w.sirna for _, _, w in self.wells() if w.sirna is not None}
        return sort_labels(labels)

    def site_count(self) -> int:
        return sum(len(w.sites) for _, _, w in self.wells())


def sort_labels(labels: set[str] | list[str]) -> list[str]:
    def key(label: str) -> tuple[int, int, str]:
        digits = re.sub(r"\D", "", label)
        return (0 if label.isdigit() else 1, int(digits) if digits else 0, label)

    return sorted(set(labels), key=key)


def site_id(experiment: str, plate: int, well: str, site: int) -> str:
    """RxRx1's ``site_id``: ``HEPG2-01_1_B02_1``."""
    return f"{experiment}_{plate}_{well}_{site}"


def id_code(experiment: str, plate: int, well: str) -> str:
    """RxRx1's ``id_code`` / ``well_id``: ``HEPG2-01_1_B02``."""
    return f"{experiment}_{plate}_{well}"
