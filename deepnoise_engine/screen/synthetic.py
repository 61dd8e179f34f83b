"""Synthetic screens in the RxRx1 Kaggle layout: ``make_demo`` and ``ensure_demo_screen``.

A demo screen is a small, fully labelled stand-in for RxRx1: rendered cells (nuclei in
w1, cytoplasm/organelle texture in the other channels), siRNAs in fixed disjoint plate
groups, control wells, a few missing wells, and hidden answers for the test experiments.
Each siRNA changes morphology and channel intensities by a weak amount (varying with the
cell type), while experiment and plate effects (per-channel gain and offset), edge-well
dimming and noise are strong, so plate-wise normalisation clearly helps. Everything is
drawn from the seed: the same seed gives byte-identical files. See docs/synthetic.md.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from deepnoise_engine.contract import Reporter
from deepnoise_engine.screen.model import STANDARD_FORMATS, id_code, well_name
from deepnoise_engine.user_dirs import user_dir

#: Bumped when the generator's output changes (the cached demo lives in demo-screen-v<N>).
GENERATOR_VERSION = 1
#: The built-in demo screen: 96-well plates with 55 of their 60 inner wells used (50
#: siRNAs, 4 positive controls, 1 negative control; 2 of the 1,320 wells missing), as on a
#: real plate; other parameters are ``make_demo``'s defaults. The folder name carries the
#: demo's version, so a changed demo never reuses an old screen (or its predictions).
DEMO_SHAPE: dict[str, int] = {"plates_per_experiment": 2, "sirnas_per_plate": 50,
                              "positive_controls": 4}
DEMO_DIRNAME = "demo-screen-v2"

# -- effect sizes (log units unless noted) ----------------------------------------------
# siRNA effects are WEAK next to the batch effects below; positive controls are strong.
_SIRNA_SCALE = {"int": 0.26, "nuc": 0.16, "cell": 0.10, "count": 0.18, "elong": 0.25, "tex": 0.25}
_POSITIVE_FACTOR = 3.0
_SHARED_WEIGHT, _CELLTYPE_WEIGHT = 0.8, 0.6  # siRNA effect = shared + cell-type specific
_EXP_GAIN_SD, _EXP_OFFSET_SD = 0.40, 5.0  # per channel, offset in raw grey levels
_PLATE_GAIN_SD, _PLATE_OFFSET_SD = 0.25, 3.0
_EDGE_DIM = 0.75  # wells next to the (unused) edge row/column
_WELL_NOISE_SD = 0.04  # biological well-to-well variation of the intensities
_PIXEL_NOISE_SD = 2.0  # grey levels, plus a shot-noise-like term
# Final scale of the rendered grey levels: brings the demo's channel means and highlights
# into RxRx1's range (means ~6-15), so the official display windows in method-notes fit.
_GREY_SCALE = 0.55
_TEXTURE_GRID = 32  # organelle texture is drawn on a 32 x 32 grid per field of view

# Channel roles (Cell Painting order): weights of (cytoplasm, nucleus, cell edge).
_ROLES = np.array(
    [
        [0.00, 1.00, 0.00],  # w1 nuclei (Hoechst)
        [1.00, 0.15, 0.00],  # w2 endoplasmic reticulum
        [0.45, 0.00, 1.00],  # w3 actin
        [0.35, 0.80, 0.00],  # w4 nucleoli / cytoplasmic RNA
        [0.90, 0.00, 0.20],  # w5 mitochondria
        [0.30, 0.00, 0.90],  # w6 Golgi / plasma membrane
    ],
    dtype=np.float32,
)
_TEXTURE_AMP = np.array([0.25, 0.6, 0.4, 0.5, 0.8, 0.6], dtype=np.float32)


@dataclass(frozen=True)
class _Effect:
    """A condition's phenotype: log factors on intensity (C,), nucleus, cell, count, ..."""

    intensity: np.ndarray  # (C,) log factor per channel
    nucleus: float
    cell: float
    count: float
    elongation: float
    texture: float

    @classmethod
    def zero(cls, channels: int) -> _Effect:
        return cls(np.zeros(channels, np.float32), 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class _CellType:
    count: float  # mean cells per field
    nucleus_radius: float  # fraction of the field width
    cell_ratio: float  # cytoplasm radius / nucleus radius
    elongation: float
    intensity: np.ndarray  # (C,) grey levels of a cell
    background: np.ndarray  # (C,)


@dataclass
class _WellSpec:
    experiment: str
    exp_index: int
    cell_type: str
    split: str
    plate: int
    well: str
    row: int
    column: int
    well_type: str
    sirna: int
    edge: bool


def _effect(rng_shared: np.ndarray, rng_specific: np.ndarray, factor: float) -> _Effect:
    """Combine shared and cell-type specific N(0,1) draws (each of length C + 5)."""
    z = (_SHARED_WEIGHT * rng_shared + _CELLTYPE_WEIGHT * rng_specific) * factor
    c = len(z) - 5
    s = _SIRNA_SCALE
    return _Effect(
        intensity=(z[:c] * s["int"]).astype(np.float32),
        nucleus=float(z[c] * s["nuc"]),
        cell=float(z[c + 1] * s["cell"]),
        count=float(z[c + 2] * s["count"]),
        elongation=float(z[c + 3] * s["elong"]),
        texture=float(z[c + 4] * s["tex"]),
    )


def _soft_disc(d: np.ndarray, sharpness: float) -> np.ndarray:
    """1 inside (d < 1), 0 outside, with a soft edge; ``d`` is a normalised distance."""
    return 1.0 / (1.0 + np.exp(np.clip(sharpness * (d - 1.0), -30.0, 30.0)))


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinear, wrapping ``(C, g, g)`` -> ``(C, size, size)`` (numpy only: no scipy import)."""
    g = grid.shape[-1]
    pos = (np.arange(size, dtype=np.float32) + 0.5) * g / size - 0.5
    low = np.floor(pos).astype(np.int64)
    frac = (pos - low).astype(np.float32)
    low, high = low % g, (low + 1) % g
    rows = grid[:, low, :] * (1 - frac)[None, :, None] + grid[:, high, :] * frac[None, :, None]
    return rows[:, :, low] * (1 - frac) + rows[:, :, high] * frac


def _render_site(
    rng: np.random.Generator,
    size: int,
    channels: int,
    cell_type: _CellType,
    effect: _Effect,
) -> np.ndarray:
    """One field of view before batch effects -> ``(C, size, size)`` float32 grey levels."""
    roles = _ROLES[np.arange(channels) % len(_ROLES)]
    tex_amp = _TEXTURE_AMP[np.arange(channels) % len(_TEXTURE_AMP)] * np.exp(effect.texture)
    layers = np.zeros((3, size, size), np.float32)  # cytoplasm, nucleus, edge
    n_cells = max(1, int(rng.poisson(cell_type.count * np.exp(effect.count))))
    rn_mean = cell_type.nucleus_radius * size * np.exp(effect.nucleus)
    for _ in range(n_cells):
        cy, cx = rng.uniform(-0.05 * size, 1.05 * size, 2)
        rn = rn_mean * np.exp(rng.normal(0.0, 0.12))
        rc = rn * cell_type.cell_ratio * np.exp(effect.cell + rng.normal(0.0, 0.10))
        elong = 1.0 + abs(cell_type.elongation + effect.elongation + rng.normal(0.0, 0.08))
        theta = rng.uniform(0.0, np.pi)
        bright = np.exp(rng.normal(0.0, 0.15))
        # edges about 1 px wide at 64 px and a few px at 512 px
        width = max(0.7, 0.005 * size)
        half = int(np.ceil(rc * 1.45 + 4 * width)) + 1
        y0, y1 = max(0, int(cy) - half), min(size, int(cy) + half + 1)
        x0, x1 = max(0, int(cx) - half), min(size, int(cx) + half + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
        xx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
        cos, sin = np.cos(theta), np.sin(theta)
        u = xx * cos + yy * sin
        v = -xx * sin + yy * cos
        root = np.sqrt(elong)
        dn = np.sqrt((u / (rn * root)) ** 2 + (v * root / rn) ** 2)
        # the cell body is offset from the nucleus a little, like a polarised cell
        dc = np.sqrt(((u - 0.25 * rn) / (rc * 1.1)) ** 2 + (v / rc) ** 2)
        nucleus = _soft_disc(dn, rn / width)
        body = _soft_disc(dc, rc / width)
        edge = body * (1.0 - _soft_disc(dc / 0.8, rc / width))  # the outer fifth: a ring
        layers[0, y0:y1, x0:x1] += bright * body * (1.0 - 0.6 * nucleus)
        layers[1, y0:y1, x0:x1] += bright * nucleus
        layers[2, y0:y1, x0:x1] += bright * edge
    # organelle texture: smooth random field, finer than a cell, scaled to the image size
    grid = rng.normal(0.0, 1.0, (channels, _TEXTURE_GRID, _TEXTURE_GRID)).astype(np.float32)
    field = _upsample(grid, size)
    texture = np.clip(1.0 + tex_amp[:, None, None] * field, 0.0, None)
    signal = np.einsum("cr,rhw->chw", roles, layers)
    gains = cell_type.intensity * np.exp(effect.intensity)
    return (signal * texture * gains[:, None, None] + cell_type.background[:, None, None]).astype(
        np.float32
    )


def _png_bytes(plane: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(plane, mode="L").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _check_params(p: _DemoParams) -> tuple[int, int]:
    """Validate; returns (rows, columns) of the plate format."""
    cell_types, plate_format, image_size = p.cell_types, p.plate_format, p.image_size
    train_exps, test_exps = p.train_experiments_per_cell_type, p.test_experiments_per_cell_type
    plates, sirnas_per_plate = p.plates_per_experiment, p.sirnas_per_plate
    positive_controls, missing_wells = p.positive_controls, p.missing_wells
    if plate_format not in STANDARD_FORMATS:
        raise ValueError(
            f"plate_format: expected one of {sorted(STANDARD_FORMATS)}, got {plate_format}"
        )
    rows, cols = STANDARD_FORMATS[plate_format]
    if not cell_types:
        raise ValueError("cell_types: give at least one cell type")
    for name in cell_types:
        if not name or any(ch in name for ch in "_-/\\ ,") or name != name.strip():
            raise ValueError(
                f"cell_types: {name!r} must be a plain name without '_', '-', '/', spaces"
            )
    if len(set(cell_types)) != len(cell_types):
        raise ValueError(f"cell_types: duplicate names in {list(cell_types)}")
    checks = {
        "train_experiments_per_cell_type": (train_exps, 0),
        "test_experiments_per_cell_type": (test_exps, 0),
        "plates_per_experiment": (plates, 1),
        "sirnas_per_plate": (sirnas_per_plate, 1),
        "positive_controls": (positive_controls, 0),
        "image_size": (image_size, 16),
        "sites": (p.sites, 1),
        "channels": (p.channels, 1),
        "missing_wells": (missing_wells, 0),
    }
    for name, (value, low) in checks.items():
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    if train_exps + test_exps < 1:
        raise ValueError("need at least one train or test experiment per cell type")
    if image_size > 4096:
        raise ValueError(f"image_size: at most 4096 px, got {image_size}")
    inner = (rows - 2) * (cols - 2)
    needed = sirnas_per_plate + positive_controls + 1
    if needed > inner:
        raise ValueError(
            f"sirnas_per_plate: {sirnas_per_plate} treatments + {positive_controls} positive + 1 "
            f"negative control = {needed} wells do not fit the {inner} inner wells of a "
            f"{plate_format}-well plate"
        )
    total_treatments = len(cell_types) * (train_exps + test_exps) * plates * sirnas_per_plate
    if missing_wells >= total_treatments:
        raise ValueError(
            f"missing_wells: {missing_wells} is not below {total_treatments} treatment wells"
        )
    return rows, cols


def _prepare_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder is not empty (use --overwrite to replace it)")


def _install(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` folder to ``out``; an old ``out`` is removed only afterwards."""
    old = None
    if out.is_dir():
        if any(out.iterdir()):
            if not overwrite:  # appeared while we were generating (another process)
                raise FileExistsError(f"{out}: folder is not empty (use --overwrite to replace it)")
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
        else:
            out.rmdir()
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class _DemoParams:
    """``make_demo``'s parameters (their names in ``demo.json``), checked."""

    seed: int
    cell_types: tuple[str, ...]
    train_experiments_per_cell_type: int
    test_experiments_per_cell_type: int
    plates_per_experiment: int
    plate_format: int
    sirnas_per_plate: int
    positive_controls: int
    image_size: int
    sites: int
    channels: int
    missing_wells: int

    @property
    def n_sirnas(self) -> int:
        """One disjoint group of ``sirnas_per_plate`` siRNAs per plate of an experiment."""
        return self.plates_per_experiment * self.sirnas_per_plate

    @property
    def negative_label(self) -> int:
        return self.n_sirnas + self.positive_controls

    def parameters(self) -> dict:
        """The ``parameters`` block of ``demo.json``."""
        return {k: v for k, v in asdict(self).items() if k != "seed"} | {
            "cell_types": list(self.cell_types)}


@dataclass
class _Design:
    """What the seed decides before any pixel is drawn."""

    groups: np.ndarray  # (plates_per_experiment, sirnas_per_plate) siRNA labels
    cell_specs: dict[str, _CellType]
    effects: dict[tuple[str, int], _Effect]
    experiments: list[dict]
    wells: list[_WellSpec]
    batch: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]  # plate -> (gain, offset)
    missing_ids: list[str]


