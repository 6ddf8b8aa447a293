"""Tests of losses.py: adversarial losses against their definitions, rotation CE.

Expected values are written from the definitions (compare_gan's loss_lib), in float64
NumPy, on small fixed logits. The rotation loss as SSGAN computes and weighs it is
tested end to end in test_ssgan.py.
"""

import numpy as np
import pytest
import tensorflow as tf

from ssgan_tf import losses

REAL = np.array([-2.0, 0.0, 0.5, 3.0])
FAKE = np.array([1.0, 0.0, -1.0, 2.0])


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _run(loss):
  real, fake = tf.constant(REAL, tf.float32), tf.constant(FAKE, tf.float32)
  return loss.discriminator(real, fake).numpy(), loss.generator(fake).numpy()


def test_non_saturating_is_sigmoid_cross_entropy():
  d, g = _run(losses.adversarial_loss("non_saturating"))
  # D: real labelled 1, fake labelled 0; G: fake labelled 1.
  np.testing.assert_allclose(d, -np.log(_sigmoid(REAL)) - np.log(1.0 - _sigmoid(FAKE)),
                             rtol=1e-6)
  np.testing.assert_allclose(g, -np.log(_sigmoid(FAKE)), rtol=1e-6)
  # A hand-worked entry: real = fake = 0 gives 2 log 2 for D and log 2 for G.
  np.testing.assert_allclose([d[1], g[1]], [2 * np.log(2.0), np.log(2.0)], rtol=1e-6)


def test_non_saturating_is_finite_for_large_logits():
  loss = losses.adversarial_loss("non_saturating")
  big = tf.constant([100.0, -100.0])
  np.testing.assert_allclose(loss.discriminator(-big, big).numpy(), [200.0, 0.0], atol=1e-5)
  np.testing.assert_allclose(loss.generator(big).numpy(), [0.0, 100.0], atol=1e-5)


def test_hinge_matches_hand_computed_values():
  d, g = _run(losses.adversarial_loss("hinge"))
  # relu(1 - real) = [3, 1, .5, 0]; relu(1 + fake) = [2, 1, 0, 3].
  np.testing.assert_allclose(d, [5.0, 2.0, 0.5, 3.0], rtol=1e-6)
  np.testing.assert_allclose(g, [-1.0, 0.0, 1.0, -2.0], rtol=1e-6)


def test_wasserstein_matches_hand_computed_values():
  d, g = _run(losses.adversarial_loss("wasserstein"))
  np.testing.assert_allclose(d, FAKE - REAL, rtol=1e-6)
  np.testing.assert_allclose(d, [3.0, 0.0, -1.5, -1.0], rtol=1e-6)
  np.testing.assert_allclose(g, [-1.0, 0.0, 1.0, -2.0], rtol=1e-6)


def test_least_squares_reads_sigmoid_of_logits():
  d, g = _run(losses.adversarial_loss("least_squares"))
  np.testing.assert_allclose(
      d, 0.5 * ((_sigmoid(REAL) - 1.0) ** 2 + _sigmoid(FAKE) ** 2), rtol=1e-6)
  np.testing.assert_allclose(g, 0.5 * (_sigmoid(FAKE) - 1.0) ** 2, rtol=1e-6)
  # Hand-worked: real = fake = 0 -> sigmoid 1/2 -> D 0.5 * (1/4 + 1/4), G 0.5 * 1/4.
  np.testing.assert_allclose([d[1], g[1]], [0.25, 0.125], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(losses.ADVERSARIAL_LOSSES))
def test_losses_are_per_example(name):
  d, g = _run(losses.adversarial_loss(name))
  assert d.shape == (4,) and g.shape == (4,)


def test_unknown_loss_name_lists_choices():
  with pytest.raises(ValueError, match="hinge.*least_squares.*non_saturating.*wasserstein"):
    losses.adversarial_loss("wgan")


def test_rotation_cross_entropy_is_minus_log_softmax_of_true_rotation():
  logits = np.array([[2.0, 0.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0], [1.0, 3.0, -2.0, 0.0]])
  labels = np.array([0, 3, 2])
  ce = losses.rotation_cross_entropy(tf.constant(labels, tf.int32),
                                     tf.constant(logits, tf.float32)).numpy()
  log_softmax = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
  np.testing.assert_allclose(ce, -log_softmax[np.arange(3), labels], rtol=1e-6)
  np.testing.assert_allclose(ce[1], np.log(4.0), rtol=1e-6)  # uniform logits


def test_rotation_accuracy_marks_argmax_hits():
  logits = tf.constant([[2.0, 0.0, -1.0, 0.5], [0.0, 1.0, 0.0, 0.0], [1.0, 3.0, -2.0, 0.0]])
  accuracy = losses.rotation_accuracy(tf.constant([0, 3, 1], tf.int32), logits).numpy()
  np.testing.assert_array_equal(accuracy, [1.0, 0.0, 1.0])
