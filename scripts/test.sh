#!/usr/bin/env bash
# Everything the tests need, on a fresh machine: a virtualenv with fastmon and its test extra,
# PostgreSQL, Redis and ActiveMQ on loopback (scripts/services.sh), Chromium for the browser
# tests, the static checks (ruff, the import layers, mypy, the manual built strictly), then pytest.
# Extra arguments go to pytest:  scripts/test.sh -k ingest
# `scripts/test.sh -m unit` runs the tests that need no service, and starts none.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${FASTMON_VENV:-.venv}

units_only=false
[ "$*" = "-m unit" ] && units_only=true

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[test]'
if ! $units_only; then
    scripts/services.sh up
    if [ ! -x /usr/bin/chromium ]; then
        echo "[test] installing chromium with apt (the browser tests drive it headless)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
fi
"$VENV/bin/ruff" format --check .
"$VENV/bin/ruff" check .
"$VENV/bin/lint-imports" --no-cache      # the layers of docs/architecture.md (setup.cfg)
"$VENV/bin/mypy"                          # fastmon/, with django-stubs (pyproject.toml)
"$VENV/bin/mkdocs" build --strict --quiet --site-dir "$(mktemp -d)"   # the manual, docs/
exec "$VENV/bin/pytest" "$@"
