"""Tests of ssgan.py: the losses a step optimizes, which variables each phase moves,
replicas vs one device, fit() under both strategies, disc_iters, readable errors.

Most tests use a tiny SNDCGAN (16x16x3, base 4 channels, z 16, global batch 8) so each
step runs in well under a second. Reference computations are written out here from the
paper's definitions, not taken from ssgan.py.
"""

import logging

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

import strategies
import tiny_nets

from ssgan_tf import distribute
from ssgan_tf import errors
from ssgan_tf import losses
from ssgan_tf import nonfinite
from ssgan_tf import penalties
from ssgan_tf import rotation
from ssgan_tf import ssgan
from ssgan_tf.nets import build_networks
from ssgan_tf.nets import spectral_norm as sn_lib
from ssgan_tf.nets.discriminator import Discriminator

IMAGE_SHAPE = (16, 16, 3)
Z_DIM = 16
BATCH = 8
TINY = {"base_channels": 4}


def _tiny_ssgan(num_replicas=1, alpha=0.2, beta=1.0, disc_iters=1, optimizers=None, seed=0,
                **kwargs):
  """A tiny SNDCGAN SSGAN, compiled, rotating the last quarter of each replica's batch;
  call inside the strategy scope it is meant for. `kwargs` go to SSGAN (with `ema_decay`,
  a tiny G is its `make_generator`)."""
  keras.utils.set_random_seed(seed)

  def networks():
    return build_networks(
        IMAGE_SHAPE, synchronized_bn=num_replicas > 1, architecture="sndcgan", z_dim=Z_DIM,
        generator_kwargs=TINY, discriminator_kwargs=TINY)

  generator, discriminator = networks()
  if kwargs.get("ema_decay") is not None:
    kwargs["make_generator"] = lambda: networks()[0]
  model = ssgan.SSGAN(
      generator, discriminator,
      batch=rotation.BatchSizes(BATCH, num_replicas, BATCH), z_dim=Z_DIM,
      gan_loss=losses.NON_SATURATING, rotation_weight_g=alpha, rotation_weight_d=beta,
      disc_iters=disc_iters, **kwargs)
  model.compile(*(optimizers() if optimizers else ssgan.build_optimizers()))
  return model


def _sgd():
  # SGD keeps the update linear in the gradient. Adam's first step is about
  # lr * sign(gradient), blind to a wrong loss scale (e.g. per-replica instead of global
  # normalization), and it amplifies round-off in gradients that are zero in exact
  # arithmetic (biases right before a batch norm).
  return keras.optimizers.SGD(0.5), keras.optimizers.SGD(0.5)


def _copy_weights(source, target):
  for network in ("generator", "discriminator"):
    getattr(target, network).set_weights(getattr(source, network).get_weights())


def _networks_variables(model):
  return model.generator.variables + model.discriminator.variables


def _values(variables):
  return [v.numpy().copy() for v in variables]


def _data(seed, disc_iters=1, global_batch=BATCH):
  rng = np.random.default_rng(seed)
  images = rng.uniform(-1, 1, (disc_iters * global_batch,) + IMAGE_SHAPE).astype(np.float32)
  z = rng.normal(size=((disc_iters + 1) * global_batch, Z_DIM)).astype(np.float32)
  return images, z


# --- The losses of one step, on a tiny fixed D ---------------------------------------


def _tiny_fixed_model(alpha, beta, batch, rotated, **kwargs):
  """A tiny SSGAN whose D is flatten + the two heads (no SN), with sizeable fixed weights
  so the rotation logits are far from uniform; SGD(1) for both networks."""
  keras.utils.set_random_seed(1)
  generator = tiny_nets.TinyGenerator()
  discriminator = Discriminator(keras.layers.Flatten(), spectral_norm=False)
  model = ssgan.SSGAN(generator, discriminator,
                      batch=rotation.BatchSizes(batch, 1, rotated), z_dim=6,
                      gan_loss=losses.NON_SATURATING, rotation_weight_g=alpha,
                      rotation_weight_d=beta, **kwargs)
  discriminator(tf.zeros([1, 4, 4, 3]))
  rng = np.random.default_rng(7)
  for v in generator.variables + discriminator.variables:
    v.assign(rng.normal(scale=0.3, size=v.shape).astype(np.float32))
  model.compile(keras.optimizers.SGD(1.0), keras.optimizers.SGD(1.0))
  return model


def _rotation_rows(images, n):
  """The 4n rotation examples of a batch, written with NumPy: last n upright, then
  rot90 k = 1, 2, 3 of them (counter-clockwise, axes (1, 2)), with labels."""
  last = images[-n:]
  rows = np.concatenate([np.rot90(last, k, axes=(1, 2)) for k in range(4)], axis=0)
  return rows, np.repeat(np.arange(4), n)


def _np_heads(discriminator, images):
  """Float64 logits of the flatten + dense heads D: ([N], [N, 4])."""
  w = [v.numpy().astype(np.float64) for v in discriminator.trainable_variables]
  gan_kernel, gan_bias, rot_kernel, rot_bias = w
  x = images.reshape(images.shape[0], -1).astype(np.float64)
  return (x @ gan_kernel + gan_bias)[:, 0], x @ rot_kernel + rot_bias


def _np_rotation_ce(logits, labels):
  """-log softmax(logits)[label], float64."""
  log_softmax = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
  return -log_softmax[np.arange(len(labels)), labels]


