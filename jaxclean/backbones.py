"""Pretrained image backbones by name, from keras-hub on Keras' JAX backend.

`load(name)` gives a `Backbone`: the model's weights as a pytree and a pure
`apply(weights, images, train)` (the preset's own resizing and pixel scaling, the
model through `keras.Model.stateless_call`, then pooling to one vector per image),
so the same object embeds a data set once (frozen mode, `jaxclean.embed`) or trains
inside jaxclean's step with the records (fine-tune mode, `models.Finetuned`).

keras-hub was chosen over a Flax-only library because it is kept by the Keras team,
has DINOv2, CLIP, SigLIP and ImageNet ResNets under one API, and runs on JAX through
`stateless_call` (benchmarks/backbones.py measures the cost per example). It is the
optional extra `jaxclean[pretrained]`; weights download from Kaggle on first use and
are cached by kagglehub (`KAGGLEHUB_CACHE`, default ~/.cache/kagglehub).
`tiny_dinov2` and `tiny_resnet` are random, download nothing and serve the tests.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxclean.errors import InputError

# name -> (keras-hub preset, for a two-tower model the image tower's attribute, what it is).
PRESETS = {
    "dinov2_small": ("dinov2_small", None, "DINOv2 ViT-S/14, 22.6 M parameters"),
    "dinov2_base": ("dinov2_base", None, "DINOv2 ViT-B/14, 87.6 M parameters"),
    "clip_vit_b16": ("clip_vit_base_patch16", "vision_encoder",
                     "OpenAI CLIP ViT-B/16 image tower (the download holds both towers, 150 M)"),
    "siglip_b16": ("siglip_base_patch16_224", "vision_encoder",
                   "SigLIP ViT-B/16 at 224 image tower (the download holds both towers, 203 M)"),
    "resnet50": ("resnet_50_imagenet", None, "ResNet-50 trained on ImageNet-1k, 23.6 M"),
    "resnet18": ("resnet_18_imagenet", None, "ResNet-18 trained on ImageNet-1k, 11.2 M"),
}
TINY = ("tiny_dinov2", "tiny_resnet")  # random weights, built offline (tests)
NAMES = (*PRESETS, *TINY)


def describe(name: str) -> str:
  """What `name` is and what it downloads (one line)."""
  if name in TINY:
    return f"{name}: a tiny random network (tests), downloads nothing"
  preset, _, what = PRESETS[name]
  return f"{name}: {what}; downloads keras-hub preset {preset!r} from Kaggle on first use"


def keras():
  """Keras on the JAX backend (set before its first import), or an InputError saying why not."""
  os.environ.setdefault("KERAS_BACKEND", "jax")
  try:
    import keras as keras_lib
    import keras_hub  # noqa: F401 (checked here so that the message names the extra)
  except ImportError as e:
    raise InputError(f"pretrained backbones need keras-hub: pip install 'jaxclean[pretrained]' "
                     f"({e})") from None
  if keras_lib.backend.backend() != "jax":
    raise InputError(f"Keras was imported with the {keras_lib.backend.backend()!r} backend; "
                     "set KERAS_BACKEND=jax before anything imports keras")
  return keras_lib


@dataclasses.dataclass(eq=False)
class Backbone:
  """A Keras image model as a pure function of its weights.

  `apply` takes raw pixel values (B, H, W, C) float32 (0-255 for uint8 data; one channel
  is repeated to three), resizes them to `image_size`, scales them as the preset was
  trained (`pixel * scale + offset`), and pools the output to (B, D): the mean over
  positions of a feature map, the first (class) token of a sequence.
  """
  name: str
  model: Any  # keras.Model
  image_size: tuple[int, int]
  scale: np.ndarray  # (3,) per channel
  offset: np.ndarray  # (3,)

  def weights(self) -> tuple[list, list]:
    """(trainable, non-trainable) variable values, in `stateless_call`'s order."""
    return ([v.value for v in self.model.trainable_variables],
            [v.value for v in self.model.non_trainable_variables])

  def paths(self) -> list[str]:
    """The trainable variables' paths (what `backbone.trainable` matches)."""
    return [v.path for v in self.model.trainable_variables]

  def apply(self, weights, images, train: bool = False):
    """(features (B, D) float32, new non-trainable values)."""
    x = images.astype(jnp.float32)
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, axis=-1)
    if x.shape[1:3] != self.image_size:
      x = jax.image.resize(x, (x.shape[0], *self.image_size, x.shape[-1]), "bilinear")
    x = x * self.scale + self.offset
    trainable, state = weights
    inputs = x if _takes_array(self.model) else {"images": x}
    out, state = self.model.stateless_call(trainable, state, inputs, training=train)
    if isinstance(out, dict):
      out = out.get("sequence_output", next(iter(out.values())))
    if out.ndim == 4:
      out = jnp.mean(out, axis=(1, 2))
    elif out.ndim == 3:
      out = out[:, 0]
    return out.astype(jnp.float32), state


def _takes_array(model) -> bool:
  """Whether the functional model's input is one array rather than a dict {"images": ...}."""
  return not isinstance(model.input, dict)


@functools.lru_cache(maxsize=2)
def load(name: str, image_size: int = 0, seed: int = 0) -> Backbone:
  """The backbone `name` (see `NAMES`), downloading its weights on first use (built once
  per process: the fine-tuned model, GraNd and retraining share it).

  `image_size` (0: the preset's) resizes inputs to that square size instead; for a
  ViT the position embeddings are interpolated to it. `seed` initialises a tiny one.
  """
  if name not in NAMES:
    raise InputError(f"unknown backbone.name {name!r}; valid: {', '.join(NAMES)}, "
                     "or import:<module>:<function> for your own embedding function")
  k = keras()
  import keras_hub
  if name in TINY:
    return _tiny(k, keras_hub, name, image_size or 16, seed)
  preset, tower, _ = PRESETS[name]
  kwargs = {} if not image_size or "resnet" in name else dict(
      image_shape=(image_size, image_size, 3))
  model = keras_hub.models.Backbone.from_preset(preset, **({} if tower else kwargs))
  if tower:
    model = getattr(model, tower)
  converter = keras_hub.layers.ImageConverter.from_preset(preset)
  size = (image_size, image_size) if image_size else tuple(converter.image_size)
  return Backbone(name, model, size, *_scale_offset(converter))


def _scale_offset(converter) -> tuple[np.ndarray, np.ndarray]:
  """The converter's per-channel scale and offset as (3,) arrays (None: 1 and 0)."""
  scale = np.broadcast_to(np.asarray(1.0 if converter.scale is None else converter.scale,
                                     np.float32), (3,))
  offset = np.broadcast_to(np.asarray(0.0 if converter.offset is None else converter.offset,
                                      np.float32), (3,))
  return scale.copy(), offset.copy()


def _tiny(k, keras_hub, name: str, size: int, seed: int) -> Backbone:
  """A tiny random backbone of keras-hub's own architectures (no download)."""
  k.utils.set_random_seed(seed)
  if name == "tiny_dinov2":
    model = keras_hub.models.DINOV2Backbone(
        patch_size=4, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
        image_shape=(size, size, 3), position_embedding_shape=(size, size, 3))
  else:
    model = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64],
        stackwise_num_blocks=[1], stackwise_num_strides=[1], block_type="basic_block",
        image_shape=(None, None, 3))
  scale = np.full(3, 1 / 255, np.float32)
  return Backbone(name, model, (size, size), scale, np.zeros(3, np.float32))