def make_demo(
    out: str | os.PathLike,
    *,
    seed: int = 0,
    cell_types: Sequence[str] = ("HEPG2", "U2OS"),
    train_experiments_per_cell_type: int = 2,
    test_experiments_per_cell_type: int = 1,
    plates_per_experiment: int = 4,
    plate_format: int = 96,
    sirnas_per_plate: int = 12,
    positive_controls: int = 2,
    image_size: int = 64,
    sites: int = 2,
    channels: int = 6,
    missing_wells: int = 2,
    reporter: Reporter | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic screen in the RxRx1 Kaggle layout to ``out`` and return its path.

    Files: ``train.csv``, ``test.csv``, ``train_controls.csv``, ``test_controls.csv``,
    ``{train|test}/{EXP}/Plate{P}/{WELL}_s{S}_w{C}.png`` (8-bit, ``image_size`` square),
    ``answers/test_answers.csv`` and ``demo.json``. Labels: treatments ``0..n-1`` with
    ``n = plates_per_experiment * sirnas_per_plate`` (one disjoint group per plate),
    positive controls ``n..n+positive_controls-1``, negative control ``n+positive_controls``.
    Refuses a non-empty ``out`` unless ``overwrite``; writes to a temporary sibling folder
    and renames it, so ``out`` is complete or untouched. ``reporter`` gets progress of stage
    ``make-demo`` (sites); a cancel raises ``Cancelled`` and leaves ``out`` untouched.
    """
    params = _DemoParams(seed, tuple(cell_types), train_experiments_per_cell_type,
                         test_experiments_per_cell_type, plates_per_experiment, plate_format,
                         sirnas_per_plate, positive_controls, image_size, sites, channels,
                         missing_wells)
    rows, cols = _check_params(params)
    out = Path(out).expanduser().absolute()
    _prepare_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    design = _design(params, rows, cols)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_tables(tmp, design.wells)
        _write_images(tmp, params, design, reporter or Reporter())
        (tmp / "demo.json").write_text(json.dumps(_demo_meta(params, design), indent=2) + "\n",
                                       encoding="utf-8")
        _install(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _design(p: _DemoParams, rows: int, cols: int) -> _Design:
    """Plate groups, phenotypes, layouts and missing wells, drawn from the seed in order."""
    rng = np.random.default_rng([p.seed, 0])
    # fixed disjoint plate groups of siRNAs
    groups = np.sort(rng.permutation(p.n_sirnas).reshape(p.plates_per_experiment,
                                                         p.sirnas_per_plate), axis=1)
    cell_specs, effects = _phenotypes(rng, p)
    experiments, wells, batch = _layout(rng, p, groups, rows, cols)
    # a few treatment wells are missing altogether (as in RxRx1's HUVEC-14)
    treatment_idx = [i for i, w in enumerate(wells) if w.well_type == "treatment"]
    missing = set(rng.choice(treatment_idx, size=p.missing_wells, replace=False).tolist())
    missing_ids = sorted(
        id_code(wells[i].experiment, wells[i].plate, wells[i].well) for i in missing
    )
    wells = [w for i, w in enumerate(wells) if i not in missing]
    return _Design(groups, cell_specs, effects, experiments, wells, batch, missing_ids)


def _phenotypes(rng: np.random.Generator, p: _DemoParams
                ) -> tuple[dict[str, _CellType], dict[tuple[str, int], _Effect]]:
    """Cell types and each condition's effect: shared per siRNA, specific per (siRNA, cell
    type); positive controls are strong, the negative control has none."""
    n_conditions = p.n_sirnas + p.positive_controls
    shared = rng.normal(0.0, 1.0, (n_conditions, p.channels + 5))
    cell_specs: dict[str, _CellType] = {}
    effects: dict[tuple[str, int], _Effect] = {}
    for ct in p.cell_types:
        cell_specs[ct] = _CellType(
            count=float(rng.uniform(7.0, 12.0)),
            nucleus_radius=float(rng.uniform(0.060, 0.075)),
            cell_ratio=float(rng.uniform(1.7, 2.1)),
            elongation=float(rng.uniform(0.05, 0.30)),
            intensity=rng.uniform(28.0, 55.0, p.channels).astype(np.float32),
            background=rng.uniform(5.0, 12.0, p.channels).astype(np.float32),
        )
        specific = rng.normal(0.0, 1.0, (n_conditions, p.channels + 5))
        for label in range(n_conditions):
            factor = _POSITIVE_FACTOR if label >= p.n_sirnas else 1.0
            effects[(ct, label)] = _effect(shared[label], specific[label], factor)
        effects[(ct, p.negative_label)] = _Effect.zero(p.channels)
    return cell_specs, effects


def _layout(rng: np.random.Generator, p: _DemoParams, groups: np.ndarray, rows: int, cols: int
            ) -> tuple[list[dict], list[_WellSpec], dict]:
    """Experiments (with their plate groups), every well, and each plate's gain and offset."""
    experiments: list[dict] = []
    wells: list[_WellSpec] = []
    batch: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    n_exp = p.train_experiments_per_cell_type + p.test_experiments_per_cell_type
    for ct in p.cell_types:
        for k in range(n_exp):
            name = f"{ct}-{k + 1:02d}"
            split = "train" if k < p.train_experiments_per_cell_type else "test"
            exp_index = len(experiments)
            perm = rng.permutation(p.plates_per_experiment)
            exp_gain = np.exp(rng.normal(0.0, _EXP_GAIN_SD, p.channels))
            exp_offset = rng.normal(0.0, _EXP_OFFSET_SD, p.channels)
            experiments.append({
                "name": name, "cell_type": ct, "split": split,
                "plate_groups": {str(i + 1): int(perm[i])
                                 for i in range(p.plates_per_experiment)},
            })
            for plate in range(1, p.plates_per_experiment + 1):
                gain = exp_gain * np.exp(rng.normal(0.0, _PLATE_GAIN_SD, p.channels))
                offset = exp_offset + rng.normal(0.0, _PLATE_OFFSET_SD, p.channels)
                batch[(name, plate)] = (gain.astype(np.float32), offset.astype(np.float32))
                for (r, c), label in _plate_layout(rng, p, groups[perm[plate - 1]], rows, cols):
                    wells.append(_WellSpec(
                        experiment=name, exp_index=exp_index, cell_type=ct, split=split,
                        plate=plate, well=well_name(r, c), row=r, column=c,
                        well_type=_well_type(p, label), sirna=label,
                        edge=r in (1, rows - 2) or c in (1, cols - 2),
                    ))
    return experiments, wells, batch


