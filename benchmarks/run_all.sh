#!/usr/bin/env bash
# Every benchmark with the settings behind benchmarks/RESULTS.md, one after
# another, each writing its JSON into benchmarks/results/ (or $OUT); then
# benchmarks/report.py renders README.md's table and RESULTS.md's tables.
# About 20 minutes on a 2-core VM.  PYTHON defaults to .venv/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
run() { echo "== $*" >&2; /usr/bin/time -f "   %e s wall" "$PY" "$@"; }
run benchmarks/randread.py --seconds 2 --rounds 3 --json "$OUT/randread.json"
run benchmarks/randwrite.py --seconds 2 --rounds 3 --json "$OUT/randwrite.json"
run benchmarks/direct.py --seconds 2 --warmup 1 --rounds 3 --json "$OUT/direct.json"
run benchmarks/sockets.py --seconds 1 --rounds 3 --json "$OUT/sockets.json"
run benchmarks/files.py --seconds 2 --rounds 3 --json "$OUT/files.json"
run benchmarks/notify.py --rounds 5 --json "$OUT/notify.json"
run benchmarks/scale.py --rounds 3 --json "$OUT/scale.json"
run benchmarks/soak.py --jobs 1000000 --json "$OUT/soak.json"
run benchmarks/floors.py --rounds 3 --json "$OUT/floors.json"
if [ "$OUT" = benchmarks/results ]; then
    "$PY" benchmarks/report.py
fi
