"""Training configuration: typed sections, TOML presets, ``--set key=value`` overrides.

Torch-free. A configuration is a two-level dict ``{section: {key: value}}``; each section
is a pydantic model (:data:`SECTIONS`) giving every key a type, a default and a range, and
:class:`TrainingConfig` adds the rules between keys. Everything is validated up front
with errors that name the key (``model.epochs: expected an integer``).
Resolution order: schema defaults < preset (``resources/presets/NAME.toml``) <
``--config FILE.toml`` < ``--set`` overrides.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from deepnoise_engine.contract.config import DEFAULT_PRESET
from deepnoise_engine.resources import resource_path

# the normaliser's MODES as a type (a test keeps the two equal)
Normalisation = Literal["none", "global", "cell_type", "experiment", "plate", "site", "controls"]
Optimizer = Literal["adam", "adamw", "sgd"]


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


def _num(default: Any, lo: float, hi: float, help: str = "") -> Any:
    """A number field with an inclusive range."""
    return Field(default=default, ge=lo, le=hi, description=help)


def _opt(default: Any, help: str = "") -> Any:
    """A field with its default and its help text."""
    return Field(default=default, description=help)


class _Section(BaseModel):
    """One ``[section]``: strict TOML types (no "1" for true), unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True,
                              allow_inf_nan=False)


class DataSection(_Section):
    normalisation: Normalisation = _opt(
        "plate", "per-channel standardisation statistics group")
    image_size: int = _num(512, 8, 4096, "images are resized to this (px)")
    channels: list[int] = _opt([], "channel numbers to use; [] = all")
    position_correction: Literal["none", "ring"] = _opt(
        "none", "divide out plate-position (edge) effects per experiment, ring and channel")
    validation_experiments: list[str] = _opt(
        [], "explicit validation experiments; [] = automatic")
    validation_per_cell_type: int = _num(1, 0, 100, "labelled experiments per cell type held out")
    use_unlabelled: bool = _opt(True, "train on unlabelled wells (mean teacher)")
    norm_jitter: float = _num(0.1, 0.0, 1.0, "mean/std factor 1 + j*U(-1,1)")
    balance_controls: bool = _opt(True, "per epoch, each control class gets as many wells "
                                  "as the median siRNA")
    workers: int = _num(4, 0, 256, "DataLoader worker processes")
    pin_memory: bool = True


class ModelSection(_Section):
    names: list[str] = _opt(["xception", "xception_wide"], "one or two backbones (ensemble)")
    repeats: int = _num(1, 1, 16, "independent trainings of the whole recipe (seeds "
                        "runtime.seed + k) in repeats/{k}; all their models are ensembled")
    head: Literal["arcface", "softmax"] = "arcface"
    arcface_s: float = _num(30.0, 0.0, 1000.0,
                            "ArcFace scale; 0 = sqrt(2) ln(K - 1) (AdaCos' fixed rule)")
    arcface_m: float = _num(0.1, 0.0, 1.5)
    width: float = _num(0.0, 0.0, 4.0, "backbone width multiplier; 0 = model default")
    middle_blocks: int = _num(-1, -1, 64, "Xception middle blocks; -1 = default")
    first_stride: int = _num(0, 0, 4, "Xception stem stride; 0 = default (2)")
    first_kernel: int = _num(0, 0, 15, "Xception first conv size; 0 = default (7)")
    pretrained_file: str = _opt("", "local ImageNet weights for the first model")
    epochs: int = _num(160, 1, 100000, "shared-stage epochs")
    batch_size: int = _num(64, 1, 65536, "global batch (split over DDP ranks)")
    eval_batch_size: int = _num(128, 1, 65536)


class OptimSection(_Section):
    name: Optimizer = "adam"
    weight_decay: float = _num(2e-4, 0.0, 1.0)
    lr_values: list[float] = _opt([3e-4, 1e-4, 1e-5], "piecewise-constant LR")
    lr_milestones: list[int] = _opt([100, 140], "epochs where the LR switches")
    momentum: float = _num(0.9, 0.0, 1.0, "SGD only")


class AugmentSection(_Section):
    flip: float = _num(0.5, 0.0, 1.0, "p of h flip and of v flip")
    rot90: float = _num(0.5, 0.0, 1.0)
    shift_scale: float = _num(0.5, 0.0, 1.0)
    shift_scale_limit: float = _num(0.1, 0.0, 0.5)
    erase: float = _num(0.5, 0.0, 1.0)
    erase_area: list[float] = [0.02, 0.4]
    teacher_crop: list[float] = _opt([0.8, 0.99], "harder teacher view: crop fraction")


