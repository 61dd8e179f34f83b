"""Small screens in the JUMP Cell Painting LoadData style (tests, benchmarks, docs).

``write_loaddata_screen`` writes, under ``root``, what a JUMP source holds for a few
plates: ``load_data_csv/{batch}/{plate}/load_data.csv`` with JUMP's columns
(``Metadata_Source, Metadata_Batch, Metadata_Plate, Metadata_Well, Metadata_Site`` and
``FileName_Orig<Ch>`` / ``PathName_Orig<Ch>``), a ``platemap.csv`` of compound labels
and control types, and (``images=True``) one 16-bit TIFF per channel and site named the
Phenix way (``r02c03f01p01-ch1sk1fk1fl1.tiff``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepnoise_engine.screen.model import parse_well, well_name

JUMP_CHANNELS = ("DNA", "ER", "RNA", "AGP", "Mito")


@dataclass
class LoadDataSpec:
    """What to write: batches x plates x wells x sites x channels."""

    batches: list[str] = field(default_factory=lambda: ["2021_04_26_Batch1"])
    plates_per_batch: int = 2
    wells: list[str] = field(default_factory=lambda: ["A01", "A02", "B01", "B02"])
    sites: int = 2
    channels: tuple[str, ...] = JUMP_CHANNELS
    size: tuple[int, int] = (24, 32)
    source: str = "source_4"
    images: bool = True
    seed: int = 0


def plate_names(spec: LoadDataSpec) -> dict[str, list[str]]:
    """Batch -> its plate names (``BR00117035``-like barcodes)."""
    names, n = {}, 0
    for batch in spec.batches:
        names[batch] = []
        for _ in range(spec.plates_per_batch):
            n += 1
            names[batch].append(f"BR{117000 + n:08d}")
    return names


def phenix_name(well: str, site: int, channel: int) -> str:
    row, column = parse_well(well)
    return f"r{row + 1:02d}c{column + 1:02d}f{site:02d}p01-ch{channel}sk1fk1fl1.tiff"


def write_loaddata_screen(root: Path, spec: LoadDataSpec | None = None) -> dict[str, np.ndarray]:
    """Write the screen; returns the 16-bit pixels written by ``plate/well/site``
    (``(C, H, W)``), empty when ``spec.images`` is False."""
    import tifffile

    spec = spec or LoadDataSpec()
    rng = np.random.default_rng(spec.seed)
    written: dict[str, np.ndarray] = {}
    columns = ["Metadata_Source", "Metadata_Batch", "Metadata_Plate", "Metadata_Well",
               "Metadata_Site"]
    for ch in spec.channels:
        columns += [f"FileName_Orig{ch}", f"PathName_Orig{ch}"]
    for batch, plates in plate_names(spec).items():
        for plate in plates:
            folder = f"images/{batch}/images/{plate}/Images"
            if spec.images:
                (root / folder).mkdir(parents=True, exist_ok=True)
            rows = []
            for well in spec.wells:
                for site in range(1, spec.sites + 1):
                    row = [spec.source, batch, plate, well, str(site)]
                    for c in range(1, len(spec.channels) + 1):
                        row += [phenix_name(well, site, c), folder]
                    rows.append(row)
                    if spec.images:
                        pixels = rng.integers(0, 4096, (len(spec.channels), *spec.size),
                                              np.uint16)
                        for c in range(len(spec.channels)):
                            tifffile.imwrite(root / folder / row[5 + 2 * c], pixels[c])
                        written[f"{plate}/{well}/{site}"] = pixels
            csv_path = root / "load_data_csv" / batch / plate / "load_data.csv"
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            with open(csv_path, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(columns)
                writer.writerows(rows)
    _write_platemap(root, spec)
    return written


def _write_platemap(root: Path, spec: LoadDataSpec) -> None:
    """Compound per well (the same layout on every plate): first well negcon, second
    poscon, the rest treatments."""
    with open(root / "platemap.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["well_position", "Metadata_JCP2022", "control_type"])
        for i, well in enumerate(spec.wells):
            kind = "negcon" if i == 0 else "poscon_cp" if i == 1 else "trt"
            writer.writerow([well_name(*parse_well(well)), f"JCP2022_{80000 + i:06d}", kind])
