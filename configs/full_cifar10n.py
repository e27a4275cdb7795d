"""CIFAR-10N detection at full scale: every score's AUROC / AP and the AUM threshold flags on
all 50k CIFAR-10 images with the human label sets aggre, random1 and worst; one GPU. The
shortest full-scale table: `benchmarks/accelerator.sh` runs it with ACCEL_FULL=1.

  python -m experiments.real_noise --config=configs/full_cifar10n.py --workdir=runs/full_cifar10n

Needs ../shared/data/cifar10 (labels.npz, cifar10_jpeg.tar.gz) or `data.data_dir`. Recipe:
`exp_base.full` (ResNet-32, 150 epochs, batch 64), the AUM paper's two threshold runs per
label set. Expected wall time, estimated and not measured (no GPU was available):
3 x 2 x 150 x 50k = 45M examples at 0.39 GFLOP (XLA's count, `benchmarks/step_flops.py`),
1.8e16 FLOP, 6 min at an assumed 50 TFLOP/s; bound by per-step latency instead, at an assumed
3 ms per step: 3 x 2 x 150 x 782 x 3 ms = about 35 min.
"""

from configs import exp_real_noise


def get_config():
  c = exp_real_noise.get_config("full")
  c.exp.results_dir = "experiments/results/full_cifar10n"
  return c