def test_tracked_rotation_losses_are_cross_entropy_of_the_4n_rotation_rows():
  batch, n = 4, 2
  model = _tiny_fixed_model(alpha=0.2, beta=1.0, batch=batch, rotated=4 * n)
  for optimizer in (model.d_optimizer, model.g_optimizer):
    optimizer.learning_rate.assign(0.0)  # D and G stay fixed through the step.
  rng = np.random.default_rng(3)
  real = rng.uniform(-1, 1, (batch, 4, 4, 3)).astype(np.float32)
  z = rng.normal(size=(2 * batch, 6)).astype(np.float32)
  logs = model.train_step({"images": tf.constant(real), "z": tf.constant(z)})

  fake = model.generator(z[batch:]).numpy()
  for name, images in [("d_rotation", real), ("g_rotation", fake)]:
    rows, labels = _rotation_rows(images, n)
    _, logits = _np_heads(model.discriminator, rows)
    ce = _np_rotation_ce(logits, labels)
    assert ce.std() > 0.1  # The fixed D does tell the rotations apart somewhat.
    np.testing.assert_allclose(logs[f"loss/{name}"].numpy(), ce.mean(), rtol=1e-5)
    kind = "real" if name == "d_rotation" else "fake"
    np.testing.assert_allclose(logs[f"accuracy/d_rotation_{kind}"].numpy(),
                               np.mean(np.argmax(logits, 1) == labels), rtol=1e-6)
  # The D step's fakes come from z[:B], the G step's from z[B:].
  real_logits, _ = _np_heads(model.discriminator, real)
  d_fake_logits, _ = _np_heads(model.discriminator, model.generator(z[:batch]).numpy())
  g_fake_logits, _ = _np_heads(model.discriminator, fake)
  np.testing.assert_allclose(
      logs["loss/d"].numpy(),
      np.mean(np.log1p(np.exp(-real_logits)) + np.log1p(np.exp(d_fake_logits))), rtol=1e-5)
  np.testing.assert_allclose(logs["loss/g"].numpy(),
                             np.mean(np.log1p(np.exp(-g_fake_logits))), rtol=1e-5)


def _hand_loss_gradients(loss_fn, variables):
  """d loss / d each variable; zeros for a variable the loss does not reach."""
  with tf.GradientTape() as tape:
    loss = loss_fn()
  return [g.numpy() for g in tape.gradient(loss, [v.value for v in variables],
                                            unconnected_gradients=tf.UnconnectedGradients.ZERO)]


def _tf_rotation_ce(discriminator, images, n):
  """Mean rotation CE of the 4n rotation rows, differentiable, written without
  rotation.py or losses.py (tf.experimental.numpy.rot90 and log_softmax)."""
  last = images[-n:]
  rows = tf.concat([tf.experimental.numpy.rot90(last, k, axes=(1, 2)) for k in range(4)], 0)
  logits = discriminator(rows)["rotation_logits"]
  labels = np.repeat(np.arange(4), n)
  picked = tf.gather(tf.nn.log_softmax(logits), labels, axis=1, batch_dims=1)
  return -tf.reduce_mean(picked)


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.5])
def test_discriminator_step_descends_gan_loss_plus_beta_times_rotation_ce(beta):
  batch, n = 4, 2
  model = _tiny_fixed_model(alpha=0.2, beta=beta, batch=batch, rotated=4 * n)
  d = model.discriminator
  rng = np.random.default_rng(5)
  real = tf.constant(rng.uniform(-1, 1, (batch, 4, 4, 3)).astype(np.float32))
  z = tf.constant(rng.normal(size=(batch, 6)).astype(np.float32))
  fake = model.generator(z)

  def loss():
    # L_D = E[-log sigmoid(D(real))] + E[-log(1 - sigmoid(D(fake)))] + beta * CE(real).
    real_logits, fake_logits = d(real)["logits"], d(fake)["logits"]
    gan = (tf.reduce_mean(-tf.math.log_sigmoid(real_logits))
           + tf.reduce_mean(-tf.math.log_sigmoid(-fake_logits)))
    return gan + beta * _tf_rotation_ce(d, real, n)

  grads = _hand_loss_gradients(loss, d.trainable_variables)
  before = _values(d.trainable_variables)
  model.discriminator_step(real, z)
  for w0, w1, g in zip(before, _values(d.trainable_variables), grads):
    np.testing.assert_allclose(w1 - w0, -g, rtol=1e-4, atol=1e-6)  # SGD(1)


@pytest.mark.parametrize("alpha", [0.0, 0.2, 1.0])
def test_generator_step_descends_gan_loss_plus_alpha_times_rotation_ce(alpha):
  batch, n = 4, 2  # 4n != batch: the two means have different counts.
  model = _tiny_fixed_model(alpha=alpha, beta=1.0, batch=batch, rotated=4 * n)
  g_net, d = model.generator, model.discriminator
  z = tf.constant(np.random.default_rng(6).normal(size=(batch, 6)).astype(np.float32))

  def loss():
    # L_G = E[-log sigmoid(D(G(z)))] + alpha * CE(G(z)).
    fake = g_net(z)
    return (tf.reduce_mean(-tf.math.log_sigmoid(d(fake)["logits"]))
            + alpha * _tf_rotation_ce(d, fake, n))

  grads = _hand_loss_gradients(loss, g_net.trainable_variables)
  d_before = _values(d.variables)
  before = _values(g_net.trainable_variables)
  model.generator_step(z)
  for w0, w1, g in zip(before, _values(g_net.trainable_variables), grads):
    np.testing.assert_allclose(w1 - w0, -g, rtol=1e-4, atol=1e-6)  # SGD(1)
  for w0, w1 in zip(d_before, _values(d.variables)):
    np.testing.assert_array_equal(w0, w1)


