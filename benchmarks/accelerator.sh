#!/usr/bin/env bash
# jaxclean on one GPU (an H200 in mind), in under 10 minutes from a fresh checkout:
#   1. recording overhead: the same train step with and without recording (overhead.py);
#   2. the record update at N = 1e8 and 1e9 with sharded records (one device: one shard;
#      an N that does not fit in device memory is reported and skipped) (scale.py);
#   3. input-pipeline throughput against the step time (scale.py);
#   4. detection at full scale: CIFAR-10 with 40 % uniform noise and the AUM paper's recipe
#      (ResNet-32, batch 64, constant lr 0.1, crop 4 + flip) for as many of its 150 epochs as
#      fit in the time left (at most 8 minutes), with AUROC and examples per second;
#   5. with ACCEL_FULL=1, the shortest full-scale paper table: CIFAR-10N detection
#      (configs/full_cifar10n.py, about 35 min estimated, past the budget; smoke: tiny sizes).
#
#   bash benchmarks/accelerator.sh                  # on the GPU machine, from the repository root
#   ACCEL_SMOKE=1 bash benchmarks/accelerator.sh    # tiny sizes on the CPU: checks the script
#
# Everything printed is tee'd to $OUT/accelerator.txt ($OUT: the results folder, default
# benchmarks/results). When jax has no GPU backend, `pip install -e . "jax[cuda12]==<jax's
# version>"` runs first (PyPI only). CIFAR-10 is read from $CIFAR10_DIR, ./shared/data/cifar10
# or ../shared/data/cifar10 (the 19 MB JPEG tarball and labels.npz; copy it into the checkout
# when only the checkout travels); without it step 4 is skipped. Limits: ACCEL_BUDGET_S
# (default 570) for the whole script, ACCEL_DETECT_S (default 480) for step 4.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
SMOKE=${ACCEL_SMOKE:-0}
BUDGET=${ACCEL_BUDGET_S:-570}
DETECT_MAX=${ACCEL_DETECT_S:-480}
RESULTS=${OUT:-benchmarks/results}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$RESULTS"
LOG="$RESULTS/accelerator$([ "$SMOKE" = 1 ] && echo _smoke).txt"
exec > >(tee "$LOG") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

section() { echo; echo "=== $* ($((SECONDS - START)) s elapsed)"; }

section "setup: $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo 'no git'), ACCEL_SMOKE=$SMOKE"
if [ "$SMOKE" = 1 ]; then
  export JAX_PLATFORMS=cpu
elif ! python -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' 2>/dev/null; then
  JAX_VERSION=$(python -c 'import jax; print(jax.__version__)' 2>/dev/null || echo 0.10.2)
  pip install -q -e . "jax[cuda12]==$JAX_VERSION"
fi
python -c 'import jax; print("jax", jax.__version__, jax.default_backend(), jax.devices())'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

if [ "$SMOKE" = 1 ]; then
  OVERHEAD=(--steps 3 --warmup 1 --batch 16 --num_examples 1000)
  UPDATE=(--min_n 1e4 --max_n 1e5 --batch 16 --repeats 2)
  PIPELINE=(--batch 16 --repeats 2)
else
  OVERHEAD=(--steps 60 --warmup 5 --batch 256 --num_examples 60000)
  UPDATE=(--min_n 1e8 --max_n 1e9 --batch 256 --repeats 20)
  PIPELINE=(--batch 256 --repeats 30)
fi

section "1. recording overhead on the accelerator: the same step with and without recording"
python benchmarks/overhead.py --sections overhead --data random "${OVERHEAD[@]}"

section "2. record update with sharded records (one device: one shard)"
python benchmarks/scale.py --sections update --shard_records "${UPDATE[@]}"

section "3. input pipeline against the step"
python benchmarks/scale.py --sections pipeline "${PIPELINE[@]}"

section "4. detection: CIFAR-10, 40 % uniform noise, ResNet-32, AUM recipe"
CIFAR=""
for d in "${CIFAR10_DIR:-}" shared/data/cifar10 ../shared/data/cifar10; do
  if [ -n "$d" ] && [ -f "$d/cifar10_jpeg.tar.gz" ]; then CIFAR=$d; break; fi
