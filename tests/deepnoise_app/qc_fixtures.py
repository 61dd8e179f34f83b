"""A score folder for the small test screen: per-plate reports and well profiles written
by the engine's own writers (embeddings planted: each experiment apart in the map)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepnoise_engine.report.plate_report import plate_report_name, write_plate_report
from deepnoise_engine.report.profiles import well_metadata, write_profiles


def write_score_folder(screen, out: Path, prediction_frame, *, confidence=None,
                       wrong=frozenset(), changed=frozenset()) -> Path:
    ids = []
    for plate in screen.plates():
        frame = prediction_frame(plate, (confidence or {}).get(plate.key),
                                 wrong=wrong, changed=changed)
        write_plate_report(frame, out / plate_report_name(plate.experiment, plate.index))
        ids += [w.id_code for w in plate.used_wells()]
    meta = well_metadata(screen, ids, {}, {i: 2 for i in ids})
    rng = np.random.default_rng(0)
    exp_codes = meta["Metadata_Experiment"].factorize()[0]
    emb = rng.normal(size=(len(ids), 8)).astype(np.float32)
    emb[np.arange(len(ids)), exp_codes] += 12.0  # experiments far apart: PCA separates them
    names = [f"Image_Intensity_{s}_Ch{c}" for s in ("Mean", "Std") for c in range(1, 7)]
    pixels = rng.normal(size=(len(ids), len(names)))
    classes = [str(i) for i in range(4)]
    lp = np.log(np.full((len(ids), 4), 0.25, np.float32))
    member2 = lp.copy()
    member2[-5:, 1] = 0.0  # the second model calls class 1 for the last five wells
    write_profiles(out, meta, log_probs=lp, classes=classes,
                   embeddings={"ensemble": emb, "a": emb, "b": emb}, pixels=(pixels, pixels, names),
                   model_log_probs={"a": lp, "b": member2})
    return out
