"""The QC map's data (Qt-free): lasso hit tests, the QC table's text."""

from __future__ import annotations

import numpy as np

from deepnoise_app.models.qc_map import points_in_polygon, qc_table_cells


def test_points_in_polygon() -> None:
    xy = np.array([[0.5, 0.5], [2.0, 2.0], [0.1, 0.9], [1.5, 0.5]])
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]])
    assert points_in_polygon(xy, square).tolist() == [0, 2]


def test_qc_table_cells() -> None:
    row = {"profile": "ensemble", "sirna": (0.51234, 0.01), "experiment": (0.2, 0.1),
           "plate": (None, None), "mixing": 0.876}
    assert qc_table_cells(row) == ["ensemble", "0.512 (0.010)", "0.200 (0.100)", "n/a", "0.88"]
    assert qc_table_cells({**row, "mixing": None})[-1] == "n/a"
