"""Load models: a training run folder or model files (.json/.safetensors), described by the engine.

The engine's ``describe_model`` says what a model is (architecture, classes, channels,
normalisation, image size, validation accuracy, cell types served); a model that does not
fit the open screen (other channels, classes the screen's labels do not match) is refused
here with a clear message, and again by the engine when scoring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
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

from deepnoise_app.engine import READY, STOPPED, EngineBridge
from deepnoise_engine.contract.model_description import ModelDescription

#: Description fields shown, with their labels, in this order.
_SHOWN = (
    ("architecture", "Architecture"),
    ("kind", "Kind"),
    ("classes_count", "Classes"),
    ("channels", "Channels"),
    ("normalisation", "Normalisation"),
    ("image_size", "Image size"),
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


def as_description(desc: dict | ModelDescription, path: str | None = None) -> ModelDescription:
    """The typed description of a ``describe_model`` answer (``path`` overrides its own)."""
    if isinstance(desc, ModelDescription):
        return desc if path is None else desc.model_copy(update={"path": path})
    fields = {"kind": "checkpoint", "path": path or "", **desc}
    if path is not None:
        fields["path"] = path
    return ModelDescription.model_validate(fields)


def describe_rows(desc: ModelDescription) -> list[tuple[str, str]]:
    """(label, text) rows for a described model; fields a newer engine adds follow."""
    rows: list[tuple[str, str]] = []
    for key, label in _SHOWN:
        value = getattr(desc, key)
        if value is not None and value != []:
            rows.append((label, _fmt(value)))
    if desc.classes:
        rows.append(("Class names", _fmt(desc.classes)))
    for key, value in (desc.model_extra or {}).items():
        if isinstance(value, str | int | float | bool | list):
            rows.append((key.replace("_", " ").capitalize(), _fmt(value)))
    return rows


def summary(desc: ModelDescription) -> str:
    """One line for a described model: architecture, classes, normalisation, accuracy."""
    parts = []
    if desc.architecture:
        parts.append(_fmt(desc.architecture))
    count = desc.classes_count or len(desc.classes)
    if count:
        parts.append(f"{count} classes")
    if desc.normalisation:
        parts.append(f"norm {desc.normalisation}")
    acc = desc.validation_accuracy
    if acc is not None:
        parts.append(f"val. acc. {100 * acc:.1f}%" if acc <= 1 else f"val. acc. {acc:.1f}%")
    return ", ".join(parts)


def fit_problem(desc: ModelDescription, screen: Any) -> str | None:
    """Why a described model cannot score ``screen`` (None when it fits)."""
    if screen is None:
        return None
    if desc.channels is not None and len(desc.channels) != len(screen.channels):
        return (
            f"The model reads {len(desc.channels)} channels but the screen has "
            f"{len(screen.channels)} ({', '.join(f'w{c}' for c in screen.channels)})."
        )
    if desc.classes:
        known = {str(c) for c in desc.classes}
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
        self._replaced: dict[str, list[str]] = {}  # path -> the models it replaced

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Model", "Value"])
        # compact: one summary row per model; the details unfold (the dock is short)
        self.tree.itemExpanded.connect(self._fit_tree_height)
        self.tree.itemCollapsed.connect(self._fit_tree_height)
        self._fit_label_column()
        self._fit_tree_height()
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
        bridge.engine_died.connect(self._engine_gone)
        bridge.state_changed.connect(self._engine_state)

    def _fit_label_column(self) -> None:
        """Room for the longest label ("Validation accuracy") beside the indentation.

        Measured again when models are added: the app's style sheet (a larger font) is
        only applied once the panel is shown in the window.
        """
        label_w = self.tree.fontMetrics().horizontalAdvance("Validation accuracy")
        self.tree.setColumnWidth(0, label_w + 2 * self.tree.indentation() + 24)

    def _fit_tree_height(self, *_args: Any) -> None:
        """As tall as its visible rows (at least 2, at most 12): no empty box."""
        tree = self.tree
        rows = 0
        for i in range(tree.topLevelItemCount()):
            item = tree.topLevelItem(i)
            rows += 1 + (item.childCount() if item.isExpanded() else 0)
        row_h = tree.sizeHintForRow(0) if rows else -1
        if row_h <= 0:
            row_h = tree.fontMetrics().height() + 4
        header = tree.header().sizeHint().height()
        height = header + min(max(rows, 2), 12) * row_h + 2 * tree.frameWidth() + 4
        tree.setFixedHeight(height)

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
        if str(path) in self._pending.values():
            return None  # asked already: one answer will come
        request = self.bridge.submit("describe_model", path=str(path))
        self._pending[request] = str(path)
        waiting = "" if self.bridge.state == READY else " (waiting for the engine to start)"
        self._say(f"Reading {path.name}…{waiting}")
        return request

    def replace_with(self, path: str | Path) -> str | None:
        """Unload every model, then load ``path`` (a freshly trained run replaces the old)."""
        previous = [Path(m["path"]).name for m in self.models]
        self.clear()
        request = self.load(path)
        if request is not None and previous:
            self._replaced[str(Path(path).expanduser())] = previous
            self._say(
                f"Reading {Path(path).name}… It replaces {', '.join(previous)}; "
                "load more models to score with an ensemble."
            )
        return request

    @property
    def loading(self) -> bool:
        """True while a description is awaited from the engine."""
        return bool(self._pending)

    def add_description(self, path: str, desc: dict | ModelDescription) -> bool:
        """Add a described model unless it does not fit the open screen."""
        desc = as_description(desc, path)
        problem = fit_problem(desc, getattr(self.state, "screen", None))
        if problem:
            self._say(f"Refused {Path(path).name}: {problem}", error=True)
            return False
        self.models.append(desc.model_dump())  # plain dicts for the state and the signal
        line = summary(desc)
        item = QTreeWidgetItem([Path(path).name, line])
        item.setToolTip(0, str(path))
        item.setToolTip(1, line)
        for label, text in describe_rows(desc):
            child = QTreeWidgetItem([label, text])
            child.setToolTip(1, text)
            item.addChild(child)
        self.tree.addTopLevelItem(item)
        self._fit_label_column()
        # one line per model, details folded: the Score box stays in view in a short dock;
        # the message line below says the summary in full
        item.setExpanded(False)
        self._fit_tree_height()
        count = len(self.models)
        also = f" {count} models loaded: scoring uses their ensemble." if count > 1 else ""
        replaced = self._replaced.pop(str(path), None)
        if replaced:
            also += f" It replaces {', '.join(replaced)}."
        self._say(f"Loaded {Path(path).name}: {line}.{also}")
        self._publish()
        return True

    def drop_unfitting(self) -> list[str]:
        """Unload the models that cannot score the open screen (called when it changes);
        says which and why. Returns their names."""
        screen = getattr(self.state, "screen", None)
        dropped: list[str] = []
        why = ""
        for index in reversed(range(len(self.models))):
            problem = fit_problem(as_description(self.models[index]), screen)
            if problem:
                dropped.insert(0, Path(self.models[index]["path"]).name)
                why = problem
                self.tree.takeTopLevelItem(index)
                del self.models[index]
        if dropped:
            self._fit_tree_height()
            self._say(f"Unloaded {', '.join(dropped)} for this screen: {why}", error=True)
            self._publish()
        return dropped

    def clear(self) -> None:
        self.models.clear()
        self.tree.clear()
        self._fit_tree_height()
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

    def _drop_pending(self, why: str) -> None:
        """No answer will come for the pending descriptions: say so (never stay "Reading…")."""
        if not self._pending:
            return
        names = ", ".join(sorted({Path(p).name for p in self._pending.values()}))
        self._pending.clear()
        self._say(f"Could not read {names}: {why} Load it again once the engine runs.",
                  error=True)

    def _engine_gone(self, _info: dict) -> None:
        self._drop_pending("the engine stopped.")

    def _engine_state(self, state: str) -> None:
        if state == STOPPED:  # a restart or a shutdown drops the queued requests
            self._drop_pending("the engine was stopped.")
        elif state == READY and self._pending and self.message.text().endswith("start)"):
            names = ", ".join(sorted({Path(p).name for p in self._pending.values()}))
            self._say(f"Reading {names}…")

    def _on_event(self, event: dict) -> None:
        request = event.get("request")
        if request not in self._pending:
            return
        path = self._pending.pop(request)
        if event.get("event") == "result":
            try:
                desc = as_description(event.get("result") or {}, path)
            except ValidationError as exc:  # an engine of another version: say what is off
                self._say(f"Cannot load {Path(path).name}: unreadable description ({exc})",
                          error=True)
                return
            self.add_description(path, desc)
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
            self._say("Select a model in the list to remove it." if self.models
                      else "No model is loaded.", error=bool(self.models))
            return
        index = self.tree.indexOfTopLevelItem(item)
        self.tree.takeTopLevelItem(index)
        removed = Path(self.models.pop(index)["path"]).name
        self._fit_tree_height()
        left = len(self.models)
        rest = {0: "no model is loaded.", 1: "1 model is loaded."}.get(
            left, f"{left} models are loaded: scoring uses their ensemble.")
        self._say(f"Removed {removed}; {rest}")
        self._publish()
