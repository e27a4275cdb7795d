"""Writes the Fashion-MNIST case that issue 8's checks run: an npz and noisy label files.

  python -m experiments.fashion_mnist_case --out=runs/fm12k
  python -m jaxclean.main --config=configs/default.py --workdir=runs/fm12k/a30 \\
      --config.data.name=npz:runs/fm12k/data.npz --config.data.labels_file=runs/fm12k/a30.npy \\
      --config.noise.kind=none --config.num_epochs=15

`data.npz` holds the first --n training images (and the first 2,000 test
images) with their clean labels; `u20.npy`, `u40.npy`, `a20.npy`, `a30.npy`,
`a40.npy` are the training labels with that much uniform or asymmetric noise
(`jaxclean.noise.inject`, seed 0; asymmetric between the confusable pairs
T-shirt<->Shirt, Trouser<->Dress, Pullover<->Coat, Sandal<->Sneaker,
Bag<->Ankle boot). A run given such a labels file does not know the truth:
compare its scores with `data.npz`'s `y_train`.
"""

import os

import ml_collections
import numpy as np
from absl import app, flags

from configs.exp_compare import FASHION_MNIST_PAIRS
from jaxclean import data, noise, outputs

_OUT = flags.DEFINE_string("out", None, "Directory for data.npz and the label files.")
_N = flags.DEFINE_integer("n", 12000, "Training images to keep.")
CASES = (("uniform", 0.2), ("uniform", 0.4), ("asymmetric", 0.2), ("asymmetric", 0.3),
         ("asymmetric", 0.4))


def main(argv):
  del argv
  ds = data.load(ml_collections.ConfigDict(dict(name="fashion_mnist")))
  x, y = ds.train.images[:_N.value], ds.train.labels[:_N.value]
  with outputs.atomic_path(os.path.join(_OUT.value, "data.npz")) as tmp, open(tmp, "wb") as f:
    np.savez(f, x_train=x, y_train=y, x_test=ds.test.images[:2000],
             y_test=ds.test.labels[:2000], class_names=np.array(ds.class_names))
  for kind, rate in CASES:
    labels, _ = noise.inject(y, ds.num_classes, kind, rate, 0, FASHION_MNIST_PAIRS)
    with outputs.atomic_path(os.path.join(_OUT.value, f"{kind[0]}{round(rate * 100)}.npy")
                             ) as tmp, open(tmp, "wb") as f:
      np.save(f, labels)


if __name__ == "__main__":
  flags.mark_flag_as_required("out")
  app.run(main)
