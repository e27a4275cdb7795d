"""Classifiers by config name: `get_model(name, num_classes, **options)`.

Every model is a flax.linen Module called as `model.apply(variables, x, train=...)` on float32
NHWC images, returning float32 logits (N, num_classes). Models with batch norm keep running
statistics in the `batch_stats` collection.
"""

import flax.linen as nn

from jaxclean.models.cnn import CNN
from jaxclean.models.mlp import MLP
from jaxclean.models.resnet import PreActResNet18, ResNet32

MODELS = {'mlp': MLP, 'cnn': CNN, 'resnet32': ResNet32, 'preact_resnet18': PreActResNet18}


def auto(image_shape) -> str:
  """The model `model.name='auto'` picks for examples of `image_shape` (H, W, C).

  Vectors and tiny images (under 16x16, e.g. digits' 8x8) get the MLP, whose
  dense layers see every input at once; larger images get the small CNN.
  """
  height, width = image_shape[0], image_shape[1]
  return 'mlp' if min(height, width) < 16 else 'cnn'


def get_model(name: str, num_classes: int, input_shape=None, **kwargs) -> nn.Module:
  """The model `name` with `num_classes` outputs; kwargs are its options (TypeError if unknown).

  `name='auto'` picks by `input_shape` (H, W, C), see `auto`.
  """
  if name == 'auto':
    name = auto(input_shape)
  if name not in MODELS:
    raise ValueError(f'unknown model {name!r}; valid names: {", ".join(MODELS)}')
  return MODELS[name](num_classes=num_classes, **kwargs)
