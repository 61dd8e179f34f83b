"""Per-channel standardisation ``(x - mean) / std`` with statistics per group of sites.

Modes (method-notes, "Normalisation"):

- ``none``: no data statistics; pixels are only scaled to 0..1 (mean 0, std 255).
- ``global``: one mean/std over all usable sites.
- ``cell_type``, ``experiment``, ``plate``: one mean/std per cell type, experiment, plate.
- ``site``: each site by its own mean/std (the 1st place's per-image standardisation).
- ``controls``: per plate, from the plate's control wells only (falls back to all the
  plate's sites when it has no usable control site; ``fallbacks`` lists those plates).

A group's statistics are the averages of its sites' per-site means and stds (as the
authors did), taken from the pack cache (``site_mean``/``site_std``, flagged rows
skipped). With ``position="ring"`` a site's statistics also carry its plate position's
factors (``position_effects.py``: outer wells dimmer or brighter; one factor for the mean,
one for the std), so that ``(x - mean) / std`` divides the position effect out.
Torch-free: the dataloader asks ``mean_std(rows)`` for a batch and does the arithmetic
itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deepnoise_engine.normalise.position_effects import MODES as POSITION_MODES
from deepnoise_engine.normalise.position_effects import site_factors

MODES = ("none", "global", "cell_type", "experiment", "plate", "site", "controls")
#: Modes whose statistics describe the training data itself and carry over to new data.
PORTABLE_MODES = ("none", "global", "cell_type")
_MIN_STD = 1e-3  # a flat channel must not divide by zero
_NONE_STD = 255.0


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"normalisation mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode


def _field(row: Any, name: str) -> Any:
    try:
        return row[name]
    except (KeyError, IndexError, TypeError):
        raise KeyError(
            f"row has no {name!r} field (needed to find its normalisation group)"
        ) from None


def group_key_of(mode: str, row: Mapping[str, Any]) -> str:
    """Group key of a site row (a ``cache.sites`` row or a dict with the same fields).

    ``global``/``none`` -> ``"global"``; ``cell_type`` -> ``"HEPG2"``; ``experiment`` ->
    ``"HEPG2-01"``; ``plate``/``controls`` -> ``"HEPG2-01/1"``; ``site`` -> the site id.
    """
    _check_mode(mode)
    if mode in ("none", "global"):
        return "global"
    if mode == "cell_type":
        return str(_field(row, "cell_type"))
    if mode == "experiment":
        return str(_field(row, "experiment"))
    if mode in ("plate", "controls"):
        return f"{_field(row, 'experiment')}/{int(_field(row, 'plate'))}"
    return str(_field(row, "site_id"))


class Normalizer:
    """Statistics per group key for one mode; call it as ``normalizer(x, row)``.

    ``stats``: ``{group key: (mean (C,), std (C,))}`` float32 in raw grey levels.
    Bound to the cache it was fitted on (``row`` may be a row index there); after
    ``from_dict`` it works with row mappings, and ``for_cache`` binds it to new data.
    """

    def __init__(
        self,
        mode: str,
        stats: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
        *,
        channels: Sequence[int] | None = None,
        fallbacks: Sequence[str] = (),
        position: str = "none",
    ):
        self.mode = _check_mode(mode)
        if position not in POSITION_MODES:
            raise ValueError(f"position correction {position!r}: expected one of "
                             f"{', '.join(POSITION_MODES)}")
        self.position = position
        #: the factors applied, ``{experiment: {ring: {"mean": [...], "std": [...]}}}``
        self.position_factors: dict[str, Any] = {}
        #: per cache row: (level factors, spread factors), each (n_sites, C)
        self._row_factors: tuple[np.ndarray, np.ndarray] | None = None
        self.channels = list(channels) if channels is not None else None
        self.stats: dict[str, tuple[np.ndarray, np.ndarray]] = {
            str(k): (np.asarray(m, np.float32), np.maximum(np.asarray(s, np.float32), _MIN_STD))
            for k, (m, s) in (stats or {}).items()
        }
        self.fallbacks = list(fallbacks)
        self._cache: Any = None
        self._row_keys: np.ndarray | None = None

    # -- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, cache: Any, mode: str, position: str = "none") -> Normalizer:
        """Statistics for every group of ``cache`` (a ``PackCache``: ``sites``, ``site_mean``,
        ``site_std``), averaging the usable sites' per-site means and stds (divided by
        their position factors with ``position="ring"``)."""
        _check_mode(mode)
        sites = cache.sites
        channels = list(getattr(cache, "channels", [])) or None
        n_channels = cache.site_mean.shape[1]
        stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        fallbacks: list[str] = []
        ok = sites["ok"].to_numpy(bool) & np.isfinite(cache.site_mean).all(axis=1)
        ok &= np.isfinite(cache.site_std).all(axis=1)
        f_mean = f_std = None
        described: dict[str, Any] = {}
        if position == "ring" and mode != "site":
            f_mean, f_std, described = site_factors(cache, ok)
        site_mean = cache.site_mean if f_mean is None else cache.site_mean / f_mean
        site_std = cache.site_std if f_std is None else cache.site_std / f_std
        if mode == "none":
            stats["global"] = (np.zeros(n_channels), np.full(n_channels, _NONE_STD))
        elif mode != "site":
            keys = np.array([group_key_of(mode, r) for r in sites.to_dict("records")], dtype=object)
            use = ok.copy()
            if mode == "controls":
                is_control = sites["well_type"].isin(["positive_control", "negative_control"])
                use &= is_control.to_numpy(bool)
            for key in dict.fromkeys(keys[ok]):  # keys with any usable site, in order
                members = use & (keys == key)
                if not members.any():  # controls mode: no usable control site on this plate
                    members = ok & (keys == key)
                    fallbacks.append(key)
                stats[key] = (
                    site_mean[members].astype(np.float64).mean(axis=0),
                    site_std[members].astype(np.float64).mean(axis=0),
                )
        normalizer = cls(mode, stats, channels=channels, fallbacks=fallbacks, position=position)
        normalizer.position_factors = described
        if f_mean is not None and f_std is not None:
            normalizer._row_factors = (f_mean.astype(np.float32), f_std.astype(np.float32))
        normalizer._bind(cache)
        return normalizer

    def for_cache(self, cache: Any) -> Normalizer:
        """This normaliser for new data (e.g. a checkpoint's normaliser on a scoring screen).

        ``none``/``global``/``cell_type`` keep their (training) statistics and only add
        groups they lack; ``experiment``/``plate``/``site``/``controls`` describe the data
        itself, so they are recomputed from ``cache``.
        """
        fresh = Normalizer.fit(cache, self.mode, self.position)
        if self.mode in PORTABLE_MODES:
            fresh.stats.update(self.stats)
            fresh.channels = self.channels or fresh.channels
        return fresh

    def _bind(self, cache: Any) -> None:
        self._cache = cache
        records = cache.sites.to_dict("records")
        self._row_keys = np.array([group_key_of(self.mode, r) for r in records], dtype=object)

    # -- applying ---------------------------------------------------------------------------
    def _record(self, row: Any) -> Mapping[str, Any]:
        if isinstance(row, (int, np.integer)):
            if self._cache is None:
                raise ValueError("row index given, but this normaliser is not bound to a cache")
            return self._cache.sites.iloc[int(row)]
        return row

    def group_key(self, row: Any) -> str:
        """Group key of ``row`` (a row index of the bound cache, or a row mapping)."""
        if isinstance(row, (int, np.integer)) and self._row_keys is not None:
            return str(self._row_keys[int(row)])
        return group_key_of(self.mode, self._record(row))

    def stats_for(self, row: Any, x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(mean (C,), std (C,))`` float32 for ``row``.

        ``site`` mode uses the cache's statistics of that site, or those of ``x`` when the
        row is not in a bound cache.
        """
        if self.mode == "site":
            if isinstance(row, (int, np.integer)) and self._cache is not None:
                mean = self._cache.site_mean[int(row)]
                std = self._cache.site_std[int(row)]
            elif x is not None:
                flat = np.asarray(x, np.float32).reshape(x.shape[0], -1)
                mean, std = flat.mean(axis=1), flat.std(axis=1)
            else:
                raise ValueError("site mode needs a cache row index or the pixels")
            if not (np.isfinite(mean).all() and np.isfinite(std).all()):
                raise ValueError(f"row {row}: flagged site (ok=False) has no statistics")
            return mean.astype(np.float32), np.maximum(std, _MIN_STD).astype(np.float32)
        key = self.group_key(row)
        try:
            mean, std = self.stats[key]
        except KeyError:
            raise KeyError(
                f"no {self.mode} normalisation statistics for group {key!r} "
                f"(fit on this data, or use for_cache(cache))"
            ) from None
        if self._row_factors is not None and isinstance(row, (int, np.integer)):
            return mean * self._row_factors[0][int(row)], std * self._row_factors[1][int(row)]
        return mean, std

    def mean_std(self, rows: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Statistics for a batch of rows -> ``(mean (N, C), std (N, C))`` float32.

        The torch dataloader normalises a batch ``(N, C, H, W)`` with
        ``(x - mean[..., None, None]) / std[..., None, None]``.
        """
        pairs = [self.stats_for(r) for r in rows]
        if not pairs:
            n = len(self.channels or [])
            return np.zeros((0, n), np.float32), np.zeros((0, n), np.float32)
        return (
            np.stack([p[0] for p in pairs]).astype(np.float32),
            np.stack([p[1] for p in pairs]).astype(np.float32),
        )

    def __call__(self, x: np.ndarray, row: Any) -> np.ndarray:
        """``(C, H, W)`` pixels of ``row`` -> normalised float32 ``(C, H, W)``."""
        mean, std = self.stats_for(row, x)
        x = np.asarray(x, np.float32)
        if x.ndim != 3 or x.shape[0] != mean.shape[0]:
            raise ValueError(
                f"expected (C, H, W) with C={mean.shape[0]}, got shape {tuple(x.shape)}"
            )
        return (x - mean[:, None, None]) / std[:, None, None]

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-safe ``{"mode", "channels", "groups": {key: {"mean", "std"}}, "fallbacks"}``."""
        return {
            "version": 1,
            "mode": self.mode,
            "channels": self.channels,
            "groups": {
                k: {"mean": [float(v) for v in m], "std": [float(v) for v in s]}
                for k, (m, s) in self.stats.items()
            },
            "fallbacks": list(self.fallbacks),
            "position": self.position,
            "position_factors": self.position_factors,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalizer:
        try:
            groups = data.get("groups", {})
            stats = {k: (np.array(g["mean"]), np.array(g["std"])) for k, g in groups.items()}
            return cls(
                data["mode"],
                stats,
                channels=data.get("channels"),
                fallbacks=data.get("fallbacks", ()),
                position=data.get("position", "none"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a normaliser description: {exc}") from exc

    def __repr__(self) -> str:
        return (f"Normalizer(mode={self.mode!r}, groups={len(self.stats)}, "
                f"position={self.position!r})")
