"""TIFF screen reader: ``screen.csv`` plus one multi-channel TIFF per site.

Layout (docs/screens.md)::

    screen.csv                                    experiment,plate,well[,split,well_type,sirna,
                                                  cell_type,batch,id_code]
    {split}/{EXPERIMENT}/Plate{P}/{WELL}_s{S}.tif  multi-page or C x H x W, uint8

``images/{split}/...`` and ``{EXPERIMENT}/Plate{P}/...`` (no split folder) work too. Without
a ``split`` column an experiment is ``train`` when any of its treatments has a label.
"""

from __future__ import annotations

from pathlib import Path

from deepnoise_engine.screen.model import PlateFormat, Screen, WellType
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
)

SCREEN_FILE = "screen.csv"


def read_screen_csv(path: Path, log: ProblemLog, opts: ReadOptions) -> list[WellRecord]:
    """``screen.csv`` rows -> well records (one row per well)."""
    header, rows = read_csv(path, log, ["experiment", "plate", "well"])
    if not header:
        return []
    records: list[WellRecord] = []
    explicit_split: set[str] = set()
    for line, values in rows:
        location = parse_location(values, path, line, log, opts)
        if location is None:
            continue
        experiment, plate, name, row, column = location
        well_type = WellType.TREATMENT
        if values.get("well_type"):
            parsed = parse_well_type(values["well_type"], path, line, log)
            if parsed is None:
                continue
            well_type = parsed
        split = values.get("split", "").lower()
        if split and split not in SPLITS:
            log.add("bad_row", f"split {values['split']!r} is not train or test", path, line)
            continue
        try:
            label = parse_label(values.get("sirna", ""))
        except ValueError as exc:
            log.add("unknown_label_form", str(exc), path, line)
            continue
        if split:
            explicit_split.add(experiment)
        if opts.is_duplicate((experiment, plate, name), path, line, log):
            continue
        records.append(WellRecord.from_row(
            values, experiment, plate, name, row, column, well_type, label, split, path, line
        ))
    # Default split: labelled treatments make a training experiment.
    labelled = {
        r.experiment for r in records if r.well_type == WellType.TREATMENT and r.sirna is not None
    }
    first_split: dict[str, str] = {}
    for record in records:
        if not record.split:
            record.split = first_split.get(record.experiment) or (
                "train" if record.experiment in labelled else "test"
            )
        first_split.setdefault(record.experiment, record.split)
        if record.split == "test" and record.well_type == WellType.TREATMENT:
            record.sirna = None  # test treatments are what gets scored
    return records


def open_tiff_screen(
    root: Path,
    *,
    strict: bool = False,
    check_images: bool = True,
    plate_format: PlateFormat | None = None,
    max_plate: int | None = None,
) -> Screen:
    """Read a TIFF screen folder; ``open_screen`` is the usual entry."""
    log = ProblemLog(strict)
    records = read_screen_csv(root / SCREEN_FILE, log, ReadOptions(plate_format, max_plate))
    return build_screen(
        root, "tiff", records, log, plate_format=plate_format, check_images=check_images
    )
