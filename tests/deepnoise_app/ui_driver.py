"""Drive the app as a user does: mouse clicks, keys, menu entries, modal dialogs answered.

Imported by the click-level tests (``from ui_driver import ...``: pytest puts this folder
on ``sys.path``). Every helper checks that the control is visible and enabled first, so a
test fails where a user would be stuck.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtCore import QPoint, Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractButton,
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QLineEdit,
    QMenu,
    QMessageBox,
    QRadioButton,
    QSpinBox,
    QTabWidget,
    QWidget,
)


def click(qtbot: Any, button: QAbstractButton) -> None:
    """A left click in the middle of a visible, enabled button."""
    assert button.isVisible(), f"{button.text()!r} is not visible"
    assert button.isEnabled(), f"{button.text()!r} is disabled"
    # a check box or radio button reacts on its box and text, at its left end
    pos = (QPoint(8, button.height() // 2) if isinstance(button, QCheckBox | QRadioButton)
           else button.rect().center())
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton, pos=pos)


def type_text(qtbot: Any, edit: QLineEdit | QSpinBox, text: str) -> None:
    """Select what the field holds (Ctrl+A) and type ``text`` over it."""
    target = edit.lineEdit() if isinstance(edit, QSpinBox) else edit
    assert edit.isVisible() and edit.isEnabled()
    qtbot.mouseClick(target, Qt.MouseButton.LeftButton)
    qtbot.keyClick(target, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(target, text)


def choose(qtbot: Any, combo: QComboBox, text: str) -> None:
    """Open the combo box's list with a click, walk to ``text`` with the arrow keys and
    press Enter (Qt ignores a click released too soon after the list opens)."""
    assert combo.isVisible() and combo.isEnabled()
    index = combo.findText(text)
    assert index >= 0, f"no entry {text!r} in {[combo.itemText(i) for i in range(combo.count())]}"
    qtbot.mouseClick(combo, Qt.MouseButton.LeftButton)
    view = combo.view()
    qtbot.waitUntil(view.isVisible, timeout=3_000)
    current = view.currentIndex().row()
    key = Qt.Key.Key_Down if index > current else Qt.Key.Key_Up
    for _ in range(abs(index - current)):
        qtbot.keyClick(view, key)
    qtbot.keyClick(view, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: combo.currentIndex() == index and not view.isVisible(),
                    timeout=3_000)


def click_tab(qtbot: Any, tabs: QTabWidget, title: str) -> None:
    bar = tabs.tabBar()
    index = next(i for i in range(tabs.count()) if tabs.tabText(i) == title)
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
    assert tabs.currentIndex() == index


def raise_dock(qtbot: Any, window: Any, title: str) -> None:
    """Click the tab of a tabbed dock (the docks share a place in the window)."""
    from qtpy.QtWidgets import QTabBar

    for bar in window.findChildren(QTabBar):
        for i in range(bar.count()):
            if bar.tabText(i) == title and bar.isVisible():
                qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(i).center())
                assert bar.currentIndex() == i
                return
    raise AssertionError(f"no dock tab {title!r}")


def menu_action(window: Any, *path: str) -> Any:
    """The QAction at ``path`` of the menu bar ("File", "Open screen..."); submenus are
    opened (``aboutToShow``) on the way, as a user's pointer would."""
    actions = window.menuBar().actions()
    action = None
    for name in path:
        action = next((a for a in actions if a.text().replace("&", "") == name), None)
        assert action is not None, f"no menu entry {name!r} in {[a.text() for a in actions]}"
        menu = action.menu()
        if isinstance(menu, QMenu):
            menu.aboutToShow.emit()
            actions = menu.actions()
    return action


def when_shown(kind: type[QWidget], answer: Callable[[Any], None], *,
               timeout_ms: int = 10_000) -> None:
    """Answer the next ``kind`` window (a modal dialog blocks the click that opened it):
    polls the top-level widgets from a timer and calls ``answer(widget)`` once."""
    waited = [0]

    def poll() -> None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, kind) and widget.isVisible():
                answer(widget)
                return
        waited[0] += 50
        if waited[0] < timeout_ms:
            QTimer.singleShot(50, poll)

    QTimer.singleShot(50, poll)


def answer_file_dialog(qtbot: Any, path: str | Path | None) -> None:
    """Type ``path`` into the next file dialog and press Enter (None: press Escape)."""

    def answer(dialog: QFileDialog) -> None:
        if path is None:
            dialog.reject()
            return
        edit = dialog.findChild(QLineEdit, "fileNameEdit") or dialog.findChild(QLineEdit)
        edit.setText(str(path))  # as typed: QTest key clicks into a nested event loop stall
        qtbot.keyClick(edit, Qt.Key.Key_Return)
        if dialog.isVisible():  # a folder dialog enters the folder first; Choose takes it
            dialog.accept()

    when_shown(QFileDialog, answer)


def answer_message_box(qtbot: Any, button: QMessageBox.StandardButton) -> None:
    """Click ``button`` (Yes, No, Ok) in the next message box."""

    def answer(box: QMessageBox) -> None:
        target = box.button(button)
        qtbot.mouseClick(target, Qt.MouseButton.LeftButton, pos=target.rect().center())

    when_shown(QMessageBox, answer)


def hover(widget: QWidget, pos: QPoint) -> None:
    """The pointer moved over ``widget`` to ``pos`` with no button down (QTest's
    mouseMove moves the system cursor, which Xvfb does not turn into a move event)."""
    from qtpy.QtCore import QEvent, QPointF
    from qtpy.QtGui import QMouseEvent

    local = QPointF(pos)
    event = QMouseEvent(QEvent.Type.MouseMove, local, QPointF(widget.mapToGlobal(pos)),
                        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def canvas_click(qtbot: Any, viewer: Any, y: float, x: float, *, double: bool = False) -> None:
    """A real mouse click on the canvas at world position (y, x)."""
    native = viewer.window._qt_viewer.canvas.native
    cy, cx = viewer.camera.center[-2], viewer.camera.center[-1]
    zoom = viewer.camera.zoom
    pos = QPoint(int((x - cx) * zoom + native.width() / 2),
                 int((y - cy) * zoom + native.height() / 2))
    if double:
        qtbot.mouseDClick(native, Qt.MouseButton.LeftButton, pos=pos)
    else:
        qtbot.mouseClick(native, Qt.MouseButton.LeftButton, pos=pos)


def shots_dir(tmp_path: Path, name: str) -> Path:
    """Where a test keeps its screenshots: $DEEPNOISE_SCREENSHOTS/name, else tmp_path/name."""
    root = os.environ.get("DEEPNOISE_SCREENSHOTS")
    folder = Path(root) / name if root else tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fitted_fraction(viewer: Any, height: float, width: float) -> float:
    """How much of the canvas (the fuller axis) an image of that size fills now."""
    native = viewer.window._qt_viewer.canvas.native
    zoom = viewer.camera.zoom
    return max(height * zoom / native.height(), width * zoom / native.width())
