"""Every text the app shows about a plate, a well and its call (Qt-free), in one place.

The plate map's title and tooltips, the well viewer's header and canvas caption, the
mosaic's caption and status and the screen browser's tooltips all name plates, wells and
calls with these functions, so they say the same thing the same way.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from deepnoise_app.models.predictions import WellPrediction
from deepnoise_engine.screen.model import Plate, Well

MAX_TOOLTIP_PROBLEMS = 6  # problem lines in a well's tooltip
CAPTION_CHAR_PX = 8.5  # the canvas caption font's average character width


def plate_names(plate: Plate) -> tuple[str, str, str]:
    """A plate's names, longest first: 'HEPG2-03 plate 1', 'Plate 1', 'P1'."""
    return (f"{plate.experiment} plate {plate.index}", f"Plate {plate.index}",
            f"P{plate.index}")


def plate_name(plate: Plate) -> str:
    """'HEPG2-03 plate 1'."""
    return plate_names(plate)[0]


def fitting_plate_name(plate: Plate, fits: Callable[[str], bool]) -> str:
    """The longest of the plate's names that ``fits`` (else the shortest)."""
    return next((name for name in plate_names(plate) if fits(name)), plate_names(plate)[-1])


def kind_text(kind: str) -> str:
    """'positive_control' -> 'positive control'."""
    return kind.replace("_", " ")


def format_text(plate: Plate) -> str:
    """'8 x 12'."""
    return f"{plate.format.rows} x {plate.format.columns}"


def well_counts_text(counts: dict[str, int]) -> str:
    """'12 treatment, 2 positive control' (kinds with wells only)."""
    return ", ".join(f"{n} {kind_text(k)}" for k, n in counts.items() if n)


def plate_map_title(plate: Plate) -> str:
    """The plate map dock's one-line title (rich text)."""
    return f"<b>{plate_name(plate)}</b> - {format_text(plate)}, {len(plate.wells)} wells used"


def plate_map_title_tooltip(plate: Plate) -> str:
    """The title's tooltip: used wells by type."""
    counts = plate.well_counts()
    return (f"{plate.key}: {len(plate.wells)} of {plate.format.well_count} wells used: "
            f"{counts['treatment']} treatment, {counts['positive_control']} positive control, "
            f"{counts['negative_control']} negative control")


def correct_word(correct: bool | None) -> str | None:
    """'right', 'wrong', or None when the truth is unknown."""
    return None if correct is None else ("right" if correct else "wrong")


def true_sirna(well: Well, prediction: WellPrediction | None) -> str | None:
    """The well's true siRNA: the screen's label, else the report's."""
    if well.sirna is not None:
        return well.sirna
    return prediction["sirna_true"] if prediction is not None else None


def site_problem_lines(well: Well) -> list[str]:
    """'site 2: missing channel w5' for each problem of the well's sites."""
    return [f"site {s.index}: {p.message}" for s in well.sites for p in s.problems]


def well_problems(well: Well) -> list[str]:
    """Problems of a well's sites as readable lines (empty when all is well)."""
    return [*site_problem_lines(well), *([] if well.sites else ["no sites"])]


def _call_lines(prediction: WellPrediction | None, mode: str) -> list[str]:
    """The tooltip's lines about the call."""
    if prediction is None or prediction["sirna"] is None:
        return ["predicted: -"]
    word = correct_word(prediction["correct"])
    conf = prediction["confidence"]
    conf_text = f", confidence {conf:.2f}" if conf is not None else ""
    lines = [f"predicted ({mode}): {prediction['sirna']}{conf_text}"
             + (f" ({word})" if word else "")]
    if prediction["top"]:
        lines.append("top-3: " + ", ".join(f"{s} {p:.2f}" for s, p in prediction["top"][:3]))
    if prediction["changed"]:
        lines.append("changed by balancing")
    return lines


