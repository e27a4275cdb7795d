"""AUM (Pleiss et al. 2020) Table 1 at the paper's scale: test error after removing what AUM
threshold samples flag, CIFAR-10 or CIFAR-100, ResNet-32, synthetic noise; one GPU.

  python -m experiments.cleaning --config=configs/full_aum.py --workdir=runs/full_aum
  python -m experiments.cleaning --config=configs/full_aum.py:cifar100 \
      --workdir=runs/full_aum_cifar100

The recipe is `exp_base.full` (the AUM reference code's): two threshold runs of 150 epochs,
batch 64, then each removal (`exp_cleaning`'s five) retrained 300 epochs at batch 256.
CIFAR-10 reads `data.data_dir` (or ../shared/data/cifar10), else TFDS; CIFAR-100 is
`tfds:cifar100` (downloaded on first use), uniform noise only: its asymmetric noise is
within superclasses, which `noise.pairs` does not describe yet.

Expected wall time, estimated and not measured (no GPU was available): ResNet-32 trains at
0.39 GFLOP per example (XLA's count, `benchmarks/step_flops.py`); CIFAR-10's 6 settings
train at most 6 x (2 x 150 + 5 x 300) x 50k = 540M examples, 2.1e17 FLOP: 70 min at an
assumed sustained 50 TFLOP/s, but at batch 64 such a small network is bound by per-step
latency, not arithmetic; at an assumed 3 ms per step (batch 64) and 5 ms (batch 256) the
table takes 6 x (2 x 150 x 782 x 3 ms + 5 x 300 x 196 x 5 ms) = about 3.6 h (CIFAR-100's
4 settings: about 2.4 h).
"""

from configs import exp_cleaning


def get_config(data: str = "cifar10"):
  if data not in ("cifar10", "cifar100"):
    raise ValueError(f"unknown data {data!r}; use cifar10 or cifar100")
  c = exp_cleaning.get_config("full")
  c.exp.results_dir = f"experiments/results/full_aum_{data}"
  if data == "cifar100":
    c.data.name = "tfds:cifar100"
    c.exp.settings = (("uniform", 0.2), ("uniform", 0.4), ("uniform", 0.6), ("uniform", 0.8))
  return c
