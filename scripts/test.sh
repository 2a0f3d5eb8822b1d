#!/usr/bin/env bash
# Everything the tests need, on a fresh machine: a virtualenv with fastmon and its test extra,
# PostgreSQL, Redis and ActiveMQ on loopback (scripts/services.sh), lint, then pytest.
# Extra arguments go to pytest:  scripts/test.sh -k ingest
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${FASTMON_VENV:-.venv}

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[test]'
scripts/services.sh up
"$VENV/bin/ruff" format --check .
"$VENV/bin/ruff" check .
exec "$VENV/bin/pytest" "$@"
