"""Tests of nets/spectral_norm.py: sigma -> 1, gradient through sigma, u as state, dtypes.

The kernel is viewed as `w = reshape(kernel, [fan_in, units])` (compare_gan's view).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssgan_tf.nets import spectral_norm as sn


@pytest.fixture
def mixed_bfloat16():
  keras.config.set_dtype_policy("mixed_bfloat16")
  try:
    yield
  finally:
    keras.config.set_dtype_policy("float32")


def _matrix_with_singular_values(rows, cols, singular_values, seed):
  """A `[rows, cols]` float64 matrix with the given leading singular values."""
  rng = np.random.default_rng(seed)
  left, _ = np.linalg.qr(rng.normal(size=(rows, rows)))
  right, _ = np.linalg.qr(rng.normal(size=(cols, cols)))
  s = np.zeros((rows, cols))
  np.fill_diagonal(s, singular_values)
  return left @ s @ right.T


def _layer(kind):
  """A built SNDense(6) on 10 inputs or SNConv2D(6, 3x3) on 4 channels, kernel set so
  that sigma(w) = 3 with a clear gap to the next singular value (power iteration
  converges fast)."""
  if kind == "dense":
    layer, x = sn.SNDense(6), tf.random.stateless_normal([5, 10], seed=[1, 2])
  else:
    layer, x = sn.SNConv2D(6, 3, strides=2), tf.random.stateless_normal([2, 5, 5, 4], seed=[1, 2])
  layer(x)
  fan_in = int(np.prod(layer.kernel.shape[:-1]))
  w = _matrix_with_singular_values(fan_in, 6, [3.0, 1.5, 1.0, 0.8, 0.5, 0.2], seed=3)
  layer.kernel.assign(w.reshape(layer.kernel.shape).astype(np.float32))
  return layer, x


def _spectral_norm(kernel):
  kernel = np.asarray(kernel, np.float64)
  return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_normalized_kernel_has_unit_spectral_norm_after_power_iterations(kind):
  layer, x = _layer(kind)
  assert _spectral_norm(layer.kernel) == pytest.approx(3.0)
  for _ in range(30):
    layer(x, training=True)  # One power iteration each.
  assert _spectral_norm(layer.normalized_kernel(training=False)) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_u_is_updated_only_by_training_calls(kind):
  layer, x = _layer(kind)
  u0 = layer.u.numpy()
  layer(x)
  layer(x, training=False)
  np.testing.assert_array_equal(layer.u.numpy(), u0)
  layer(x, training=True)
  assert np.max(np.abs(layer.u.numpy() - u0)) > 1e-3


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_u_is_a_non_trainable_weight(kind):
  layer, _ = _layer(kind)
  assert [w.name for w in layer.trainable_weights] == ["kernel", "bias"]
  assert [w.name for w in layer.non_trainable_weights] == ["u"]
  assert layer.u.shape == (int(np.prod(layer.kernel.shape[:-1])), 1)


def _reference_output(layer, x, kernel, u, v):
  """The layer's forward pass with kernel / (u^T w v), u and v given constants (float64)."""
  w = tf.reshape(kernel, [-1, kernel.shape[-1]])
  sigma = tf.squeeze(tf.matmul(tf.matmul(u, w, transpose_a=True), v))
  normalized = kernel / sigma
  bias = tf.constant(layer.bias.numpy(), tf.float64)
  x = tf.constant(x.numpy(), tf.float64)
  if isinstance(layer, sn.SNDense):
    return tf.matmul(x, normalized) + bias
  return tf.nn.conv2d(x, normalized, layer.strides, "SAME") + bias


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_gradient_flows_through_sigma_with_u_held_fixed(kind):
  layer, x = _layer(kind)
  layer(x, training=True)  # A non-trivial stored u.
  u = layer.u.numpy().astype(np.float64)
  weights = tf.random.stateless_normal(layer(x).shape, seed=[4, 5])
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(x, training=True) * weights)
  grad = tape.gradient(loss, layer.kernel).numpy()

  # Reference: one power iteration from the u stored before the call (NumPy, float64),
  # then autodiff of the loss through kernel / (u^T w v) with u and v as constants.
  kernel = layer.kernel.numpy().astype(np.float64)
  w = kernel.reshape(-1, kernel.shape[-1])
  v = w.T @ u
  v /= np.linalg.norm(v)
  u = w @ v
  u /= np.linalg.norm(u)
  kernel = tf.Variable(kernel)
  with tf.GradientTape() as tape:
    out = _reference_output(layer, x, kernel, tf.constant(u), tf.constant(v))
    ref_loss = tf.reduce_sum(out * tf.cast(weights, tf.float64))
  expected = tape.gradient(ref_loss, kernel).numpy()
  np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
  np.testing.assert_allclose(loss.numpy(), ref_loss.numpy(), rtol=1e-5)


def test_gradient_at_convergence_is_that_of_w_over_its_spectral_norm():
  # Once u has converged, d/dw of L(w / sigma(w)) with u, v held fixed equals the true
  # gradient with sigma = the largest singular value (d sigma / d w = u v^T): checked
  # against central finite differences of the SVD-based function, in float64.
  layer, x = _layer("dense")
  for _ in range(30):
    layer(x, training=True)
  weights = tf.random.stateless_normal([5, 6], seed=[4, 5])
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(x) * weights)
  grad = tape.gradient(loss, layer.kernel).numpy()

  x64, c = x.numpy().astype(np.float64), weights.numpy().astype(np.float64)
  w = layer.kernel.numpy().astype(np.float64)

  def f(w):
    return np.sum((x64 @ (w / np.linalg.svd(w, compute_uv=False)[0])) * c)

  numeric = np.zeros_like(w)
  eps = 1e-6
  for index in np.ndindex(*w.shape):
    step = np.zeros_like(w)
    step[index] = eps
    numeric[index] = (f(w + step) - f(w - step)) / (2 * eps)
  np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-4 * np.abs(numeric).max())


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_mixed_bfloat16_keeps_kernel_and_u_float32_and_computes_in_bfloat16(
    kind, mixed_bfloat16):
  layer, x = _layer(kind)
  out = layer(x, training=True)
  assert layer.kernel.dtype == "float32"
  assert layer.u.dtype == "float32"
  assert out.dtype == tf.bfloat16
  # The power iteration ran in float32: u is a unit vector to float32 precision.
  assert np.linalg.norm(layer.u.numpy()) == pytest.approx(1.0, abs=1e-6)


def test_dense_and_conv2d_factories_choose_spectral_norm_by_flag():
  assert isinstance(sn.dense(3, spectral_norm=True), sn.SNDense)
  assert isinstance(sn.dense(3, spectral_norm=False), keras.layers.Dense)
  assert isinstance(sn.conv2d(3, 3, spectral_norm=True), sn.SNConv2D)
  conv = sn.conv2d(3, 3, spectral_norm=False)
  assert isinstance(conv, keras.layers.Conv2D) and conv.padding == "same"
