"""The train dialog: screen, experiment split, preset and key settings -> an engine train request.

Settings are the engine's configuration keys (``resources/presets/*.toml``, checked by
``deepnoise_engine.train.config``); the dialog shows the chosen preset's values and sends
every key setting as a ``section.key=value`` override, so what the user sees is what runs.
Everything is checked before launch with messages that say what to change.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from deepnoise_engine.contract.config import (
    ConfigDefaultsAnswer,
    DefaultSplitAnswer,
    PresetsAnswer,
)
from deepnoise_engine.contract.run_folder import new_run_problem
from deepnoise_engine.screen.model import Screen

TRAIN, VALIDATION, UNLABELLED, NOT_USED = "train", "validation", "unlabelled", "not used"
#: Backbones offered in the editable combos (any timm backbone name can be typed).
BACKBONES = ("xception_tiny", "xception", "xception_wide", "resnet18", "efficientnet_b0")


class QuickAsker(Protocol):
    """What the dialog asks the engine through: ``EngineBridge.ask`` (quick requests)."""

    def ask(self, type: str, timeout: float = 30.0, **params: Any) -> Any: ...


def toml_value(value: Any) -> str:
    """A Python value as a TOML literal for a ``key=value`` override."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # strings and lists of strings/numbers are valid TOML as JSON


