"""Test error after cleaning (AUM paper Table 1 protocol): experiments/cleaning.py.

CPU scale (Fashion-MNIST 10k, MLP, 10 epochs; 8 min on 2 loaded cores at 2d1c860):
  python -m experiments.cleaning --config=configs/exp_cleaning.py --workdir=runs/exp_cleaning
Full scale (CIFAR-10, ResNet-32 reference recipe; for accelerators):
  python -m experiments.cleaning --config=configs/exp_cleaning.py:full \
      --workdir=runs/exp_cleaning_full
"""

from configs import exp_base


def get_config(scale: str = "cpu"):
  if scale not in ("cpu", "full"):
    raise ValueError(f"unknown scale {scale!r}; use cpu or full")
  c = (exp_base.cpu if scale == "cpu" else exp_base.full)(
      "experiments/results/cleaning" + ("_full" if scale == "full" else ""))
  c.aum.threshold_samples = "two_runs"
  c.exp.settings = (("uniform", 0.2), ("uniform", 0.4), ("uniform", 0.6), ("uniform", 0.8),
                    ("asymmetric", 0.2), ("asymmetric", 0.4))
  c.exp.methods = ("keep_all", "oracle", "random", "aum_threshold", "forgetting")
  c.exp.topk = "flagged"  # forgetting removes k = #AUM-flagged ('noisy': k = #wrong labels)
  return c
