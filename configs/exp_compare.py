"""jaxclean against the AUM library and cleanlab: experiments/compare.py.

The default config (model auto = the small CNN here, 15 epochs) on Fashion-MNIST's
first 12,000 training images with uniform and asymmetric noise (results/compare,
18 min on 2 quiet cores), or on the first 10,000 CIFAR-10 images with CIFAR-10N's
human label sets (results/compare_cifar10n, 13 min); every method gets the same
labels, model class, recipe and epochs:
  pip install -e ".[peers,peers_torch]"
  python -m experiments.compare --config=configs/exp_compare.py --workdir=runs/exp_compare
  python -m experiments.compare --config=configs/exp_compare.py --workdir=runs/exp_compare \
      '--config.exp.noise=()' '--config.exp.cifar10n=("aggre","random1","worst")' \
      --config.exp.results_dir=experiments/results/compare_cifar10n
"""

from configs import default

# Fashion-MNIST's confusable pairs, both ways: T-shirt<->Shirt, Trouser<->Dress,
# Pullover<->Coat, Sandal<->Sneaker, Bag<->Ankle boot.
FASHION_MNIST_PAIRS = "0:6,6:0,1:3,3:1,2:4,4:2,5:7,7:5,8:9,9:8"


def get_config():
  c = default.get_config()
  c.data.name = "fashion_mnist"
  c.data.train_size = 12000
  c.data.eval_size = 2000
  c.noise.pairs = FASHION_MNIST_PAIRS
  c.num_epochs = 15
  c.progress = False
  c.num_devices = 1
  c.exp = dict(results_dir="experiments/results/compare",
               noise=(("uniform", 0.2), ("uniform", 0.4), ("asymmetric", 0.2),
                      ("asymmetric", 0.3), ("asymmetric", 0.4)),
               # ensemble > 1 adds a row trained with that many members (K times the
               # arithmetic on a CPU); benchmarks/ensemble.py measures K on its own.
               cifar10n=(), cifar10_size=10000, ensemble=1,
               peers=("aum_reference", "cleanlab"))
  return c
