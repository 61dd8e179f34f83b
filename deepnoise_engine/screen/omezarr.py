"""OME-Zarr HCS reader: NGFF plates (0.4 on Zarr v2, as the IDR serves them, or 0.5 on
Zarr v3), one ``*.zarr`` plate per folder entry, labels in a CSV.

Layout (docs/screens.md)::

    PLATE.zarr/                  an NGFF plate: row/column/field groups
    labels.csv                   optional: plate,well[,experiment,well_type,sirna,cell_type,split]
    deepnoise.toml               optional: column names, well types, bits of 16-bit pixels

The metadata is read and validated with ome-zarr-models' models of the plate, well and
image attributes, group by group, so that a bad well is flagged (its sites carry the
problem) and the rest of the plate still opens. The
channel names come from the images' ``omero`` labels; pixels are read with zarr.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from deepnoise_engine.screen.errors import MetadataError
from deepnoise_engine.screen.mapping import Mapping, load_mapping
from deepnoise_engine.screen.model import (
    Experiment,
    Plate,
    PlateFormat,
    Screen,
    Site,
    Well,
    WellType,
    ZarrField,
    id_code,
    parse_well,
    site_id,
    well_name,
)
from deepnoise_engine.screen.reader_common import (
    LabelRow,
    ProblemLog,
    no_usable_rows,
    read_labels_csv,
    settle_splits,
)

LABELS_FILE = "labels.csv"


def is_plate(path: Path) -> bool:
    """True for a folder holding NGFF plate metadata (0.5 ``zarr.json`` or 0.4 ``.zattrs``)."""
    for name in ("zarr.json", ".zattrs"):
        meta = path / name
        if meta.is_file():
            try:
                text = meta.read_text(encoding="utf-8")
            except OSError:
                return False
            if '"plate"' in text:
                return True
    return False


def find_plates(root: Path) -> list[Path]:
    """``root`` itself when it is a plate, else its ``*.zarr`` plates in natural order."""
    if is_plate(root):
        return [root]
    plates = [p for p in root.glob("*.zarr") if is_plate(p)]
    return sorted(plates, key=lambda p: natural_key(p.name))


def natural_key(text: str) -> list[Any]:
    """``Plate2`` before ``Plate10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _models(version: str) -> Any:
    """ome-zarr-models' package for an NGFF version (its hcs, well, image submodules)."""
    import ome_zarr_models  # imports every version's hcs, well and image modules

    return ome_zarr_models.v04 if version == "0.4" else ome_zarr_models.v05


def _ome_attrs(group: Any) -> tuple[dict, str]:
    """The OME attributes of a group and the NGFF version (``"0.5"`` or ``"0.4"``)."""
    attrs = group.attrs.asdict()
    if "ome" in attrs:
        return attrs["ome"], str(attrs["ome"].get("version", "0.5"))
    return attrs, "0.4"


