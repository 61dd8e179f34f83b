"""A dock content built the first time it is shown: a hidden dock costs no imports at
start-up (the QC map's pyqtgraph takes ~0.5 s to import)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtWidgets import QVBoxLayout, QWidget


class LazyDock(QWidget):
    """Holds ``factory()``'s widget (``content``), created on the first show."""

    def __init__(self, factory: Callable[[], QWidget], parent: QWidget | None = None):
        super().__init__(parent)
        self.factory = factory
        self.content: QWidget | None = None
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)

    def build(self) -> QWidget:
        """The content, created now if it was not yet."""
        if self.content is None:
            self.content = self.factory()
            self._layout.addWidget(self.content)
        return self.content

    def showEvent(self, event: Any) -> None:
        self.build()
        super().showEvent(event)
