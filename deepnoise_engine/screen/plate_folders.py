"""Image folders of the RxRx1 kind, shared by ``rxrx1.py`` and ``tiff.py``: one folder per
plate (``{split}/{EXP}/Plate{P}``, ``images/...`` or no split folder) holding
``{WELL}_s{S}_w{C}.png`` or ``{WELL}_s{S}.tif`` files; records -> ``Screen``.

Speed: each plate folder is listed once with ``os.scandir`` and file names are parsed; no
file is stat'ed or decoded except the first readable image (for the image size).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepnoise_engine.screen.errors import ImageError
from deepnoise_engine.screen.model import (
    Experiment,
    Plate,
    PlateFormat,
    Screen,
    Site,
    Well,
    id_code,
    parse_well,
    site_id,
)
from deepnoise_engine.screen.reader_common import (
    SIZE_ATTEMPTS,
    ProblemLog,
    WellRecord,
    no_usable_rows,
    smallest_format,
)

_PNG_RE = re.compile(r"^([A-Za-z]{1,2}\d{1,3})_s(\d+)_w(\d+)\.png$", re.IGNORECASE)
_TIFF_RE = re.compile(r"^([A-Za-z]{1,2}\d{1,3})_s(\d+)\.tiff?$", re.IGNORECASE)


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
        raise no_usable_rows("metadata rows", root, log)

    fmt = plate_format or smallest_format(unique.values())
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
    plate_files = _list_plates(screen, log)
    channels: set[int] = set()
    site_indices: set[int] = {i for record, _ in by_well.values() for i in record.sites}
    for files in filter(None, plate_files.values()):
        for sites in files.png.values():
            site_indices.update(sites)
            for site_channels in sites.values():
                channels.update(site_channels)
        for sites in files.tiff.values():
            site_indices.update(sites)
    screen.channels = sorted(channels)
    sites_sorted = sorted(site_indices) or [1]
    # plain strings, once per plate: Path joins dominate at 100k sites
    folders = {
        (exp, plate): str(files.folder if files else plate_folders(
            screen.root, screen.experiments[exp].split, exp, plate)[0])
        for (exp, plate), files in plate_files.items()
    }
    tiff_sites: list[Site] = []
    for (exp_name, plate_index, _), (_, well) in by_well.items():
        files = plate_files[(exp_name, plate_index)]
        for index in sites_sorted:
            site = Site(index=index, site_id=site_id(exp_name, plate_index, well.name, index))
            well.sites.append(site)
            _give_files(screen, well, site, files, folders[(exp_name, plate_index)], log)
            if site.tiff is not None:
                tiff_sites.append(site)
    if decode:
        _read_image_size(screen, by_well, tiff_sites, log)
    else:  # TIFF channel count still needs one header
        _read_image_size(screen, by_well, tiff_sites, ProblemLog(strict=False))
        screen.image_size = None


def _list_plates(screen: Screen, log: ProblemLog) -> dict[tuple[str, int], PlateFiles | None]:
    """Each plate's listed folder (None: not found); no folder at all is a problem."""
    plate_files = {
        (exp.name, index): _find_plate_files(screen.root, exp.split, exp.name, index, log)
        for exp in screen.experiments.values() for index in exp.plates
    }
    if not any(f is not None for f in plate_files.values()):
        log.add(
            "missing_image",
            f"no image files found for any plate (looked in {{split}}/EXP/PlateP and "
            f"images/{{split}}/EXP/PlateP under {screen.root})",
            screen.root,
        )
    return plate_files


def _give_files(screen: Screen, well: Well, site: Site, files: PlateFiles | None,
                folder: str, log: ProblemLog) -> None:
    """The site's TIFF or channel PNGs from the plate's listing; what is missing is flagged."""
    key, index, name = (well.row, well.column), site.index, well.name
    tiff = files.tiff.get(key, {}) if files else {}
    png = files.png.get(key, {}) if files else {}
    if index in tiff:
        site.tiff = tiff[index]
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
            f"site {site.site_id} has no image files (listed at {well.source})",
            f"{folder}{os.sep}{name}_s{index}_w*.png",
            site=site,
        )


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
            if attempts >= SIZE_ATTEMPTS or not (need_size or need_tiff):
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