def _plate_layout(rng: np.random.Generator, p: _DemoParams, group: np.ndarray, rows: int,
                  cols: int) -> list[tuple[tuple[int, int], int]]:
    """``((row, column), label)`` of a plate's used wells, sorted; the edge stays unused."""
    inner = [(r, c) for r in range(1, rows - 1) for c in range(1, cols - 1)]
    # negative control at the first inner well (B02, as in RxRx1); the rest random
    others = rng.permutation(len(inner) - 1)[: p.sirnas_per_plate + p.positive_controls] + 1
    labels = [int(x) for x in group] + [p.n_sirnas + i for i in range(p.positive_controls)]
    labels = [labels[i] for i in rng.permutation(len(labels))]
    layout = [(inner[0], p.negative_label)] + [
        (inner[i], lab) for i, lab in zip(others, labels, strict=True)
    ]
    return sorted(layout)


def _well_type(p: _DemoParams, label: int) -> str:
    if label < p.n_sirnas:
        return "treatment"
    return "positive_control" if label < p.negative_label else "negative_control"


def _write_images(root: Path, p: _DemoParams, design: _Design, reporter: Reporter) -> None:
    """Every site's channel PNGs, well by well; cancellable between wells."""
    total = len(design.wells) * p.sites
    done = 0
    start = time.monotonic()
    last_report = 0.0
    for well in design.wells:
        reporter.check_cancelled("make-demo cancelled")
        folder = root / well.split / well.experiment / f"Plate{well.plate}"
        folder.mkdir(parents=True, exist_ok=True)
        for s, pixels in enumerate(_render_well(p, design, well), start=1):
            for c in range(p.channels):
                path = folder / f"{well.well}_s{s}_w{c + 1}.png"
                path.write_bytes(_png_bytes(pixels[c]))
            done += 1
            now = time.monotonic()
            if now - last_report > 0.2 or done == total:  # events at most 5 per second
                last_report = now
                rate = done / max(now - start, 1e-9)
                reporter.progress("make-demo", done, total,
                                  eta_s=(total - done) / rate if rate > 0 else None)