# --- rotation_only: the rotation losses alone ------------------------------------------

@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_rotation_only_d_step_descends_beta_times_rotation_ce_alone(beta):
  batch, n = 4, 2
  model = _tiny_fixed_model(alpha=0.2, beta=beta, batch=batch, rotated=4 * n,
                            self_supervision="rotation_only")
  d = model.discriminator
  rng = np.random.default_rng(5)
  real = tf.constant(rng.uniform(-1, 1, (batch, 4, 4, 3)).astype(np.float32))
  z = tf.constant(rng.normal(size=(batch, 6)).astype(np.float32))
  grads = _hand_loss_gradients(lambda: beta * _tf_rotation_ce(d, real, n),
                               d.trainable_variables)
  before = _values(d.trainable_variables)
  metrics = model.discriminator_step(real, z)
  for w0, w1, g in zip(before, _values(d.trainable_variables), grads):
    np.testing.assert_allclose(w1 - w0, -g, rtol=1e-4, atol=1e-6)  # SGD(1)
  # The real/fake head gets no gradient at all; its GAN loss is still tracked.
  np.testing.assert_array_equal(before[0], d.gan_head.kernel.numpy())
  assert np.all(np.asarray(metrics["loss/d"]) > 0)


def test_rotation_only_generator_step_descends_alpha_times_rotation_ce_alone():
  # compare_gan (ssgan.py:212-214) zeroes G's GAN loss too and keeps alpha * CE(fake).
  batch, n, alpha = 4, 2, 0.5
  model = _tiny_fixed_model(alpha=alpha, beta=1.0, batch=batch, rotated=4 * n,
                            self_supervision="rotation_only")
  g_net, d = model.generator, model.discriminator
  z = tf.constant(np.random.default_rng(6).normal(size=(batch, 6)).astype(np.float32))
  grads = _hand_loss_gradients(lambda: alpha * _tf_rotation_ce(d, g_net(z), n),
                               g_net.trainable_variables)
  before = _values(g_net.trainable_variables)
  model.generator_step(z)
  for w0, w1, g in zip(before, _values(g_net.trainable_variables), grads):
    np.testing.assert_allclose(w1 - w0, -g, rtol=1e-4, atol=1e-6)  # SGD(1)


# --- alpha = beta = 0 is the plain GAN ------------------------------------------------

def _plain_gan_step(generator, discriminator, d_opt, g_opt, real, z_d, z_g):
  """One non-saturating GAN step written from scratch: D on concat[real, fake], then G."""
  fake = generator(z_d, training=True)
  with tf.GradientTape() as tape:
    logits = discriminator(tf.concat([real, fake], 0), training=True)["logits"]
    d_loss = (tf.reduce_mean(tf.nn.softplus(-logits[:BATCH]))    # -log sigmoid(real)
              + tf.reduce_mean(tf.nn.softplus(logits[BATCH:])))  # -log(1 - sigmoid(fake))
  # A plain GAN's D has no rotation head: only the weights the loss reaches are updated.
  variables = discriminator.trainable_variables
  grads = tape.gradient(d_loss, variables)
  d_opt.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
  with tf.GradientTape() as tape:
    logits = discriminator(generator(z_g, training=True), training=True)["logits"]
    g_loss = tf.reduce_mean(tf.nn.softplus(-logits))
  variables = generator.trainable_variables
  g_opt.apply_gradients(zip(tape.gradient(g_loss, variables), variables))


@pytest.mark.parametrize("optimizers", [ssgan.build_optimizers, _sgd], ids=["adam", "sgd"])
def test_zero_rotation_weights_give_the_plain_gan_update(optimizers):
  model = _tiny_ssgan(alpha=0.0, beta=0.0, optimizers=optimizers)
  plain = _tiny_ssgan(alpha=0.0, beta=0.0, optimizers=optimizers, seed=1)
  _copy_weights(model, plain)
  initial = _values(model.generator.trainable_variables)
  images, z = _data(seed=0)
  model.train_step({"images": tf.constant(images), "z": tf.constant(z)})
  _plain_gan_step(plain.generator, plain.discriminator, plain.d_optimizer, plain.g_optimizer,
                  tf.constant(images), tf.constant(z[:BATCH]), tf.constant(z[BATCH:]))
  # Same ops on the same values in the same order: equal up to float32 round-off (the
  # sum-then-divide of compute_average_loss vs reduce_mean; BATCH = 8 keeps 1/B exact).
  for network in ("generator", "discriminator"):
    got = getattr(model, network).variables
    want = getattr(plain, network).variables
    for a, b in zip(got, want):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
  # And the step did something: the weights moved from their initial values.
  assert not np.allclose(model.generator.trainable_variables[0].numpy(), initial[0])


# --- Which variables each phase may change -------------------------------------------

def _changed(model, before):
  variables = _networks_variables(model)
  return {v.path for v, old in zip(variables, before) if not np.array_equal(v.numpy(), old)}


def _paths(variables):
  return {v.path for v in variables}


