"""Plate-map PNG of one plate's report, drawn with matplotlib (Agg, no display): a grid of
wells coloured by the confidence of the balanced call (viridis), the call as a well label,
a colour bar and a title. Wrong calls (when labels are known) get a red frame; wells
without a call are grey, unused wells light grey."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from deepnoise_engine.report.io import atomic_write, check_free
from deepnoise_engine.screen.model import PlateFormat, parse_well

_NO_CALL = (200, 200, 200)
_UNUSED = (245, 245, 245)
_WRONG = (220 / 255, 30 / 255, 30 / 255)
_DPI = 100


def confidence_colour(value: float) -> tuple[int, int, int]:
    """Confidence in [0, 1] -> RGB along viridis (perceptually ordered, colour-blind safe)."""
    import matplotlib

    rgba = matplotlib.colormaps["viridis"](float(np.clip(value, 0.0, 1.0)))
    return tuple(round(255 * c) for c in rgba[:3])  # type: ignore[return-value]


def _text_colour(rgb: tuple[int, ...]) -> str:
    return "black" if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140 else "white"


def _well_colours(report: pd.DataFrame, fmt: PlateFormat) -> np.ndarray:
    """``(rows, columns, 3)`` uint8: each used well's confidence colour, grey without a call."""
    colours = np.empty((fmt.rows, fmt.columns, 3), np.uint8)
    colours[:] = _UNUSED
    for well, sirna, conf in zip(report["well"], report["sirna"], report["confidence"],
                                 strict=True):
        r, c = parse_well(str(well))
        has_call = pd.notna(sirna) and pd.notna(conf)
        colours[r, c] = confidence_colour(conf) if has_call else _NO_CALL
    return colours


def _draw_wells(ax: Any, report: pd.DataFrame, colours: np.ndarray, cell_px: int) -> None:
    """The coloured grid, red frames on wrong calls and the calls as labels (big cells)."""
    from matplotlib.patches import Rectangle

    rows, columns = colours.shape[:2]
    ax.imshow(colours, interpolation="nearest", aspect="equal")
    ax.set_xticks(np.arange(-0.5, columns), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    correct = report["correct"] if "correct" in report else pd.Series(pd.NA, index=report.index)
    for well, sirna, conf, right in zip(report["well"], report["sirna"], report["confidence"],
                                        correct, strict=True):
        r, c = parse_well(str(well))
        if pd.notna(right) and not bool(right):
            ax.add_patch(Rectangle((c - 0.42, r - 0.42), 0.84, 0.84, fill=False,
                                   edgecolor=_WRONG, linewidth=2))
        if pd.notna(sirna) and pd.notna(conf) and cell_px >= 26:
            label = str(sirna)
            label = label if len(label) * 6 <= cell_px - 4 else label[-max(1, (cell_px - 4) // 6):]
            ax.text(c, r, label, ha="center", va="center", fontsize=7,
                    color=_text_colour(tuple(int(v) for v in colours[r, c])))


def plate_map_figure(report: pd.DataFrame, *, title: str | None = None,
                     plate_format: PlateFormat | None = None) -> Any:
    """One plate's report rows -> a matplotlib ``Figure`` (cells scale with the format)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    fmt = plate_format or PlateFormat.smallest_fitting([str(w) for w in report["well"]])
    cell_px = int(np.clip(960 // fmt.columns, 12, 56))
    size = (fmt.columns * cell_px / _DPI + 1.8, fmt.rows * cell_px / _DPI + 1.1)
    fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    _draw_wells(ax, report, _well_colours(report, fmt), cell_px)
    step = 1 if fmt.columns <= 24 else 2
    ax.set_xticks(range(0, fmt.columns, step), [str(c + 1) for c in range(0, fmt.columns, step)])
    ax.set_yticks(range(fmt.rows), [fmt.well_name(r, 0)[:-2] for r in range(fmt.rows)])
    ax.xaxis.tick_top()
    ax.tick_params(labelsize=7, length=0)
    if title is None and len(report):
        title = f"{report['experiment'].iloc[0]} plate {int(report['plate'].iloc[0])}"
    known = report["correct"].notna().any() if "correct" in report else False
    legend = " (red frame: wrong call)" if known else ""
    fig.suptitle(f"{title or 'plate'}: confidence of the balanced call{legend}", fontsize=9,
                 x=0.02, ha="left")
    bar = fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), "viridis"), ax=ax, shrink=0.9,
                       ticks=[0.0, 0.5, 1.0])
    bar.ax.tick_params(labelsize=7)
    return fig


def figure_image(fig: Any) -> Image.Image:
    """Render a figure (Agg) to an RGB image, as its PNG holds it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


def plate_map_image(report: pd.DataFrame, *, title: str | None = None,
                    plate_format: PlateFormat | None = None) -> Image.Image:
    """One plate's report rows -> an RGB plate map (``plate_map_figure`` rendered)."""
    return figure_image(plate_map_figure(report, title=title, plate_format=plate_format))


def write_plate_map(report: pd.DataFrame, path: Path, *, overwrite: bool = False,
                    title: str | None = None) -> Path:
    """Draw ``plate_map_figure`` and save it as PNG atomically."""
    path = Path(path)
    check_free([path], overwrite)
    fig = plate_map_figure(report, title=title)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI))
