"""Stage 4: per-example adversarial losses and the rotation cross-entropy.

Every adversarial loss is an `AdversarialLoss` of two per-example functions with fixed
signatures, so `train_step` reduces them once by the global batch:
  discriminator(real_logits [B], fake_logits [B]) -> [B]
  generator(fake_logits [B]) -> [B]
Logits are D's raw real/fake outputs. Definitions follow compare_gan's loss_lib (the
least-squares loss reads sigmoid(logits), as compare_gan's does). A `Penalty` is a
further term of D's loss, computed from D and the step's batches.
"""

from typing import Callable, NamedTuple

import tensorflow as tf

from ssgan_tf import errors


class AdversarialLoss(NamedTuple):
  discriminator: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
  generator: Callable[[tf.Tensor], tf.Tensor]



NON_SATURATING = AdversarialLoss(
    # -log sigmoid(real) - log(1 - sigmoid(fake)); G: -log sigmoid(fake).
    discriminator=lambda real, fake: tf.nn.softplus(-real) + tf.nn.softplus(fake),
    generator=lambda fake: tf.nn.softplus(-fake))

HINGE = AdversarialLoss(
    discriminator=lambda real, fake: tf.nn.relu(1.0 - real) + tf.nn.relu(1.0 + fake),
    generator=lambda fake: -fake)

WASSERSTEIN = AdversarialLoss(
    discriminator=lambda real, fake: fake - real,
    generator=lambda fake: -fake)

LEAST_SQUARES = AdversarialLoss(
    discriminator=lambda real, fake: 0.5 * (tf.square(tf.sigmoid(real) - 1.0)
                                            + tf.square(tf.sigmoid(fake))),
    generator=lambda fake: 0.5 * tf.square(tf.sigmoid(fake) - 1.0))

ADVERSARIAL_LOSSES = {
    "non_saturating": NON_SATURATING,
    "hinge": HINGE,
    "wasserstein": WASSERSTEIN,
    "least_squares": LEAST_SQUARES,
}


def adversarial_loss(name):
  """The `AdversarialLoss` called `name`; ConfigError naming the choices otherwise."""
  if name not in ADVERSARIAL_LOSSES:
    raise errors.ConfigError(f"unknown ssgan.gan_loss {name!r}; choose one of "
                             f"{sorted(ADVERSARIAL_LOSSES)}.")
  return ADVERSARIAL_LOSSES[name]


def rotation_cross_entropy(labels, logits):
  """Per-example softmax cross-entropy of the rotation head.

  Args:
    labels: `[N]` int32 in 0..3 (rot90 k).
    logits: `[N, 4]` float32.

  Returns:
    `[N]` float32, in nats. (compare_gan adds 1e-10 inside the log of the softmax; this
    is the exact, stable form.)
  """
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def rotation_accuracy(labels, logits):
  """`[N]` float32: 1.0 where the most likely rotation is the true one."""
  return tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)


class Penalty(NamedTuple):
  """A regulariser of D, added to D's loss in every D step (e.g. a gradient penalty).

  Attributes:
    name: the tracked metric, e.g. "loss/penalty".
    weight: lambda; the D loss gains `weight * global mean of fn(...)`.
    fn: `(discriminator, real [B, H, H, C], fake [B, H, H, C], rng) -> [B]` per-example
      values (a weight penalty gives every example the same value); `rng` is the model's
      checkpointed `tf.random.Generator`, for any randomness the penalty needs.
    discriminator_calls: how many times `fn` calls D with training=True; each call runs
      one spectral-norm power iteration (SSGAN.power_iterations_per_step).
  """
  name: str
  weight: float
  fn: Callable
  discriminator_calls: int
