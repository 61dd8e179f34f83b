"""A score folder's files as one set: staged, moved into place, then ``manifest.json``.

A scoring run renders every file in memory, checks the free space, writes them into a
hidden staging folder inside ``out`` (a full disk stops here and changes nothing), marks
``manifest.json`` ``"status": "writing"``, moves the files into place (renames need no
space) and finally rewrites ``manifest.json`` with ``"status": "complete"`` and every
file's size and SHA-256. A reader trusts a folder only when the manifest says complete
and the files match it (``check_score_folder``); a killed run leaves ``writing``, which
readers refuse and the next run replaces without ``--overwrite``. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deepnoise_engine.atomic_io import atomic_write_bytes, atomic_write_text, temp_token
from deepnoise_engine.disk_space import DiskFullError, ensure_free, is_disk_full
from deepnoise_engine.faults import fault_point
from deepnoise_engine.report.io import OutputExistsError, ReportError

MANIFEST = "manifest.json"
FORMAT = "deepnoise-score-set"
_STAGING_PREFIX = ".score-staging-"


class PartialOutputError(ReportError):
    """A score folder whose run did not finish (or whose files changed since)."""

    kind = "partial_output"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, None when it has none; ``PartialOutputError`` when unreadable."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PartialOutputError(f"{path}: unreadable manifest ({exc}); run score into "
                                 "this folder again") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PartialOutputError(f"{path}: not a DeepNoise score manifest")
    return doc


def check_score_folder(folder: Path) -> list[str] | None:
    """The file names of a complete score set, None for a folder without a manifest
    (written before manifests existed, or by hand). Raises ``PartialOutputError`` naming
    the folder when the set is partial or its files changed after the run."""
    folder = Path(folder)
    doc = read_manifest(folder)
    if doc is None:
        return None
    if doc.get("status") != "complete":
        raise PartialOutputError(
            f"{folder}: partial score folder (the scoring run stopped while writing it); "
            "run score into this folder again: no --overwrite is needed"
        )
    files = doc.get("files") or {}
    for name, info in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != info.get("bytes"):
            raise PartialOutputError(
                f"{path}: missing or changed since the scoring run wrote it "
                "(see manifest.json); run score again with --overwrite"
            )
    return list(files)


def add_to_score_set(folder: Path, files: dict[str, bytes], source: str) -> list[Path]:
    """Add ``files`` (name -> content, e.g. an earlier folder's plate reports) to the
    complete score set in ``folder``: each written atomically, then the manifest lists them
    (``"added_from"`` says where from). A folder without a manifest just gets the files."""
    folder = Path(folder)
    doc = read_manifest(folder)
    if doc is not None and doc.get("status") != "complete":
        raise PartialOutputError(f"{folder}: partial score folder; cannot add files to it")
    written = [atomic_write_bytes(folder / name, data) for name, data in files.items()]
    if doc is not None and files:
        for name, data in files.items():
            doc["files"][name] = {"bytes": len(data),
                                  "sha256": hashlib.sha256(data).hexdigest()}
        doc.setdefault("added_from", []).append({"source": source, "files": sorted(files)})
        written.append(atomic_write_text(folder / MANIFEST, json.dumps(doc, indent=1) + "\n"))
    return written


def _partial_listed(out: Path) -> set[Path]:
    """Files named by an unfinished manifest in ``out``: a re-run may replace them."""
    try:
        doc = read_manifest(out)
    except PartialOutputError:
        return set()
    if doc is None or doc.get("status") == "complete":
        return set()
    names = [*(doc.get("files") or {}), MANIFEST]
    copies = [Path(p) for p in doc.get("copies") or []]
    return {(out / n).resolve() for n in names} | {p.resolve() for p in copies}


def check_outputs(out: Path, names: Iterable[str], copies: Iterable[Path],
                  overwrite: bool) -> None:
    """Before any work: ``out`` must be a folder (or creatable), the copies must not be
    one of the set's own files (a copy onto the set's own file is dropped by the caller),
    and no file may exist unless ``overwrite`` or it belongs to an unfinished run here."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out}: exists and is not a folder; choose another --out")
    for target in [out, *copies]:
        probe = Path(target).absolute()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if probe.is_dir() and not os.access(probe, os.W_OK | os.X_OK):
            raise ReportError(f"{target}: cannot write in {probe} (permission denied); "
                              "choose another path")
    own = {(out / n).resolve(): n for n in [*names, MANIFEST]}
    for copy in copies:
        if copy.is_dir():
            raise ReportError(f"{copy}: is a folder; give a file name for --submission")
        if copy.resolve() in own:
            raise ReportError(f"{copy}: is the run's own {own[copy.resolve()]}; give "
                              "--submission a path outside the set's files")
    if overwrite:
        return
    replaceable = _partial_listed(out)
    targets = [out / n for n in [*names, MANIFEST]] + list(copies)
    taken = [p for p in targets if p.exists() and p.resolve() not in replaceable]
    if taken:
        raise OutputExistsError(taken)


def same_file(a: Path, b: Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def remove_stale_staging(out: Path) -> None:
    """Remove staging folders left by killed scoring runs."""
    from deepnoise_engine.atomic_io import _process_alive

    if not out.is_dir():
        return
    for entry in out.iterdir():
        if entry.name.startswith(_STAGING_PREFIX) and entry.is_dir():
            pid = entry.name[len(_STAGING_PREFIX):].split("-")[1:2]
            if pid and pid[0].isdigit() and not _process_alive(int(pid[0])):
                shutil.rmtree(entry, ignore_errors=True)


def write_set(out: Path, files: dict[str, bytes], copies: dict[Path, str],
              meta: dict[str, Any] | None = None) -> list[Path]:
    """Write ``files`` (name -> content) into ``out`` as one set, plus ``copies`` (path ->
    name of a file of the set) elsewhere; the manifest is written last. Returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    total = sum(map(len, files.values())) + sum(len(files[n]) for n in copies.values())
    ensure_free(out, total + 4096 * (len(files) + 1))
    staging = out / f"{_STAGING_PREFIX}{temp_token()}"
    staging.mkdir()
    try:
        try:
            for name, data in files.items():
                fault_point("score-stage", staging / name)
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                (staging / name).write_bytes(data)
        except OSError as exc:  # a full disk while staging: nothing in ``out`` changed
            if not is_disk_full(exc):
                raise
            raise DiskFullError(out, total) from None
        doc = {"format": FORMAT, "version": 1, "status": "writing",
               "files": {n: {"bytes": len(d)} for n, d in files.items()},
               "copies": [str(p) for p in copies], **(meta or {})}
        atomic_write_text(out / MANIFEST, json.dumps(doc, indent=1) + "\n")
        written = []
        for name in files:
            (out / name).parent.mkdir(parents=True, exist_ok=True)  # e.g. profiles/
            os.replace(staging / name, out / name)
            written.append(out / name)
            fault_point("score-move")
        for path, name in copies.items():
            written.append(atomic_write_bytes(path, files[name]))
        doc["status"] = "complete"
        for name, data in files.items():
            doc["files"][name]["sha256"] = hashlib.sha256(data).hexdigest()
        atomic_write_text(out / MANIFEST, json.dumps(doc, indent=1) + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [*written, out / MANIFEST]
