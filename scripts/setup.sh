#!/usr/bin/env bash
# Install what is missing, and nothing that is already there (safe to run on every `make`).
#  1. a Chromium-family browser and DejaVu fonts (PDF printing, Cyrillic), from apt when available;
#  2. uv (pinned) in .tools/, then the exact locked Python environment in .venv/ (`uv sync --locked`
#     fails if pyproject.toml was edited without re-locking, so CI never runs an unlocked set).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
PYTHON=${PYTHON:-python3}

have_browser() {
  [ -n "${CHROMIUM_PATH:-}" ] && [ -x "$CHROMIUM_PATH" ] && return 0
  for b in chromium chromium-browser google-chrome google-chrome-stable msedge; do
    command -v "$b" >/dev/null 2>&1 && return 0
  done
  [ -x "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome" ]
}
have_fonts() {
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && return 0
  command -v fc-list >/dev/null 2>&1 && fc-list | grep -qi "DejaVu Sans"
}

packages=()
have_browser || packages+=(chromium)
have_fonts || packages+=(fonts-dejavu-core)
if [ ${#packages[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing ${packages[*]} with apt-get"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  else
    echo "setup: please install ${packages[*]} (Chromium or Chrome, DejaVu fonts) with your package manager," >&2
    echo "       or set CHROMIUM_PATH; PDF output needs them." >&2
  fi
fi

if [ ! -x .tools/bin/uv ] || [ "$(.tools/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "setup: installing uv $UV_VERSION into .tools/"
  "$PYTHON" -m venv .tools
  .tools/bin/python -m pip install -q "uv==$UV_VERSION"
fi
# `make lock` needs uv but not a synced environment (the lock is what it is about to change)
[ "${1:-}" = "--tools-only" ] && exit 0
# Bytecode is compiled at install time: this machine sets PYTHONDONTWRITEBYTECODE=1, and without
# .pyc files every kernel start re-compiles pandas and statsmodels (5.5 s instead of 1.9 s).
UV_PYTHON_DOWNLOADS=never .tools/bin/uv sync --locked --extra dev --compile-bytecode --quiet --python "$PYTHON"
# The project's own package too, which the editable install leaves as source: every process that
# imports it (report kernels, test workers, the command line) compiled it again, about 0.7 s each.
# A module edited later is newer than its .pyc and is compiled afresh, in memory, until the next run
# of this script brings its .pyc up to date.
.venv/bin/python -m compileall -q milcourts
