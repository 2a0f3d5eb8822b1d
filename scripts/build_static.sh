#!/usr/bin/env bash
# Refresh the live pages' browser libraries in fastmon/static/fastmon/vendor/ from the versions
# package-lock.json pins (after changing package.json). The copies are committed, with their
# licence, so that every wheel and sdist ships them without npm at build or install time.
# Needs npm; installs it with apt where missing and root.
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=fastmon/static/fastmon/vendor

if ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "[static] installing npm with apt"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    else
        echo "[static] npm not found: the live pages will run without charts" >&2
        exit 1
    fi
fi
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
mkdir -p "$vendor"
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css "$vendor/"
cp node_modules/uplot/LICENSE "$vendor/uPlot.LICENSE"
echo "[static] built $vendor"
