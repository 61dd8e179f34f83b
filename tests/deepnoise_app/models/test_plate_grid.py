"""Plate map geometry (Qt-free): the grid of plates, hit tests and arrow-key moves."""

from __future__ import annotations

from deepnoise_app.models.plate_grid import next_well, place_plates


def test_plates_go_in_the_grid_with_the_largest_wells(small_screen) -> None:
    plates = list(small_screen.plates())[:2]
    wide = place_plates(plates, 600, 160, 16)
    assert len({p.y for p in wide}) == 1  # wide and short: one row
    tall = place_plates(plates, 260, 600, 16)
    assert len({p.y for p in tall}) == 2  # narrow and tall: one plate per row
    for placement in tall:
        fmt = placement.plate.format
        assert placement.x + placement.cell * fmt.columns <= 260
    assert place_plates([], 100, 100, 0) == []


def test_hits_and_cells_agree(small_screen) -> None:
    plate = next(small_screen.plates())
    (placement,) = place_plates([plate], 400, 300, 0)
    well = plate.used_wells()[0]
    x, y, w, h = placement.cell_rect(well)
    assert placement.well_at(x + w / 2, y + h / 2) == well.name
    assert placement.well_at(placement.x - 1, y) is None
    assert placement.well_at(x + 100 * w, y) is None


def test_arrow_keys_skip_unused_positions(small_screen) -> None:
    plate = next(small_screen.plates())
    first = plate.used_wells()[0]
    assert next_well(plate, None, (0, 1)) == first.name
    right = next_well(plate, first, (0, 1))
    assert right is not None and plate.wells[right].row == first.row
    assert next_well(plate, first, (-1, 0)) is None  # the edge row is unused in the demo
