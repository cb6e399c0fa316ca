#!/usr/bin/env bash
# Set up this checkout on a fresh Debian machine and start everything with embedded defaults:
# SQLite in ./var, a local redis-server, the built-in SMTP catcher (see the admin's Outbox),
# an admin user and demo data. Re-running it reuses what is already there.
set -euo pipefail
cd "$(dirname "$0")"

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v npm >/dev/null || missing+=(npm)  # Chart.js for the report charts
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Python 3.11 or newer is needed (Debian 12 ships it)"; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "installing the product into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".${CAMPAIGNS_EXTRAS:-}"
  touch .venv/.installed
fi
# Chart.js for the report charts, as package-lock.json pins it (served from node_modules).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing Chart.js with npm"
  npm ci --omit=dev --no-audit --no-fund --loglevel=error
fi
exec .venv/bin/campaigns run "$@"
