"""What the screen browser shows of a screen (Qt-free): counts and problems per plate.

Computed once per screen (``screen_summary``), in the opener's worker, so that building
the browser's tree on the event loop is only making the items.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from deepnoise_app.models.captions import well_counts_text
from deepnoise_app.models.screen_cache import PerScreen
from deepnoise_engine.screen.model import Plate, Screen

MAX_TOOLTIP_PROBLEMS = 12
WELL_KINDS = ("treatment", "positive_control", "negative_control")


def plate_problems(plate: Plate) -> list[str]:
    """Problems of a plate's sites as readable lines: 'B02 site 2: missing channel w5'."""
    lines = []
    for well in plate.used_wells():
        if not well.sites:
            lines.append(f"{well.name}: no sites")
        for site in well.sites:
            lines.extend(f"{well.name} site {site.index}: {p.message}" for p in site.problems)
    return lines


def plate_problem_kinds(plate: Plate) -> Counter[str]:
    """How many problems of each kind the plate's sites have."""
    return Counter(p.kind for w in plate.wells.values() for s in w.sites for p in s.problems)


def problem_tooltip(title: str, lines: list[str], kinds: Counter[str] | None = None) -> str:
    """A title, the problem kinds with their counts and the first problem lines."""
    text = [title]
    if kinds:
        text.append(well_counts_text(dict(kinds.most_common())))
    text.extend(lines[:MAX_TOOLTIP_PROBLEMS])
    if len(lines) > MAX_TOOLTIP_PROBLEMS:
        text.append(f"... {len(lines) - MAX_TOOLTIP_PROBLEMS} more")
    return "\n".join(text)


@dataclass(frozen=True)
class PlateSummary:
    """What the browser shows of a plate: used wells by type, sites, problem lines."""

    counts: dict[str, int]
    sites: int
    problems: list[str]
    kinds: Counter[str]


@dataclass(frozen=True)
class ScreenSummary:
    """The browser's view of a screen: per plate, per experiment (labelled or not), and the
    screen's problems that belong to no site (as lines)."""

    plates: dict[str, PlateSummary]
    labelled: dict[str, bool]
    unsited: list[str]


def summarise_screen(screen: Screen) -> ScreenSummary:
    """One pass over every well, site and problem (RxRx1: ~0.2 s)."""
    return ScreenSummary(
        plates={
            plate.key: PlateSummary(plate.well_counts(),
                                    sum(len(w.sites) for w in plate.wells.values()),
                                    plate_problems(plate), plate_problem_kinds(plate))
            for plate in screen.plates()
        },
        labelled={name: exp.labelled for name, exp in screen.experiments.items()},
        unsited=[str(p) for p in screen.problems if not p.site_id],
    )


_SUMMARIES: PerScreen[ScreenSummary] = PerScreen(summarise_screen)


def screen_summary(screen: Screen) -> ScreenSummary:
    """The screen's summary, computed once per screen."""
    return _SUMMARIES.get(screen)


def tpn(counts: Counter[str] | dict[str, int]) -> str:
    """Used wells as 'treatment/positive/negative' (the T/P/N column)."""
    return "/".join(str(counts.get(k, 0)) for k in WELL_KINDS)


def compact(n: int) -> str:
    """Short count for a narrow column: 27088 -> '27k' (the tooltip has the exact count)."""
    return str(n) if n < 10_000 else f"{n // 1000}k"
