"""Detection quality of every score and of cleanlab: experiments/detection.py.

CPU scale (Fashion-MNIST 10k, MLP, 10 epochs; 5 min on 2 loaded cores at 2d1c860):
  python -m experiments.detection --config=configs/exp_detection.py --workdir=runs/exp_detection
Full scale (CIFAR-10, ResNet-32 reference recipe; for accelerators):
  python -m experiments.detection --config=configs/exp_detection.py:full \
      --workdir=runs/exp_detection_full
"""

from configs import exp_base


def get_config(scale: str = "cpu"):
  if scale not in ("cpu", "full"):
    raise ValueError(f"unknown scale {scale!r}; use cpu or full")
  c = (exp_base.cpu if scale == "cpu" else exp_base.full)(
      "experiments/results/detection" + ("_full" if scale == "full" else ""))
  c.aum.threshold_samples = "none"  # one run gives every score
  c.exp.settings = (("uniform", 0.2), ("uniform", 0.4), ("uniform", 0.6), ("uniform", 0.8),
                    ("asymmetric", 0.2), ("asymmetric", 0.4))
  c.exp.cleanlab = True  # skipped with a note when cleanlab is not installed
  c.exp.cleanlab_folds = 4
  return c
