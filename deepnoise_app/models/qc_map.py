"""The QC map's data (Qt-free): well embeddings -> 2-D points, colours, hover, lasso.

Points come from a score folder's ``profiles/embedding.parquet`` (pandas; the app never
imports torch), laid out by PCA, or UMAP when umap-learn is installed and asked for.
The per-plate reports in the AppState add the call, its confidence and right/wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepnoise_engine.qc.layout import pca_2d

COLOUR_BY = ("experiment", "plate", "cell type", "siRNA", "confidence", "right/wrong")
LAYOUTS = ("PCA", "UMAP")

#: a qualitative palette (Tableau 20): categories cycle through it
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
           (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150),
           (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
           (219, 219, 141), (158, 218, 229)]
#: confidence 0 -> 1: a viridis-like ramp in 10 steps
RAMP = [(68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
        (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37)]
RIGHT, WRONG, UNKNOWN = (44, 160, 44), (214, 39, 40), (170, 170, 170)


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class MapPoints:
    """One point per well: ``frame`` (id_code, experiment, plate, well, cell_type, sirna,
    call, confidence, correct) and ``xy`` (N, 2) float64."""

    frame: pd.DataFrame
    xy: np.ndarray
    layout: str

    def __len__(self) -> int:
        return len(self.frame)


def layout_2d(x: np.ndarray, layout: str = "PCA") -> np.ndarray:
    """2-D coordinates of the rows of ``x`` by ``layout`` (PCA, or UMAP with umap-learn)."""
    if layout == "UMAP":
        import umap

        return np.asarray(umap.UMAP(n_components=2, metric="cosine", random_state=0)
                          .fit_transform(np.nan_to_num(x)), np.float64)
    return pca_2d(x)


def calls_frame(predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The per-plate reports -> id_code, call, confidence, correct (balanced calls)."""
    columns = ["id_code", "sirna", "confidence", "correct"]
    frames = [f[columns] for f in predictions.values() if set(columns) <= set(f.columns)]
    if not frames:
        return pd.DataFrame(columns=["id_code", "call", "confidence", "correct"])
    out = pd.concat(frames, ignore_index=True).rename(columns={"sirna": "call"})
    return out.drop_duplicates("id_code")


def load_points(score_dir: Path, predictions: dict[str, pd.DataFrame],
                layout: str = "PCA") -> MapPoints:
    """The map of a score folder's wells. Raises ``FileNotFoundError`` naming the file when
    the folder has no embedding profile (scored before profiles existed)."""
    path = Path(score_dir) / "profiles" / "embedding.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no well embeddings (score again to write them)")
    table = pd.read_parquet(path)
    features = [c for c in table.columns if not c.startswith("Metadata_")]
    frame = pd.DataFrame({
        "id_code": table["Metadata_IdCode"].astype(str),
        "experiment": table["Metadata_Experiment"].astype(str),
        "plate": table["Metadata_Plate"].astype(int),
        "well": table["Metadata_Well"].astype(str),
        "cell_type": table["Metadata_CellType"].astype(str),
        "sirna": table["Metadata_siRNA"].astype("string"),
    })
    frame = frame.merge(calls_frame(predictions), on="id_code", how="left")
    xy = layout_2d(table[features].to_numpy(np.float32), layout)
    return MapPoints(frame.reset_index(drop=True), xy, layout)


def _categorical(values: pd.Series) -> tuple[np.ndarray, list[tuple[str, tuple]]]:
    codes, names = pd.factorize(values.astype("string").fillna("unknown"), sort=True)
    if len(names) <= len(PALETTE):
        palette = [PALETTE[i] for i in range(len(names))]
    else:  # many siRNAs: spread hues by the golden ratio, neighbours differ
        import colorsys

        hsv = [colorsys.hsv_to_rgb((i * 0.618034) % 1, 0.65, 0.9) for i in range(len(names))]
        palette = [(int(255 * r), int(255 * g), int(255 * b)) for r, g, b in hsv]
    return codes, [(str(n), palette[i]) for i, n in enumerate(names)]


