"""Where the plate map puts plates and wells (Qt-free): the grid, hit tests, arrow keys."""

from __future__ import annotations

from dataclasses import dataclass

from deepnoise_engine.screen.model import Plate, Well

ROW_LABEL_PX = 14.0  # room for row letters / column numbers
PLATE_GAP_PX = 10.0


@dataclass(frozen=True)
class PlatePlacement:
    """One plate in the map: the top-left of well A01 and the cell size, in pixels."""

    plate: Plate
    x: float
    y: float
    cell: float

    def well_at(self, x: float, y: float) -> str | None:
        """The position's name ('B02', used or not) under a point, or None outside."""
        if x < self.x or y < self.y:
            return None
        col, row = int((x - self.x) // self.cell), int((y - self.y) // self.cell)
        fmt = self.plate.format
        return fmt.well_name(row, col) if row < fmt.rows and col < fmt.columns else None

    def cell_rect(self, well: Well) -> tuple[float, float, float, float]:
        """(x, y, width, height) of a well's cell."""
        return (self.x + well.column * self.cell, self.y + well.row * self.cell,
                self.cell, self.cell)


def place_plates(plates: list[Plate], width: float, height: float, title_h: float
                 ) -> list[PlatePlacement]:
    """Plates in the grid (1 x n, 2 x 2, ..., n x 1) that gives the largest wells, within
    ``width`` x ``height`` pixels, each with a ``title_h`` title band above it."""
    if not plates:
        return []
    n, label, gap = len(plates), ROW_LABEL_PX, PLATE_GAP_PX
    rows = max(p.format.rows for p in plates)
    cols = max(p.format.columns for p in plates)
    best: tuple[float, int] = (-1.0, n)
    for per_row in range(1, n + 1):
        grid_rows = -(-n // per_row)
        avail_w = (width - gap * (per_row + 1)) / per_row - label
        avail_h = height / grid_rows - title_h - label - 6
        cell = min(avail_w / cols, avail_h / rows)
        if cell > best[0] + 0.25:  # prefer fewer rows unless clearly larger
            best = (cell, per_row)
    per_row = best[1]
    cell = max(2.0, best[0])
    block_h = title_h + label + 6 + cell * rows
    block_w = label + cell * cols + gap
    placements = []
    for i, plate in enumerate(plates):
        r, c = divmod(i, per_row)
        placements.append(PlatePlacement(plate, gap + c * block_w + label,
                                         r * block_h + title_h + label + 2, cell))
    return placements


def next_well(plate: Plate, current: Well | None, step: tuple[int, int]) -> str | None:
    """The next used well from ``current`` in direction ``step`` (skipping unused positions)."""
    used = plate.used_wells()
    if not used:
        return None
    if current is None:
        return used[0].name
    dr, dc = step
    r, c = current.row + dr, current.column + dc
    fmt = plate.format
    while 0 <= r < fmt.rows and 0 <= c < fmt.columns:
        name = fmt.well_name(r, c)
        if name in plate.wells:
            return name
        r, c = r + dr, c + dc
    return None