def _first_error(exc: Exception) -> str:
    """A one-line reason from a pydantic ValidationError (or any exception)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        except Exception:
            pass
    return str(exc).splitlines()[0]


def _read_labels(root: Path, mapping: Mapping, log: ProblemLog) -> dict[tuple[str, str], LabelRow]:
    """Labels keyed by ``(plate name, well)`` (plate ``""`` when the CSV has no plate column)."""
    path = root / (mapping.labels.file or LABELS_FILE)
    if not path.is_file():
        if mapping.labels.file:
            log.add("metadata_error", "labels file is missing", path)
        return {}
    return read_labels_csv(path, mapping, log, with_split=True)[0]


def open_omezarr(
    root: Path,
    *,
    strict: bool = False,
    check_images: bool = True,
    plate_format: PlateFormat | None = None,
    max_plate: int | None = None,
) -> Screen:
    """Read a folder of OME-Zarr plates (or one plate); ``open_screen`` is the entry.

    ``check_images`` is accepted for symmetry: the image size comes from the array
    metadata, nothing is decoded.
    """
    import zarr

    base = root.parent if is_plate(root) else root  # a plate opened alone: its folder's
    mapping = load_mapping(base)                     # deepnoise.toml and labels apply
    log = ProblemLog(strict)
    plates = find_plates(root)
    if not plates:
        raise MetadataError("no OME-Zarr plate (*.zarr with plate metadata) found", file=root)
    labels = _read_labels(base, mapping, log)
    screen = Screen(root=root, layout="ome-zarr", channels=[], image_size=None, name=root.name)
    for path in plates:
        try:
            group = zarr.open_group(str(path), mode="r")
            attrs, version = _ome_attrs(group)
            plate_meta = _models(version).hcs.HCSAttrs.model_validate(attrs).plate
        except Exception as exc:
            log.add("metadata_error", f"not a valid NGFF plate ({_first_error(exc)})", path)
            continue
        name = plate_meta.name or path.stem
        _read_plate(screen, group, path, name, version, plate_meta, labels, mapping,
                    plate_format, log)
    if not screen.experiments:
        raise no_usable_rows("plate", root, log, nothing="no wells")
    _number_plates(screen, max_plate, log)
    _finish(screen)
    screen.problems = log.items
    return screen


def _read_plate(screen: Screen, group: Any, path: Path, name: str, version: str,
                plate_meta: Any, labels: dict, mapping: Mapping,
                plate_format: PlateFormat | None, log: ProblemLog) -> None:
    rows = [r.name for r in plate_meta.rows]
    columns = [c.name for c in plate_meta.columns]
    wells: list[tuple[str, int, int, str]] = []
    for entry in plate_meta.wells:
        row_name, column_name = rows[entry.rowIndex], columns[entry.columnIndex]
        try:
            row, column = parse_well(f"{row_name}{int(column_name)}")
        except ValueError as exc:
            log.add("bad_well", f"well {entry.path}: {exc}", path)
            continue
        wells.append((entry.path, row, column, well_name(row, column)))
    fmt = plate_format or PlateFormat.smallest_fitting([w[3] for w in wells] or ["A01"])
    if not (len(rows) <= fmt.rows and len(columns) <= fmt.columns):
        fmt = PlateFormat.smallest_fitting([well_name(len(rows) - 1, len(columns) - 1)])
    first = next((labels.get((name, w[3])) or labels.get(("", w[3])) for w in wells), None)
    experiment = (first.experiment if first and first.experiment else None) \
        or mapping.experiment or name
    exp = screen.experiments.get(experiment)
    if exp is None:
        exp = Experiment(experiment, first.cell_type if first and first.cell_type
                         else mapping.cell_type, experiment,
                         (first.split if first else None) or mapping.split or "")
        screen.experiments[experiment] = exp
    plate = Plate(experiment, len(exp.plates) + 1, fmt, name=name)
    exp.plates[plate.index] = plate
    models = _models(version)
    for well_path, row, column, canonical in wells:
        found = labels.get((name, canonical)) or labels.get(("", canonical))
        well = Well(canonical, row, column, found.well_type if found else WellType.TREATMENT,
                    found.label if found else None, source=f"{path.name}/{well_path}")
        plate.wells[canonical] = well
        _read_well(screen, group, path, well_path, well, models, mapping, log)
    _add_unimaged_wells(plate, name, path, labels, log)


def _add_unimaged_wells(plate: Plate, name: str, path: Path, labels: dict,
                        log: ProblemLog) -> None:
    """Wells the labels list for this plate but the plate has not: kept, flagged."""
    for (plate_name, canonical), found in labels.items():
        if plate_name != name or canonical in plate.wells:
            continue
        row, column = parse_well(canonical)
        if row >= plate.format.rows or column >= plate.format.columns:
            plate.format = PlateFormat.smallest_fitting([canonical, *plate.wells])
        well = Well(canonical, row, column, found.well_type, found.label,
                    source=f"{LABELS_FILE}")
        site = Site(index=1)
        well.sites.append(site)
        plate.wells[canonical] = well
        log.add("missing_image", f"well {canonical} is in the labels but not in the plate",
                path, site=site)


def _read_well(screen: Screen, group: Any, path: Path, well_path: str, well: Well,
               models: Any, mapping: Mapping, log: ProblemLog) -> None:
    """The well's fields as sites; a bad well keeps one flagged site.

    Each group's metadata is validated with ome-zarr-models' attribute models (the full
    ``from_zarr`` walk re-opens every pyramid level and costs ~10x more); a field's
    full-resolution array is opened for its shape and dtype only.
    """
    try:
        well_group = group[well_path]
        attrs, _ = _ome_attrs(well_group)
        images = models.well.WellAttrs.model_validate(attrs).well.images
    except Exception as exc:
        site = Site(index=1)
        well.sites.append(site)
        kind = "missing_image" if isinstance(exc, KeyError) else "metadata_error"
        log.add(kind, f"well {well_path}: {_first_error(exc)}", path / well_path, site=site)
        return
    for index, image in enumerate(images, start=1):
        site = Site(index=index, bits=mapping.bits)
        well.sites.append(site)
        field_path = path / well_path / image.path
        try:
            image_group = well_group[image.path]
            attrs, _ = _ome_attrs(image_group)
            # ``omero`` is transitional in NGFF and peers omit its colours and windows:
            # only the multiscales are checked; the channel labels are read leniently
            multiscale = models.image.ImageAttrs.model_validate(
                {k: v for k, v in attrs.items() if k != "omero"}).multiscales[0]
            dataset = multiscale.datasets[0].path
            axes = "".join(a.name for a in multiscale.axes)
            shape = tuple(image_group[dataset].shape)
        except Exception as exc:
            kind = "missing_image" if isinstance(exc, KeyError) else "metadata_error"
            log.add(kind, f"field {image.path}: {_first_error(exc)}", field_path, site=site)
            continue
        _add_field(screen, site, field_path, dataset, axes, shape, image_group, log)
    if not images:
        site = Site(index=1)
        well.sites.append(site)
        log.add("missing_image", f"well {well_path} lists no fields", path / well_path,
                site=site)


def _add_field(screen: Screen, site: Site, field_path: Path, dataset: str, axes: str,
               shape: tuple[int, ...], image_group: Any, log: ProblemLog) -> None:
    """Point the site at the field's array; the first field sets size and channels."""
    site.zarr = ZarrField(str(field_path / dataset), axes)
    meta = field_path / dataset / ("zarr.json" if (field_path / dataset / "zarr.json")
                                   .exists() else ".zarray")
    count = shape[axes.index("c")] if "c" in axes else 1
    site.channels = dict.fromkeys(range(1, count + 1), meta)
    size = (int(shape[axes.index("y")]), int(shape[axes.index("x")]))
    if screen.image_size is None:
        screen.image_size = size
        screen.channels = list(range(1, count + 1))
        screen.channel_names = _channel_names(image_group, count)
    elif size != screen.image_size:
        log.add("wrong_shape", f"expected {screen.image_size[0]}x{screen.image_size[1]} "
                f"pixels, got {size[0]}x{size[1]}", field_path, site=site)
    elif count < len(screen.channels):
        log.add("missing_channel", f"has {count} channels, the screen has "
                f"{len(screen.channels)}", field_path, site=site)


