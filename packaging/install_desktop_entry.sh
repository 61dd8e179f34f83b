#!/usr/bin/env bash
# Install a built bundle for the current user: menu entry + icon pointing at dist/DeepNoise.
#   bash packaging/install_desktop_entry.sh [BUNDLE_DIR]
set -euo pipefail
BUNDLE="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/../dist/DeepNoise}" && pwd)"
APPS="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
ICONS="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/256x256/apps"
mkdir -p "$APPS" "$ICONS"
cp "$BUNDLE/deepnoise.png" "$ICONS/deepnoise.png"
sed "s|^Exec=.*|Exec=$BUNDLE/DeepNoise %f|" "$BUNDLE/deepnoise.desktop" > "$APPS/deepnoise.desktop"
echo "installed $APPS/deepnoise.desktop"
