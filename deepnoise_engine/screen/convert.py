"""``convert_to_omezarr``: a screen -> one NGFF HCS plate (OME-Zarr 0.5) per plate.

Written with ome-zarr-py (plate, well and image metadata, the multiscale pyramid) and
validated with ome-zarr-models before anything is moved into place (docs/screens.md):

    OUT/{EXPERIMENT}_Plate{P}.zarr   row/column/field groups; each field a (c, y, x) uint8
                                     pyramid, full resolution chunked one chunk per field,
                                     blosc-zstd compressed; channel names, colours and
                                     windows in the ``omero`` metadata
    OUT/labels.csv                   plate,well,experiment,well_type,sirna,cell_type,split
    OUT/predictions.csv              with ``predictions``: the score reports' well rows

The whole set is written to a temporary folder beside OUT and renamed at the end, so an
interrupted conversion leaves no OUT. Sites with problems are not written; they are
listed in the result.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepnoise_engine.atomic_io import temp_token
from deepnoise_engine.contract import Reporter
from deepnoise_engine.screen.errors import ImageError, ScreenError
from deepnoise_engine.screen.images import read_site
from deepnoise_engine.screen.model import Plate, Screen, Well, parse_well

#: Cell Painting channel colours by name (the usual display: DNA blue, ER green, ...).
NAMED_RGB: dict[str, tuple[int, int, int]] = {
    "dna": (0, 0, 255), "hoechst": (0, 0, 255), "er": (0, 255, 0), "rna": (0, 255, 255),
    "agp": (255, 0, 0), "actin": (255, 0, 0), "mito": (255, 0, 255),
    "mitochondria": (255, 0, 255), "golgi": (255, 255, 0),
}
_FALLBACK_RGB = [(255, 255, 255), (255, 128, 0), (0, 128, 255), (128, 255, 128)]
LABEL_COLUMNS = ["plate", "well", "experiment", "well_type", "sirna", "cell_type", "split"]
PYRAMID = (2, 4)  # downsampled levels: napari-ome-zarr tiles a plate from the smallest


class ConvertError(ScreenError):
    kind = "convert_error"


@dataclass
class ConvertResult:
    out: Path
    plates: list[str] = field(default_factory=list)  # plate folder names
    fields: int = 0
    skipped_sites: list[str] = field(default_factory=list)  # site ids not written
    predictions: int = 0  # well rows in predictions.csv

    def to_dict(self) -> dict:
        return {"out": str(self.out), "plates": self.plates, "fields": self.fields,
                "skipped_sites": self.skipped_sites, "predictions": self.predictions}


def plate_folder_name(plate: Plate) -> str:
    """``HEPG2-08_Plate1.zarr`` (or the plate's own name when the data gave one)."""
    from deepnoise_engine.screen.pack_cache import plate_stem

    return f"{plate.name or plate_stem(plate.experiment, plate.index)}.zarr"


def omero_channels(screen: Screen, first_field: np.ndarray | None) -> list[dict]:
    """Label, colour and window of every channel: RxRx1's for RxRx1, else by name, with
    the window up to the first field's 99.9th percentile."""
    table = _rxrx1_table() if screen.layout == "rxrx1" else {}
    channels = []
    for i, channel in enumerate(screen.channels):
        entry = table.get(channel)
        name = screen.channel_names[i] if i < len(screen.channel_names) else None
        if entry is not None:
            label, rgb, (start, end) = name or entry["name"], entry["rgb"], entry["window"]
        else:
            label = name or f"w{channel}"
            rgb = NAMED_RGB.get(label.lower(), _FALLBACK_RGB[i % len(_FALLBACK_RGB)])
            start = 0
            end = int(np.percentile(first_field[i], 99.9)) if first_field is not None else 255
            end = max(end, 1)
        channels.append({
            "label": label, "color": "{:02X}{:02X}{:02X}".format(*rgb), "active": True,
            "window": {"min": 0, "max": 255, "start": start, "end": end},
        })
    return channels


def _rxrx1_table() -> dict[int, dict]:
    from deepnoise_engine.resources import resource_path

    data = json.loads(resource_path("colormaps", "rxrx1_channels.json").read_text("utf-8"))
    return {int(k): v for k, v in data["channels"].items()}


def check_out(out: Path) -> None:
    """OUT must be new (or an empty folder) in a writable folder: checked before any work."""
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ConvertError("already exists and is not an empty folder; choose a new OUT",
                           file=out)
    parent = out.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConvertError("the folder holding OUT does not exist or cannot be written",
                           file=parent)


def read_predictions(path: Path) -> list[dict[str, str]]:
    """Well rows of a score output folder (``*_Plate*.csv``) or of one CSV."""
    files = sorted(path.glob("*_Plate*.csv")) if path.is_dir() else [path]
    if not files:
        raise ConvertError("no *_Plate*.csv score reports in the folder", file=path)
    rows: list[dict[str, str]] = []
    for file in files:
        try:
            with open(file, encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                missing = {"experiment", "plate", "well"} - set(reader.fieldnames or [])
                if missing:
                    raise ConvertError(f"missing column(s) {', '.join(sorted(missing))}",
                                       file=file, row=1)
                rows.extend(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ConvertError(f"cannot read predictions ({exc})", file=file) from exc
    return rows


def convert_to_omezarr(
    screen: Screen,
    out: Path,
    *,
    predictions: Path | None = None,
    imaged_only: bool = False,
    reporter: Reporter | None = None,
) -> ConvertResult:
    """Write every plate of ``screen`` under ``out`` (see the module docstring).

    ``imaged_only``: wells without a usable site are left out of the plates (they stay in
    labels.csv, and reading OUT lists them again as wells without images). ``reporter``
    gets progress of stage ``convert`` (sites); a cancel between sites raises ``Cancelled``
    and leaves ``out`` untouched.
    """
    reporter = reporter or Reporter()
    out = Path(out).expanduser().absolute()
    check_out(out)
    prediction_rows = read_predictions(Path(predictions)) if predictions is not None else None
    tmp = out.parent / f".{out.name}.{temp_token()}"
    tmp.mkdir()
    result = ConvertResult(out)
    try:
        total = sum(len(w.sites) for _, _, w in screen.wells()
                    if w.usable_sites or not imaged_only)
        done = [0]

        def step() -> None:
            done[0] += 1
            reporter.progress("convert", done[0], total)
            reporter.check_cancelled("convert cancelled")

        for plate in screen.plates():
            name = plate_folder_name(plate)
            wells = [w for w in plate.used_wells() if w.usable_sites or not imaged_only]
            if not wells:
                continue
            _write_plate(screen, plate, wells, tmp / name, result, step)
            _validate(tmp / name)
            result.plates.append(name)
        _write_labels(screen, tmp / "labels.csv")
        if prediction_rows is not None:
            result.predictions = _write_predictions(screen, prediction_rows,
                                                    tmp / "predictions.csv")
        if out.exists():
            out.rmdir()  # empty (checked): the rename needs the name free
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _write_plate(screen: Screen, plate: Plate, wells: list[Well], path: Path,
                 result: ConvertResult, step: Callable[[], None]) -> None:
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata
    from zarr.codecs import BloscCodec

    fmt = FormatV05()
    # the rows and columns the wells use, in plate order ("B", "C" / "2", "23")
    row_names = list(dict.fromkeys(_row_name(w.name) for w in sorted(wells, key=lambda w: w.row)))
    column_names = [str(c + 1) for c in sorted({w.column for w in wells})]
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    well_paths = [f"{_row_name(w.name)}/{w.column + 1}" for w in wells]
    fields = max((len(w.sites) for w in wells), default=0)
    write_plate_metadata(group, row_names, column_names, well_paths, fmt=fmt,
                         name=plate.name or path.stem, field_count=fields)
    compressor = BloscCodec(cname="zstd", clevel=5, shuffle="noshuffle")  # 8-bit: best ratio
    omero: dict | None = None
    size = screen.image_size
    for well, well_path in zip(wells, well_paths, strict=True):
        row_group = group.require_group(well_path.split("/")[0])
        well_group = row_group.require_group(well_path.split("/")[1])
        written = []
        for site in sorted(well.sites, key=lambda s: s.index):
            step()
            pixels = None
            if site.ok:
                try:
                    pixels = read_site(site, screen.channels, size)
                except ImageError:
                    pixels = None
            if pixels is None:
                result.skipped_sites.append(site.site_id)
                continue
            if omero is None:
                omero = {"channels": omero_channels(screen, pixels), "rdefs": {"model": "color"}}
            field_path = str(site.index - 1)
            write_image(pixels, well_group.require_group(field_path), scale_factors=PYRAMID,
                        axes="cyx", fmt=fmt, name=site.site_id,
                        storage_options={"chunks": pixels.shape, "compressors": [compressor]},
                        omero=omero)
            written.append({"path": field_path})
            result.fields += 1
        write_well_metadata(well_group, written, fmt=fmt)


def _row_name(well: str) -> str:
    return "".join(ch for ch in well if ch.isalpha())


def _validate(path: Path) -> None:
    """Check a written plate with ome-zarr-models (plate, wells, images, arrays)."""
    import zarr
    from ome_zarr_models.v05.hcs import HCS

    try:
        HCS.from_zarr(zarr.open_group(str(path), mode="r"))
    except Exception as exc:  # a bug in the writer, not in the user's data
        raise ConvertError(f"the written plate does not validate as NGFF 0.5 ({exc})",
                           file=path) from exc


def _write_labels(screen: Screen, path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LABEL_COLUMNS)
        for exp, plate, well in screen.wells():
            writer.writerow([Path(plate_folder_name(plate)).stem, well.name, exp.name,
                             well.well_type.value, well.sirna or "", exp.cell_type, exp.split])


def _write_predictions(screen: Screen, rows: list[dict[str, str]], path: Path) -> int:
    """The rows of the converted plates, with the plate folder name in front."""
    names = {(p.experiment, p.index): Path(plate_folder_name(p)).stem for p in screen.plates()}
    kept = []
    for row in rows:
        try:
            key = (row["experiment"], int(row["plate"]))
            parse_well(row["well"])
        except (ValueError, KeyError):
            continue
        if key in names:
            kept.append({"plate_name": names[key], **row})
    fieldnames = ["plate_name", *(rows[0].keys() if rows else [])]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(kept)
    return len(kept)
