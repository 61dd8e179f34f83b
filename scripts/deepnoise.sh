#!/usr/bin/env bash
# Set up DeepNoise in .venv/ (system packages included) and run the app or the test suite.
#
#   bash scripts/deepnoise.sh app [DATASET]   set up, then launch the app (demo screen by default)
#   bash scripts/deepnoise.sh test [ARGS]     set up, then run every test (GUI tests under Xvfb)
#   bash scripts/deepnoise.sh setup           set up only
#
# Idempotent: a second run skips what is already installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
TORCH_PINS=("torch==2.14.1" "torchvision==0.29.1")
SYSTEM_PACKAGES=(xvfb xauth libgl1 libegl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4
  libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0
  libxcb-xinerama0 libxcb-xfixes0 libdbus-1-3 libfontconfig1)

say() { printf '[deepnoise] %s\n' "$*" >&2; }

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      say "missing system packages: $*; install them as root (apt-get install $*)"; return 1
    fi
  fi
  say "installing system packages: $*"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

setup_system() {
  command -v dpkg-query >/dev/null 2>&1 || return 0  # not Debian: nothing to do
  local missing=()
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

setup_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      apt_install python3-venv
      "$PYTHON" -m venv "$VENV"
    fi
  fi
  # Reinstall only when the project's dependencies changed.
  local stamp="$VENV/.deepnoise-installed"
  local want
  want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/deepnoise.sh" | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  say "installing DeepNoise and its dependencies into $VENV (torch comes from local wheels when present)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "${TORCH_PINS[@]}"
  "$VENV/bin/python" -m pip install -q -e "$ROOT[test]" "${TORCH_PINS[@]}"
  echo "$want" > "$stamp"
}

cmd="${1:-app}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    setup_system; setup_venv ;;
  app)
    setup_system; setup_venv
    if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
      say "no display found: starting the app on a virtual screen (Xvfb)"
      exec xvfb-run -a -s "-screen 0 1600x1000x24" "$VENV/bin/deepnoise" "$@"
    fi
    exec "$VENV/bin/deepnoise" "$@" ;;
  test)
    setup_system; setup_venv
    cd "$ROOT"
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
    exec "$VENV/bin/python" -m pytest "$@" ;;
  *)
    say "unknown command '$cmd': use app, test or setup"; exit 2 ;;
esac
