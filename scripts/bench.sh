#!/usr/bin/env bash
# Runs every bench/*.py script of every member and writes their JSON under bench-results/.
# Each script takes `--out FILE`; peers they compare against are installed by the script itself.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
mkdir -p bench-results
status=0
for script in packages/*/bench/*.py integration/bench/*.py; do
    [ -f "$script" ] || continue
    case "$(basename "$script")" in _*) continue ;; esac
    owner=$(basename "$(dirname "$(dirname "$script")")")
    out="bench-results/${owner}-$(basename "$script" .py).json"
    echo "== $script -> $out"
    "$VENV/bin/python" "$script" --out "$out" || { echo "bench failed: $script" >&2; status=1; }
done
exit $status