def _channel_names(image_group: Any, count: int) -> list[str]:
    attrs, _ = _ome_attrs(image_group)
    channels = (attrs.get("omero") or {}).get("channels") or []
    names = [str(c.get("label") or "") for c in channels[:count]]
    if len(names) < count or not all(names):
        return []
    return names


_PLATE_NUMBER = re.compile(r"Plate(\d+)$", re.IGNORECASE)


def _number_plates(screen: Screen, max_plate: int | None, log: ProblemLog) -> None:
    """Plate numbers: the ``..._Plate<N>`` of the names when they are distinct within the
    experiment (what ``convert`` writes), else 1..N in natural name order. Plates above
    ``max_plate`` are ``plate_out_of_range``."""
    for exp in screen.experiments.values():
        ordered = sorted(exp.plates.values(), key=lambda p: natural_key(p.name))
        found = [_PLATE_NUMBER.search(p.name) for p in ordered]
        named = [int(m.group(1)) for m in found if m]
        if len(named) == len(ordered) and len(set(named)) == len(named) and min(named) >= 1:
            numbers = named
        else:
            numbers = list(range(1, len(ordered) + 1))
        exp.plates = {}
        for number, plate in zip(numbers, ordered, strict=True):
            if max_plate is not None and number > max_plate:
                log.add("plate_out_of_range", f"plate {plate.name} is number {number} of "
                        f"experiment {exp.name}, above {max_plate}", plate.name)
                continue
            plate.index = number
            exp.plates[number] = plate


def _finish(screen: Screen) -> None:
    """Site ids and id codes once plates are numbered; splits; test treatments unlabelled."""
    settle_splits(screen)
    for exp in screen.experiments.values():
        for plate in exp.plates.values():
            for well in plate.wells.values():
                well.id_code = id_code(exp.name, plate.index, well.name)
                for site in well.sites:
                    site.site_id = site_id(exp.name, plate.index, well.name, site.index)
                    for problem in site.problems:
                        problem.site_id = problem.site_id or site.site_id
