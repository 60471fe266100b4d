#!/usr/bin/env bash
# The GPU check in one call (benchmarks/gpu/check.py), for a lent GPU machine: Python 3.12 with
# torch, transformers, accelerate and peft, but not trl, av or this package, and no network.
#
#   bash benchmarks/gpu/check.sh --fetch-wheels   # beforehand, with network: fill the wheelhouse
#   bash benchmarks/gpu/check.sh                  # on the GPU: install from it, run, RESULTS.md
#   bash benchmarks/gpu/check.sh --dry-run        # on a CPU: the same path with the tiny model
#
# The package itself is not installed: it runs from this checkout (PYTHONPATH=src), so its
# torch/transformers pins do not replace the machine's. What it lacks comes from the
# wheelhouse ($WHEELS, default benchmarks/gpu/wheels, --no-index). Options after the mode go
# to check.py (--out DIR, --config-json DIR). Budget: about 8 minutes on one H100 (model
# build and save 1-2 min, each stage loads the 16.6 GB model once).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
WHEELS="${WHEELS:-$HERE/wheels}"
# Wheels the GPU machine lacks (cp312, manylinux x86_64): trl and what it, datasets, av and
# the answer reward need beyond transformers' own dependencies.
NEEDED=(trl==1.16.0 datasets pyarrow dill xxhash multiprocess fsspec pandas python-dateutil
        pytz tzdata av rouge-score nltk absl-py joblib regex click six pyyaml)

mode="${1:-}"
case "$mode" in
  --fetch-wheels)
    mkdir -p "$WHEELS"
    "$PYTHON" -m pip download --dest "$WHEELS" --no-deps --only-binary=:all: \
      --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
      "${NEEDED[@]}"
    du -sh "$WHEELS"
    exit 0 ;;
  --dry-run)
    shift
    export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
    export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    exec "$PYTHON" "$HERE/check.py" --dry-run "$@" ;;
esac

missing=()
for module in trl datasets av rouge_score yaml; do
  "$PYTHON" -c "import $module" 2>/dev/null || missing+=("$module")
done
if ((${#missing[@]})); then
  if [ ! -d "$WHEELS" ]; then
    echo "missing ${missing[*]} and no wheelhouse at $WHEELS: run --fetch-wheels first" >&2
    exit 2
  fi
  "$PYTHON" -m pip install --no-index --find-links "$WHEELS" --no-deps "${NEEDED[@]}"
fi
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$PYTHON" -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
exec "$PYTHON" "$HERE/check.py" "$@"
