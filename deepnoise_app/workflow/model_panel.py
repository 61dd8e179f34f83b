"""Load models: a training run folder or model files (.json/.safetensors), described by the engine.

The engine's ``describe_model`` says what a model is (architecture, classes, channels,
normalisation, image size, validation accuracy, cell types served); a model that does not
fit the open screen (other channels, classes the screen's labels do not match) is refused
here with a clear message, and again by the engine when scoring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from deepnoise_app.engine import EngineBridge

#: Description keys shown first, with their labels (others follow as they come).
_SHOWN = (
    ("architecture", "Architecture"),
    ("architectures", "Architectures"),
    ("kind", "Kind"),
    ("num_classes", "Classes"),
    ("classes_count", "Classes"),
    ("channels", "Channels"),
    ("normalisation", "Normalisation"),
    ("image_size", "Image size"),
    ("val_acc", "Validation accuracy"),
    ("validation_accuracy", "Validation accuracy"),
    ("cell_types", "Cell types served"),
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        items = [_fmt(v) for v in value]
        return ", ".join(items[:12]) + (f", … ({len(items)} in all)" if len(items) > 12 else "")
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in list(value.items())[:8])
    return str(value)


def describe_rows(desc: dict) -> list[tuple[str, str]]:
    """(label, text) rows for a describe_model result, known keys first."""
    rows: list[tuple[str, str]] = []
    seen = {"path", "classes", "class_names", "models", "engine_version", "role"}
    for key, label in _SHOWN:
        if key in desc and desc[key] is not None:
            rows.append((label, _fmt(desc[key])))
            seen.add(key)
    classes = desc.get("classes") or desc.get("class_names")
    if isinstance(classes, list) and classes:
        rows.append(("Class names", _fmt(classes)))
    for key, value in desc.items():
        if key not in seen and isinstance(value, str | int | float | bool | list):
            rows.append((key.replace("_", " ").capitalize(), _fmt(value)))
    return rows


def _channel_count(value: Any) -> int | None:
    if isinstance(value, list):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def fit_problem(desc: dict, screen: Any) -> str | None:
    """Why a described model cannot score ``screen`` (None when it fits)."""
    if screen is None:
        return None
    channels = _channel_count(desc.get("channels", desc.get("in_chans")))
    if channels is not None and channels != len(screen.channels):
        return (
            f"The model reads {channels} channels but the screen has {len(screen.channels)} "
            f"({', '.join(f'w{c}' for c in screen.channels)})."
        )
    classes = desc.get("classes") or desc.get("class_names")
    if isinstance(classes, list) and classes:
        known = {str(c) for c in classes}
        labels = set(screen.classes())
        unknown = sorted(labels - known)
        if labels and len(unknown) == len(labels):
            return (
                "None of the screen's labels are classes of this model "
                f"(screen: {', '.join(unknown[:5])}…): it was trained on another kind of screen."
            )
        if unknown:
            return (
                f"{len(unknown)} of the screen's labels are not classes of the model "
                f"(e.g. {', '.join(unknown[:5])})."
            )
    return None


class ModelPanel(QWidget):
    """Loaded models (run folders or checkpoint files) and what they are."""

    models_changed = Signal(list)  # list of description dicts (each with "path")

    def __init__(self, bridge: EngineBridge, state: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.state = state
        self.models: list[dict] = []
        self._pending: dict[str, str] = {}  # request id -> path

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Model", "Value"])
        self.tree.setMinimumHeight(90)
        # room for the longest label ("Validation accuracy") beside the indentation
        label_w = self.tree.fontMetrics().horizontalAdvance("Validation accuracy")
        self.tree.setColumnWidth(0, label_w + 2 * self.tree.indentation() + 12)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.run_button = QPushButton("Load run…")
        self.run_button.setToolTip("A training run folder (its models serve their cell types)")
        self.files_button = QPushButton("Load files…")
        self.files_button.setToolTip("Model files (.json / .safetensors)")
        self.remove_button = QPushButton("Remove")
        row = QHBoxLayout()
        for button in (self.run_button, self.files_button, self.remove_button):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.tree)
        layout.addWidget(self.message)

        self.run_button.clicked.connect(self._pick_run)
        self.files_button.clicked.connect(self._pick_files)
        self.remove_button.clicked.connect(self._remove_selected)
        bridge.event.connect(self._on_event)

    # -- loading ---------------------------------------------------------------------
    def load(self, path: str | Path) -> str | None:
        """Ask the engine to describe ``path``; returns the request id (None if refused)."""
        path = Path(path).expanduser()
        if not path.exists() and not path.with_suffix(".json").exists():
            self._say(f"Model not found: {path}", error=True)
            return None
        if any(Path(m["path"]) == path for m in self.models):
            self._say(f"{path.name} is already loaded.")
            return None
        request = self.bridge.submit("describe_model", path=str(path))
        self._pending[request] = str(path)
        self._say(f"Reading {path.name}…")
        return request

    def add_description(self, path: str, desc: dict) -> bool:
        """Add a described model unless it does not fit the open screen."""
        problem = fit_problem(desc, getattr(self.state, "screen", None))
        if problem:
            self._say(f"Refused {Path(path).name}: {problem}", error=True)
            return False
        entry = {**desc, "path": path}
        self.models.append(entry)
        item = QTreeWidgetItem([f"{Path(path).name}  ({path})"])
        item.setToolTip(0, str(path))
        for label, text in describe_rows(desc):
            child = QTreeWidgetItem([label, text])
            child.setToolTip(1, text)
            item.addChild(child)
        self.tree.addTopLevelItem(item)
        item.setFirstColumnSpanned(True)
        item.setExpanded(True)
        self._say(f"Loaded {Path(path).name}.")
        self._publish()
        return True

    def clear(self) -> None:
        self.models.clear()
        self.tree.clear()
        self._publish()

    def model_paths(self) -> list[str]:
        return [str(m["path"]) for m in self.models]

    def _publish(self) -> None:
        setter = getattr(self.state, "set_models", None)
        if setter is not None:
            setter(list(self.models))
        self.models_changed.emit(list(self.models))

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #c62828;" if error else "")
        self.message.setText(text)

    def _on_event(self, event: dict) -> None:
        request = event.get("request")
        if request not in self._pending:
            return
        path = self._pending.pop(request)
        if event.get("event") == "result":
            result = event.get("result")
            self.add_description(path, result if isinstance(result, dict) else {})
        elif event.get("event") == "error":
            self._say(f"Cannot load {Path(path).name}: {event.get('message', 'error')}", error=True)
        else:  # not the answer yet (quick requests answer with one result event)
            self._pending[request] = path

    # -- buttons ---------------------------------------------------------------------
    def _pick_run(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training run folder")
        if folder:
            self.load(folder)

    def _pick_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Model files", "", "DeepNoise models (*.json *.safetensors)"
        )
        stems = {}
        for name in files:  # a model is a .json + .safetensors pair: load each pair once
            stems.setdefault(str(Path(name).with_suffix("")), name)
        for name in stems.values():
            self.load(name)

    def _remove_selected(self) -> None:
        item = self.tree.currentItem()
        while item is not None and item.parent() is not None:
            item = item.parent()
        if item is None:
            return
        index = self.tree.indexOfTopLevelItem(item)
        self.tree.takeTopLevelItem(index)
        del self.models[index]
        self._publish()
