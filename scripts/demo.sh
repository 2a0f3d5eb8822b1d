#!/usr/bin/env bash
# fastmon on its embedded default (SQLite, no broker, no Redis): set up and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${FASTMON_VENV:-.venv}

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[demo]'
exec "$VENV/bin/python" -m demo "$@"
