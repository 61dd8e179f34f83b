"""The bundle's launcher dispatches to the engine or the app; the desktop entry installs."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "packaging" / "pyinstaller" / "launcher.py"


def _launch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the launcher the way the frozen executable runs it: as ``__main__``."""
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_engine_role(tmp_path: Path) -> None:
    from deepnoise_engine import __version__

    done = _launch("engine", "--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"deepnoise-engine {__version__}"
    # an unknown engine command is the engine's argparse error, not the app's
    done = _launch("engine", "no-such-command", cwd=tmp_path)
    assert done.returncode == 2
    assert "deepnoise-engine" in done.stderr


def test_module_role_runs_engine_module(tmp_path: Path) -> None:
    """``DeepNoise -m deepnoise_engine ...`` (the client's python-style command) works."""
    done = _launch("-m", "deepnoise_engine", "make-demo", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "usage: deepnoise-engine make-demo" in done.stdout
    done = _launch("-m", "deepnoise_engine", "inspect", str(tmp_path / "missing"), cwd=tmp_path)
    assert done.returncode != 0
    assert "missing" in done.stderr + done.stdout
    # torchrun's worker command: interpreter flags, then -m
    done = _launch("-u", "-m", "deepnoise_engine.cli", "--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("deepnoise-engine ")


def test_app_role(tmp_path: Path) -> None:
    done = _launch("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "usage: deepnoise" in done.stdout
    assert "--screenshot" in done.stdout


def test_desktop_entry_file() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    entry.read(ROOT / "resources" / "deepnoise.desktop")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application"
    assert desktop["Exec"].split()[0] == "DeepNoise"
    assert desktop["Icon"] == "deepnoise"
    assert desktop["Categories"].endswith(";")
    assert (ROOT / "resources" / "icons" / "deepnoise.png").is_file()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_install_desktop_entry(tmp_path: Path) -> None:
    """The install script points the menu entry at the bundle it is given."""
    bundle = tmp_path / "Deep Noise bundle"  # a space must survive the Exec line
    bundle.mkdir()
    shutil.copy(ROOT / "resources" / "deepnoise.desktop", bundle / "deepnoise.desktop")
    shutil.copy(ROOT / "resources" / "icons" / "deepnoise.png", bundle / "deepnoise.png")
    (bundle / "DeepNoise").write_text("#!/bin/sh\n")
    data = tmp_path / "data"
    done = subprocess.run(
        ["bash", str(ROOT / "packaging" / "install_desktop_entry.sh"), str(bundle)],
        env={**os.environ, "XDG_DATA_HOME": str(data)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    installed = data / "applications" / "deepnoise.desktop"
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(installed)
    exec_line = entry["Desktop Entry"]["Exec"]
    assert exec_line == f'"{bundle / "DeepNoise"}" %f'
    assert entry["Desktop Entry"]["Icon"] == "deepnoise"
    icon = data / "icons" / "hicolor" / "256x256" / "apps" / "deepnoise.png"
    assert icon.read_bytes() == (ROOT / "resources" / "icons" / "deepnoise.png").read_bytes()


@pytest.mark.slow
def test_engine_role_distributed_training(tmp_path: Path) -> None:
    """``train --devices 2`` re-launches itself from sys.argv: the launcher must hand the
    engine the argv of ``deepnoise-engine`` (without ``engine``), or every worker fails."""
    screen = tmp_path / "screen"
    done = _launch("engine", "make-demo", "--out", str(screen), "--seed", "1",
                   "--experiments-per-cell-type", "1", "--test-experiments-per-cell-type", "0",
                   "--plates-per-experiment", "1", "--sirnas-per-plate", "3",
                   "--image-size", "16", "--sites", "1", "--cell-types", "HEPG2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    done = _launch("engine", "train", "--data", str(screen), "--out", str(run), "--preset",
                   "tiny", "--set", "model.epochs=1", "--set", "finetune.enabled=false",
                   "--set", "data.image_size=16", "--quiet", "--devices", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run / "run.json").is_file()
