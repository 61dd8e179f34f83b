"""What a run skipped and why: metadata rows, sites and wells left out, counted by reason.

Training and scoring put this into their log and into ``run.json`` / ``summary.json``
(``"skipped"``), so a model or a report never silently rests on less than the screen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from deepnoise_engine.screen.model import Screen

#: Problems listed by name in the report (the counts cover all of them)
EXAMPLES = 10


def skipped_report(screen: Screen, plates: Iterable[tuple[str, int]] | None = None
                   ) -> dict[str, Any]:
    """``{"rows", "sites", "wells", "by_reason", "examples"}`` for ``plates`` (default all).

    ``rows``: metadata problems not tied to a site (rows or whole files dropped); ``sites``:
    sites of the plates with a problem; ``wells``: used wells left without a usable site.
    """
    chosen = None if plates is None else {(str(e), int(p)) for e, p in plates}
    reasons: Counter[str] = Counter()
    examples: list[str] = []
    sites = wells = 0

    def note(problem: Any) -> None:
        reasons[problem.kind] += 1
        if len(examples) < EXAMPLES:
            examples.append(str(problem))

    rows = [p for p in screen.problems if p.site_id is None]
    for problem in rows:
        note(problem)
    for exp, plate, well in screen.wells():
        if chosen is not None and (exp.name, plate.index) not in chosen:
            continue
        bad = [s for s in well.sites if not s.ok]
        sites += len(bad)
        for site in bad:
            note(site.problems[0])
        if well.sites and len(bad) == len(well.sites):
            wells += 1
    return {"rows": len(rows), "sites": sites, "wells": wells,
            "by_reason": dict(sorted(reasons.items())), "examples": examples}


def describe_skipped(report: dict[str, Any]) -> str:
    """One log line: ``skipped: 3 metadata problems, 12 sites (...), 2 wells ...``."""
    if not (report["rows"] or report["sites"]):
        return "skipped: nothing (every metadata row and site was usable)"
    reasons = ", ".join(f"{k} {v}" for k, v in report["by_reason"].items())
    first = f"; first: {report['examples'][0]}" if report["examples"] else ""
    return (f"skipped: {report['rows']} metadata problem(s), {report['sites']} site(s), "
            f"{report['wells']} well(s) with no usable site ({reasons}){first}; "
            "`deepnoise-engine inspect --verify` lists them all")
