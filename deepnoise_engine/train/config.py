"""Training configuration: typed schema, TOML presets, ``--set key=value`` overrides.

Torch-free. A configuration is a two-level dict ``{section: {key: value}}``; every key
has a type, a default and a range in :data:`SCHEMA`, and everything is validated up
front with errors that name the key (``model.epochs: expected an integer``).
Resolution order: schema defaults < preset (``resources/presets/NAME.toml``) <
``--config FILE.toml`` < ``--set`` overrides.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from deepnoise_engine.resources import resource_path

NORMALISATION_MODES = ("none", "global", "cell_type", "experiment", "plate", "site", "controls")


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class Spec:
    """One key: ``kind`` in int|float|bool|str|list[int]|list[float]|list[str]|table[int]."""

    kind: str
    default: Any
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] | None = None
    help: str = ""


SCHEMA: dict[str, dict[str, Spec]] = {
    "data": {
        "normalisation": Spec("str", "plate", choices=NORMALISATION_MODES,
                              help="per-channel standardisation statistics group"),
        "image_size": Spec("int", 512, 8, 4096, help="images are resized to this (px)"),
        "channels": Spec("list[int]", [], help="channel numbers to use; [] = all"),
        "validation_experiments": Spec("list[str]", [],
                                       help="explicit validation experiments; [] = automatic"),
        "validation_per_cell_type": Spec("int", 1, 0, 100,
                                         help="labelled experiments per cell type held out"),
        "use_unlabelled": Spec("bool", True, help="train on unlabelled wells (mean teacher)"),
        "norm_jitter": Spec("float", 0.1, 0.0, 1.0, help="mean/std factor 1 + j*U(-1,1)"),
        "balance_controls": Spec("bool", True, help="per epoch, each control class gets as "
                                 "many wells as the median siRNA"),
        "workers": Spec("int", 4, 0, 256, help="DataLoader worker processes"),
        "pin_memory": Spec("bool", True),
    },
    "model": {
        "names": Spec("list[str]", ["xception", "xception_wide"],
                      help="one or two backbones (ensemble)"),
        "head": Spec("str", "arcface", choices=("arcface", "softmax")),
        "arcface_s": Spec("float", 30.0, 0.0, 1000.0,
                          help="ArcFace scale; 0 = sqrt(2) ln(K - 1) (AdaCos' fixed rule)"),
        "arcface_m": Spec("float", 0.1, 0.0, 1.5),
        "width": Spec("float", 0.0, 0.0, 4.0, help="backbone width multiplier; 0 = model default"),
        "middle_blocks": Spec("int", -1, -1, 64, help="Xception middle blocks; -1 = default"),
        "first_stride": Spec("int", 0, 0, 4, help="Xception stem stride; 0 = default (2)"),
        "first_kernel": Spec("int", 0, 0, 15, help="Xception first conv size; 0 = default (7)"),
        "pretrained_file": Spec("str", "", help="local ImageNet weights for the first model"),
        "epochs": Spec("int", 160, 1, 100000, help="shared-stage epochs"),
        "batch_size": Spec("int", 64, 1, 65536, help="global batch (split over DDP ranks)"),
        "eval_batch_size": Spec("int", 128, 1, 65536),
    },
    "optim": {
        "name": Spec("str", "adam", choices=("adam", "adamw", "sgd")),
        "weight_decay": Spec("float", 2e-4, 0.0, 1.0),
        "lr_values": Spec("list[float]", [3e-4, 1e-4, 1e-5], help="piecewise-constant LR"),
        "lr_milestones": Spec("list[int]", [100, 140], help="epochs where the LR switches"),
        "momentum": Spec("float", 0.9, 0.0, 1.0, help="SGD only"),
    },
    "augment": {
        "flip": Spec("float", 0.5, 0.0, 1.0, help="p of h flip and of v flip"),
        "rot90": Spec("float", 0.5, 0.0, 1.0),
        "shift_scale": Spec("float", 0.5, 0.0, 1.0),
        "shift_scale_limit": Spec("float", 0.1, 0.0, 0.5),
        "erase": Spec("float", 0.5, 0.0, 1.0),
        "erase_area": Spec("list[float]", [0.02, 0.4]),
        "teacher_crop": Spec("list[float]", [0.8, 0.99], help="harder teacher view: crop fraction"),
    },
    "mean_teacher": {
        "enabled": Spec("bool", True),
        "alphas": Spec("list[float]", [0.5, 0.9, 0.99, 0.999]),
        "alpha_epochs": Spec("list[int]", [1, 10, 20], help="last epoch (1-based) of each alpha"),
        "consistency_weight": Spec("float", 100.0, 0.0, 1e6),
        "rampup_epochs": Spec("float", 5.0, 0.0, 1e4),
        "reference_classes": Spec("int", 1139, 0, 10**7, help="the consistency weight is "
                                  "scaled by K / this (paper: 1,139 classes); 0 = no scaling"),
        "reference_steps_per_epoch": Spec("int", 0, 0, 10**9, help="alphas are rescaled "
                                          "from epochs of this many steps; 0 = as given"),
    },
    "pseudo_labels": {
        "enabled": Spec("bool", True),
        "weight": Spec("float", 0.05, 0.0, 1.0),
        "old_weight": Spec("float", 0.1, 0.0, 1.0, help="logits <- old*prev + (1-old)*new"),
        "start_epoch": Spec("int", 20, 1, 100000, help="first shared-stage epoch (1-based) "
                            "whose teachers make pseudo labels"),
    },
    "finetune": {
        "enabled": Spec("bool", True),
        "epochs": Spec("int", 85, 0, 100000, help="per cell type unless listed below"),
        "epochs_by_cell_type": Spec("table[int]", {"U2OS": 165, "RPE": 85, "HEPG2": 85,
                                                   "HUVEC": 45}),
        "optimizer": Spec("str", "sgd", choices=("adam", "adamw", "sgd")),
        "lr": Spec("float", 0.1, 0.0, 10.0),
        "lr_min": Spec("float", 1e-3, 0.0, 10.0),
        "cycles": Spec("int", 4, 1, 1000),
        "momentum": Spec("float", 0.0, 0.0, 1.0),
        "tail_epochs": Spec("int", 5, 0, 100000),
        "tail_lr": Spec("float", 1e-4, 0.0, 10.0),
    },
    "runtime": {
        "device": Spec("str", "auto", choices=("auto", "cpu", "cuda")),
        "seed": Spec("int", 0, 0, 2**31 - 1),
        "amp": Spec("bool", True, help="bf16 autocast on CUDA"),
        "channels_last": Spec("bool", True, help="on CUDA"),
        "progress_every_s": Spec("float", 2.0, 0.0, 3600.0),
        "threads": Spec("int", 0, 0, 1024, help="torch CPU threads; 0 = torch default"),
        "max_steps_per_epoch": Spec("int", 0, 0, 10**9, help="0 = full epochs (benchmarks)"),
    },
}


def defaults() -> dict[str, dict[str, Any]]:
    return {sec: {k: copy.deepcopy(s.default) for k, s in keys.items()}
            for sec, keys in SCHEMA.items()}


def _spec(key: str) -> Spec:
    section, _, name = key.partition(".")
    if section not in SCHEMA:
        raise ConfigError(f"{key}: unknown section {section!r} "
                          f"(known: {', '.join(SCHEMA)})")
    if name not in SCHEMA[section]:
        raise ConfigError(f"{key}: unknown key (known in [{section}]: "
                          f"{', '.join(SCHEMA[section])})")
    return SCHEMA[section][name]


def _check_number(key: str, spec: Spec, value: float) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    if spec.lo is not None and value < spec.lo:
        raise ConfigError(f"{key}: {value!r} is out of range (minimum {spec.lo:g})")
    if spec.hi is not None and value > spec.hi:
        raise ConfigError(f"{key}: {value!r} is out of range (maximum {spec.hi:g})")


def coerce(key: str, value: Any) -> Any:
    """Check ``value`` (from TOML) against the key's spec; returns the clean value."""
    spec = _spec(key)
    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        _check_number(key, spec, value)
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        _check_number(key, spec, float(value))
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        if spec.choices and value not in spec.choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(spec.choices)}")
        return value
    if kind.startswith("list["):
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = kind[5:-1]
        out = []
        for i, item in enumerate(value):
            ok = {
                "int": isinstance(item, int) and not isinstance(item, bool),
                "float": isinstance(item, int | float) and not isinstance(item, bool),
                "str": isinstance(item, str),
            }[inner]
            if not ok:
                what = {"int": "an integer", "float": "a number", "str": "a string"}[inner]
                raise ConfigError(f"{key}[{i}]: expected {what}, got {item!r}")
            out.append(float(item) if inner == "float" else item)
        return out
    if kind == "table[int]":
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        out_t = {}
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"{key}.{k}: expected a non-negative integer, got {v!r}")
            out_t[str(k)] = v
        return out_t
    raise AssertionError(kind)


