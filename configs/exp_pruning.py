"""Data Diet's pruning table (Paul et al. 2021): experiments/pruning.py.

Keep the hardest fraction of the training set by EL2N, by GraNd, or at random, retrain from
scratch, test. Scores: EL2N averaged over the presentations of a short run's first
`exp.score.num_epochs` epochs, GraNd at initialisation (`grand`) and after that run's
`exp.score.num_epochs` epochs (`grand_trained`), all averaged over `exp.score.ensemble`
members (the paper's seeds). `grand.epochs` is set by experiments/pruning.py.

CPU scale (clean Fashion-MNIST, first 6k, MLP, 10 epochs; 3 min on 2 loaded cores at 2d1c860):
  python -m experiments.pruning --config=configs/exp_pruning.py --workdir=runs/exp_pruning
Full scale (the paper's CIFAR-10 recipe; for accelerators; also configs/full_pruning.py):
  python -m experiments.pruning --config=configs/exp_pruning.py:full \
      --workdir=runs/exp_pruning_full
"""

from configs import exp_base


def get_config(scale: str = "cpu"):
  if scale not in ("cpu", "full"):
    raise ValueError(f"unknown scale {scale!r}; use cpu or full")
  if scale == "full":
    c = full()
  else:
    c = exp_base.cpu("experiments/results/pruning")
    c.data.train_size = 6000  # 13 trainings (9.4 full-data ones by examples) in ~10 min
    # Scoring: 2 epochs at the recipe's starting lr (EL2N early in training), 4 seeds.
    c.exp.score = dict(num_epochs=2, ensemble=4, schedule="constant")
  c.noise.kind = "none"
  c.aum.threshold_samples = "none"
  c.exp.scores = ("el2n", "grand", "grand_trained", "random")
  c.exp.fractions = (0.9, 0.7, 0.5)
  return c


def full():
  """Data Diet's CIFAR-10 recipe (their scripts/run_keep_max_scores.py): 200 epochs, batch 128,
  SGD lr 0.1 Nesterov 0.9, weight decay 5e-4, lr x0.2 at epochs 60, 120, 160, crop 4 + flip;
  PreAct ResNet-18 here (theirs: a low-resolution ResNet-18). Scores from 10 seeds: EL2N over
  the first 20 epochs' presentations, GraNd at initialisation and after those 20 epochs. Wall
  time: configs/full_pruning.py.
  """
  c = exp_base.full("experiments/results/pruning_full")
  c.model = dict(name="preact_resnet18")
  c.batch_size = 128
  c.num_epochs = 200
  c.optimizer = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="step",
                     drops=(0.3, 0.6, 0.8), drop_factor=0.2, warmup_epochs=0)
  c.clean.retrain = dict(num_epochs=None, batch_size=None)  # the same recipe
  c.exp.score = dict(num_epochs=20, ensemble=10, schedule="constant")  # lr 0.1 up to epoch 60
  return c
