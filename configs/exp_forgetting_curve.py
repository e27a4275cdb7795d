"""Removing least-forgotten versus random examples (Toneva et al. 2019):
experiments/forgetting_curve.py.

CPU scale (Fashion-MNIST 10k, clean labels, MLP, 10 epochs; 2 min on 2 loaded cores at 2d1c860):
  python -m experiments.forgetting_curve --config=configs/exp_forgetting_curve.py \
      --workdir=runs/exp_forgetting_curve
Full scale (CIFAR-10, ResNet-32 reference recipe; for accelerators):
  python -m experiments.forgetting_curve --config=configs/exp_forgetting_curve.py:full \
      --workdir=runs/exp_forgetting_curve_full
"""

from configs import exp_base


def get_config(scale: str = "cpu"):
  if scale not in ("cpu", "full"):
    raise ValueError(f"unknown scale {scale!r}; use cpu or full")
  c = (exp_base.cpu if scale == "cpu" else exp_base.full)(
      "experiments/results/forgetting_curve" + ("_full" if scale == "full" else ""))
  c.aum.threshold_samples = "none"
  c.noise.kind = "none"
  c.exp.noise = (("none", 0.0),)  # settings as in exp_cleaning, e.g. (("uniform", 0.2),)
  c.exp.fractions = (0.0, 0.1, 0.2, 0.3, 0.4)
  return c
