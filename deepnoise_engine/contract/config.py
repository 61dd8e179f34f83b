"""Answers of the configuration requests (``presets``, ``config_defaults``,
``check_config``) and of ``default_split``.

A configuration is ``{section: {key: value}}`` (docs/training.md); its rules live in
``deepnoise_engine.train.config``, the app asks the engine for them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

Configuration = dict[str, dict[str, Any]]

#: The preset a train request uses when it names none (runs in minutes on a CPU).
DEFAULT_PRESET = "tiny"


class Answer(BaseModel):
    """Base of these answers: extra fields a newer engine adds are kept."""

    model_config = ConfigDict(extra="allow")


class PresetsAnswer(Answer):
    """``presets``: names (the default first) and each preset's resolved configuration."""

    default: str
    names: list[str]
    presets: dict[str, Configuration]


class ConfigDefaultsAnswer(Answer):
    """``config_defaults``: the schema's defaults and the allowed choices of keys."""

    config: Configuration
    choices: dict[str, list[str]]


class CheckConfigAnswer(Answer):
    """``check_config``: the configuration a train request would run with.

    A configuration that is not valid is answered with an error ``config_error`` whose
    message begins with the key (``model.epochs: expected an integer ...``).
    """

    config: Configuration


class DefaultSplitAnswer(Answer):
    """``default_split``: the experiments a train request validates on by default."""

    validation_experiments: list[str]
    per_cell_type: int
