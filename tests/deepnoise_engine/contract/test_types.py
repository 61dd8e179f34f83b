"""The contract and the protocol pass ``mypy --strict`` (the pydantic plugin reads the models)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHECKED = ["deepnoise_engine/contract", "deepnoise_engine/serve/protocol.py"]


def _mypy() -> list[str]:
    local = Path(sys.executable).with_name("mypy")
    if local.is_file():
        return [str(local)]
    found = shutil.which("mypy")
    if found is None:
        pytest.skip("mypy is not installed")
    return [found]


def test_contract_and_protocol_are_strictly_typed(tmp_path: Path) -> None:
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nplugins = pydantic.mypy\nfollow_imports = silent\n")
    command = [
        *_mypy(), "--strict", "--no-incremental", "--config-file", str(config),
        "--cache-dir", str(tmp_path / "cache"), *CHECKED,
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mypy --strict failed:\n{done.stdout}{done.stderr}"
