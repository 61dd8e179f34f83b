#!/usr/bin/env bash
# Build the DeepNoise desktop bundle (PyInstaller one-folder) into dist/DeepNoise/.
#   bash packaging/build_bundle.sh            # uses .venv/ (created by scripts/deepnoise.sh setup)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/deepnoise.sh setup
.venv/bin/python -m pip install -q "pyinstaller>=6.10" "pyinstaller-hooks-contrib"
.venv/bin/pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller \
  packaging/pyinstaller/deepnoise.spec
install -m 644 resources/deepnoise.desktop dist/DeepNoise/deepnoise.desktop
cp resources/icons/deepnoise.png dist/DeepNoise/deepnoise.png
du -sh dist/DeepNoise
echo "bundle: $ROOT/dist/DeepNoise/DeepNoise"