def test_each_phase_moves_only_its_own_network_and_state():
  model = _tiny_ssgan()
  g, d = model.generator, model.discriminator
  g_state = _paths(g.non_trainable_variables)  # BN moving mean / variance.
  d_state = _paths(d.non_trainable_variables)  # SN u vectors.
  assert g_state and all(p.endswith(("moving_mean", "moving_variance")) for p in g_state)
  assert d_state and all(p.endswith("/u") for p in d_state)
  images, z = _data(seed=0)

  before = _values(g.variables + d.variables)
  model.discriminator_step(tf.constant(images), tf.constant(z[:BATCH]))
  # D phase: D's weights (G makes the fakes in training mode, so its BN statistics
  # move; D's power iterations move u). G's weights stay bit-identical.
  assert _changed(model, before) == _paths(d.trainable_variables) | g_state | d_state

  before = _values(g.variables + d.variables)
  model.generator_step(tf.constant(z[BATCH:]))
  assert _changed(model, before) == _paths(g.trainable_variables) | g_state | d_state
  assert int(model.d_optimizer.iterations) == 1 and int(model.g_optimizer.iterations) == 1


def test_generate_samples_in_eval_mode_without_touching_state():
  model = _tiny_ssgan()
  before = _values(_networks_variables(model))
  z = tf.random.normal([4, Z_DIM])
  images = model.generate(z)
  assert images.shape == (4,) + IMAGE_SHAPE
  np.testing.assert_array_equal(images, model.generator(z, training=False))
  assert _changed(model, before) == set()


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
def test_stateful_and_stateless_noise_share_the_distribution(distribution):
  rng = tf.random.Generator.from_seed(5)
  stateful = ssgan.draw_z([20000, 2], distribution, rng=rng).numpy()
  stateless = ssgan.draw_z([20000, 2], distribution, seed=tf.constant([5, 0])).numpy()
  for z in (stateful, stateless):
    assert abs(z.mean()) < 0.02
    if distribution == "uniform":
      assert -1.0 <= z.min() and z.max() <= 1.0
      assert abs(z.std() - 2 / np.sqrt(12)) < 0.01
    else:
      assert abs(z.std() - 1.0) < 0.02
      assert abs((np.abs(z) > 1).mean() - 0.3173) < 0.01  # P(|N(0, 1)| > 1)
  # The stateful form advances its generator; the stateless one repeats per seed.
  assert not np.array_equal(stateful, ssgan.draw_z([20000, 2], distribution, rng=rng))
  np.testing.assert_array_equal(
      stateless, ssgan.draw_z([20000, 2], distribution, seed=tf.constant([5, 0])))


# --- The penalty seam of the D step --------------------------------------------------

def _penalized_ssgan(penalty, disc_iters=1, learning_rate=0.5):
  keras.utils.set_random_seed(0)
  generator, discriminator = build_networks(
      IMAGE_SHAPE, architecture="sndcgan", z_dim=Z_DIM, generator_kwargs=TINY,
      discriminator_kwargs=TINY)
  model = ssgan.SSGAN(generator, discriminator, batch=rotation.BatchSizes(BATCH, 1, BATCH),
                      z_dim=Z_DIM, gan_loss=losses.NON_SATURATING, disc_iters=disc_iters,
                      penalties=[penalty] if penalty else [])
  model.compile(keras.optimizers.SGD(learning_rate), keras.optimizers.SGD(learning_rate))
  return model


def _squared_logits_penalty(calls, weight=1.0):
  """A penalty that calls D `calls` times in training mode."""
  def fn(discriminator, real, fake, rng):
    del fake, rng
    return tf.add_n([tf.square(discriminator(real, training=True)["logits"])
                     for _ in range(calls)])
  return losses.Penalty("loss/penalty", weight, fn, discriminator_calls=calls)


@pytest.mark.parametrize("calls, disc_iters, kind", [
    (0, 1, "none"), (1, 1, "squared"), (2, 2, "squared"), (1, 2, "wgan_gp")])
def test_power_iterations_per_step_count_every_training_call_of_d(calls, disc_iters, kind):
  penalty = {"none": None, "squared": _squared_logits_penalty(calls) if calls else None,
             "wgan_gp": penalties.wgan_gp(1.0)}[kind]
  assert (penalty.discriminator_calls if penalty else 0) == calls
  # Learning rate 0: the kernels stay put, so u after the step is the initial u after
  # exactly N power iterations on the same kernel.
  model = _penalized_ssgan(penalty, disc_iters, learning_rate=0.0)
  layer = model.discriminator.trunk.convs[0]
  kernel, u = tf.constant(layer.kernel.numpy()), tf.constant(layer.u.numpy())
  images, z = _data(seed=0, disc_iters=disc_iters)
  model.train_step({"images": tf.constant(images), "z": tf.constant(z)})
  assert model.power_iterations_per_step == disc_iters * (1 + calls) + 1

  def iterate(count):
    current = u
    for _ in range(count):
      _, current = sn_lib.normalize_by_spectral_norm(kernel, current)
    return current.numpy()

  n = model.power_iterations_per_step
  np.testing.assert_allclose(layer.u.numpy(), iterate(n), rtol=1e-5, atol=1e-6)
  assert not np.allclose(layer.u.numpy(), iterate(n - 1), rtol=1e-5, atol=1e-6)


def _traced_op_names(model):
  images, z = _data(seed=0)
  graph = tf.function(model.train_step).get_concrete_function(
      {"images": tf.constant(images), "z": tf.constant(z)}).graph
  return [op.name for op in graph.get_operations()]


def test_the_default_step_traces_no_penalty_no_average_and_no_labels():
  # With no penalty, no EMA and no labels, train_step is the graph it was before any of
  # them existed; each feature's ops live under its own name scope (the labels' one-hot
  # encodings are "one_hot"), which the default graph lacks.
  default = _traced_op_names(_tiny_ssgan())
  assert not [n for n in default if "penalty" in n or "generator_ema" in n or "one_hot" in n]
  penalized = _traced_op_names(_penalized_ssgan(penalties.wgan_gp(1.0)))
  assert [n for n in penalized if "penalty/" in n]


