"""RxRx1 reader: the Kaggle CSVs or the later ``metadata.csv``, one PNG per channel.

The rows' checks come from ``reader_common.py``, the image folders from
``plate_folders.py`` (shared with the TIFF reader).
"""

from __future__ import annotations

from pathlib import Path

from deepnoise_engine.screen.model import PlateFormat, Screen, WellType, id_code, site_id
from deepnoise_engine.screen.plate_folders import build_screen
from deepnoise_engine.screen.reader_common import (
    SPLITS,
    ProblemLog,
    ReadOptions,
    WellRecord,
    parse_label,
    parse_location,
    parse_well_type,
    read_csv,
    require_columns,
)

#: Kaggle files, read in this order (an experiment's split comes from its first file).
KAGGLE_FILES = ("train.csv", "train_controls.csv", "test.csv", "test_controls.csv")
METADATA_FILE = "metadata.csv"


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
