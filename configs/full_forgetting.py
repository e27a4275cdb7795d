"""Toneva et al. 2019's removal curve at full scale: CIFAR-10, test accuracy after removing
the least-forgotten examples against random ones; one GPU.

  python -m experiments.forgetting_curve --config=configs/full_forgetting.py \
      --workdir=runs/full_forgetting

`exp_forgetting_curve`'s full scale: forgetting counted over one 150-epoch run of the AUM
reference recipe (ResNet-32, batch 64; the paper's ResNet-18 and 200 epochs differ), then a
300-epoch retraining (batch 256) per removal of 0-40 % (9 retrainings, 7 full-data ones by
examples). Expected wall time, estimated and not measured (no GPU was available):
150 x 50k + 7 x 300 x 50k = 113M examples trained at 0.39 GFLOP each (XLA's count,
`benchmarks/step_flops.py`), 4.4e16 FLOP, 15 min at an assumed 50 TFLOP/s; bound by per-step
latency instead, at an assumed 3 ms per step at batch 64 and 5 ms at batch 256:
150 x 782 x 3 ms + 7 x 300 x 196 x 5 ms = about 40 min.
"""

from configs import exp_forgetting_curve


def get_config():
  c = exp_forgetting_curve.get_config("full")
  c.exp.results_dir = "experiments/results/full_forgetting"
  return c
