"""``deepnoise.toml``: the small mapping file that names the columns of a LoadData or
OME-Zarr screen (docs/screens.md).

Every key is optional; the defaults fit the JUMP Cell Painting LoadData CSVs. Column
names are matched case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from deepnoise_engine.screen.errors import MetadataError
from deepnoise_engine.screen.model import WellType

MAPPING_FILE = "deepnoise.toml"

#: Values of a well-type column understood without a ``[well_types]`` table (JUMP's
#: ``control_type`` / ``pert_type`` and DeepNoise's own names).
DEFAULT_WELL_TYPES: dict[str, WellType] = {
    "": WellType.TREATMENT,
    "trt": WellType.TREATMENT,
    "treatment": WellType.TREATMENT,
    "negcon": WellType.NEGATIVE_CONTROL,
    "negative_control": WellType.NEGATIVE_CONTROL,
    "poscon": WellType.POSITIVE_CONTROL,
    "poscon_cp": WellType.POSITIVE_CONTROL,
    "poscon_diverse": WellType.POSITIVE_CONTROL,
    "poscon_orf": WellType.POSITIVE_CONTROL,
    "positive_control": WellType.POSITIVE_CONTROL,
    "empty": WellType.EMPTY,
}

_TOP_KEYS = {"layout", "loaddata", "columns", "labels", "well_types", "defaults", "images",
             "channels"}


@dataclass
class Columns:
    """Which column holds what, in the LoadData CSV (first present name wins)."""

    experiment: list[str] = field(default_factory=lambda: ["metadata_batch", "metadata_source"])
    plate: list[str] = field(default_factory=lambda: ["metadata_plate"])
    well: list[str] = field(default_factory=lambda: ["metadata_well"])
    site: list[str] = field(default_factory=lambda: ["metadata_site"])
    cell_type: list[str] = field(default_factory=lambda: ["metadata_cell_type",
                                                           "metadata_celltype"])


@dataclass
class Labels:
    """The labels CSV (platemap): joined on the well, and on the plate when it has one."""

    file: str | None = None
    plate: list[str] = field(default_factory=lambda: ["metadata_plate", "plate"])
    well: list[str] = field(default_factory=lambda: ["metadata_well", "well_position", "well"])
    label: list[str] = field(default_factory=lambda: [
        "label", "sirna", "metadata_jcp2022", "jcp2022", "broad_sample", "metadata_broad_sample"])
    well_type: list[str] = field(default_factory=lambda: [
        "well_type", "control_type", "metadata_control_type", "pert_type",
        "metadata_pert_type"])
    cell_type: list[str] = field(default_factory=lambda: ["cell_type", "metadata_cell_type"])
    experiment: list[str] = field(default_factory=lambda: ["experiment", "metadata_batch"])


@dataclass
class Mapping:
    """What ``deepnoise.toml`` says (defaults when there is none)."""

    path: Path | None = None
    layout: str | None = None
    loaddata: list[str] = field(default_factory=list)  # globs of LoadData CSVs under the root
    columns: Columns = field(default_factory=Columns)
    labels: Labels = field(default_factory=Labels)
    well_types: dict[str, WellType] = field(default_factory=lambda: dict(DEFAULT_WELL_TYPES))
    cell_type: str = "unknown"  # when no column names one
    experiment: str | None = None  # when no column names one (default: the plate's name)
    split: str | None = None  # "train"/"test" for every experiment; None: from the labels
    bits: int = 16  # significant bits of 16-bit images
    channels: list[str] = field(default_factory=list)  # channels to use, in order
    channel_names: dict[str, str] = field(default_factory=dict)  # data name -> shown name


def _names(value: object, where: str, path: Path) -> list[str]:
    if isinstance(value, str):
        return [value.lower()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.lower() for v in value]
    raise MetadataError(f"{where} must be a column name or a list of them", file=path)


def load_mapping(root: Path) -> Mapping:
    """``root/deepnoise.toml`` read and checked; the defaults when the file is absent."""
    path = root / MAPPING_FILE
    mapping = Mapping()
    if not path.is_file():
        return mapping
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MetadataError(f"cannot read the mapping file ({exc})", file=path) from exc
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise MetadataError(f"unknown key(s) {', '.join(unknown)} (known: "
                            f"{', '.join(sorted(_TOP_KEYS))})", file=path)
    mapping.path = path
    mapping.layout = data.get("layout")
    loaddata = data.get("loaddata", {}).get("files", [])
    mapping.loaddata = [loaddata] if isinstance(loaddata, str) else list(loaddata)
    _set_columns(mapping.columns, data.get("columns", {}), "columns", path)
    labels = dict(data.get("labels", {}))
    mapping.labels.file = labels.pop("file", None)
    _set_columns(mapping.labels, labels, "labels", path)
    for raw, value in data.get("well_types", {}).items():
        try:
            mapping.well_types[str(raw).lower()] = WellType(value)
        except ValueError:
            allowed = ", ".join(t.value for t in WellType)
            raise MetadataError(f"well_types.{raw} = {value!r} is not one of {allowed}",
                                file=path) from None
    defaults = data.get("defaults", {})
    mapping.cell_type = str(defaults.get("cell_type", mapping.cell_type))
    mapping.experiment = defaults.get("experiment")
    mapping.split = defaults.get("split")
    if mapping.split not in (None, "train", "test"):
        raise MetadataError(f"defaults.split = {mapping.split!r} is not train or test", file=path)
    bits = data.get("images", {}).get("bits", mapping.bits)
    if not isinstance(bits, int) or not 8 <= bits <= 16:
        raise MetadataError(f"images.bits = {bits!r} is not an integer from 8 to 16", file=path)
    mapping.bits = bits
    channels = data.get("channels", {})
    mapping.channels = list(channels.get("use", []))
    mapping.channel_names = dict(channels.get("names", {}))
    return mapping


def _set_columns(target: object, table: dict, section: str, path: Path) -> None:
    for key, value in table.items():
        if not hasattr(target, key):
            known = ", ".join(k for k in vars(target) if k != "file")
            raise MetadataError(f"unknown key {section}.{key} (known: {known})", file=path)
        setattr(target, key, _names(value, f"{section}.{key}", path))


def pick_column(header: list[str], names: list[str]) -> str | None:
    """The first of ``names`` in ``header`` (both lower-case), else None."""
    return next((n for n in names if n in header), None)
