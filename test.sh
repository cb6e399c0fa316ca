#!/usr/bin/env bash
# Run every check: ruff (lint + format), mypy, and the whole pytest suite on SQLite and
# PostgreSQL against real Redis, PostgreSQL, SMTP and Chromium (see README: Tests).
set -euo pipefail
cd "$(dirname "$0")"

[ -x .venv/bin/python ] || python3 -m venv .venv
if [ ! -f .venv/.installed-dev ] || [ pyproject.toml -nt .venv/.installed-dev ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]"
  touch .venv/.installed-dev .venv/.installed
fi
# Chart.js for the report charts (the browser tests draw them), as package-lock.json pins it.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  command -v npm >/dev/null || { echo "npm is needed to install Chart.js: apt-get install npm"; exit 1; }
  npm ci --omit=dev --no-audit --no-fund --loglevel=error
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
