#!/usr/bin/env bash
# Reruns the committed CPU-scale tables, one after the other, with today's code.
#
#   nice -n 10 bash experiments/rerun_all.sh WORKDIR [NAME ...]
#   bash experiments/rerun_all.sh --print WORKDIR [NAME ...]   # only prints the commands
#
# Each NAME runs its CPU-scale command of experiments/README.md with `--workdir=WORKDIR/exp_NAME`
# (that table's `runs/exp_NAME`); the script writes WORKDIR/exp_NAME.csv/.md and the
# committed experiments/results/NAME/NAME.{csv,md} (with the command, commit, date, wall time
# and load average), and logs to WORKDIR/NAME.log. Without NAMEs it runs the tables in the
# order detection, forgetting_curve, real_noise, cleaning, pruning, clean_in_run (27 min on 2
# quiet cores). `compare` (18 min quiet, with the peers) is not in the default set: name it.
# Every training resumes from its checkpoints under WORKDIR, so a rerun after an interruption
# only trains what is missing. Run from any directory: it changes to the repository root.
set -euo pipefail

print_only=0
if [[ "${1:-}" == "--print" ]]; then print_only=1; shift; fi
if [[ $# -lt 1 ]]; then
  echo "usage: $0 [--print] WORKDIR [NAME ...]" >&2
  exit 2
fi
work=$1
shift

DEFAULT=(detection forgetting_curve real_noise cleaning pruning clean_in_run)
KNOWN=(compare cleaning detection real_noise forgetting_curve pruning clean_in_run)
names=("$@")
[[ ${#names[@]} -eq 0 ]] && names=("${DEFAULT[@]}")

command_of() {  # NAME -> its documented CPU-scale command with WORKDIR for runs/
  echo "python -m experiments.$1 --config=configs/exp_$1.py --workdir=$work/exp_$1"
}

for name in "${names[@]}"; do
  if [[ " ${KNOWN[*]} " != *" $name "* ]]; then
    echo "unknown table '$name'; known: ${KNOWN[*]}" >&2
    exit 2
  fi
done

if [[ $print_only == 1 ]]; then
  for name in "${names[@]}"; do command_of "$name"; done
  exit 0
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$work"
echo "rerun_all: commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u '+%F %H:%M UTC'), tables: ${names[*]}"
status=0
for name in "${names[@]}"; do
  cmd=$(command_of "$name")
  echo "== $name: $cmd ($(date -u '+%H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg))"
  start=$SECONDS
  if $cmd >"$work/$name.log" 2>&1; then
    echo "== $name: done in $((SECONDS - start)) s (load $(cut -d' ' -f1-3 /proc/loadavg));" \
         "experiments/results/$name/$name.md"
  else
    echo "== $name: FAILED after $((SECONDS - start)) s; see $work/$name.log" >&2
    status=1
  fi
done
exit $status
