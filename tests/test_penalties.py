"""Tests of penalties.py: WGAN-GP, DRAGAN and L2 as compare_gan's penalty_lib defines them,
their inputs (interpolates, perturbations, kernels), and their gradient reaching D through
the D step.

Golden values are computed here in NumPy: on a linear D (flatten + dense heads, no spectral
norm) the gradient of the logit w.r.t. any input in [-1, 1] is the real/fake head's kernel
w, and w.r.t. compare_gan's [0, 1] pixels (x = 2 x_01 - 1) it is 2 w, so every gradient
penalty is (sqrt(||2 w||^2 + 1e-4) - 1)^2 whatever the input.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tiny_nets

from ssgan_tf import errors
from ssgan_tf import losses
from ssgan_tf import penalties
from ssgan_tf import rotation
from ssgan_tf import ssgan
from ssgan_tf.nets import build_networks
from ssgan_tf.nets.discriminator import Discriminator

SHAPE = (4, 4, 3)
B = 6


def _linear_discriminator(scale=0.3, seed=7):
  keras.utils.set_random_seed(seed)
  discriminator = Discriminator(keras.layers.Flatten(), spectral_norm=False)
  discriminator(tf.zeros((1,) + SHAPE))
  rng = np.random.default_rng(seed)
  for v in discriminator.variables:
    v.assign(rng.normal(scale=scale, size=v.shape).astype(np.float32))
  return discriminator


def _batches(seed=0, num=B, shape=SHAPE):
  rng = np.random.default_rng(seed)
  real = rng.uniform(-1, 1, (num,) + shape).astype(np.float32)
  fake = rng.uniform(-1, 1, (num,) + shape).astype(np.float32)
  return tf.constant(real), tf.constant(fake)


def _np_kernel_penalty(discriminator):
  w = discriminator.gan_head.kernel.numpy().astype(np.float64)
  return (np.sqrt(np.sum((2 * w) ** 2) + 1e-4) - 1.0) ** 2


class _RecordingD:
  """logit = sum(x^2) / 2 per example, so d logit / d x = x; records what it is fed."""

  def __init__(self):
    self.calls = []

  def __call__(self, images, training=False):
    self.calls.append((images, training))
    return {"logits": 0.5 * tf.reduce_sum(tf.square(images), axis=[1, 2, 3])}


# --- Golden values on a linear D ------------------------------------------------------

@pytest.mark.parametrize("name", ["wgan_gp", "dragan"])
def test_gradient_penalty_on_a_linear_d_is_the_kernel_norm_penalty(name):
  discriminator = _linear_discriminator()
  w_norm = np.linalg.norm(discriminator.gan_head.kernel.numpy())
  assert abs(w_norm - 1.0) > 0.5  # A penalty far from 0.
  penalty = penalties.get_penalty(name, 10.0)
  assert (penalty.name, penalty.weight, penalty.discriminator_calls) == ("loss/penalty", 10.0, 1)
  real, fake = _batches()
  values = penalty.fn(discriminator, real, fake, tf.random.Generator.from_seed(3))
  assert values.shape == (B,)
  np.testing.assert_allclose(values.numpy(), np.full(B, _np_kernel_penalty(discriminator)),
                             rtol=1e-5)


def test_l2_penalty_is_the_mean_l2_loss_of_every_d_kernel():
  keras.utils.set_random_seed(0)
  _, discriminator = build_networks((16, 16, 3), architecture="sndcgan", z_dim=8,
                                    generator_kwargs={"base_channels": 4},
                                    discriminator_kwargs={"base_channels": 4})
  # SNDCGAN's D: 7 convs and the two heads, each with a kernel (and a bias, excluded).
  kernels = [v for v in discriminator.trainable_variables if v.path.endswith("/kernel")]
  assert len(kernels) == 9 and len(discriminator.trainable_variables) == 18
  expected = np.mean([0.5 * np.sum(k.numpy().astype(np.float64) ** 2) for k in kernels])
  penalty = penalties.get_penalty("l2", 1.0)
  assert penalty.discriminator_calls == 0
  real, fake = _batches(shape=(16, 16, 3))
  values = penalty.fn(discriminator, real, fake, None)
  np.testing.assert_allclose(values.numpy(), np.full(B, expected), rtol=1e-5)


class _PortedD(_RecordingD):
  """A D written for compare_gan's [0, 1] images, fed ours in [-1, 1] as our ported nets
  are (mapped at the input); records what it is fed."""

  @staticmethod
  def logits_01(images_01):
    return tf.reduce_sum(tf.sin(3.0 * images_01), axis=[1, 2, 3])

  def __call__(self, images, training=False):
    self.calls.append((images, training))
    return {"logits": self.logits_01((images + 1.0) / 2.0)}


@pytest.mark.parametrize("name", ["wgan_gp", "dragan"])
def test_a_gradient_penalty_is_compare_gans_on_its_0_1_pixels(name):
  # compare_gan differentiates D w.r.t. its [0, 1] images: the same lambda must give the
  # same penalty here, where images are in [-1, 1].
  d = _PortedD()
  real, fake = _batches(seed=5)
  values = penalties.get_penalty(name, 1.0).fn(d, real, fake, tf.random.Generator.from_seed(2))
  images_01 = (d.calls[0][0] + 1.0) / 2.0
  with tf.GradientTape() as tape:
    tape.watch(images_01)
    logits = _PortedD.logits_01(images_01)
  gradients = tape.gradient(logits, images_01).numpy().astype(np.float64)
  norms = np.sqrt(np.sum(gradients ** 2, axis=(1, 2, 3)) + 1e-4)
  np.testing.assert_allclose(values.numpy(), (norms - 1.0) ** 2, rtol=1e-5)


# --- What the gradient penalties feed D -----------------------------------------------

def test_wgan_gp_interpolates_each_example_between_its_real_and_its_fake():
  d = _RecordingD()
  real, fake = _batches(seed=1, num=64)
  rng = tf.random.Generator.from_seed(5)
  values = penalties.get_penalty("wgan_gp", 1.0).fn(d, real, fake, rng).numpy()
  [(x_hat, training)] = d.calls
  assert training  # compare_gan calls D in training mode: SN runs its power iteration.
  x_hat, real, fake = x_hat.numpy(), real.numpy(), fake.numpy()
  # One alpha per example: x_hat - real = alpha * (fake - real) in every pixel.
  alpha = np.sum((x_hat - real) * (fake - real), axis=(1, 2, 3)) / np.sum(
      (fake - real) ** 2, axis=(1, 2, 3))
  np.testing.assert_allclose(x_hat, real + alpha[:, None, None, None] * (fake - real),
                             atol=1e-6)
  assert np.all((alpha >= 0) & (alpha < 1)) and alpha.std() > 0.15  # U[0, 1): std 0.29.
  # d logit / d x = x, so w.r.t. [0, 1] pixels 2 x: each example's penalty is
  # (sqrt(||2 x_hat||^2 + 1e-4) - 1)^2.
  norms = np.sqrt(np.sum((2 * x_hat.astype(np.float64)) ** 2, axis=(1, 2, 3)) + 1e-4)
  np.testing.assert_allclose(values, (norms - 1.0) ** 2, rtol=1e-5)


def test_dragan_perturbs_real_by_uniform_noise_of_the_batch_std():
  d = _RecordingD()
  real, fake = _batches(seed=2, num=8, shape=(16, 16, 3))
  real = real * 0.5  # In [-0.5, 0.5]: no pixel reaches the clip.
  values = penalties.get_penalty("dragan", 1.0).fn(d, real, fake, tf.random.Generator.from_seed(1))
  [(noisy, training)] = d.calls
  assert training
  std = np.std(real.numpy())  # Over every pixel of the batch.
  noise = (noisy.numpy() - real.numpy()) / std  # u - 1/2, u ~ U[0, 1) per pixel.
  assert np.all(np.abs(noise) <= 0.5 + 1e-5) and np.abs(noise).max() > 0.49
  assert abs(noise.mean()) < 0.02 and abs(noise.std() - 1 / np.sqrt(12)) < 0.01
  norms = np.sqrt(np.sum((2 * noisy.numpy().astype(np.float64)) ** 2, axis=(1, 2, 3)) + 1e-4)
  np.testing.assert_allclose(values.numpy(), (norms - 1.0) ** 2, rtol=1e-5)


def test_dragan_clips_to_the_image_range():
  d = _RecordingD()
  signs = np.sign(np.random.default_rng(0).normal(size=(8, 4, 4, 3))).astype(np.float32)
  real = tf.constant(signs)  # Pixels at -1 and 1, std 1: the noise pushes half outside.
  penalties.get_penalty("dragan", 1.0).fn(d, real, real, tf.random.Generator.from_seed(1))
  noisy = d.calls[0][0].numpy()
  assert noisy.min() == -1.0 and noisy.max() == 1.0
  assert np.all(np.abs(noisy - signs) <= 0.5 + 1e-6)
  at_bound = np.mean(np.abs(noisy) == 1.0)
  assert 0.35 < at_bound < 0.65  # The pushed-out half, clipped back onto the bound.


def test_penalties_draw_from_the_given_rng():
  # Same generator state, same values; the model's checkpointed rng makes resume exact.
  d = _RecordingD()
  real, fake = _batches(seed=3)
  fn = penalties.get_penalty("wgan_gp", 1.0).fn
  a = fn(d, real, fake, tf.random.Generator.from_seed(9)).numpy()
  rng = tf.random.Generator.from_seed(9)
  b = fn(d, real, fake, rng).numpy()
  c = fn(d, real, fake, rng).numpy()
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(b, c)


# --- Through the D step ---------------------------------------------------------------


def _linear_model(penalty):
  discriminator = _linear_discriminator()
  generator = tiny_nets.TinyGenerator()
  generator(tf.zeros([1, 6]))
  model = ssgan.SSGAN(generator, discriminator, batch=rotation.BatchSizes(4, 1, 4), z_dim=6,
                      gan_loss=losses.NON_SATURATING, penalties=[penalty] if penalty else [])
  model.compile(keras.optimizers.SGD(0.5), keras.optimizers.SGD(0.5))
  return model


def test_the_d_step_descends_lambda_times_the_gradient_penalty():
  # d/dw lambda (s - 1)^2, s = sqrt(||2 w||^2 + 1e-4), is lambda * 2 (s - 1) 4 w / s: the
  # gradient of the gradient norm (double backprop) must reach D's head kernel exactly.
  weight, learning_rate = 0.5, 0.5
  plain, penalized = _linear_model(None), _linear_model(penalties.get_penalty("wgan_gp", weight))
  w = penalized.discriminator.gan_head.kernel.numpy().astype(np.float64)
  s = np.sqrt(np.sum((2 * w) ** 2) + 1e-4)
  real, _ = _batches(seed=4, num=4)
  z = tf.constant(np.random.default_rng(4).normal(size=(4, 6)).astype(np.float32))
  metrics = penalized.discriminator_step(real, z)
  plain.discriminator_step(real, z)
  np.testing.assert_allclose(metrics["loss/penalty"], np.full(4, (s - 1) ** 2), rtol=1e-5)
  pairs = list(zip(penalized.discriminator.trainable_variables,
                   plain.discriminator.trainable_variables))
  for a, b in pairs:
    diff = a.numpy() - b.numpy()
    if a is penalized.discriminator.gan_head.kernel:
      np.testing.assert_allclose(diff, -learning_rate * weight * 2 * (s - 1) * 4 * w / s,
                                 rtol=1e-4, atol=1e-7)
    else:  # The penalty does not depend on the biases or the rotation head.
      np.testing.assert_allclose(diff, 0.0, atol=1e-7, err_msg=a.path)


@pytest.mark.parametrize("name, weight, match", [
    ("gp", 1.0, r"unknown ssgan.penalty 'gp'; choose None or one of \['dragan', 'l2', 'wgan_gp'\]"),
    ("wgan_gp", -1.0, r"ssgan.penalty_weight must be >= 0; got -1.0"),
    ("l2", "ten", r"ssgan.penalty_weight must be a number; got 'ten'"),
])
def test_bad_penalty_settings_raise_readable_errors(name, weight, match):
  with pytest.raises(errors.ConfigError, match=match):
    penalties.get_penalty(name, weight)


def test_no_penalty_is_none():
  assert penalties.get_penalty(None, 1.0) is None