class MeanTeacherSection(_Section):
    enabled: bool = True
    alphas: list[float] = [0.5, 0.9, 0.99, 0.999]
    alpha_epochs: list[int] = _opt([1, 10, 20], "last epoch (1-based) of each alpha")
    consistency_weight: float = _num(100.0, 0.0, 1e6)
    rampup_epochs: float = _num(5.0, 0.0, 1e4)
    reference_classes: int = _num(1139, 0, 10**7, "the consistency weight is scaled by K / "
                                  "this (paper: 1,139 classes); 0 = no scaling")
    reference_steps_per_epoch: int = _num(0, 0, 10**9, "alphas are rescaled from epochs of "
                                          "this many steps; 0 = as given")


class PseudoLabelsSection(_Section):
    enabled: bool = True
    weight: float = _num(0.05, 0.0, 1.0)
    old_weight: float = _num(0.1, 0.0, 1.0, "logits <- old*prev + (1-old)*new")
    start_epoch: int = _num(20, 1, 100000, "first shared-stage epoch (1-based) whose teachers "
                            "make pseudo labels")


class FinetuneSection(_Section):
    enabled: bool = True
    epochs: int = _num(85, 0, 100000, "per cell type unless listed below")
    epochs_by_cell_type: dict[str, Annotated[int, Field(ge=0)]] = {
        "U2OS": 165, "RPE": 85, "HEPG2": 85, "HUVEC": 45}
    optimizer: Optimizer = "sgd"
    lr: float = _num(0.1, 0.0, 10.0)
    lr_min: float = _num(1e-3, 0.0, 10.0)
    cycles: int = _num(4, 1, 1000)
    momentum: float = _num(0.0, 0.0, 1.0)
    tail_epochs: int = _num(5, 0, 100000)
    tail_lr: float = _num(1e-4, 0.0, 10.0)