def _spin(low: int, high: int, suffix: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSuffix(suffix)
    return spin


class EngineRules:
    """The engine's answers the dialog needs: presets, key choices, the default split and
    the configuration check. A failed question leaves ``problem`` saying why."""

    def __init__(self, engine: QuickAsker | None) -> None:
        self.engine = engine
        self.problem = ""
        self.presets = PresetsAnswer(default="", names=[], presets={})
        self.normalisation_modes: list[str] = []
        answer = self._ask("presets")
        if answer is not None:
            self.presets = PresetsAnswer.model_validate(answer)
        answer = self._ask("config_defaults")
        if answer is not None:
            defaults = ConfigDefaultsAnswer.model_validate(answer)
            self.normalisation_modes = list(defaults.choices.get("data.normalisation", []))

    def _ask(self, type: str, **params: Any) -> Any:
        if self.engine is None:
            self.problem = "No engine to ask: the settings cannot be checked."
            return None
        try:
            return self.engine.ask(type, **params)
        except Exception as exc:  # shown in the dialog, never raised into the event loop
            self.problem = f"The engine could not answer {type!r}: {exc}"
            return None

    def default_validation(self, screen: Screen | None) -> set[str]:
        """The experiments a train request validates on when it names none."""
        if screen is None:
            return set()
        answer = self._ask("default_split", data=str(screen.root))
        if answer is None:
            return set()
        return set(DefaultSplitAnswer.model_validate(answer).validation_experiments)

    def config_problem(self, preset: str, overrides: list[str]) -> str | None:
        """The engine's objection to these settings (it names the key), or None."""
        if self.engine is None:
            return None
        try:
            self.engine.ask("check_config", preset=preset, overrides=overrides)
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            return f"Settings refused by the engine: {message}"
        return None


class TrainDialog(QDialog):
    """Choose data, split, preset and settings; ``request_params()`` is the train request."""

    def __init__(
        self,
        screen: Screen | None = None,
        devices: list[dict] | None = None,
        runs_dir: Path | None = None,
        parent: QWidget | None = None,
        engine: QuickAsker | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train a DeepNoise model")
        self.screen = screen
        self.devices = list(devices or [])
        self.runs_dir = Path(runs_dir) if runs_dir else Path.home() / "deepnoise-runs"
        self.rules = EngineRules(engine)
        self._default_validation = self.rules.default_validation(screen)
        self._out_edited = False
        data_row = self._build_data_row()
        self._build_table()
        settings = self._build_settings()
        out_row = self._build_out_row()
        self._build_buttons()
        self._lay_out(data_row, settings, out_row)
        self.preset_combo.currentTextChanged.connect(self.apply_preset)
        self.apply_preset(self.preset_combo.currentText())
        self._fill_table()
        self._suggest_out()
        # a shown problem is checked again as the user changes things: fixed, it goes
        for signal in (self.out_edit.textChanged, self.data_edit.textChanged,
                       self.model1_combo.currentTextChanged,
                       self.model2_combo.currentTextChanged, self.ensemble_check.toggled,
                       self.device_combo.currentIndexChanged):
            signal.connect(lambda *_a: self._recheck())
        if self.rules.problem:
            self.error_label.setText(self.rules.problem)

    # -- building --------------------------------------------------------------------
    def _build_data_row(self) -> QHBoxLayout:
        self.data_edit = QLineEdit(str(self.screen.root) if self.screen else "")
        self.data_edit.editingFinished.connect(self._data_changed)
        data_browse = QPushButton("Browse…")
        data_browse.clicked.connect(self._browse_data)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data_edit, 1)
        data_row.addWidget(data_browse)
        return data_row

    def _build_table(self) -> None:
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(
            ["Experiment", "Cell type", "Plates", "Labels", "Use as"]
        )
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(170)
        self.split_note = QLabel()
        self.split_note.setWordWrap(True)

    def _build_settings(self) -> QGroupBox:
        """The preset and the key settings, in a group box."""
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(self.rules.presets.names)
        self.model1_combo = QComboBox()
        self.model2_combo = QComboBox()
        for combo in (self.model1_combo, self.model2_combo):
            combo.setEditable(True)  # any timm backbone name
            combo.addItems(BACKBONES)
            # the longest name in full (an editable combo sized to its box clipped it)
            combo.setMinimumContentsLength(max(len(b) for b in BACKBONES))
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.ensemble_check = QCheckBox("Ensemble of two models")
        self.ensemble_check.toggled.connect(self.model2_combo.setEnabled)
        self.epochs_spin = _spin(1, 100000)
        self.repeats_spin = _spin(1, 16)
        self.repeats_spin.setToolTip(
            "Independent trainings from other seeds, ensembled: fewer mistakes, "
            "each repeat takes the whole training time again")
        self.batch_spin = _spin(1, 65536)
        self.size_spin = _spin(8, 4096, " px")
        self.norm_combo = QComboBox()
        self.norm_combo.addItems(self.rules.normalisation_modes)
        self.position_check = QCheckBox("Correct plate-position (edge) effects")
        self.position_check.setToolTip(
            "Outer wells often read dimmer or brighter: estimated per experiment from the "
            "screen itself and divided out")
        self.mean_teacher_check = QCheckBox("Mean teacher (uses unlabelled wells)")
        self.pseudo_check = QCheckBox("Pseudo labels")
        self.finetune_check = QCheckBox("Fine-tune per cell type")
        self._build_device_combo()
        models_row = QHBoxLayout()
        for widget in (self.model1_combo, self.ensemble_check, self.model2_combo):
            models_row.addWidget(widget)
        form = QFormLayout()
        form.addRow("Preset", self.preset_combo)
        form.addRow("Backbone(s)", models_row)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Independent repeats", self.repeats_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Image size", self.size_spin)
        form.addRow("Normalisation", self.norm_combo)
        form.addRow("", self.position_check)
        for check in (self.mean_teacher_check, self.pseudo_check, self.finetune_check):
            form.addRow("", check)
        form.addRow("Device", self.device_combo)
        settings = QGroupBox("Settings")
        settings.setLayout(form)
        return settings

    def _build_device_combo(self) -> None:
        """auto, then one entry per device type the engine offers, and always the CPU."""
        self.device_combo = QComboBox()
        self.device_combo.addItem("auto", "auto")
        for dev in self.devices:
            kind = str(dev.get("type", "cpu"))
            if self.device_combo.findData(kind) < 0:
                mem = dev.get("memory_bytes")
                extra = f", {mem / 2**30:.0f} GiB" if isinstance(mem, int | float) and mem else ""
                self.device_combo.addItem(f"{kind} ({dev.get('name', kind)}{extra})", kind)
        if self.device_combo.findData("cpu") < 0:
            self.device_combo.addItem("cpu", "cpu")

    def _build_out_row(self) -> QHBoxLayout:
        self.out_edit = QLineEdit()
        self.out_edit.textEdited.connect(self._out_touched)
        out_browse = QPushButton("Browse…")
        out_browse.clicked.connect(self._browse_out)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(out_browse)
        return out_row

    def _build_buttons(self) -> None:
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c62828;")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Train")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    def _lay_out(self, data_row: QHBoxLayout, settings: QGroupBox,
                 out_row: QHBoxLayout) -> None:
        top = QFormLayout()
        top.addRow("Screen", data_row)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(QLabel("Experiments"))
        layout.addWidget(self.table, 1)
        layout.addWidget(self.split_note)
        layout.addWidget(settings)
        out_form = QFormLayout()
        out_form.addRow("Run folder", out_row)
        layout.addLayout(out_form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

    def _recheck(self) -> None:
        """Update a shown error to what is still wrong (nothing shown: nothing to do)."""
        if self.error_label.text():
            self.error_label.setText("\n".join(self.validate()))

    # -- filling ---------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        """Show the preset's values (resolved by the engine) in the settings widgets."""
        values = self.rules.presets.presets.get(name)
        if values is None:
            return
        names = list(values["model"].get("names") or ["xception"])
        self.model1_combo.setCurrentText(str(names[0]))
        self.ensemble_check.setChecked(len(names) > 1)
        self.model2_combo.setEnabled(len(names) > 1)
        self.model2_combo.setCurrentText(str(names[1]) if len(names) > 1 else "xception_wide")
        self.epochs_spin.setValue(int(values["model"]["epochs"]))
        self.repeats_spin.setValue(int(values["model"].get("repeats", 1)))
        self.batch_spin.setValue(int(values["model"]["batch_size"]))
        size = int(values["data"]["image_size"])
        if self.screen is not None and self.screen.image_size:
            # never upsample by default: training above the screen's resolution costs time
            # and adds nothing
            size = min(size, max(self.screen.image_size))
        self.size_spin.setValue(size)
        self.norm_combo.setCurrentText(str(values["data"]["normalisation"]))
        self.position_check.setChecked(values["data"].get("position_correction") == "ring")
        self.mean_teacher_check.setChecked(bool(values["mean_teacher"]["enabled"]))
        self.pseudo_check.setChecked(bool(values["pseudo_labels"]["enabled"]))
        self.finetune_check.setChecked(bool(values["finetune"]["enabled"]))
        device = str(values["runtime"].get("device", "auto"))
        index = self.device_combo.findData(device)
        self.device_combo.setCurrentIndex(max(index, 0))
        self._suggest_out()

    def _fill_table(self) -> None:
        self.table.setRowCount(0)
        screen = self.screen
        if screen is None:
            self.split_note.setText("Open a screen to choose the experiments.")
            return
        validation = self._default_validation
        for name in sorted(screen.experiments):
            exp = screen.experiments[name]
            row = self.table.rowCount()
            self.table.insertRow(row)
            labelled = exp.labelled
            cells = [name, exp.cell_type, str(len(exp.plates)), "yes" if labelled else "no"]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(row, col, item)
            combo = QComboBox()
            if labelled:
                combo.addItems([TRAIN, VALIDATION])
                combo.setCurrentText(VALIDATION if name in validation else TRAIN)
            else:
                combo.addItems([UNLABELLED, NOT_USED])
            combo.currentTextChanged.connect(self._update_note)
            self.table.setCellWidget(row, 4, combo)
        # every experiment in view without scrolling (up to 8; more scroll)
        shown = min(self.table.rowCount(), 8)
        rows_h = sum(self.table.rowHeight(r) for r in range(shown))
        header = self.table.horizontalHeader().sizeHint().height()
        self.table.setMinimumHeight(max(170, header + rows_h + 2 * self.table.frameWidth() + 2))
        self._update_note()

    def _update_note(self) -> None:
        self._recheck()
        roles = self.experiment_roles()
        counts = {
            r: sum(1 for v in roles.values() if v == r) for r in (TRAIN, VALIDATION, UNLABELLED)
        }
        default = sorted(self._default_validation)
        chosen = sorted(e for e, r in roles.items() if r == VALIDATION)
        if default:
            which = "the default" if chosen == default else "default"
            split = f" ({which}: {', '.join(default)} validate, the last labelled per cell type)"
        else:
            split = " (default: no validation, each cell type has one labelled experiment)"
        self.split_note.setText(
            f"{counts[TRAIN]} training, {counts[VALIDATION]} validation{split} and "
            f"{counts[UNLABELLED]} unlabelled experiments (mean teacher). Control wells of "
            "every experiment are labelled."
        )

    def _suggest_out(self) -> None:
        if self._out_edited:
            return
        screen_name = (self.screen.name or self.screen.root.name) if self.screen else "screen"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        preset = self.preset_combo.currentText()
        self.out_edit.setText(str(self.runs_dir / f"{screen_name}-{preset}-{stamp}"))

    def _out_touched(self, _text: str) -> None:
        self._out_edited = True

    def _browse_data(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Screen folder", self.data_edit.text())
        if folder:
            self.data_edit.setText(folder)
            self._data_changed()

    def _browse_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Run folder", str(self.runs_dir))
        if folder:
            self.out_edit.setText(folder)
            self._out_edited = True

    def _data_changed(self) -> None:
        """Another screen folder: open it (torch-free) to list its experiments."""
        path = Path(self.data_edit.text().strip()).expanduser()
        if self.screen is not None and path.resolve() == Path(self.screen.root).resolve():
            return
        self.screen = None
        if path.is_dir():
            try:
                from deepnoise_engine.screen.open import open_screen

                self.screen = open_screen(path, check_images=False)
            except Exception as exc:  # shown, never raised into the event loop
                self.error_label.setText(f"Cannot open screen {path}: {exc}")
        self._default_validation = self.rules.default_validation(self.screen)
        self._fill_table()
        self._suggest_out()

    # -- reading the choices ---------------------------------------------------------
    def experiment_roles(self) -> dict[str, str]:
        """Experiment -> train | validation | unlabelled | not used."""
        roles = {}
        for row in range(self.table.rowCount()):
            combo = self.table.cellWidget(row, 4)
            roles[self.table.item(row, 0).text()] = combo.currentText()
        return roles

    def set_role(self, experiment: str, role: str) -> None:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).text() == experiment:
                combo = self.table.cellWidget(row, 4)
                if combo.findText(role) < 0:
                    raise ValueError(f"{experiment} cannot be used as {role!r}")
                combo.setCurrentText(role)
                return
        raise KeyError(f"no experiment {experiment} in the table")

    def model_names(self) -> list[str]:
        names = [self.model1_combo.currentText().strip()]
        if self.ensemble_check.isChecked():
            names.append(self.model2_combo.currentText().strip())
        return names

    def validate(self) -> list[str]:
        """Problems that stop the launch (empty when the request can go); once the
        dialog's own checks pass, the engine checks the settings (naming the key)."""
        problems = self._path_problems() + self._split_problems()
        names = self.model_names()
        if any(not n for n in names):
            problems.append("Name a backbone for every model.")
        elif len(set(names)) != len(names):
            problems.append("The two ensemble models must be different backbones.")
        device = self.device_combo.currentData()
        if device == "cuda" and not any(d.get("type") == "cuda" for d in self.devices):
            problems.append("The engine reports no CUDA device: choose cpu or auto.")
        if not problems:
            problem = self.rules.config_problem(self.preset_combo.currentText(),
                                                self.overrides())
            problems += [problem] if problem else []
        return problems

    def _path_problems(self) -> list[str]:
        """The screen folder and the run folder."""
        problems: list[str] = []
        data = self.data_edit.text().strip()
        if not data:
            problems.append("Choose a screen folder.")
        elif not Path(data).expanduser().is_dir():
            problems.append(f"Screen folder not found: {data}")
        elif self.screen is None:
            problems.append(f"{data} could not be opened as a screen.")
        out = self.out_edit.text().strip()
        if not out:
            problems.append("Choose a run folder for the results.")
        else:
            problem = new_run_problem(Path(out).expanduser())
            if problem:
                problems.append(problem)
        return problems

    def _split_problems(self) -> list[str]:
        """The experiments' roles: something to train on, for every validated cell type."""
        if self.screen is None:
            return []
        experiments = self.screen.experiments
        problems: list[str] = []
        roles = self.experiment_roles()
        train = [e for e, r in roles.items() if r == TRAIN]
        val = [e for e, r in roles.items() if r == VALIDATION]
        if not any(experiments[e].labelled for e in roles):
            problems.append("The screen has no labelled experiment: nothing to train on.")
        elif not train:
            problems.append(
                "No labelled experiment is set to 'train': validation cannot be the whole "
                "training set. Set at least one experiment to 'train'."
            )
        if set(train) & set(val):
            problems.append("An experiment cannot be both training and validation.")
        for cell_type in sorted({experiments[e].cell_type for e in val}):
            if not any(experiments[e].cell_type == cell_type for e in train):
                problems.append(
                    f"Cell type {cell_type} has no training experiment (all of its labelled "
                    "experiments validate)."
                )
        return problems

    def overrides(self) -> list[str]:
        """The key settings as ``section.key=value`` overrides of the preset."""
        roles = self.experiment_roles()
        val = sorted(e for e, r in roles.items() if r == VALIDATION)
        use_unlabelled = any(r == UNLABELLED for r in roles.values()) or not roles
        pairs: list[tuple[str, Any]] = [
            ("model.names", self.model_names()),
            ("model.epochs", self.epochs_spin.value()),
            ("model.repeats", self.repeats_spin.value()),
            ("model.batch_size", self.batch_spin.value()),
            ("data.image_size", self.size_spin.value()),
            ("data.normalisation", self.norm_combo.currentText()),
            ("data.position_correction", "ring" if self.position_check.isChecked() else "none"),
            ("mean_teacher.enabled", self.mean_teacher_check.isChecked()),
            ("pseudo_labels.enabled", self.pseudo_check.isChecked()),
            ("finetune.enabled", self.finetune_check.isChecked()),
            ("data.use_unlabelled", bool(use_unlabelled)),
        ]
        if self.screen is not None:
            pairs.append(("data.validation_experiments", val))
            if not val:
                pairs.append(("data.validation_per_cell_type", 0))
        return [f"{key}={toml_value(value)}" for key, value in pairs]

    def request_params(self) -> dict[str, Any]:
        """The engine ``train`` request's params."""
        return {
            "data": str(Path(self.data_edit.text().strip()).expanduser()),
            "out": str(Path(self.out_edit.text().strip()).expanduser()),
            "preset": self.preset_combo.currentText(),
            "overrides": self.overrides(),
            "device": str(self.device_combo.currentData() or "auto"),
        }

    def accept(self) -> None:
        problems = self.validate()
        if problems:
            self.error_label.setText("\n".join(problems))
            return
        self.error_label.setText("")
        super().accept()
