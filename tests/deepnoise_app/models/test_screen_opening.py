"""Opening a screen (Qt-free): read, remembered, first plate and well selected."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepnoise_app.models.screen_opening import open_screen_path, parse_plate_choice
from deepnoise_app.models.settings import Settings
from deepnoise_app.models.state import AppState

pytestmark = pytest.mark.usefixtures("isolated_user_dirs")


def test_open_selects_the_first_plate_and_a_usable_well(small_screen_path: Path) -> None:
    state = AppState()
    screen = open_screen_path(state, small_screen_path)
    assert state.screen is screen
    first = next(screen.plates())
    assert state.plate is first
    assert state.well is not None and state.well.usable_sites
    assert Settings().recent_screens[0] == str(small_screen_path.resolve())


def test_a_named_plate_is_selected_or_refused(small_screen_path: Path, small_screen) -> None:
    last = list(small_screen.plates())[-1]
    state = AppState()
    open_screen_path(state, small_screen_path, plate=f"{last.experiment}:{last.index}")
    assert state.plate.key == last.key
    assert parse_plate_choice(small_screen, last.key) == (last.experiment, last.index)
    with pytest.raises(ValueError, match="EXPERIMENT:PLATE"):
        parse_plate_choice(small_screen, "NOPE:1")
