"""The wheel carries the manifest, resources and presets, and works from a clean venv."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
         str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"python -m build failed:\n{done.stdout[-3000:]}{done.stderr}"
    (built,) = out.glob("deepnoise-*.whl")
    return built


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "deepnoise_app/napari.yaml" in names
    assert "deepnoise_engine/_resources/presets/tiny.toml" in names
    assert "deepnoise_engine/_resources/presets/paper.toml" in names
    assert "deepnoise_engine/_resources/deepnoise.desktop" in names
    assert "deepnoise_engine/_resources/icons/deepnoise.png" in names
    assert "deepnoise_engine/_resources/colormaps/rxrx1_channels.json" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "deepnoise-engine = deepnoise_engine.cli:main" in text
    assert "deepnoise = deepnoise_app:napari.yaml" in text
    assert not any(n.startswith(("tests/", "packaging/", "benchmarks/")) for n in names)
    assert not any(n.endswith(".pyc") for n in names)


def test_wheel_in_clean_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    # Dependencies (torch alone is gigabytes) come from the project's environment through a
    # plain path entry; a plain entry does not run that environment's .pth files, so the
    # editable DeepNoise there stays invisible and only the wheel's copy can be imported.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
         str(wheel)],
        check=True,
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env = {**env, "DEEPNOISE_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    engine = venv / "bin" / "deepnoise-engine"

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(engine), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"
        return done.stdout

    assert "0.1.0" in run("--version")
    app_help = subprocess.run(
        [str(venv / "bin" / "deepnoise"), "--help"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )
    assert app_help.returncode == 0 and "usage: deepnoise" in app_help.stdout, app_help.stderr
    where = subprocess.check_output(
        [
            str(py), "-c",
            "import deepnoise_app, deepnoise_engine; from deepnoise_engine.resources import "
            "resource_path; print(deepnoise_engine.__file__); print(deepnoise_app.__file__); "
            "print(resource_path('presets', 'tiny.toml'))",
        ],
        cwd=tmp_path,  # not the checkout: python -c puts the working folder first on sys.path
        env=env,
        text=True,
    )
    # the engine, the app and the presets all come from the wheel's copy in the venv
    assert all(line.startswith(str(venv)) for line in where.splitlines()), where
    # napari finds the plugin through the wheel's entry point and manifest
    manifest = subprocess.check_output(
        [
            str(py), "-c",
            "import npe2; m = npe2.PluginManifest.from_distribution('deepnoise'); "
            "print(m.name, sorted(c.id for c in m.contributions.commands))",
        ],
        cwd=tmp_path,
        env=env,
        text=True,
    )
    assert manifest.startswith("deepnoise ") and "deepnoise.get_reader" in manifest, manifest
    screen = tmp_path / "screen"
    run(
        "make-demo", "--out", str(screen), "--seed", "3", "--experiments-per-cell-type", "1",
        "--test-experiments-per-cell-type", "1", "--sirnas-per-plate", "4", "--image-size", "32",
        "--cell-types", "HEPG2",
    )
    run(
        "train", "--data", str(screen), "--out", str(tmp_path / "run"), "--preset", "tiny",
        "--set", "model.epochs=1", "--set", "finetune.epochs=1", "--quiet",
    )
    assert (tmp_path / "run" / "run.json").is_file()
    run("score", "--data", str(screen), "--model", str(tmp_path / "run"), "--out",
        str(tmp_path / "scores"), "--tta", "1")
    reports = sorted((tmp_path / "scores").glob("*_Plate*.csv"))
    assert reports, "score wrote no per-plate report"
    for report in reports:
        header, *rows = report.read_text().splitlines()
        assert "sirna" in header.split(","), report
        assert rows, f"{report.name} has no wells"