done
if [ -z "$CIFAR" ]; then
  echo "skipped: no CIFAR-10 (set CIFAR10_DIR to a folder with cifar10_jpeg.tar.gz and labels.npz)"
  exit 0
fi
RECIPE=(--config=configs/default.py --config.data.name=cifar10 "--config.data.data_dir=$CIFAR"
        --config.model.name=resnet32
        --config.batch_size=64 --config.optimizer.lr=0.1 --config.optimizer.schedule=constant
        --config.noise.kind=uniform --config.noise.rate=0.4 --config.augment.crop=4
        --config.augment.flip=True --config.eval_every_epochs=0 --config.progress=False)
[ "$SMOKE" = 1 ] && RECIPE+=(--config.data.train_size=512 --config.data.eval_size=256)
# Two epochs first (which also decode and cache the images): the second one's time and
# the first one's extra (compiling) set how many epochs fit.
python -m jaxclean.main "${RECIPE[@]}" --workdir="$WORK/probe" --config.num_epochs=2
LEFT=$((BUDGET - (SECONDS - START) - 30))  # 30 s for start-up, scoring and writing
EPOCHS=$(python - "$WORK/probe/history.csv" "$LEFT" "$DETECT_MAX" <<'EOF'
import sys
import pandas as pd
seconds = pd.read_csv(sys.argv[1])["seconds"]
epoch, compile_s = seconds.iloc[1], max(seconds.iloc[0] - seconds.iloc[1], 0.0)
budget = min(float(sys.argv[2]), float(sys.argv[3]))
print(max(1, min(150, int((budget - compile_s) / epoch))))
print(f"probe: epoch {epoch:.1f} s, compile {compile_s:.1f} s, {budget:.0f} s for the run",
      file=sys.stderr)
EOF
)
echo "${LEFT} s left of ${BUDGET} s -> ${EPOCHS} epochs"
[ "$SMOKE" = 1 ] && EPOCHS=2
T0=$SECONDS
python -m jaxclean.main "${RECIPE[@]}" --workdir="$WORK/detect" --config.num_epochs="$EPOCHS"
echo "detection run: ${EPOCHS} epochs in $((SECONDS - T0)) s"
python - "$WORK/detect" <<'EOF'
import json, sys
import pandas as pd
workdir = sys.argv[1]
history = pd.read_csv(f"{workdir}/history.csv")
detection = json.load(open(f"{workdir}/detection.json"))
n = len(pd.read_csv(f"{workdir}/scores.csv"))
steady = history["seconds"].iloc[1:] if len(history) > 1 else history["seconds"]
print(f"epochs {len(history)}, train examples {n}; examples/s (epochs after the first): "
      f"{n / steady.mean():.0f}; with the first (compile): "
      f"{n * len(history) / history['seconds'].sum():.0f}")
print(f"final test accuracy {history['test_accuracy'].iloc[-1]:.4f}")
for score, row in detection.get("quality", {}).items():  # {score: {auroc, ...}}
  print(f"AUROC {score:12s} {row['auroc']:.4f}")
EOF
section "5. the shortest full-scale table: CIFAR-10N detection (configs/full_cifar10n.py)"
if [ "$SMOKE" = 1 ] || [ "${ACCEL_FULL:-0}" = 1 ]; then
  FULL=(--config=configs/full_cifar10n.py "--config.data.data_dir=$CIFAR"
        "--config.exp.results_dir=$RESULTS/full_cifar10n" --workdir="$WORK/full_cifar10n")
  [ "$SMOKE" = 1 ] && FULL+=(--config.data.train_size=512 --config.data.eval_size=256
                             --config.num_epochs=2 "--config.exp.label_sets=('worst',)")
  T0=$SECONDS
  python -m experiments.real_noise "${FULL[@]}"
  echo "full-scale CIFAR-10N table: $((SECONDS - T0)) s"
else
  echo "skipped: ACCEL_FULL=1 runs it (about 35 min estimated, past ACCEL_BUDGET_S)"
fi
section "done"
