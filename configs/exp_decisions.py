"""Decisions against the truth: experiments/decisions.py (results/decisions).

The default config as in configs/exp_compare.py (Fashion-MNIST's first 12,000 training
images, the small CNN, 15 epochs) over uniform and asymmetric noise of 10-40 %, and the
five CIFAR-10N label sets on CIFAR-10's first 10,000 images; exp.retrain adds four
trainings from scratch per case (given, corrected, flagged removed, oracle removed):
  python -m experiments.decisions --config=configs/exp_decisions.py --workdir=runs/exp_decisions
All 50,000 CIFAR-10 images: --config.exp.cifar10_size=0 '--config.exp.noise=()'.
"""

from configs import exp_compare


def get_config():
  c = exp_compare.get_config()
  c.exp.results_dir = "experiments/results/decisions"
  c.exp.noise = tuple((kind, rate) for kind in ("uniform", "asymmetric")
                      for rate in (0.1, 0.2, 0.3, 0.4))
  c.exp.cifar10n = ("aggre", "random1", "random2", "random3", "worst")
  c.exp.retrain = False
  return c
