"""Classifiers by config name: `get_model(name, num_classes, **options)`.

Every model is a flax.linen Module called as `model.apply(variables, x, train=...)` on float32
NHWC images, returning float32 logits (N, num_classes). Models with batch norm keep running
statistics in the `batch_stats` collection. Besides the built-in names, a model is the
user's own: `import:<module>:<name>` (the command line) or one given in Python (`given`).
"""

import dataclasses
import hashlib
import importlib

import flax.linen as nn
import jax
import numpy as np

from jaxclean.errors import InputError
from jaxclean.models.cnn import CNN
from jaxclean.models.finetuned import Finetuned
from jaxclean.models.mlp import MLP
from jaxclean.models.resnet import PreActResNet18, ResNet32

MODELS = {'mlp': MLP, 'cnn': CNN, 'resnet32': ResNet32, 'preact_resnet18': PreActResNet18}
IMPORT = 'import:'  # model.name / backbone.name prefix: the user's own module or function
PYTHON = 'python:'  # ... and of one given in Python (`given`, find_label_issues(embed=))
OWN = (IMPORT, PYTHON)
_GIVEN = {}  # name -> (module, variables or None), models given in Python (`given`)


def given(module: nn.Module, variables=None) -> str:
  """Registers the user's flax Module (and the variables it starts from) for this process;
  returns the `model.name` that names it, stable across processes for the same module
  and variables, so a run made with it resumes."""
  if not isinstance(module, nn.Module):
    raise InputError(f'model must be a flax.linen Module, got {type(module).__name__}')
  h = hashlib.blake2b(repr(module).encode(), digest_size=8)
  for leaf in jax.tree.leaves(variables):
    h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  name = f'{PYTHON}{type(module).__qualname__}-{h.hexdigest()}'
  _GIVEN[name] = (module, variables)
  return name


def start_variables(name: str):
  """The variables a model given in Python starts from, or None (its initialisers)."""
  return _GIVEN.get(name, (None, None))[1]


def imported(path: str):
  """The object `import:<module>:<name>` names; InputError if it cannot be imported."""
  module, _, attr = path[len(IMPORT):].partition(':')
  try:
    return getattr(importlib.import_module(module), attr)
  except (ImportError, AttributeError, ValueError) as e:
    raise InputError(f'cannot import {path!r} (expected import:<module>:<name>): '
                     f'{type(e).__name__}: {e}') from None


def _own(module, num_classes: int) -> nn.Module:
  """The user's module (a class taking num_classes, or an instance) with `num_classes`
  outputs where it has such a field; otherwise it is taken as it is."""
  if isinstance(module, type) and issubclass(module, nn.Module):
    fields = {f.name for f in dataclasses.fields(module)}
    return module(num_classes=num_classes) if 'num_classes' in fields else module()
  if not isinstance(module, nn.Module):
    raise InputError(f'model must be a flax.linen Module, got {type(module).__name__}')
  fields = {f.name for f in dataclasses.fields(module)}
  return module.clone(num_classes=num_classes) if 'num_classes' in fields else module


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
  if name in _GIVEN:
    return _own(_GIVEN[name][0], num_classes)
  if name.startswith(IMPORT):
    return _own(imported(name), num_classes)
  if name not in MODELS:
    raise ValueError(f'unknown model {name!r}; valid names: {", ".join(MODELS)}')
  return MODELS[name](num_classes=num_classes, **kwargs)
