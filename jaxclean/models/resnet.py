"""CIFAR-style residual networks: ResNet-32 (He et al. 2016a) and PreAct ResNet-18 (2016b).

One generic `ResNet` with a block type and stage sizes. Convs use Kaiming-normal fan_out
initialisation (as torchvision; the CIFAR references use Kaiming normal too), batch norm starts
at scale 1 / bias 0, and the final dense layer keeps flax's default (LeCun normal).
"""

import functools
from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax.numpy as jnp

kaiming_fan_out = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def batch_norm(train, dtype):
  """Batch norm with running stats in `batch_stats` (PyTorch's momentum 0.1 and epsilon)."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype)


class BasicBlock(nn.Module):
  """Post-activation block: conv-BN-ReLU-conv-BN, add shortcut, ReLU.

  The shortcut is a 1x1 conv + BN when the shape changes (option B), else the identity.
  """
  features: int
  strides: int
  conv: Any
  norm: Any
  preact: ClassVar[bool] = False

  @nn.compact
  def __call__(self, x):
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = self.norm()(self.conv(self.features, (1, 1), self.strides)(x))
    y = nn.relu(self.norm()(self.conv(self.features, (3, 3), self.strides)(x)))
    y = self.norm()(self.conv(self.features, (3, 3))(y))
    return nn.relu(y + shortcut)


class PreActBlock(nn.Module):
  """Pre-activation block: BN-ReLU-conv-BN-ReLU-conv, add shortcut.

  The shortcut is a 1x1 conv of the pre-activated input when the shape changes, else the
  identity of the raw input.
  """
  features: int
  strides: int
  conv: Any
  norm: Any
  preact: ClassVar[bool] = True

  @nn.compact
  def __call__(self, x):
    h = nn.relu(self.norm()(x))
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = self.conv(self.features, (1, 1), self.strides)(h)
    y = self.conv(self.features, (3, 3), self.strides)(h)
    y = self.conv(self.features, (3, 3))(nn.relu(self.norm()(y)))
    return y + shortcut


class ResNet(nn.Module):
  """Residual net: 3x3 stem conv, stages of `block`s, global average pool, dense.

  Stage i has stage_sizes[i] blocks of widths[i] channels; its first block strides by 2 except
  in stage 0. Post-activation nets put BN-ReLU after the stem, pre-activation nets before the pool.
  """
  num_classes: int
  block: Any
  stage_sizes: Sequence[int]
  widths: Sequence[int]
  dtype: Any = jnp.float32  # compute dtype; parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool):
    conv = functools.partial(nn.Conv, padding='SAME', use_bias=False,
                             kernel_init=kaiming_fan_out, dtype=self.dtype)
    norm = functools.partial(batch_norm, train, self.dtype)
    x = conv(self.widths[0], (3, 3))(x)
    if not self.block.preact:
      x = nn.relu(norm()(x))
    for i, (size, width) in enumerate(zip(self.stage_sizes, self.widths)):
      for j in range(size):
        x = self.block(width, 2 if i > 0 and j == 0 else 1, conv, norm)(x)
    if self.block.preact:
      x = nn.relu(norm()(x))
    x = x.mean(axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


ResNet32 = functools.partial(ResNet, block=BasicBlock, stage_sizes=(5, 5, 5),
                             widths=(16, 32, 64))
PreActResNet18 = functools.partial(ResNet, block=PreActBlock, stage_sizes=(2, 2, 2, 2),
                                   widths=(64, 128, 256, 512))