def _render_well(p: _DemoParams, design: _Design, well: _WellSpec) -> list[np.ndarray]:
    """The ``(C, H, W)`` uint8 pixels of each site of ``well`` (seeded per well and site)."""
    gain, offset = design.batch[(well.experiment, well.plate)]
    effect = design.effects[(well.cell_type, well.sirna)]
    place = [well.exp_index, well.plate, well.row, well.column]
    well_rng = np.random.default_rng([p.seed, 1, *place])
    well_noise = np.exp(well_rng.normal(0.0, _WELL_NOISE_SD, p.channels)).astype(np.float32)
    dim = _EDGE_DIM if well.edge else 1.0
    sites = []
    for s in range(1, p.sites + 1):
        site_rng = np.random.default_rng([p.seed, 2, *place, s])
        raw = _render_site(site_rng, p.image_size, p.channels,
                           design.cell_specs[well.cell_type], effect)
        raw *= (well_noise * gain * dim)[:, None, None]
        raw += offset[:, None, None]
        noise_sd = _PIXEL_NOISE_SD + 0.08 * np.sqrt(np.clip(raw, 0.0, None))
        raw += site_rng.normal(0.0, 1.0, raw.shape).astype(np.float32) * noise_sd
        sites.append(np.clip(np.rint(raw * _GREY_SCALE), 0, 255).astype(np.uint8))
    return sites


