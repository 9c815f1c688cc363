#!/bin/sh
# Register the unpacked desktop-rag bundle in the desktop menu of the current user: a launcher
# (~/.local/share/applications/desktop-rag.desktop) and its icon, both pointing at this folder.
# Nothing is copied elsewhere and nothing needs root. Move the folder first if you want it
# somewhere else (e.g. ~/.local/opt/desktop-rag), then run ./install.sh there.
#   ./install.sh             install the launcher and icon
#   ./install.sh --uninstall remove them (the folder and your data stay)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/scalable/apps"

if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$apps/desktop-rag.desktop" "$icons/desktop-rag.svg"
    echo "Removed the desktop-rag launcher and icon."
    exit 0
fi
if [ ! -x "$here/desktop-rag" ]; then
    echo "error: $here/desktop-rag is missing: run install.sh from the unpacked bundle folder" >&2
    exit 1
fi
mkdir -p "$apps" "$icons"
cp "$here/desktop-rag.svg" "$icons/desktop-rag.svg"
sed -e "s|^Exec=.*|Exec=\"$here/desktop-rag\"|" -e "s|^Icon=.*|Icon=desktop-rag|" \
    "$here/desktop-rag.desktop" > "$apps/desktop-rag.desktop"
chmod 644 "$apps/desktop-rag.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$apps" || true
echo "Installed: $apps/desktop-rag.desktop -> $here/desktop-rag"
echo "Start desktop_rag from your applications menu, or run $here/desktop-rag"
