#!/usr/bin/env bash
# The project's test command: installs what it needs into .venv, then runs the linter,
# the type checker and the offline test suite (slow and GPU tests are skipped by default).
# Usage: bash scripts/test.sh [PYTEST ARGS]   e.g. bash scripts/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# The report's browser test drives Debian's Chromium (never a downloaded one). Install it when
# we can (root with apt-get, as in CI); elsewhere the test is skipped and says why.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing chromium (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
echo "== ruff"
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/ruff format --check src tests benchmarks scripts
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest --doctest-modules src/o3video tests "$@"