def _demo_meta(p: _DemoParams, design: _Design) -> dict:
    """``demo.json``: the parameters, the labels and the hidden design (groups, gaps)."""
    return {
        "generator": "deepnoise make_demo",
        "generator_version": GENERATOR_VERSION,
        "seed": p.seed,
        "parameters": p.parameters(),
        "n_sirnas": p.n_sirnas,
        "positive_control_labels": list(range(p.n_sirnas, p.negative_label)),
        "negative_control_label": p.negative_label,
        "n_classes": p.negative_label + 1,
        "plate_groups": design.groups.tolist(),
        "experiments": design.experiments,
        "missing_wells": design.missing_ids,
    }


def _write_tables(root: Path, wells: list[_WellSpec]) -> None:
    """The four Kaggle CSVs plus ``answers/test_answers.csv`` (rows in plate/well order)."""
    tables: dict[str, list[list]] = {
        "train": [],
        "test": [],
        "train_controls": [],
        "test_controls": [],
    }
    answers: list[list] = []
    for w in wells:
        code = id_code(w.experiment, w.plate, w.well)
        base = [code, w.experiment, w.plate, w.well]
        if w.well_type == "treatment":
            if w.split == "train":
                tables["train"].append([*base, w.sirna])
            else:
                tables["test"].append(base)
                answers.append([*base, w.sirna])
        else:
            tables[f"{w.split}_controls"].append([*base, w.sirna, w.well_type])
    head = ["id_code", "experiment", "plate", "well"]
    _write_csv(root / "train.csv", [*head, "sirna"], tables["train"])
    _write_csv(root / "test.csv", head, tables["test"])
    for name in ("train_controls", "test_controls"):
        _write_csv(root / f"{name}.csv", [*head, "sirna", "well_type"], tables[name])
    _write_csv(root / "answers" / "test_answers.csv", [*head, "sirna"], answers)


def user_data_dir() -> Path:
    """$DEEPNOISE_DATA_DIR, else $XDG_DATA_HOME/deepnoise, else ~/.local/share/deepnoise."""
    return user_dir("data")


def ensure_demo_screen(reporter: Reporter | None = None) -> Path:
    """The built-in demo screen (``make_demo(**DEMO_SHAPE)``, seed 0), generated on first use.

    Lives in ``user_data_dir() / DEMO_DIRNAME``; complete or absent (generated in a
    temporary folder and renamed; ``demo.json`` is written last inside it).
    """
    target = user_data_dir() / DEMO_DIRNAME
    if (target / "demo.json").is_file():
        return target
    if target.is_dir() and any(target.iterdir()):
        # not ours or damaged: keep it aside rather than deleting someone's files
        os.replace(target, target.parent / f".{target.name}.broken-{uuid.uuid4().hex[:8]}")
    try:
        make_demo(target, reporter=reporter, **DEMO_SHAPE)
    except (FileExistsError, OSError):
        # another process finished first: theirs is as good as ours
        if (target / "demo.json").is_file():
            return target
        raise
    return target