def test_a_penalty_adds_weight_times_its_global_mean_to_the_d_loss():
  # A weight penalty (no D call): every example gets sum(w^2) over D's rotation-head
  # kernel, so the SGD update of that kernel gains -lr * weight * 2w exactly.
  def head_l2(discriminator, real, fake, rng):
    del fake, rng
    kernel = discriminator.rotation_head.kernel
    return tf.fill([tf.shape(real)[0]], tf.reduce_sum(tf.square(kernel)))

  weight, learning_rate = 0.25, 0.5
  plain = _penalized_ssgan(None, learning_rate=learning_rate)
  penalized = _penalized_ssgan(losses.Penalty("loss/penalty", weight, head_l2, 0),
                               learning_rate=learning_rate)
  kernel0 = penalized.discriminator.rotation_head.kernel.numpy()
  np.testing.assert_array_equal(kernel0, plain.discriminator.rotation_head.kernel.numpy())
  images, z = _data(seed=0)
  metrics = penalized.discriminator_step(tf.constant(images), tf.constant(z[:BATCH]))
  plain.discriminator_step(tf.constant(images), tf.constant(z[:BATCH]))
  np.testing.assert_allclose(metrics["loss/penalty"], np.sum(kernel0 ** 2), rtol=1e-6)
  np.testing.assert_allclose(
      penalized.discriminator.rotation_head.kernel.numpy()
      - plain.discriminator.rotation_head.kernel.numpy(),
      -learning_rate * weight * 2 * kernel0, rtol=1e-4, atol=1e-7)
  assert "loss/penalty" in penalized.trackers and "loss/penalty" not in plain.trackers


@pytest.mark.parametrize("disc_iters", [1, 2, 3])
def test_disc_iters_d_updates_and_one_g_update_per_train_step(disc_iters):
  model = _tiny_ssgan(disc_iters=disc_iters)
  images, _ = _data(seed=0, disc_iters=disc_iters)
  model.train_step(tf.constant(images))
  assert int(model.d_optimizer.iterations) == disc_iters
  assert int(model.g_optimizer.iterations) == 1


def test_disc_iters_steps_use_consecutive_real_batches_and_noise_rows():
  # disc_iters = 2 equals two D steps on images[:B], images[B:] with z[:B], z[B:2B],
  # then a G step on z[2B:].
  model = _tiny_ssgan(disc_iters=2, optimizers=_sgd)
  steps = _tiny_ssgan(disc_iters=2, optimizers=_sgd, seed=1)
  _copy_weights(model, steps)
  images, z = _data(seed=2, disc_iters=2)
  model.train_step({"images": tf.constant(images), "z": tf.constant(z)})
  for i in range(2):
    steps.discriminator_step(tf.constant(images[i * BATCH:(i + 1) * BATCH]),
                             tf.constant(z[i * BATCH:(i + 1) * BATCH]))
  steps.generator_step(tf.constant(z[2 * BATCH:]))
  for a, b in zip(_networks_variables(model), _networks_variables(steps)):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)


# --- Two replicas vs one device -------------------------------------------------------

def _one_device_order(num_replicas, chunks, rows, rotated):
  """Row order that gives one device the same examples as `num_replicas` replicas.

  MirroredStrategy hands replica r the contiguous slice r of the global array; each
  replica reads it as `chunks` consecutive batches of `rows` (one per D step, plus the
  G step for z) and rotates the LAST `rotated` rows of each batch. One device, with the
  global batch, must see the union of the replicas' batches with exactly those rotated
  images last.
  """
  order = []
  for c in range(chunks):
    starts = [(r * chunks + c) * rows for r in range(num_replicas)]
    order += [s + i for s in starts for i in range(rows - rotated)]
    order += [s + i for s in starts for i in range(rows - rotated, rows)]
  return np.array(order)


def _replica_values(variable):
  return [v.numpy() for v in variable.value.values]


@pytest.fixture(scope="module")
def mirrored():
  return strategies.own_mirrored_strategy()