def _check_cross(cfg: dict[str, dict[str, Any]]) -> None:
    """Rules that involve several keys."""
    names = cfg["model"]["names"]
    if not 1 <= len(names) <= 4:
        raise ConfigError(f"model.names: expected one to four model names, got {names!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"model.names: duplicate names in {names!r}")
    lrs, ms = cfg["optim"]["lr_values"], cfg["optim"]["lr_milestones"]
    if len(lrs) != len(ms) + 1:
        raise ConfigError(f"optim.lr_values: expected {len(ms) + 1} values "
                          f"(one more than optim.lr_milestones), got {len(lrs)}")
    if any(b <= a for a, b in itertools.pairwise(ms)):
        raise ConfigError("optim.lr_milestones: must increase")
    mt = cfg["mean_teacher"]
    if len(mt["alphas"]) != len(mt["alpha_epochs"]) + 1:
        raise ConfigError("mean_teacher.alphas: expected one more value than "
                          "mean_teacher.alpha_epochs")
    if any(not 0.0 <= a < 1.0 for a in mt["alphas"]):
        raise ConfigError("mean_teacher.alphas: each alpha must be in [0, 1)")
    for key in ("augment.erase_area", "augment.teacher_crop"):
        sec, name = key.split(".")
        lo_hi = cfg[sec][name]
        if len(lo_hi) != 2 or not 0.0 < lo_hi[0] <= lo_hi[1] <= 1.0:
            raise ConfigError(f"{key}: expected [low, high] with 0 < low <= high <= 1")
    for i, ch in enumerate(cfg["data"]["channels"]):
        if ch < 1:
            raise ConfigError(f"data.channels[{i}]: channel numbers start at 1")


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
    spec = _spec(key)
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # bare word: a string
    if spec.kind == "float" and isinstance(value, str):
        raise ConfigError(f"{key}: expected a number, got {raw!r}")
    if spec.kind == "int" and isinstance(value, str):
        raise ConfigError(f"{key}: expected an integer, got {raw!r}")
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


def resolve(preset: str | None = "tiny", config_file: str | Path | None = None,
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
