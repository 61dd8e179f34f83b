"""A screen from a second, independent generator (not ``make_demo``), in the TIFF layout.

    python benchmarks/alt_screen.py OUT [--seed 1] [--effect-scale 1.0]

Issue 12's shape (96-well plates, 160 siRNAs in 4 plate groups of 40, 4 positive and
1 negative control per plate, 2 cell types x (3 labelled + 1 unlabelled) experiments,
2 sites, 6 channels, 64 px) with another phenotype model than ``make_demo``'s: cells are
Gaussian blobs; an siRNA shifts each channel's per-cell brightness, blob size and texture
and the cell count, a cell type changes part of those effects; experiments and plates
multiply and offset every channel far more than any siRNA does; edge wells are dimmer.
Per-site pixel statistics carry much of the signal here (unlike ``make_demo``, whose
effects are per-cell shape and intensity changes under large cell-count noise). Used in
docs/science.md to check the ``tiny`` recipe on data our generator did not make. The
hidden labels go to ``answers/test_answers.csv``, which ``score`` reports accuracy on.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import tifffile

SIZE, CHANNELS, SITES = 64, 6, 2
GROUPS, PER_GROUP, POSITIVES = 4, 40, 4
CELL_TYPES = ("HEPG2", "U2OS")
LABELLED, UNLABELLED = 3, 1
INNER = [f"{r}{c:02d}" for r in "BCDEFG" for c in range(2, 12)]  # 60 inner wells


def _effects(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 4, CHANNELS)``: log brightness, log size, texture, log cell count shifts."""
    e = rng.normal(0.0, 1.0, (n, 4, CHANNELS)) * np.array([0.25, 0.12, 0.3, 0.1])[:, None]
    e[:, 3, 1:] = e[:, 3, :1]  # the cell count is one number per perturbation
    return e


def _site(rng: np.random.Generator, effect: np.ndarray, gain: np.ndarray,
          offset: np.ndarray) -> np.ndarray:
    """One ``(CHANNELS, SIZE, SIZE)`` uint8 field of view."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    n_cells = rng.poisson(9 * np.exp(effect[3, 0])) + 1
    image = np.zeros((CHANNELS, SIZE, SIZE), np.float32)
    base_size = np.array([2.5, 5.0, 4.0, 3.0, 4.5, 5.5])
    base_level = np.array([0.8, 0.4, 0.5, 0.6, 0.45, 0.35])
    for _ in range(n_cells):
        cy, cx = rng.uniform(0, SIZE, 2)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        cell = rng.lognormal(0.0, 0.3)  # cell-to-cell variation
        for c in range(CHANNELS):
            size = base_size[c] * np.exp(effect[1, c] + rng.normal(0, 0.1))
            level = base_level[c] * cell * np.exp(effect[0, c])
            image[c] += level * np.exp(-d2 / (2 * size**2))
    texture = rng.normal(0, 1, image.shape) * (0.15 * np.exp(effect[2]))[:, None, None]
    image = image * (1 + texture) * gain[:, None, None] + offset[:, None, None]
    image += rng.normal(0, 0.02, image.shape)
    return np.clip(image * 180, 0, 255).astype(np.uint8)


def _plate_layout(rng: np.random.Generator, group: int) -> list[tuple[str, str, str]]:
    """``(well, well_type, label)`` of one plate: its group's siRNAs and the controls,
    placed at random on the inner wells."""
    labels = [("treatment", str(group * PER_GROUP + i)) for i in range(PER_GROUP)]
    controls = GROUPS * PER_GROUP  # labels are integers, as the TIFF layout wants
    labels += [("positive_control", str(controls + i)) for i in range(POSITIVES)]
    labels.append(("negative_control", str(controls + POSITIVES)))
    wells = rng.permutation(INNER)[: len(labels)]
    return [(w, t, s) for w, (t, s) in zip(wells, labels, strict=True)]


def write_screen(out: Path, seed: int, effect_scale: float = 1.0) -> None:
    """Write the screen (``screen.csv``, TIFFs, ``answers/test_answers.csv``) into ``out``;
    ``effect_scale`` multiplies every perturbation's effect (smaller: harder)."""
    rng = np.random.default_rng(seed)
    n_classes = GROUPS * PER_GROUP + POSITIVES + 1
    shared = _effects(rng, n_classes)
    by_type = {ct: effect_scale * (shared + 0.5 * _effects(rng, n_classes))
               for ct in CELL_TYPES}
    index = {str(i): i for i in range(n_classes)}
    by_type = {ct: e * (np.arange(n_classes) != n_classes - 1)[:, None, None]
               for ct, e in by_type.items()}  # the negative control has no effect
    rows, answers = [], []
    for ct in CELL_TYPES:
        for e in range(LABELLED + UNLABELLED):
            exp, split = f"{ct}-{e + 1:02d}", "train" if e < LABELLED else "test"
            exp_gain = np.exp(rng.normal(0, 0.4, CHANNELS))
            for plate in range(1, GROUPS + 1):
                gain = exp_gain * np.exp(rng.normal(0, 0.2, CHANNELS))
                offset = rng.uniform(0, 0.1, CHANNELS)
                for well, kind, label in _plate_layout(rng, plate - 1):
                    edge = 0.85 if well[0] in "BG" or well[1:] in ("02", "11") else 1.0
                    folder = out / split / exp / f"Plate{plate}"
                    folder.mkdir(parents=True, exist_ok=True)
                    for s in range(1, SITES + 1):
                        pixels = _site(rng, by_type[ct][index[label]], gain * edge, offset)
                        tifffile.imwrite(folder / f"{well}_s{s}.tif", pixels,
                                         photometric="minisblack")
                    hidden = split == "test" and kind == "treatment"
                    rows.append([exp, plate, well, split, kind, "" if hidden else label, ct])
                    if hidden:
                        answers.append([f"{exp}_{plate}_{well}", label])
    _write_csv(out / "screen.csv", ["experiment", "plate", "well", "split", "well_type",
                                    "sirna", "cell_type"], rows)
    _write_csv(out / "answers" / "test_answers.csv", ["id_code", "sirna"], answers)


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--effect-scale", type=float, default=1.0,
                        help="multiplies every perturbation's effect (smaller: harder)")
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} exists and is not empty")
    write_screen(args.out, args.seed, args.effect_scale)


if __name__ == "__main__":
    main()
