#!/usr/bin/env bash
# Build the DeepNoise desktop bundle (PyInstaller one-folder) into dist/DeepNoise/.
#   bash packaging/build_bundle.sh            # uses .venv/ (created by scripts/deepnoise.sh setup)
# Environment: VENV (default .venv), DIST (default dist), WORK (default build/pyinstaller),
# CLEAN=0 reuses PyInstaller's cache in WORK from an earlier build (faster rebuilds).
# Takes 3-10 minutes on 2 cores and ~5 GB of disk (torch with its CUDA libraries); see
# docs/packaging.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
DIST="${DIST:-$ROOT/dist}"
WORK="${WORK:-$ROOT/build/pyinstaller}"
say() { printf '[build_bundle] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  bash scripts/deepnoise.sh setup
fi
if ! "$VENV/bin/python" -c "import PyInstaller" 2>/dev/null; then
  say "installing PyInstaller into $VENV"
  "$VENV/bin/python" -m pip install -q "pyinstaller>=6.10" "pyinstaller-hooks-contrib"
fi
# The bundle is only as good as the environment it freezes: refuse to freeze a broken app.
"$VENV/bin/deepnoise" --help >/dev/null
"$VENV/bin/deepnoise-engine" --version >/dev/null

start=$(date +%s)
say "freezing (log: $WORK/pyinstaller.log)"
mkdir -p "$WORK"
clean=(--clean)
[ "${CLEAN:-1}" = "0" ] && clean=()
"$VENV/bin/pyinstaller" --noconfirm "${clean[@]}" --log-level WARN --distpath "$DIST" \
  --workpath "$WORK" packaging/pyinstaller/deepnoise.spec 2>&1 | tee "$WORK/pyinstaller.log" >&2
bundle="$DIST/DeepNoise"
install -m 644 resources/deepnoise.desktop "$bundle/deepnoise.desktop"
install -m 644 resources/icons/deepnoise.png "$bundle/deepnoise.png"
install -m 755 packaging/install_desktop_entry.sh "$bundle/install_desktop_entry.sh"
say "built in $(( $(date +%s) - start )) s"
du -sh "$bundle"
echo "bundle: $bundle/DeepNoise"
