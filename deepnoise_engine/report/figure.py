"""Plate-map PNG of one plate's report, drawn with PIL (matplotlib is not a dependency):
a grid of wells coloured by the confidence of the balanced call, the call as a well
label, a colour bar and a title. Wrong calls (when labels are known) get a red frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from deepnoise_engine.report.io import atomic_write, check_free
from deepnoise_engine.screen.model import PlateFormat, parse_well

# Viridis anchors (0, 0.25, 0.5, 0.75, 1): perceptually ordered, colour-blind safe.
_VIRIDIS = np.array([
    [68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37],
], dtype=np.float64)
_NO_CALL = (200, 200, 200)
_UNUSED = (245, 245, 245)
_WRONG = (220, 30, 30)


def confidence_colour(value: float) -> tuple[int, int, int]:
    """Confidence in [0, 1] -> RGB along viridis (linear between anchors)."""
    x = float(np.clip(value, 0.0, 1.0)) * (len(_VIRIDIS) - 1)
    i = min(int(x), len(_VIRIDIS) - 2)
    rgb = _VIRIDIS[i] + (x - i) * (_VIRIDIS[i + 1] - _VIRIDIS[i])
    return tuple(round(float(c)) for c in rgb)  # type: ignore[return-value]


def _text_colour(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return (0, 0, 0) if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140 else (255, 255, 255)


def plate_map_image(report: pd.DataFrame, *, title: str | None = None,
                    plate_format: PlateFormat | None = None) -> Image.Image:
    """One plate's report rows -> an RGB plate map (cells scale with the plate format)."""
    wells = [str(w) for w in report["well"]]
    fmt = plate_format or PlateFormat.smallest_fitting(wells)
    cell = int(np.clip(960 // fmt.columns, 12, 56))
    font = ImageFont.load_default()
    left, top, bar_w = 34, 48, 90
    width = left + fmt.columns * cell + 16 + bar_w
    height = top + fmt.rows * cell + 12
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    if title is None and len(report):
        title = f"{report['experiment'].iloc[0]} plate {int(report['plate'].iloc[0])}"
    known = report["correct"].notna().any() if "correct" in report else False
    legend = " (red frame: wrong call)" if known else ""
    draw.text((left, 6), f"{title or 'plate'}: confidence of the balanced call{legend}",
              fill="black", font=font)
    for c in range(fmt.columns):  # column numbers and row letters
        if fmt.columns <= 24 or c % 2 == 0:
            draw.text((left + c * cell + 2, top - 14), f"{c + 1}", fill="black", font=font)
    for r in range(fmt.rows):
        draw.text((6, top + r * cell + cell // 2 - 5), fmt.well_name(r, 0)[:-2], fill="black",
                  font=font)
    for r in range(fmt.rows):  # the empty grid first
        for c in range(fmt.columns):
            x, y = left + c * cell, top + r * cell
            draw.rectangle([x, y, x + cell - 2, y + cell - 2], fill=_UNUSED,
                           outline=(220, 220, 220))
    for _, row in report.iterrows():
        r, c = parse_well(str(row["well"]))
        x, y = left + c * cell, top + r * cell
        conf = row["confidence"]
        has_call = pd.notna(row["sirna"]) and pd.notna(conf)
        fill = confidence_colour(conf) if has_call else _NO_CALL
        wrong = pd.notna(row["correct"]) and not bool(row["correct"])
        draw.rectangle([x, y, x + cell - 2, y + cell - 2], fill=fill,
                       outline=_WRONG if wrong else (120, 120, 120), width=2 if wrong else 1)
        if has_call and cell >= 26:
            label = str(row["sirna"])
            label = label if len(label) * 6 <= cell - 4 else label[-max(1, (cell - 4) // 6):]
            draw.text((x + 3, y + cell // 2 - 6), label, fill=_text_colour(fill), font=font)
    # Colour bar: confidence 0 (bottom) .. 1 (top).
    bx, by, bh = left + fmt.columns * cell + 16, top, fmt.rows * cell - 2
    for i in range(bh):
        draw.line([bx, by + i, bx + 18, by + i], fill=confidence_colour(1 - i / max(bh - 1, 1)))
    draw.rectangle([bx, by, bx + 18, by + bh], outline="black")
    for value in (0.0, 0.5, 1.0):
        ty = by + int((1 - value) * (bh - 1))
        draw.line([bx + 18, ty, bx + 22, ty], fill="black")
        draw.text((bx + 25, ty - 5), f"{value:.1f}", fill="black", font=font)
    return image


def write_plate_map(report: pd.DataFrame, path: Path, *, overwrite: bool = False,
                    title: str | None = None) -> Path:
    """Draw ``plate_map_image`` and save it as PNG atomically."""
    path = Path(path)
    check_free([path], overwrite)
    image = plate_map_image(report, title=title)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