class RuntimeSection(_Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = _num(0, 0, 2**31 - 1)
    amp: bool = _opt(True, "bf16 autocast on CUDA")
    cpu_amp: bool = _opt(False, "bf16 autocast on a CPU with native bf16 (AVX512-BF16 or "
                         "AMX); ignored on other CPUs")
    channels_last: bool = _opt(True, "NHWC memory layout (CPU and CUDA)")
    progress_every_s: float = _num(2.0, 0.0, 3600.0)
    threads: int = _num(0, 0, 1024, "torch CPU threads; 0 = torch default")
    max_steps_per_epoch: int = _num(0, 0, 10**9, "0 = full epochs (benchmarks)")


SECTIONS: dict[str, type[_Section]] = {
    "data": DataSection, "model": ModelSection, "optim": OptimSection,
    "augment": AugmentSection, "mean_teacher": MeanTeacherSection,
    "pseudo_labels": PseudoLabelsSection, "finetune": FinetuneSection,
    "runtime": RuntimeSection,
}


class TrainingConfig(BaseModel):
    """A whole configuration: every section plus the rules that involve several keys."""

    model_config = ConfigDict(extra="forbid")

    data: DataSection = DataSection()
    model: ModelSection = ModelSection()
    optim: OptimSection = OptimSection()
    augment: AugmentSection = AugmentSection()
    mean_teacher: MeanTeacherSection = MeanTeacherSection()
    pseudo_labels: PseudoLabelsSection = PseudoLabelsSection()
    finetune: FinetuneSection = FinetuneSection()
    runtime: RuntimeSection = RuntimeSection()

    @model_validator(mode="after")
    def _cross_rules(self) -> TrainingConfig:
        _check_models(self.model.names)
        _check_schedules(self.optim, self.mean_teacher)
        for key in ("augment.erase_area", "augment.teacher_crop"):
            lo_hi = getattr(self.augment, key.split(".")[1])
            if len(lo_hi) != 2 or not 0.0 < lo_hi[0] <= lo_hi[1] <= 1.0:
                raise ConfigError(f"{key}: expected [low, high] with 0 < low <= high <= 1")
        for i, ch in enumerate(self.data.channels):
            if ch < 1:
                raise ConfigError(f"data.channels[{i}]: channel numbers start at 1")
        return self


def _check_models(names: list[str]) -> None:
    if not 1 <= len(names) <= 4:
        raise ConfigError(f"model.names: expected one to four model names, got {names!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"model.names: duplicate names in {names!r}")


def _check_schedules(optim: OptimSection, mt: MeanTeacherSection) -> None:
    lrs, ms = optim.lr_values, optim.lr_milestones
    if len(lrs) != len(ms) + 1:
        raise ConfigError(f"optim.lr_values: expected {len(ms) + 1} values "
                          f"(one more than optim.lr_milestones), got {len(lrs)}")
    if any(b <= a for a, b in itertools.pairwise(ms)):
        raise ConfigError("optim.lr_milestones: must increase")
    if len(mt.alphas) != len(mt.alpha_epochs) + 1:
        raise ConfigError("mean_teacher.alphas: expected one more value than "
                          "mean_teacher.alpha_epochs")
    if any(not 0.0 <= a < 1.0 for a in mt.alphas):
        raise ConfigError("mean_teacher.alphas: each alpha must be in [0, 1)")


def defaults() -> dict[str, dict[str, Any]]:
    return {name: section().model_dump() for name, section in SECTIONS.items()}


def _section(key: str) -> tuple[type[_Section], str]:
    """The section model of ``section.key`` and the key's name; unknown ones are errors."""
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        raise ConfigError(f"{key}: unknown section {section!r} "
                          f"(known: {', '.join(SECTIONS)})")
    model = SECTIONS[section]
    if name not in model.model_fields:
        raise ConfigError(f"{key}: unknown key (known in [{section}]: "
                          f"{', '.join(model.model_fields)})")
    return model, name


_EXPECTED = {
    "bool_type": "expected true or false", "int_type": "expected an integer",
    "int_from_float": "expected an integer", "float_type": "expected a number",
    "string_type": "expected a string", "list_type": "expected a list",
    "dict_type": "expected a table", "finite_number": "expected a finite number",
}


def _message(key: str, model: type[_Section], error: Any) -> str:
    """A pydantic error as today's message: ``section.key[i]: expected ..., got ...``."""
    name, *inner = error["loc"]
    kind, value = error["type"], error["input"]
    field = model.model_fields[name]
    if inner and isinstance(inner[0], str):  # a table's entry (finetune.epochs_by_cell_type)
        return f"{key}.{inner[0]}: expected a non-negative integer, got {value!r}"
    where = key + "".join(f"[{i}]" for i in inner)
    if kind == "literal_error":
        return f"{where}: {value!r} is not one of {', '.join(get_args(field.annotation))}"
    if kind in ("greater_than_equal", "less_than_equal"):
        if field.annotation is float:
            value = float(value)
        bound = error["ctx"]["ge" if kind == "greater_than_equal" else "le"]
        which = "minimum" if kind == "greater_than_equal" else "maximum"
        return f"{where}: {value!r} is out of range ({which} {bound:g})"
    return f"{where}: {_EXPECTED.get(kind, error['msg'])}, got {value!r}"


def coerce(key: str, value: Any) -> Any:
    """Check ``value`` (from TOML) against the key's field; returns the clean value."""
    model, name = _section(key)
    section = model()
    try:
        setattr(section, name, value)
    except ValidationError as exc:
        raise ConfigError(_message(key, model, exc.errors()[0])) from None
    return getattr(section, name)


def _check_cross(cfg: Mapping[str, Any]) -> None:
    """The rules that involve several keys (the values are already checked one by one)."""
    try:
        TrainingConfig.model_validate(cfg)
    except ValidationError as exc:
        error = exc.errors()[0]
        cause = error.get("ctx", {}).get("error")
        raise (cause if isinstance(cause, ConfigError) else ConfigError(str(exc))) from None


def merge(cfg: dict[str, dict[str, Any]], update: Mapping[str, Any], source: str) -> None:
    """Merge a parsed TOML document into ``cfg`` in place, validating every key."""
    for section, table in update.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: {section}: expected a [section] table")
        for name, value in table.items():
            key = f"{section}.{name}"
            try:
                cfg[section][name] = coerce(key, value)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """``"model.epochs=3"`` -> ``("model.epochs", 3)``; the value is TOML or a bare string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or "." not in key:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    _section(key)
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # bare word: a string (a number field then says "expected a number")
    return key, coerce(key, value)


def preset_path(name: str) -> Path:
    try:
        return resource_path("presets", f"{name}.toml")
    except FileNotFoundError:
        known = sorted(p.stem for p in resource_path("presets").glob("*.toml"))
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(known)})") from None


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def resolve(preset: str | None = DEFAULT_PRESET, config_file: str | Path | None = None,
            overrides: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Defaults < preset < config file < overrides, fully validated."""
    cfg = defaults()
    if preset:
        path = preset_path(preset)
        merge(cfg, load_toml(path), str(path))
    if config_file:
        merge(cfg, load_toml(Path(config_file)), str(config_file))
    for text in overrides:
        key, value = parse_override(text)
        section, name = key.split(".", 1)
        cfg[section][name] = value
    _check_cross(cfg)
    return cfg


def validate(cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate a complete configuration (e.g. a run folder's config.toml)."""
    out = defaults()
    merge(out, cfg, "config")
    _check_cross(out)
    return out


def dumps(cfg: Mapping[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps({k: dict(v) for k, v in cfg.items()})
