"""The parameters of every request the engine serves (docs/protocol.md, "Requests").

One pydantic model per request type. Models are strict (no coercion: ``"3"`` is not an
integer, ``true`` is not 1) and forbid unknown parameters. An optional parameter sent as
``null`` means "use the default": :class:`Params` drops such nulls before validation,
so a field's default applies. A default of ``None`` means "the step's own default".
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deepnoise_engine.contract.choices import TTA, Balance, Device

#: A finite number (JSON has no NaN/Infinity, but Python's json module reads them).
Number = float


class Params(BaseModel):
    """Base of every request's parameters."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        """Drop optional parameters given as ``null`` (a required one stays, and fails)."""
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {
            k: v for k, v in data.items()
            if v is not None or k not in fields or fields[k].is_required()
        }

    def given(self, *names: str) -> dict[str, Any]:
        """The named parameters that were given (not null), as keyword arguments."""
        values = self.model_dump()
        return {k: values[k] for k in names if values.get(k) is not None}


# --- quick requests -------------------------------------------------------------------


class HelloParams(Params):
    """``hello``: no parameters."""


class ListJobsParams(Params):
    """``list_jobs``: no parameters."""


class DescribeModelParams(Params):
    """``describe_model``: a train run folder or a checkpoint."""

    path: str


class InspectParams(Params):
    """``inspect``: a screen folder; ``max_problems < 0`` lists every problem."""

    data: str
    check_images: bool = True
    max_problems: int = 20


class CancelParams(Params):
    """``cancel``: the engine's job id."""

    job: str


class ShutdownParams(Params):
    """``shutdown``: seconds to wait for running work to stop."""

    wait_s: Number = Field(10.0, allow_inf_nan=False)


class EchoParams(Params):
    """``echo`` (diagnostic): answers its parameters."""

    payload: Any = None


class PresetsParams(Params):
    """``presets``: no parameters."""


class ConfigDefaultsParams(Params):
    """``config_defaults``: no parameters."""


class CheckConfigParams(Params):
    """``check_config``: the configuration a ``train`` request would resolve."""

    preset: str | None = None
    config_file: str | None = None
    overrides: list[str] | None = None


class DefaultSplitParams(Params):
    """``default_split``: a screen folder."""

    data: str


# --- job requests ---------------------------------------------------------------------


class PackParams(Params):
    """``pack``: a screen, and the cache folder (default: next to the screen)."""

    data: str
    out: str | None = None


class MakeDemoParams(Params):
    """``make_demo``: the synthetic screen's folder and options (docs/synthetic.md)."""

    out: str
    seed: int | None = None
    cell_types: list[str] | None = None
    train_experiments_per_cell_type: int | None = None
    test_experiments_per_cell_type: int | None = None
    plates_per_experiment: int | None = None
    plate_format: int | None = None
    sirnas_per_plate: int | None = None
    positive_controls: int | None = None
    image_size: int | None = None
    sites: int | None = None
    channels: int | None = None
    missing_wells: int | None = None
    overwrite: bool | None = None


class TrainParams(Params):
    """``train``: a screen and a new run folder; preset, config file and overrides."""

    data: str
    out: str
    preset: str | None = None
    config_file: str | None = None
    overrides: list[str] | None = None
    device: Device | None = None


class ResumeParams(Params):
    """``resume``: a run folder (and its screen unless run.json records it)."""

    out: str
    data: str | None = None
    device: Device | None = None


class ScoreParams(Params):
    """``score``: a screen, models (run folders or checkpoints) and an output folder."""

    data: str
    models: list[str]
    out: str
    plates: list[str] | None = None
    balance: Balance | None = None
    tta: TTA | None = None
    submission: str | None = None
    overwrite: bool | None = None
    batch_size: int | None = None
    device: Device | None = None

    @field_validator("tta", mode="before")
    @classmethod
    def _tta_is_no_bool(cls, value: Any) -> Any:
        """A Literal of integers would take ``true`` for 1; JSON booleans are no numbers."""
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        return value


class ExportParams(Params):
    """``export``: a score folder's reports copied to ``out``."""

    score_dir: str
    out: str
    plates: list[str] | None = None
    submission: bool | None = None
    figures: bool | None = None
    overwrite: bool | None = None


class QcParams(Params):
    """``qc``: a score folder with profiles (docs/qc.md)."""

    score_dir: str
    out: str | None = None
    overwrite: bool | None = None
    block: int | None = None
    seed: int | None = None


class SleepParams(Params):
    """``sleep`` (diagnostic): cancellable steps that report progress and may fail."""

    seconds: Number = Field(1.0, allow_inf_nan=False)
    steps: int = 10
    fail: Literal["error", "out_of_memory", "cuda_out_of_memory", "screen"] | None = None
    say: str | None = None


#: Quick requests: answered at once with one ``result`` (or ``error``).
QUICK_REQUESTS: dict[str, type[Params]] = {
    "hello": HelloParams,
    "list_jobs": ListJobsParams,
    "describe_model": DescribeModelParams,
    "inspect": InspectParams,
    "cancel": CancelParams,
    "shutdown": ShutdownParams,
    "presets": PresetsParams,
    "config_defaults": ConfigDefaultsParams,
    "check_config": CheckConfigParams,
    "default_split": DefaultSplitParams,
    "echo": EchoParams,
}

#: Job requests: answered ``accepted``, then run one at a time in the job queue.
JOB_REQUESTS: dict[str, type[Params]] = {
    "pack": PackParams,
    "make_demo": MakeDemoParams,
    "train": TrainParams,
    "resume": ResumeParams,
    "score": ScoreParams,
    "export": ExportParams,
    "qc": QcParams,
    "sleep": SleepParams,
}

#: Diagnostic requests (tests, health checks): served, never listed in ``hello``.
DIAGNOSTIC_REQUESTS = frozenset({"echo", "sleep"})