@pytest.mark.parametrize("disc_iters", [1, 2])
def test_two_replicas_update_like_one_device_on_the_same_global_batch(mirrored, disc_iters):
  one = _tiny_ssgan(disc_iters=disc_iters, optimizers=_sgd)
  with mirrored.scope():
    two = _tiny_ssgan(num_replicas=2, disc_iters=disc_iters, optimizers=_sgd, seed=1)
  _copy_weights(one, two)
  initial = _values(_networks_variables(one))
  images, z = _data(seed=4, disc_iters=disc_iters)
  per_replica = BATCH // 2
  n = per_replica // 4  # rotated_batch_size = BATCH: each replica rotates its last image.

  # fit() distributes the element as the training input pipeline would: each array is
  # split into contiguous halves, one per replica.
  two.fit(tf.data.Dataset.from_tensors({"images": images, "z": z}), epochs=1, verbose=0,
          shuffle=False)
  one.train_step({
      "images": tf.constant(images[_one_device_order(2, disc_iters, per_replica, n)]),
      "z": tf.constant(z[_one_device_order(2, disc_iters + 1, per_replica, n)])})

  # Tolerance rtol 1e-5, atol 1e-6: G's synchronized BN computes the variance as
  # E[x^2] - E[x]^2 from all-reduced sums, one device as E[(x - mean)^2], and gradient
  # sums run in another order; measured differences are <= 2e-7 (the step moves weights
  # by 1e-3..1e-1). Rotating other rows (identity order instead of _one_device_order)
  # or unsynchronized BN was measured to differ by 1e-2..3e-1; a per-replica instead
  # of global loss normalization doubles the update.
  for a, b, w0 in zip(_networks_variables(two), _networks_variables(one), initial):
    replicas = _replica_values(a)
    np.testing.assert_array_equal(replicas[0], replicas[1], err_msg=a.path)
    np.testing.assert_allclose(replicas[0], b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
  moved = [np.max(np.abs(b.numpy() - w0)) for b, w0 in zip(_networks_variables(one), initial)]
  assert np.median(moved) > 1e-3


def test_two_replicas_keep_one_identical_ema_equal_to_one_devices(mirrored):
  # The EMA update runs in each replica on identical values and assigns its own copy.
  ema = {"ema_decay": 0.5, "ema_start_step": 1}
  one = _tiny_ssgan(optimizers=_sgd, **ema)
  with mirrored.scope():
    two = _tiny_ssgan(num_replicas=2, optimizers=_sgd, seed=1, **ema)
  _copy_weights(one, two)
  two.ema_generator.set_weights(one.ema_generator.get_weights())
  steps = [_data(seed=s) for s in (5, 6)]  # Step 1: G's weights; step 2: averaged.
  dataset = tf.data.Dataset.from_tensor_slices(
      {"images": np.stack([i for i, _ in steps]), "z": np.stack([z for _, z in steps])})
  two.fit(dataset, epochs=1, verbose=0, shuffle=False)
  per_replica = BATCH // 2
  n = per_replica // 4
  for images, z in steps:
    one.train_step({"images": tf.constant(images[_one_device_order(2, 1, per_replica, n)]),
                    "z": tf.constant(z[_one_device_order(2, 2, per_replica, n)])})
  assert two.step == 2
  for a, b in zip(two.ema_generator.variables, one.ema_generator.variables):
    replicas = _replica_values(a)
    np.testing.assert_array_equal(replicas[0], replicas[1], err_msg=a.path)
    # Tolerance as in the test above (synchronized BN's E[x^2] - E[x]^2, sum orders).
    np.testing.assert_allclose(replicas[0], b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
  # The average is not G (it was averaged at step 2).
  assert not np.allclose(one.ema_generator.variables[0].numpy(),
                         one.generator.variables[0].numpy())


def test_statistics_passes_are_skipped_only_on_one_replica(mirrored, caplog):
  with mirrored.scope():
    two = _tiny_ssgan(num_replicas=2, ema_decay=0.5, ema_statistics_every=2)
  assert two.ema.statistics_every == 1
  assert "ssgan.ema_statistics_every = 2 applies to one replica only" in caplog.text
  assert _tiny_ssgan(ema_decay=0.5, ema_statistics_every=2).ema.statistics_every == 2


def test_replicas_draw_different_noise_when_no_z_is_given(mirrored):
  with mirrored.scope():
    model = _tiny_ssgan(num_replicas=2)
  z = mirrored.experimental_local_results(mirrored.run(lambda: model.sample_z(4)))
  assert len(z) == 2
  assert not np.allclose(z[0].numpy(), z[1].numpy())


# --- fit() ------------------------------------------------------------------------------

def _fit_logs(strategy, alpha, beta):
  with strategy.scope():
    model = _tiny_ssgan(num_replicas=strategy.num_replicas_in_sync, alpha=alpha, beta=beta)
  images, _ = _data(seed=0, global_batch=4 * BATCH)
  dataset = tf.data.Dataset.from_tensor_slices(images).batch(BATCH, drop_remainder=True)
  history = model.fit(dataset.repeat(), steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
  assert model.g_optimizer.iterations.numpy() == 2
  logs = {name: values[-1] for name, values in history.history.items()}
  assert logs.pop(nonfinite.LOG_NAME) == 0  # No non-finite step.
  return logs


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_fit_logs_the_six_metrics(strategy_name, mirrored):
  strategy = mirrored if strategy_name == "mirrored" else distribute.make_strategy("default")
  logs = _fit_logs(strategy, alpha=0.2, beta=1.0)
  assert set(logs) == set(ssgan.METRIC_NAMES)
  assert all(np.isfinite(v) for v in logs.values())
  # Rotation CE near log 4 at initialization: D's rotation head starts near uniform.
  assert 0.5 < logs["loss/d_rotation"] < 3.0 and 0.5 < logs["loss/g_rotation"] < 3.0


def test_fit_with_zero_rotation_weights_reports_no_rotation_metrics():
  logs = _fit_logs(distribute.make_strategy("default"), alpha=0.0, beta=0.0)
  assert set(logs) == {"loss/d", "loss/g"}
  assert logs["loss/d"] > 0.0 and logs["loss/g"] > 0.0


def test_fit_with_only_alpha_reports_only_the_fake_rotation_metrics():
  logs = _fit_logs(distribute.make_strategy("default"), alpha=0.2, beta=0.0)
  assert set(logs) == {"loss/d", "loss/g", "loss/g_rotation", "accuracy/d_rotation_fake"}


# --- gin and readable errors ---------------------------------------------------------

@pytest.fixture
def tiny_gin():
  gin.clear_config()
  gin.parse_config([
      "networks.architecture = 'sndcgan'",
      "networks.generator_kwargs = {'base_channels': 4}",
      "networks.discriminator_kwargs = {'base_channels': 4}",
  ])
  try:
    yield
  finally:
    gin.clear_config()


def test_build_ssgan_reads_gin_bindings(tiny_gin):
  gin.parse_config(["ssgan.gan_loss = 'hinge'", "ssgan.disc_iters = 2",
                    "ssgan.global_batch_size = 16", "ssgan.rotated_batch_size = 8",
                    "ssgan.z_dim = 8"])
  model = ssgan.build_ssgan(IMAGE_SHAPE, num_replicas=2)
  assert model.gan_loss == losses.HINGE
  assert model.disc_iters == 2 and model.z_dim == 8
  assert (model.batch.per_replica_batch, model.batch.rotated_per_angle) == (8, 1)
  assert model(tf.zeros([1, 8])).shape == (1,) + IMAGE_SHAPE


@pytest.mark.parametrize("kwargs, match", [
    ({"gan_loss": "wgan"}, r"unknown ssgan.gan_loss 'wgan'.*non_saturating"),
    ({"global_batch_size": 10, "num_replicas": 4, "rotated_batch_size": 0},
     r"ssgan.global_batch_size = 10 is not divisible by the 4 replicas \(use 8 or 12\)\.\n"),
    # Both sizes wrong: both in one message.
    ({"global_batch_size": 10, "num_replicas": 4, "rotated_batch_size": 12},
     r"ssgan.global_batch_size = 10 is not divisible by the 4 replicas \(use 8 or 12\); "
     r"ssgan.rotated_batch_size = 12 must be a multiple of 4 x 4 replica\(s\) = 16, .* "
     r"\(use 16\)\.\n"),
    # The replicas do not divide it: setting the rotated size would not help.
    ({"global_batch_size": 10, "num_replicas": 4},
     r"ssgan.global_batch_size = 10 must be a multiple of 4 x 4 replica\(s\) = 16: .*; use "
     r"16\.\n"),
    # The replicas' and the rotations' needs in one message: 32 on 3 replicas.
    ({"global_batch_size": 32, "num_replicas": 3},
     r"ssgan.global_batch_size = 32 must be a multiple of 4 x 3 replica\(s\) = 12: .*use 24 "
     r"or 36\.\n"),
    ({"global_batch_size": 16, "num_replicas": 2, "rotated_batch_size": 12},
     r"ssgan.rotated_batch_size = 12 must be a multiple of 4 x 2 replica\(s\) = 8, .* \(use 8 "
     r"or 16\)\.\n"),
    ({"global_batch_size": 16, "rotated_batch_size": True},
     r"ssgan.rotated_batch_size must be an integer; got True"),
    # rotated_batch_size = None: the global batch is what the user changed.
    ({"global_batch_size": 30},
     r"ssgan.global_batch_size = 30 must be a multiple of 4 x 1 replica\(s\) = 4.*"
     r"or set ssgan.rotated_batch_size"),
    ({"global_batch_size": 12, "num_replicas": 2},
     r"ssgan.global_batch_size = 12 must be a multiple of 4 x 2 replica\(s\) = 8"),
    ({"global_batch_size": "32"}, r"ssgan.global_batch_size must be an integer; got '32'"),
    ({"global_batch_size": 32.0}, r"ssgan.global_batch_size must be an integer; got 32.0"),
    ({"global_batch_size": True}, r"ssgan.global_batch_size must be an integer; got True"),
    ({"rotated_batch_size": 8.0}, r"ssgan.rotated_batch_size must be an integer; got 8.0"),
    ({"seed": 1.5}, r"ssgan.seed must be an integer; got 1.5"),
    ({"num_replicas": 2, "rotated_batch_size": 12}, r"multiple of 4 x 2 replica\(s\) = 8"),
    ({"rotated_batch_size": 40}, "at most 4 x global batch size = 32"),
    ({"z_distribution": "beta"}, "unknown ssgan.z_distribution 'beta'"),
    ({"disc_iters": 0}, r"ssgan.disc_iters must be >= 1; got 0"),
    ({"z_dim": 0}, r"ssgan.z_dim must be >= 1; got 0"),
    # Checked before the networks are built, which would fail on them unreadably.
    ({"z_dim": -1}, r"ssgan.z_dim must be >= 1; got -1"),
    ({"z_dim": "64"}, r"ssgan.z_dim must be an integer; got '64'"),
    ({"rotation_weight_d": -1.0}, r"ssgan.rotation_weight_d must be >= 0; got -1.0"),
    ({"rotated_batch_size": 0}, r"rotated_batch_size = 0 leaves no images.*alpha = 0.2"),
    ({"image_shape": (16, 8, 3)}, "square"),
    ({"self_supervision": "rotation"},
     r"unknown ssgan.self_supervision 'rotation'; choose one of \['rotation_gan', 'rotation_only'\]"),
    ({"self_supervision": "rotation_only", "rotation_weight_d": 0.0},
     r"rotation loss alone; set ssgan.rotation_weight_d > 0"),
    ({"self_supervision": "rotation_only", "penalty": "wgan_gp"},
     r"a D penalty has no effect with ssgan.self_supervision = 'rotation_only'"),
    ({"penalty": "gp"}, r"unknown ssgan.penalty 'gp'"),
    ({"penalty": "l2", "penalty_weight": -0.5}, r"ssgan.penalty_weight must be >= 0; got -0.5"),
    ({"ema_decay": 1.5}, r"ssgan.ema_decay must be >= 0 and < 1; got 1.5"),
    ({"ema_decay": 1.0}, r"ssgan.ema_decay must be >= 0 and < 1; got 1.0"),
    ({"ema_decay": 0.999, "ema_start_step": -1}, r"ssgan.ema_start_step must be >= 0; got -1"),
    ({"ema_decay": 0.999, "ema_statistics_every": 0},
     r"ssgan.ema_statistics_every must be >= 1; got 0"),
])
def test_build_ssgan_bad_arguments_raise_readable_errors(tiny_gin, kwargs, match):
  args = {"image_shape": IMAGE_SHAPE, "global_batch_size": 8, "num_replicas": 1}
  args.update(kwargs)
  with pytest.raises(errors.ConfigError, match=match):
    ssgan.build_ssgan(**args)


@pytest.mark.parametrize("binding, warning", [
    ("ssgan.penalty_weight = 10.0", "ssgan.penalty_weight = 10.0 has no effect without "
     "ssgan.penalty; it is ignored."),
    ("ssgan.ema_start_step = 0", "ssgan.ema_start_step = 0 has no effect without "
     "ssgan.ema_decay; it is ignored."),
    ("ssgan.ema_statistics_every = 4", "ssgan.ema_statistics_every = 4 has no effect "
     "without ssgan.ema_decay; it is ignored."),
    ("optimizers.decay_start = 0.5", "optimizers.decay_start = 0.5 has no effect without "
     "optimizers.lr_decay = 'linear'; it is ignored."),
])
def test_a_setting_whose_feature_is_off_warns_that_it_is_ignored(tiny_gin, caplog, binding,
                                                                 warning):
  def warnings():
    caplog.clear()
    with caplog.at_level(logging.WARNING):
      ssgan.build_ssgan(IMAGE_SHAPE, num_replicas=1, global_batch_size=8)
      ssgan.build_optimizers(total_steps=10)
    return [r.getMessage() for r in caplog.records if "has no effect" in r.getMessage()]

  assert warnings() == []  # The defaults say nothing.
  gin.parse_config([binding])
  assert warnings() == [warning]


@pytest.mark.parametrize("name, weight, calls", [("wgan_gp", 10.0, 1), ("dragan", 1.0, 1),
                                                 ("l2", 0.5, 0)])
def test_build_ssgan_selects_the_penalty_by_name(tiny_gin, name, weight, calls):
  gin.parse_config([f"ssgan.penalty = '{name}'", f"ssgan.penalty_weight = {weight}",
                    "ssgan.disc_iters = 2"])
  model = ssgan.build_ssgan(IMAGE_SHAPE, num_replicas=1, global_batch_size=8)
  assert model.penalties == (penalties.PENALTIES[name](weight),)
  assert "loss/penalty" in model.trackers
  assert model.power_iterations_per_step == 2 * (1 + calls) + 1


def test_build_ssgan_defaults_to_rotation_gan_without_penalty(tiny_gin):
  model = ssgan.build_ssgan(IMAGE_SHAPE, num_replicas=1, global_batch_size=8)
  assert model.self_supervision == "rotation_gan"
  assert model.penalties == () and "loss/penalty" not in model.trackers
  assert model.ema is None and model.sampling_generator is model.generator


def test_build_ssgan_reads_rotation_only(tiny_gin):
  gin.parse_config(["ssgan.self_supervision = 'rotation_only'"])
  model = ssgan.build_ssgan(IMAGE_SHAPE, num_replicas=1, global_batch_size=8)
  assert model.self_supervision == "rotation_only"


def test_rotated_batch_size_zero_is_the_plain_gan_when_both_weights_are_zero(tiny_gin):
  model = ssgan.build_ssgan(IMAGE_SHAPE, global_batch_size=8, num_replicas=1,
                            rotated_batch_size=0, rotation_weight_g=0.0,
                            rotation_weight_d=0.0)
  assert sorted(model.trackers) == ["loss/d", "loss/g"]


@pytest.mark.parametrize("kwargs, match", [
    ({"g_lr": -1.0}, r"optimizers.g_lr must be > 0; got -1.0"),
    ({"d_lr": 0.0}, r"optimizers.d_lr must be > 0; got 0.0"),
    ({"beta_2": 1.5}, r"optimizers.beta_2 must be >= 0 and < 1; got 1.5"),
    # Adam's bias correction divides by 1 - beta_1^t: NaN weights after one step.
    ({"beta_1": 1.0}, r"optimizers.beta_1 must be >= 0 and < 1; got 1.0"),
    # Checked once, by the range, not first called "ignored" by the constant rate.
    ({"decay_start": 1.5}, r"optimizers.decay_start must be >= 0 and < 1; got 1.5"),
    ({"g_lr": "abc"}, r"optimizers.g_lr must be a number; got 'abc'"),
])
def test_bad_optimizer_settings_raise_readable_errors(kwargs, match, caplog):
  with pytest.raises(errors.ConfigError, match=match):
    ssgan.build_optimizers(**kwargs)
  assert "has no effect" not in caplog.text


def test_unknown_architecture_in_gin_raises_readable_error(tiny_gin):
  gin.parse_config(["networks.architecture = 'dcgan'"])
  with pytest.raises(ValueError, match=r"unknown architecture 'dcgan'.*sndcgan"):
    ssgan.build_ssgan(IMAGE_SHAPE, global_batch_size=8, num_replicas=1)


def test_non_square_batch_in_train_step_raises_readable_error():
  model = _tiny_ssgan()
  with pytest.raises(ValueError, match="square"):
    model.train_step(tf.zeros([BATCH, 16, 12, 3]))
