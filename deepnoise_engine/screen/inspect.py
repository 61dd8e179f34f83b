"""``summarize_screen``: what ``inspect`` prints, as one JSON-safe dict (docs/screens.md)."""

from __future__ import annotations

from collections import Counter

from deepnoise_engine.screen.model import Plate, Problem, Screen, WellType


def summarize_screen(screen: Screen, *, max_problems: int | None = 20) -> dict:
    """Experiments, plates, sites, channels, classes and problems of ``screen``.

    ``problems.items`` holds ``max_problems`` problems (all when None), taken in turn from
    each kind so that a few rare problems are not hidden behind thousands of missing
    images; ``problems.by_kind`` always counts every one.
    """
    experiments = []
    totals: Counter[str] = Counter()
    site_indices: set[int] = set()
    for exp in screen.experiments.values():
        plates = []
        for index in sorted(exp.plates):
            plates.append(_plate_summary(exp.plates[index], totals, site_indices))
        experiments.append(
            {
                "name": exp.name,
                "cell_type": exp.cell_type,
                "split": exp.split,
                "batch": exp.batch,
                "labelled": exp.labelled,
                "plates": plates,
            }
        )
    by_kind = Counter(p.kind for p in screen.problems)
    shown = _pick_problems(screen.problems, max_problems)
    return {
        "root": str(screen.root),
        "name": screen.name,
        "layout": screen.layout,
        "channels": list(screen.channels),
        "channel_names": [screen.channel_name(c) for c in screen.channels],
        "image_size": list(screen.image_size) if screen.image_size else None,
        "site_indices": sorted(site_indices),
        "cell_types": screen.cell_types(),
        "counts": {
            "experiments": len(screen.experiments),
            "train_experiments": sum(e.split == "train" for e in screen.experiments.values()),
            "test_experiments": sum(e.split == "test" for e in screen.experiments.values()),
            "plates": sum(len(e.plates) for e in screen.experiments.values()),
            "wells": sum(totals[t.value] for t in WellType),
            "sites": totals["sites"],
            "usable_sites": totals["usable_sites"],
            "classes": len(screen.classes()),
        },
        "wells_by_type": {t.value: totals[t.value] for t in WellType},
        "experiments": experiments,
        "problems": {
            "total": len(screen.problems),
            "by_kind": dict(by_kind.most_common()),
            "items": [p.to_dict() for p in shown],
        },
    }


def _plate_summary(plate: Plate, totals: Counter[str], site_indices: set[int]) -> dict:
    """One plate's entry; its well and site counts are added to ``totals``."""
    sites = [s for w in plate.wells.values() for s in w.sites]
    site_indices.update({s.index for s in sites})
    usable = sum(not s.problems for s in sites)  # Site.ok, without the call
    counts = plate.well_counts()
    totals.update(counts)
    totals["sites"] += len(sites)
    totals["usable_sites"] += usable
    return {
        "index": plate.index,
        "name": plate.name,
        "format": {
            "wells": plate.format.well_count,
            "rows": plate.format.rows,
            "columns": plate.format.columns,
        },
        "wells": counts,
        "used_wells": len(plate.wells),
        "sites": len(sites),
        "usable_sites": usable,
        "site_problems": sum(len(s.problems) for s in sites),
    }


def _pick_problems(problems: list[Problem], limit: int | None) -> list[Problem]:
    """Up to ``limit`` problems, round-robin over kinds, kept in their original order."""
    if limit is None or len(problems) <= limit:
        return list(problems)
    by_kind: dict[str, list[int]] = {}
    for i, problem in enumerate(problems):
        indices = by_kind.setdefault(problem.kind, [])
        if len(indices) < limit:
            indices.append(i)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for indices in by_kind.values():
            if depth < len(indices) and len(chosen) < limit:
                chosen.append(indices[depth])
        depth += 1
    return [problems[i] for i in sorted(chosen)]


def _wells_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {kind}" for kind, n in counts.items() if n)


def format_summary(summary: dict) -> str:
    """Human-readable text of a ``summarize_screen`` dict."""
    c = summary["counts"]
    size = summary["image_size"]
    channels = summary.get("channel_names") or [f"w{ch}" for ch in summary["channels"]]
    lines = [
        f"Screen {summary['root']} ({summary['layout']} layout)",
        f"  experiments: {c['experiments']} ({c['train_experiments']} train, "
        f"{c['test_experiments']} test); cell types: {', '.join(summary['cell_types'])}",
        f"  plates: {c['plates']}; wells: {c['wells']:,} ({_wells_text(summary['wells_by_type'])})",
        f"  sites: {c['sites']:,} ({c['usable_sites']:,} usable); site numbers: "
        f"{', '.join(map(str, summary['site_indices'])) or '-'}",
        f"  channels: {len(channels)} ({', '.join(channels) or '-'}); "
        f"image size: {f'{size[0]}x{size[1]}' if size else 'unknown'}; classes: {c['classes']:,}",
        "",
        "Experiments:",
    ]
    for exp in summary["experiments"]:
        lines.append(
            f"  {exp['name']}  cell type {exp['cell_type']}  split {exp['split']}  "
            f"batch {exp['batch']}  plates {len(exp['plates'])}"
        )
        for plate in exp["plates"]:
            fmt = plate["format"]
            named = f" ({plate['name']})" if plate.get("name") else ""
            lines.append(
                f"    plate {plate['index']}{named}: {fmt['wells']}-well "
                f"({fmt['rows']}x{fmt['columns']}), "
                f"{plate['used_wells']} wells ({_wells_text(plate['wells'])}), "
                f"{plate['sites']} sites ({plate['usable_sites']} usable)"
            )
    problems = summary["problems"]
    checked = ("" if summary.get("verified") is not False else
               " (images not decoded: `inspect --verify` decodes them)")
    lines += ["", f"Problems: {problems['total']:,}{checked}"]
    for kind, count in problems["by_kind"].items():
        lines.append(f"  {kind}: {count:,}")
    if problems["items"]:
        more = problems["total"] - len(problems["items"])
        lines.append(f"Some of each kind ({len(problems['items'])}):" if more else "All:")
        for item in problems["items"]:
            where = item["file"] or ""
            if item["row"] is not None:
                where += f", row {item['row']}"
            lines.append(f"  [{item['kind']}] {where}: {item['message']}")
        if more:
            lines.append(f"  ... and {more:,} more (--json lists all)")
    return "\n".join(lines)