def well_tooltip(plate: Plate, well: Well | None, name: str,
                 prediction: WellPrediction | None, mode: str) -> str:
    """Tooltip: well, type, true and predicted siRNA, confidence, top-3, problems."""
    if well is None:
        return f"{plate.key} {name}: not used"
    truth = true_sirna(well, prediction)
    lines = [f"{plate.key} {name} - {kind_text(well.well_type.value)}",
             f"true siRNA: {truth if truth is not None else 'unknown'}",
             *_call_lines(prediction, mode)]
    problems = well_problems(well)
    if problems:
        lines.append("problems:")
        lines.extend(f"  {p}" for p in problems[:MAX_TOOLTIP_PROBLEMS])
        if len(problems) > MAX_TOOLTIP_PROBLEMS:
            lines.append(f"  ... {len(problems) - MAX_TOOLTIP_PROBLEMS} more")
    return "\n".join(lines)


def well_caption(plate: Plate | None, well: Well | None,
                 prediction: WellPrediction | None) -> str:
    """The canvas caption: the plate and well, its type, the call and the truth."""
    if well is None or plate is None:
        return ""
    text = f"{plate_name(plate)} {well.name} ({kind_text(well.well_type.value)})"
    if prediction is not None and prediction["sirna"] is not None:
        conf = prediction["confidence"]
        text += f"  predicted {prediction['sirna']}"
        if conf is not None:
            text += f" ({conf:.2f})"
        word = correct_word(prediction["correct"])
        if word:
            text += f"  {word}"
    truth = true_sirna(well, prediction)
    if truth is not None:
        text += f"  true {truth}"
    return text


def missing_channels_suffix(missing: dict[int, str]) -> str:
    """'  |  missing w3, w5' for the caption ('' when none is missing)."""
    if not missing:
        return ""
    return "  |  missing " + ", ".join(f"w{c}" for c in sorted(missing))


def well_header(well: Well, shown: list[int]) -> str:
    """The well viewer dock's header: the well and the sites on the canvas (rich text)."""
    return f"<b>{well.name}</b> - site(s) {', '.join(str(s) for s in shown) or 'none'}"


def well_messages(well: Well, missing: dict[int, str], shown: list[int]) -> list[str]:
    """The well viewer's message lines: no such site, missing channels, site problems."""
    lines = [] if shown else [f"{well.name} has no such site."]
    lines += [f"w{channel} missing: {reason}" for channel, reason in sorted(missing.items())]
    return lines + site_problem_lines(well)[:4]


def mosaic_caption(plate: Plate, n_wells: int) -> str:
    """The canvas caption while the mosaic is shown."""
    return f"{plate_name(plate)} - mosaic of {n_wells} wells (first usable site)"


def mosaic_status(plate: Plate, n_wells: int, n_missing: int, seconds: float) -> str:
    """The mosaic dock's line once a plate's mosaic is shown."""
    missing = f", {n_missing} without pixels (striped)" if n_missing else ""
    return (f"{plate.key}: {n_wells} wells{missing} in {seconds:.2f} s. "
            "Click selects, double-click opens.")


def review_details(id_code: str, prediction: WellPrediction | None, why: str) -> str:
    """The review queue's lines about a well: its call (and truth), top-5, the reasons."""
    top = ", ".join(f"{s} {p:.2f}" for s, p in (prediction["top"] if prediction else []))
    call = prediction["sirna"] if prediction else None
    truth = prediction["sirna_true"] if prediction else None
    return (f"{id_code}: call {call}" + (f" (true {truth})" if truth else "")
            + f"\ntop 5: {top or 'none'}\nwhy: {why or 'no flag'}")


def wrap_caption(text: str, width_px: int | None) -> str:
    """``text`` in lines that fit a canvas ``width_px`` wide (napari's text overlay does
    not wrap: a long caption ran off a narrow canvas)."""
    if not width_px or not text.strip():
        return text
    columns = max(16, int((width_px - 20) / CAPTION_CHAR_PX))
    lines = []
    for paragraph in text.split("\n"):
        lines += textwrap.wrap(paragraph, columns, break_long_words=False,
                               break_on_hyphens=False) or [""]
    return "\n".join(lines)
