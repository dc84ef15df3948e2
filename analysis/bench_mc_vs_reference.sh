#!/usr/bin/env bash
# `mpi_glass bench mc` side by side with the reference kernel of the same model
# (mc_smooth_bf.py: branch-free pair energy, numba fast-math), alternating runs so that both
# see the same load, and the ratio of the medians of their CPU-time (thread-time) rates.
#
#   bash analysis/bench_mc_vs_reference.sh [REFERENCE_DIR] [REPEATS] [TEMPERATURES...]
#
# REFERENCE_DIR defaults to ../shared/bench/mc_reference beside the repository (where CI
# has it); Python is the repository's .venv unless PYTHON is set.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
ref="$(cd "${1:-$repo/../shared/bench/mc_reference}" && pwd)"
repeats="${2:-3}"
shift $(( $# > 2 ? 2 : $# ))
temperatures=("${@:-0.3 0.5 1.0}")
temperatures=(${temperatures[@]})
py="${PYTHON:-$repo/.venv/bin/python}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for t in "${temperatures[@]}"; do
  for _ in $(seq "$repeats"); do
    echo "ours $t $("$py" -m mpi_glass bench mc --json --temperature "$t" | tail -n 1)" >>"$log"
    echo "reference $t $(cd "$ref" && "$py" mc_smooth_bf.py --T "$t" | tail -n 1)" >>"$log"
  done
done
"$py" - "$log" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    who, t, doc = line.split(" ", 2)
    doc = json.loads(doc)
    rate = doc["trials_per_second_cpu"] if who == "ours" else doc["cpu_rate"]
    runs.setdefault(float(t), {}).setdefault(who, []).append((rate, doc))
print("M trial moves per CPU second, N = 4000, median of %d alternating runs each"
      % len(next(iter(runs.values()))["ours"]))
print("| T | mpi_glass | reference (fast-math) | ratio | ns/trial: builds / pairs / rest "
      "| swap trials | 20 % swaps | / displacement |")
print("|---|---|---|---|---|---|---|---|")
for t, by in sorted(runs.items()):
    ours = statistics.median(r for r, _ in by["ours"])
    theirs = statistics.median(r for r, _ in by["reference"])
    docs = [d for _, d in by["ours"]]
    med = lambda key: statistics.median(d[key] for d in docs)  # noqa: E731
    print(f"| {t:g} | {ours / 1e6:.2f} | {theirs / 1e6:.2f} | {ours / theirs:.2f} "
          f"| {med('ns_per_trial_list_builds'):.0f} / {med('ns_per_trial_pair_evaluation'):.0f}"
          f" / {med('ns_per_trial_rest'):.0f} | {med('swap_trials_per_second_cpu') / 1e6:.2f} "
          f"| {med('equilibration_trials_per_second_cpu') / 1e6:.2f} "
          f"| {med('equilibration_over_displacement'):.2f} |")
PY
