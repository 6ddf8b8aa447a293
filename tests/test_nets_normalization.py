"""Tests of nets/normalization.py: plain, self-modulated and conditional BN against NumPy,
their variables and initial state, the name registry, and cross-replica statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import strategies

from ssgan_tf import errors
from ssgan_tf.nets import normalization as norms

EPS = 1e-5


def _standardize(x):
  """NumPy BN without scale and offset, statistics over all axes but the last."""
  axes = tuple(range(x.ndim - 1))
  return (x - x.mean(axes)) / np.sqrt(x.var(axes) + EPS)


def _per_channel(v, x):
  return v.reshape([v.shape[0]] + [1] * (x.ndim - 2) + [v.shape[-1]])


@pytest.fixture(scope="module")
def mirrored():
  return strategies.own_mirrored_strategy()


def test_plain_batch_norm_is_keras_batch_normalization_with_the_normalisers_signature():
  x = tf.random.stateless_normal([6, 3, 3, 5], seed=[0, 1]) * 2.0 + 1.0
  ours = norms.generator_factory("batch_norm")()
  reference = keras.layers.BatchNormalization(momentum=0.9, epsilon=EPS)
  out = ours(x, z=tf.zeros([6, 4]), training=True)
  expected = reference(x, training=True)
  assert isinstance(ours, keras.layers.BatchNormalization)
  assert [w.name for w in ours.weights] == [w.name for w in reference.weights]
  np.testing.assert_array_equal(out, expected)
  np.testing.assert_array_equal(ours.moving_mean, reference.moving_mean)


@pytest.mark.parametrize("rank", [2, 4])
def test_self_modulated_bn_matches_numpy_mlp_modulation(rank):
  shape = [6, 5] if rank == 2 else [6, 3, 3, 5]
  x = tf.random.stateless_normal(shape, seed=[0, 2]) * 3.0 - 1.0
  z = tf.random.stateless_normal([6, 7], seed=[0, 3])
  layer = norms.generator_factory("self_modulated", sbn_hidden_units=4)()
  layer(x, z=z, training=True)
  # Non-trivial biases, so that a wrong bias path shows.
  for dense in (layer.hidden, layer.gamma, layer.beta):
    dense.bias.assign(tf.random.stateless_normal(dense.bias.shape, seed=[1, dense.units]))
  out = layer(x, z=z, training=True).numpy()
  wh, bh = layer.hidden.kernel.numpy(), layer.hidden.bias.numpy()
  wg, bg = layer.gamma.kernel.numpy(), layer.gamma.bias.numpy()
  wb, bb = layer.beta.kernel.numpy(), layer.beta.bias.numpy()
  h = np.maximum(z.numpy() @ wh + bh, 0.0)
  x = x.numpy()
  expected = _standardize(x) * _per_channel(h @ wg + bg, x) + _per_channel(h @ wb + bb, x)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_self_modulated_bn_variables_and_initial_scale_follow_compare_gan():
  layer = norms.generator_factory("self_modulated")()
  x = tf.random.stateless_normal([4, 2, 2, 6], seed=[0, 4])
  z = tf.random.stateless_normal([4, 10], seed=[0, 5])
  layer(x, z=z, training=True)
  shapes = {w.path.split("/", 1)[1]: tuple(w.shape) for w in layer.trainable_weights}
  # compare_gan's sbn/hidden, sbn/gamma, sbn/beta (arch_ops.py:401-420); no BN gamma/beta.
  assert shapes == {"hidden/kernel": (10, 32), "hidden/bias": (32,), "gamma/kernel": (32, 6),
                    "gamma/bias": (6,), "beta/kernel": (32, 6), "beta/bias": (6,)}
  np.testing.assert_array_equal(layer.gamma.bias, np.ones(6))
  np.testing.assert_array_equal(layer.beta.bias, np.zeros(6))
  assert float(np.std(layer.gamma.kernel.numpy())) < 0.05  # N(0, 0.02): scale starts ~1.
  assert [w.name for w in layer.non_trainable_weights] == ["moving_mean", "moving_variance"]


def test_self_modulated_bn_without_hidden_layer_is_linear_in_z():
  layer = norms.generator_factory("self_modulated", sbn_hidden_units=0)()
  layer(tf.zeros([2, 3]), z=tf.zeros([2, 5]), training=False)
  assert layer.hidden is None
  assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == 2 * (5 + 1) * 3


def test_self_modulated_bn_modulates_each_example_by_its_own_z():
  layer = norms.generator_factory("self_modulated")()
  x = tf.random.stateless_normal([4, 2, 2, 3], seed=[0, 6])
  z = tf.random.stateless_normal([4, 8], seed=[0, 7]) * 5.0
  first = layer(x, z=z, training=False).numpy()
  z2 = tf.concat([z[:1], -z[1:]], axis=0)  # Only the other examples' z change.
  second = layer(x, z=z2, training=False).numpy()
  np.testing.assert_array_equal(first[0], second[0])
  assert not np.allclose(first[1:], second[1:])


def test_conditional_bn_matches_numpy_and_int_labels_equal_one_hot():
  x = tf.random.stateless_normal([5, 2, 2, 4], seed=[0, 8])
  labels = tf.constant([0, 2, 1, 2, 0])
  layer = norms.ConditionalBatchNorm(num_classes=3)
  by_int = layer(x, y=labels, training=True).numpy()
  by_one_hot = layer(x, y=tf.one_hot(labels, 3), training=True).numpy()
  np.testing.assert_array_equal(by_int, by_one_hot)
  # compare_gan's condition/gamma and condition/beta: [K, C] kernels, no biases.
  assert sorted((w.path.split("/", 1)[1], tuple(w.shape)) for w in layer.trainable_weights) == [
      ("beta/kernel", (3, 4)), ("gamma/kernel", (3, 4))]
  y = np.eye(3)[labels.numpy()]
  expected = (_standardize(x.numpy()) * _per_channel(y @ layer.gamma.kernel.numpy(), x.numpy())
              + _per_channel(y @ layer.beta.kernel.numpy(), x.numpy()))
  np.testing.assert_allclose(by_int, expected, rtol=1e-4, atol=1e-5)


def test_none_is_the_identity():
  x = tf.random.stateless_normal([3, 4], seed=[0, 9])
  layer = norms.generator_factory("none")()
  np.testing.assert_array_equal(layer(x, z=tf.ones([3, 2]), training=True), x)
  assert layer.weights == []


@pytest.mark.parametrize("name, match", [
    ("conditional", "needs class labels"),
    ("group_norm", r"unknown networks.generator_normalization 'group_norm'.*batch_norm.*"
                   r"self_modulated"),
])
def test_bad_generator_normalization_raises_one_line_config_error(name, match):
  with pytest.raises(errors.ConfigError, match=match):
    norms.generator_factory(name)


def test_self_modulated_bn_requires_z():
  with pytest.raises(ValueError, match="needs z"):
    norms.generator_factory("self_modulated")()(tf.zeros([2, 3]), training=True)


def _distributed(strategy, tensor):
  n = tensor.shape[0] // strategy.num_replicas_in_sync
  return strategy.experimental_distribute_values_from_function(
      lambda ctx: tensor[ctx.replica_id_in_sync_group * n:(ctx.replica_id_in_sync_group + 1) * n])


@pytest.mark.parametrize("name", ["batch_norm", "self_modulated"])
def test_two_replica_training_forward_equals_one_device_on_the_whole_batch(mirrored, name):
  # Replica halves with different statistics, so per-replica BN would differ.
  x = tf.concat([tf.random.stateless_normal([4, 2, 2, 3], seed=[1, 1]),
                 tf.random.stateless_normal([4, 2, 2, 3], seed=[1, 2]) * 3.0 + 2.0], axis=0)
  z = tf.random.stateless_normal([8, 6], seed=[1, 3])
  one = norms.generator_factory(name, sbn_hidden_units=4)()
  expected = one(x, z=z, training=True).numpy()
  with mirrored.scope():
    two = norms.generator_factory(name, synchronized=True, sbn_hidden_units=4)()
    two(x[:1], z=z[:1], training=False)  # Build, then copy the weights.
    two.set_weights([w.numpy() for w in one.weights])
    for w in two.non_trainable_weights:  # Moving statistics back to their initial values.
      w.assign(np.zeros(w.shape) if "mean" in w.name else np.ones(w.shape))

  @tf.function
  def forward(x, z):
    return two(x, z=z, training=True)

  halves = mirrored.experimental_local_results(
      mirrored.run(forward, args=(_distributed(mirrored, x), _distributed(mirrored, z))))
  # Synchronized BN sums E[x], E[x^2] across replicas; one device computes E[(x - m)^2].
  np.testing.assert_allclose(np.concatenate(halves), expected, rtol=1e-5, atol=1e-5)
  moving = [w for w in one.non_trainable_weights]
  for w1, w2 in zip(moving, two.non_trainable_weights):
    np.testing.assert_allclose(w2.numpy(), w1.numpy(), rtol=1e-5, atol=1e-6, err_msg=w1.name)