def point_colours(points: MapPoints, by: str) -> tuple[np.ndarray, list[tuple[str, tuple]]]:
    """Colour index per point and the palette as (legend label, (r, g, b)) entries."""
    frame = points.frame
    if by in ("experiment", "cell type", "siRNA"):
        column = {"experiment": "experiment", "cell type": "cell_type", "siRNA": "sirna"}[by]
        return _categorical(frame[column])
    if by == "plate":
        return _categorical(frame["experiment"] + "/" + frame["plate"].astype(str))
    if by == "confidence":
        conf = pd.to_numeric(frame["confidence"], errors="coerce").to_numpy(float)
        finite = np.isfinite(conf)
        codes = np.full(len(conf), 10)
        codes[finite] = np.clip((conf[finite] * 10).astype(int), 0, 9)
        legend = [(f"{i / 10:.1f}-{(i + 1) / 10:.1f}", RAMP[i]) for i in range(10)]
        return codes.astype(int), [*legend, ("no call", UNKNOWN)]
    if by == "right/wrong":
        correct = frame["correct"].astype("boolean")
        codes = np.where(correct.isna(), 2, np.where(correct.fillna(False), 0, 1))
        return codes.astype(int), [("right", RIGHT), ("wrong", WRONG), ("unknown", UNKNOWN)]
    raise ValueError(f"colour by one of {', '.join(COLOUR_BY)}, not {by!r}")


def nearest_point(xy: np.ndarray, x: float, y: float, pixel: tuple[float, float],
                  radius_px: float = 6.0) -> int | None:
    """Index of the point nearest to (x, y) within ``radius_px`` screen pixels (``pixel``:
    data units per pixel in x and y), or None."""
    if not len(xy) or not all(np.isfinite(pixel)) or min(pixel) <= 0:
        return None
    d2 = ((xy[:, 0] - x) / pixel[0]) ** 2 + ((xy[:, 1] - y) / pixel[1]) ** 2
    i = int(np.argmin(d2))
    return i if d2[i] <= radius_px**2 else None


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Indices of the points inside ``polygon`` ((M, 2) vertices, even-odd rule)."""
    polygon = np.asarray(polygon, np.float64)
    if len(polygon) < 3 or not len(xy):
        return np.zeros(0, int)
    x, y = xy[:, 0], xy[:, 1]
    inside = np.zeros(len(xy), bool)
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1, strict=True):
        crosses = (ay > y) != (by > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = ax + (y - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (x < at)
    return np.flatnonzero(inside)


def describe(points: MapPoints, i: int) -> str:
    """Hover text of point ``i``: the well, its siRNA and the call."""
    row = points.frame.iloc[int(i)]
    text = f"{row['id_code']} ({row['cell_type']})"
    if pd.notna(row.get("sirna")):
        text += f"  siRNA {row['sirna']}"
    if pd.notna(row.get("call")):
        conf = row.get("confidence")
        text += f"  call {row['call']}" + (f" ({conf:.2f})" if pd.notna(conf) else "")
    return text


def qc_table(score_dir: Path) -> list[dict[str, Any]] | None:
    """Rows of the QC table from ``{score_dir}/qc/qc.json`` (None when QC has not run)."""
    path = Path(score_dir) / "qc" / "qc.json"
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        rows = []
        for r in report["profiles"].values():
            rows.append({"profile": r["label"],
                         **{t: (r[t]["map"], r[t]["chance"]) for t in
                            ("sirna", "experiment", "plate")},
                         "mixing": r.get("mixing_experiment")})
        return rows
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a QC report ({exc})") from exc


def qc_table_cells(row: dict[str, Any]) -> list[str]:
    """One QC table row as text: profile, mAP (chance) per task, mixing."""
    maps = [f"{row[t][0]:.3f} ({row[t][1]:.3f})" if row[t][0] is not None else "n/a"
            for t in ("sirna", "experiment", "plate")]
    return [row["profile"], *maps, "n/a" if row["mixing"] is None else f"{row['mixing']:.2f}"]
