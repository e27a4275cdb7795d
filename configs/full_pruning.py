"""Data Diet's pruning table (Paul et al. 2021) at full scale: CIFAR-10, keep the hardest
90 / 70 / 50 % by EL2N, by GraNd (at initialisation, and after the scoring run) or at
random, retrain, test; one GPU.

  python -m experiments.pruning --config=configs/full_pruning.py --workdir=runs/full_pruning

The recipe is `exp_pruning.full` (theirs: 200 epochs, batch 128, SGD lr 0.1 Nesterov,
weight decay 5e-4, x0.2 at epochs 60/120/160; PreAct ResNet-18 here), scores from a 20-epoch
run of 10 members (EL2N, and GraNd after its 20 epochs) and the same members at
initialisation (GraNd). Expected wall time, estimated and not measured (no GPU was
available): 9.4 full-data trainings by examples (keep-all and 4 x 3 kept fractions) x 200
epochs x 50k + 10 x 20 x 50k for scoring = 104M examples at 2.9 GFLOP each (XLA's count,
`benchmarks/step_flops.py`), 3.0e17 FLOP: about 100 min at an assumed sustained 50 TFLOP/s
(7 ms per step at batch 128: arithmetic-bound, unlike ResNet-32 at batch 64), so about 2 h.
"""

from configs import exp_pruning


def get_config():
  return exp_pruning.get_config("full")
