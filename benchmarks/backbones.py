"""What a backbone costs per example on this machine, frozen and fine-tuned, and the library.

Builds each architecture at its real size with random weights (no download: the cost
does not depend on the weights) and times, per example at 224x224:
- frozen: one jitted forward pass (`backbones.Backbone.apply`), what embedding a data
  set once costs (`jaxclean.embed`);
- fine-tune: one jitted train step of jaxclean's (`train.make_train_step`: forward,
  backward, SGD, records) on `models.Finetuned`;
- the same DINOv2 ViT-S/14 forward pass in jax-image-models (Flax NNX), the other
  maintained JAX library with DINOv2, to compare the two on equal work.
Medians of `--repeats` timed calls after one compile and warm-up call.

  python benchmarks/backbones.py            # ViT-S/14 and ResNet-50, batch 16
  python benchmarks/backbones.py --smoke    # tiny sizes, for the test suite
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jaxclean import backbones, models, parallel, train  # noqa: E402


def architectures(smoke: bool) -> dict:
  """name -> (keras-hub model at real size with random weights, image size)."""
  k = backbones.keras()
  import keras_hub
  k.utils.set_random_seed(0)
  if smoke:
    return {name: (backbones.load(name).model, 16) for name in backbones.TINY}
  return {
      "dinov2_small (ViT-S/14)": (keras_hub.models.DINOV2Backbone(
          patch_size=14, num_layers=12, hidden_dim=384, num_heads=6, intermediate_dim=1536,
          image_shape=(224, 224, 3), position_embedding_shape=(518, 518, 3)), 224),
      "resnet50": (keras_hub.models.ResNetBackbone(
          input_conv_filters=[64], input_conv_kernel_sizes=[7],
          stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[3, 4, 6, 3],
          stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block",
          image_shape=(None, None, 3)), 224),
  }


def median_seconds(fn, repeats: int) -> float:
  for _ in range(2):  # compile (the second call may see its outputs' shardings) and warm up
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def frozen(backbone, batch: int, repeats: int) -> float:
  x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (batch, *backbone.image_size, 3)),
                  jnp.float32)
  step = jax.jit(lambda w, x: backbone.apply(w, x)[0])
  weights = backbone.weights()
  return median_seconds(lambda: step(weights, x), repeats) / batch


def finetune(backbone, batch: int, repeats: int) -> float:
  from configs import default
  c = default.get_config()
  c.batch_size, c.backbone.name, c.backbone.mode = batch, backbone.name, "finetune"
  shape = (*backbone.image_size, 3)
  mesh = parallel.make_mesh(1)
  state = train.create_train_state(c, models.Finetuned(backbone, 11), shape, 1)
  records = train.init_records(batch, 1, mesh)
  data = dict(image=jnp.zeros((batch, *shape), jnp.uint8), label=jnp.zeros(batch, jnp.int32),
              index=jnp.arange(batch, dtype=jnp.int32), mask=jnp.ones(batch, bool))
  step = train.make_train_step(c, np.zeros(3, np.float32), np.ones(3, np.float32), 1, True,
                               10, 10)
  carry = [state, records]

  def one():
    carry[0], carry[1], metrics = step(carry[0], carry[1], data, jax.random.key(0),
                                       jnp.bool_(True))
    return metrics

  with jax.set_mesh(mesh):
    return median_seconds(one, repeats) / batch


def jimm_dinov2(batch: int, repeats: int, smoke: bool) -> float | None:
  try:
    from flax import nnx
    from jimm.models.dinov2.dinov2_model import DINOv2Model
  except ImportError:
    return None
  size, kw = (16, dict(patch_size=4, hidden_size=16, num_layers=2, num_heads=2, mlp_dim=32)
              ) if smoke else (224, {})
  mesh = jax.make_mesh((1,), ("fsdp",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:1])  # its parameters are annotated for FSDP
  with jax.set_mesh(mesh):
    model = DINOv2Model(img_size=size, rngs=nnx.Rngs(0), **kw)
    graph, state = nnx.split(model)
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch, size, size, 3)),
                    jnp.float32)
    step = jax.jit(lambda s, x: nnx.merge(graph, s)(x))
    return median_seconds(lambda: step(state, x), repeats) / batch


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--smoke", action="store_true", help="tiny random backbones (the test suite)")
  a = p.parse_args()
  print(f"{jax.device_count()} {jax.default_backend()} device(s), batch {a.batch}, "
        f"median of {a.repeats}")
  print(f"{'backbone':28s} {'frozen ms/example':>18s} {'fine-tune ms/example':>21s} "
        f"{'fine-tune / frozen':>19s}")
  first = None
  for name, (model, size) in architectures(a.smoke).items():
    b = backbones.Backbone(name.split()[0], model, (size, size),
                           np.full(3, 1 / 255, np.float32), np.zeros(3, np.float32))
    f, t = frozen(b, a.batch, a.repeats), finetune(b, a.batch, a.repeats)
    first = first or f
    print(f"{name:28s} {f * 1e3:18.2f} {t * 1e3:21.2f} {t / f:19.2f}")
  j = jimm_dinov2(a.batch, a.repeats, a.smoke)
  if j is not None:
    print(f"DINOv2 forward, jax-image-models / keras-hub: {j * 1e3:.2f} / {first * 1e3:.2f} "
          f"ms per example = {j / first:.2f}")


if __name__ == "__main__":
  main()
