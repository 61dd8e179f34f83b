#!/usr/bin/env bash
# Smoke-check the desktop bundle: build it when missing, then run packaging/check_bundle.py
# under a virtual display (xvfb-run) when there is no display. Slow (minutes): not part of
# the default test suite. See docs/packaging.md.
#
#   bash packaging/check_bundle.sh                 # reuse dist/DeepNoise, build if missing
#   bash packaging/check_bundle.sh --rebuild       # always rebuild first
#   bash packaging/check_bundle.sh [--rebuild] [check_bundle.py options: --json FILE,
#                                                --work DIR, --skip-train]
#
# Checks: bundle size; `DeepNoise engine --version`; the engine server answers hello when
# started as `DeepNoise engine serve` and as `DeepNoise -m deepnoise_engine serve`; a tiny
# make-demo/train/score round inside the bundle; the app starts on the demo screen (first
# start generates it), saves a screenshot that must show the plate map, and quits, twice.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
DIST="${DIST:-$ROOT/dist}"
BUNDLE="$DIST/DeepNoise"

if [ "${1:-}" = "--rebuild" ]; then
  shift
  rm -rf "$BUNDLE"
fi
if [ ! -x "$BUNDLE/DeepNoise" ]; then
  bash packaging/build_bundle.sh
fi

check=("$VENV/bin/python" packaging/check_bundle.py "$BUNDLE" "$@")
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  # 24-bit colour so the plate map's colours come through exactly
  exec xvfb-run -a -s "-screen 0 1600x1000x24" "${check[@]}"
fi
exec "${check[@]}"
