"""Model zoo: shapes and dtypes, batch norm in train and eval mode, parameter counts.

Kept fast for CPU: tiny inputs, eager applies on batches of one shape (each op compiles once),
and init from an 'rbg' key, whose random ops compile far faster than threefry's.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclean.models import get_model
from jaxclean.models.cnn import max_pool_relu, patches_conv

# name, options, input shape (as small as the architecture allows), has batch norm
CASES = {
    'mlp': ('mlp', {}, (3, 8, 8, 1), False),
    'cnn': ('cnn', {}, (3, 8, 8, 1), False),
    'cnn-bn': ('cnn', {'width': 8, 'batch_norm': True}, (3, 9, 9, 1), True),  # odd: pool crops
    'resnet32': ('resnet32', {}, (3, 8, 8, 3), True),
    'preact_resnet18': ('preact_resnet18', {}, (3, 8, 8, 3), True),
}


def _setup(case, **extra):
  """The model, its variables and two batches that differ in all but the first example."""
  name, options, shape, _ = CASES[case]
  model = get_model(name, 5, **options, **extra)
  x = jax.random.normal(jax.random.key(1), shape)
  other = x.at[1:].set(jax.random.normal(jax.random.key(2), x[1:].shape))
  return model, model.init(jax.random.key(0, impl='rbg'), x, train=False), x, other


@pytest.mark.parametrize('case', CASES)
def test_logits_and_batch_norm_modes(case):
  model, variables, x, other = _setup(case)
  has_bn = CASES[case][3]
  assert ('batch_stats' in variables) == has_bn
  if has_bn:
    train = lambda batch: model.apply(variables, batch, train=True, mutable=['batch_stats'])
    train_out, updates = train(x)
    moved = jax.tree.map(lambda a, b: not np.allclose(a, b), variables['batch_stats'],
                         updates['batch_stats'])
    assert all(jax.tree.leaves(moved))
    # Train mode normalises with batch statistics: example 0 depends on its batch-mates.
    assert not np.allclose(train_out[0], train(other)[0][0], atol=1e-4)
    variables = {**variables, **updates}  # running stats away from their initial values
  else:
    train_out = model.apply(variables, x, train=True)
  eval_out = model.apply(variables, x, train=False)
  for out in (eval_out, train_out):
    assert out.shape == (x.shape[0], 5) and out.dtype == jnp.float32
    assert np.isfinite(out).all()
  # Eval mode uses running statistics: example 0 does not depend on its batch-mates.
  np.testing.assert_allclose(model.apply(variables, other, train=False)[0], eval_out[0],
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name,expected', [('resnet32', 0.46e6), ('preact_resnet18', 11.17e6)])
def test_parameter_counts(name, expected):
  """Published sizes for 10 classes: ResNet-32 0.46M (He et al. 2016a, Table 6), PreAct
  ResNet-18 on CIFAR-10 11.17M."""
  model = get_model(name, 10)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False),
                             jnp.zeros((1, 32, 32, 3)))
  count = sum(p.size for p in jax.tree.leaves(variables['params']))
  assert abs(count - expected) / expected < 0.03, count


@pytest.mark.parametrize('case', ['mlp', 'cnn-bn', 'resnet32'])
def test_bfloat16_compute_keeps_float32_params_and_logits(case):
  model, variables, x, _ = _setup(case, dtype=jnp.bfloat16)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables['params']))
  out = model.apply(variables, x, train=False)
  assert out.dtype == jnp.float32
  reference = model.clone(dtype=jnp.float32).apply(variables, x, train=False)
  np.testing.assert_allclose(out, reference, rtol=0.05, atol=0.05)


def test_unknown_name_or_option():
  with pytest.raises(ValueError, match='preact_resnet18'):
    get_model('resnet50', 10)
  with pytest.raises(TypeError):
    get_model('cnn', 10, depth=3)


def test_max_pool_relu_matches_flax():
  """Values and gradients (input and bias) equal relu then nn.max_pool's, ties included: the first
  maximum of a window gets the gradient, as select-and-scatter and PyTorch's max_pool2d give it;
  a window whose maximum is at most 0 passes none."""
  x = jax.random.normal(jax.random.key(0), (2, 6, 7, 3))  # odd width: last column dropped
  x = x.at[0, :2, :2].set(0.5).at[1, 2:4, 4:6, 1].set(-1.0).at[1, :2, :2, 2].set(-0.3)
  bias = jnp.array([0.1, -0.2, 0.3])  # channel 2: the window at -0.3 lands on exactly 0
  flax_pool = lambda x, b: nn.max_pool(nn.relu(x + b), (2, 2), (2, 2))
  weights = jax.random.normal(jax.random.key(1), (2, 3, 3, 3))
  value_and_grad = lambda pool: jax.jit(jax.value_and_grad(
      lambda x, b: (pool(x, b) * weights).sum(), argnums=(0, 1)))
  (ours, (dx, db)), (ref, (ref_dx, ref_db)) = (value_and_grad(max_pool_relu)(x, bias),
                                               value_and_grad(flax_pool)(x, bias))
  np.testing.assert_allclose(ours, ref, rtol=1e-6)
  np.testing.assert_array_equal(dx, ref_dx)
  np.testing.assert_allclose(db, ref_db, rtol=1e-6)


def test_cnn_pools_before_bias_and_relu_as_the_usual_order():
  """conv, pool, bias, ReLU (what the CNN runs) equals conv, bias, ReLU, pool (the textbook
  order, as nn.Conv + nn.max_pool): same logits, same gradients."""
  model = get_model('cnn', 5, width=4)
  x = jax.random.normal(jax.random.key(1), (3, 9, 10, 1))
  variables = model.init(jax.random.key(0), x, train=False)

  def textbook(params, x):
    for i in range(2):
      kernel = params[f'Conv_{i}']['kernel']
      x = jax.lax.conv_general_dilated(x, kernel, (1, 1), 'SAME',
                                       dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
      x = nn.max_pool(nn.relu(x + params[f'bias_{i}']), (2, 2), (2, 2))
    x = nn.relu(x.reshape(x.shape[0], -1) @ params['Dense_0']['kernel'] + params['Dense_0']['bias'])
    return x @ params['Dense_1']['kernel'] + params['Dense_1']['bias']

  ours = lambda params, x: model.apply({'params': params}, x, train=False)
  loss = lambda f: jax.value_and_grad(lambda p: jnp.sum(jnp.sin(f(p, x))))(variables['params'])
  (value, grads), (ref_value, ref_grads) = loss(ours), loss(textbook)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('padding', ['SAME', ((0, 0), (2, 1))])
def test_patches_conv_matches_lax(padding):
  x = jax.random.normal(jax.random.key(0), (2, 7, 9, 2))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 2, 5))
  lax_conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), padding,
                                                       dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  ours = lambda x, k: patches_conv(x, k, (1, 1), padding)
  loss = lambda conv: jax.value_and_grad(lambda x, k: jnp.sum(jnp.sin(conv(x, k))), (0, 1))
  (value, grads), (ref_value, ref_grads) = loss(ours)(x, kernel), loss(lax_conv)(x, kernel)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  for g, r in zip(grads, ref_grads):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match='stride 1'):
    patches_conv(x, kernel, (2, 2), padding)
