#!/usr/bin/env bash
# Install a built bundle for the current user: menu entry + icon pointing at the bundle.
#   bash packaging/install_desktop_entry.sh [BUNDLE_DIR]     (default: dist/DeepNoise)
#   bash packaging/install_desktop_entry.sh --uninstall
# Writes $XDG_DATA_HOME/applications/deepnoise.desktop and
# $XDG_DATA_HOME/icons/hicolor/256x256/apps/deepnoise.png (XDG_DATA_HOME: ~/.local/share).
# The bundle also carries a copy of this script, so it works from an unpacked bundle too.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
APPS="$DATA/applications"
ICONS="$DATA/icons/hicolor/256x256/apps"

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$APPS/deepnoise.desktop" "$ICONS/deepnoise.png"
  echo "removed $APPS/deepnoise.desktop"
  exit 0
fi

if [ $# -gt 0 ]; then
  BUNDLE="$1"
elif [ -x "$HERE/DeepNoise" ]; then
  BUNDLE="$HERE"                      # run from inside a bundle
else
  BUNDLE="$HERE/../dist/DeepNoise"    # run from a checkout
fi
if [ ! -f "$BUNDLE/DeepNoise" ] || [ ! -f "$BUNDLE/deepnoise.desktop" ]; then
  echo "not a DeepNoise bundle (no DeepNoise / deepnoise.desktop): $BUNDLE" >&2
  echo "build one first: bash packaging/build_bundle.sh" >&2
  exit 1
fi
BUNDLE="$(cd "$BUNDLE" && pwd)"

mkdir -p "$APPS" "$ICONS"
# Desktop Entry spec: quote the program path; inside quotes escape " ` $ and \ with a backslash
# (and the .desktop string escaping doubles every backslash again).
exe="$BUNDLE/DeepNoise"
exe="${exe//\\/\\\\\\\\}"
exe="${exe//\"/\\\\\"}"
exe="${exe//\`/\\\\\`}"
exe="${exe//\$/\\\\\$}"
tmp="$(mktemp "$APPS/.deepnoise.desktop.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    Exec=*) printf 'Exec="%s" %%f\n' "$exe" ;;
    TryExec=*) ;;
    *) printf '%s\n' "$line" ;;
  esac
done < "$BUNDLE/deepnoise.desktop" > "$tmp"
chmod 644 "$tmp"
mv -f "$tmp" "$APPS/deepnoise.desktop"           # atomic: never a half-written entry
trap - EXIT
install -m 644 "$BUNDLE/deepnoise.png" "$ICONS/deepnoise.png"
if command -v update-desktop-database >/dev/null 2>&1; then
  update-desktop-database -q "$APPS" || true
fi
echo "installed $APPS/deepnoise.desktop -> $BUNDLE/DeepNoise"
