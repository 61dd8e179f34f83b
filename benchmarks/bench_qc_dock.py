"""QC dock: 20,000 points pan, zoom and hover without event-loop stalls over 100 ms.

Needs a display (``xvfb-run -a python benchmarks/bench_qc_dock.py``). A QCDock (in a
napari window, docked at the bottom as the app does) shows 20,000 wells of the RxRx1
test-set shape (planted structure, 1,024-dim embeddings, read from a real profile file
and laid out by PCA in the dock's worker thread); then real Qt events drive it: 40 wheel
zooms, 40 drag steps of a pan and 200 mouse moves onto points (hover names the well),
each followed by ~15 ms of event loop as a user's next action comes after they see the
result. The heartbeat of ``bench_app.py`` records stalls (docs/performance.md, "## QC").
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_app import Heartbeat, settle, wait_until
from bench_qc import rxrx1_shape


def _mouse(widget, kind, pos, button=None, buttons=None):
    from qtpy.QtCore import QPointF, Qt
    from qtpy.QtGui import QMouseEvent
    from qtpy.QtWidgets import QApplication

    button = button or Qt.MouseButton.NoButton
    buttons = buttons if buttons is not None else button
    event = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def _wheel(widget, pos, steps: int) -> None:
    from qtpy.QtCore import QPoint, QPointF, Qt
    from qtpy.QtGui import QWheelEvent
    from qtpy.QtWidgets import QApplication

    event = QWheelEvent(QPointF(pos), QPointF(widget.mapToGlobal(pos)), QPoint(0, 0),
                        QPoint(0, 120 * steps), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def main(points: int = 10**9) -> None:
    import napari
    from qtpy.QtCore import QEvent, QPoint, QPointF, Qt

    from deepnoise_app.docks import install_docks
    from deepnoise_app.state import state_for
    from deepnoise_engine.report.profiles import read_profile

    with tempfile.TemporaryDirectory() as tmp:
        scores = rxrx1_shape(Path(tmp) / "scores")
        meta = read_profile(scores, "log_prob")
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1500, 950)
        state = state_for(viewer)
        docks = install_docks(viewer, state)
        frame = meta.rename(columns={"Metadata_IdCode": "id_code"})[["id_code"]]
        frame = frame.assign(sirna=meta["Metadata_siRNA"], confidence=0.5, correct=True)
        state.set_predictions({"all/1": frame}, score_dir=scores)
        beat = Heartbeat()
        beat.start()
        t0 = time.perf_counter()
        docks.dock_widgets["qc"].show()
        qc = docks.dock_widgets["qc"].widget().build()
        wait_until(lambda: qc.points is not None, timeout=120)
        if points < len(qc.points):  # a baseline: what the window costs without the points
            from deepnoise_app.models.qc_map import MapPoints

            qc.points = MapPoints(qc.points.frame.iloc[:points].reset_index(drop=True),
                                  qc.points.xy[:points], qc.points.layout)
        t1 = time.perf_counter()
        qc.set_points(qc.points)  # the main thread's share of a load, timed alone
        out_main = round(time.perf_counter() - t1, 3)
        settle(0.5)
        out = {"points": len(qc.points), "load_s": round(time.perf_counter() - t0, 2),
               "load": beat.summary(), "show_points_main_thread_s": out_main}
        viewport = qc.plot.viewport()
        centre = QPoint(viewport.width() // 2, viewport.height() // 2)
        for name, action in (("colour by siRNA", lambda i: qc.colour_by.setCurrentText(
                                 ("siRNA", "experiment")[i % 2])),
                             ("zoom", lambda i: _wheel(viewport, centre, 1 if i < 20 else -1)),
                             ("pan", None), ("hover", None)):
            beat.reset()
            if name == "pan":
                _mouse(viewport, QEvent.Type.MouseButtonPress, centre, Qt.MouseButton.LeftButton)
                for i in range(40):
                    _mouse(viewport, QEvent.Type.MouseMove, centre + QPoint(5 * i, 3 * i),
                           Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
                    settle(0.015)
                _mouse(viewport, QEvent.Type.MouseButtonRelease, centre + QPoint(200, 120),
                       Qt.MouseButton.LeftButton)
            elif name == "hover":
                named, handler = 0, []
                qc.plot.autoRange()
                settle(0.2)
                for i in range(200):  # over the points, as a user reads them
                    x, y = qc.points.xy[(i * 7919) % len(qc.points)]
                    pos = qc.plot.mapFromScene(qc.view.mapViewToScene(QPointF(x, y)))
                    t = time.perf_counter()
                    _mouse(viewport, QEvent.Type.MouseMove, pos)
                    handler.append((time.perf_counter() - t) * 1000)
                    settle(0.015)
                    named += bool(qc.hover_label.text())
                out["hovers_naming_a_well"] = named
                out["hover_handler_ms"] = {"median": round(statistics.median(handler), 2),
                                           "max": round(max(handler), 2)}
            else:
                for i in range(4 if name.startswith("colour") else 40):
                    action(i)
                    settle(0.015)
            settle(0.2)
            out[name] = beat.summary()
        print(json.dumps(out, indent=2))
        viewer.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10**9)  # [POINTS]: fewer, as a baseline
