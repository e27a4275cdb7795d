"""AUM from the authors' PyTorch library (`aum` on PyPI), as a peer for jaxclean's numbers.

What: `run` trains a small PyTorch classifier on uint8 images and records the
area under the margin (Pleiss et al. 2020) with `aum.AUMCalculator`, used as
its README and the authors' training code use it: each step passes the
training-mode logits of the batch, its targets and its sample ids
(`calc.update(logits, targets, ids)`), and `calc.finalize()` writes
`aum_values.csv`. As in the paper-replication runner (and jaxclean's default
`aum.skip_epochs = 1`), the first `skip_epochs` epochs are not recorded.

Why: jaxclean records the same margins inside its jitted JAX step; this is the
reference implementation to compare its cost and its AUM ranking against
(`benchmarks/end_to_end.py`). The recipe mirrors jaxclean's: inputs normalised
per channel by the training set's float32 mean/std, `cnn` = jaxclean's
`models/cnn.py` (SAME 3x3 convs, 2x2 max pools, dense 128) and `mlp` = its
`models/mlp.py` (256-256), but with PyTorch's default initialisation; SGD with
momentum (no Nesterov), constant learning rate; each epoch a fresh shuffle
from a `torch.Generator` seeded by `seed` (the order `DataLoader(shuffle=True,
generator=g)` gives), last partial batch kept.

Optional: `pip install -e ".[peers_torch]"` (torch, aum). aum 1.0.2 cannot
update on a batch of one example (it squeezes the batch axis away), so
`run` refuses N % batch_size == 1.

CLI: python -m third_party.aum_reference --npz DATA.npz [--labels L.npy] \
         --epochs 15 --model cnn --out aum.csv
writes `index,aum` (example order) atomically and prints the wall seconds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd


def build_model(name: str, shape: tuple[int, int, int], num_classes: int):
  """`cnn` or `mlp` for (H, W, C) images, PyTorch default initialisation."""
  from torch import nn
  h, w, c = shape
  if name == "cnn":  # two 2x2 pools with floor, as jaxclean's VALID max_pool_2x2
    return nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * (h // 2 // 2) * (w // 2 // 2), 128), nn.ReLU(),
        nn.Linear(128, num_classes))
  if name == "mlp":
    return nn.Sequential(nn.Flatten(), nn.Linear(h * w * c, 256), nn.ReLU(),
                         nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, num_classes))
  raise ValueError(f"unknown model {name!r}; valid: cnn, mlp")


def run(x_train: np.ndarray, labels: np.ndarray, num_classes: int, model: str = "cnn",
        epochs: int = 15, batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9,
        weight_decay: float = 0.0, seed: int = 0, threads: int | None = None,
        skip_epochs: int = 1) -> dict:
  """Trains and records AUM with `aum.AUMCalculator`.

  Args: x_train uint8 (N, H, W, C); labels int (N,) in [0, num_classes).
  Returns dict(aum=float64 (N,) in example order (NaN if never recorded),
  seconds=wall time of model set-up, training, recording and finalize,
  train_accuracy=list of per-epoch training accuracies).
  """
  import torch
  from aum import AUMCalculator

  x_train, labels = np.asarray(x_train), np.asarray(labels)
  if x_train.ndim != 4 or labels.shape != (len(x_train),):
    raise ValueError(f"need images (N, H, W, C) and labels (N,), got {x_train.shape}, "
                     f"{labels.shape}")
  n = len(labels)
  if n % batch_size == 1:
    raise ValueError(f"aum 1.0.2 fails on a last batch of one example: N={n} and batch_size="
                     f"{batch_size} leave one; choose another batch_size")
  if threads:
    torch.set_num_threads(threads)
  # Per-channel float32 mean/std of the training images (float64 sums, as jaxclean).
  flat = x_train.reshape(-1, x_train.shape[-1]).astype(np.float64)
  mean, std = flat.mean(0), np.maximum(flat.std(0), 1e-6)
  del flat
  x = torch.from_numpy(((x_train.astype(np.float32) - mean.astype(np.float32))
                        / std.astype(np.float32)).transpose(0, 3, 1, 2).copy())
  y = torch.from_numpy(labels.astype(np.int64))

  start = time.perf_counter()
  torch.manual_seed(seed)
  net = build_model(model, x_train.shape[1:], num_classes)
  opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay,
                        nesterov=False)
  gen = torch.Generator().manual_seed(seed)
  accuracy = []
  with tempfile.TemporaryDirectory() as save_dir:
    calc = AUMCalculator(save_dir, compressed=True)
    net.train()
    for epoch in range(epochs):
      correct = 0
      for ids in torch.randperm(n, generator=gen).split(batch_size):
        logits = net(x[ids])
        target = y[ids]
        loss = torch.nn.functional.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        correct += (logits.argmax(1) == target).sum().item()
        if epoch >= skip_epochs:
          calc.update(logits.detach(), target, ids.tolist())
      accuracy.append(correct / n)
    calc.finalize()
    seconds = time.perf_counter() - start
    table = pd.read_csv(os.path.join(save_dir, "aum_values.csv")) if calc.counts else None
  aum = np.full(n, np.nan)
  if table is not None:
    aum[table["sample_id"].to_numpy()] = table["aum"].to_numpy()
  return dict(aum=aum, seconds=seconds, train_accuracy=accuracy)


def write_csv(path: str, aum: np.ndarray) -> None:
  """`index,aum` to `path` through a temporary file in the same folder and a rename."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      pd.DataFrame(dict(index=np.arange(len(aum)), aum=aum)).to_csv(f, index=False)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--npz", required=True, help="npz with x_train (N,H,W,C) uint8 and y_train")
  p.add_argument("--labels", default="", help=".npy of training labels replacing y_train")
  p.add_argument("--num_classes", type=int, default=0,
                 help="0 = 1 + the largest label in the npz or --labels (as jaxclean's npz:)")
  p.add_argument("--model", default="cnn", choices=("cnn", "mlp"))
  p.add_argument("--epochs", type=int, default=15)
  p.add_argument("--batch_size", type=int, default=128)
  p.add_argument("--lr", type=float, default=0.05)
  p.add_argument("--momentum", type=float, default=0.9)
  p.add_argument("--weight_decay", type=float, default=0.0)
  p.add_argument("--skip_epochs", type=int, default=1)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--threads", type=int, default=None)
  p.add_argument("--out", required=True, help="CSV to write: index,aum")
  a = p.parse_args(argv)
  t0 = time.perf_counter()
  with np.load(a.npz, allow_pickle=False) as f:
    x = f["x_train"]
    given = [f[k].reshape(-1) for k in ("y_train", "y_test") if k in f.files]
  labels = np.load(a.labels, allow_pickle=False) if a.labels else given[0]
  if x.ndim == 3:
    x = x[..., None]
  num_classes = a.num_classes or 1 + max(int(y.max(initial=-1)) for y in given + [labels])
  result = run(x, labels, num_classes, a.model, a.epochs, a.batch_size, a.lr, a.momentum,
               a.weight_decay, a.seed, a.threads, a.skip_epochs)
  write_csv(a.out, result["aum"])
  print(f"aum_reference: {len(labels)} examples, {a.model}, {a.epochs} epochs: training + "
        f"recording {result['seconds']:.1f} s, wall {time.perf_counter() - t0:.1f} s "
        f"(after imports); final train accuracy {result['train_accuracy'][-1]:.3f}; "
        f"wrote {a.out}")


if __name__ == "__main__":
  main()
