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
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
