"""Cleaning inside the run against detect-then-retrain: experiments/clean_in_run.py.

The default config (model auto = the small CNN here, 15 epochs) on Fashion-MNIST's first
12,000 training images with 40 % uniform and 30 % asymmetric noise, and on the first
10,000 CIFAR-10 images with CIFAR-10N's `worst` labels. 17.5 min on 2 quiet cores:
  python -m experiments.clean_in_run --config=configs/exp_clean_in_run.py \
      --workdir=runs/exp_clean_in_run
"""

from configs import default, exp_compare


def get_config():
  c = default.get_config()
  c.data.name = "fashion_mnist"
  c.data.train_size = 12000
  c.data.eval_size = 2000
  c.noise.pairs = exp_compare.FASHION_MNIST_PAIRS
  c.num_epochs = 15
  c.progress = False
  c.num_devices = 1
  c.exp = dict(results_dir="experiments/results/clean_in_run",
               noise=(("uniform", 0.4), ("asymmetric", 0.3)),
               # in_run's clean.at_epoch: 0 = when the early window closes, k = after epoch k
               at_epochs=(0, 3, 5),
               cifar10n=("worst",), cifar10_size=10000)
  return c
