"""CIFAR-10N real label noise: experiments/real_noise.py.

Needs ../shared/data/cifar10 (labels.npz + cifar10_jpeg.tar.gz; set data.data_dir
otherwise). The first load decodes 60k JPEGs (~20 s) and caches them.

CPU scale (first 10k training images, small CNN (width 16, batch norm), 6 epochs;
4.5 min on 2 loaded cores at 2d1c860):
  python -m experiments.real_noise --config=configs/exp_real_noise.py --workdir=runs/exp_real_noise
Full scale (all 50k, ResNet-32 reference recipe; for accelerators):
  python -m experiments.real_noise --config=configs/exp_real_noise.py:full \
      --workdir=runs/exp_real_noise_full
"""

from configs import exp_base


def get_config(scale: str = "cpu"):
  if scale not in ("cpu", "full"):
    raise ValueError(f"unknown scale {scale!r}; use cpu or full")
  if scale == "full":
    c = exp_base.full("experiments/results/real_noise_full")
  else:
    c = exp_base.cpu("experiments/results/real_noise")
    c.data.name = "cifar10"
    c.data.train_size = 10000
    # Batch norm and lr 0.01: without batch norm, or at lr >= 0.02, this CNN's training
    # with threshold samples (11 classes) diverged to chance within two epochs.
    c.model = dict(name="cnn", width=16, batch_norm=True)
    c.optimizer.lr = 0.01
    c.num_epochs = 6
    c.augment.flip = True
  c.noise.kind = "none"  # the CIFAR-10N labels are the noise
  c.aum.threshold_samples = "two_runs"
  c.exp.label_sets = ("aggre", "random1", "worst")
  return c
