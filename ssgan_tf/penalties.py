"""Stage 4b: regularisers of D's loss, compare_gan's penalty_lib (`gans/penalty_lib.py`).

Each factory takes the weight lambda and returns a `losses.Penalty`, whose fn maps
  (discriminator, real [B, H, H, C], fake [B, H, H, C], rng) -> [B] float32
per-example values that `SSGAN.discriminator_step` reduces once by the global batch and
adds, times lambda, to D's loss (compare_gan `ssgan.py:191-194`). `real` are the upright
real images of the D step, `fake` its (stop-gradient-ed) fakes, both float32 in [-1, 1];
`rng` is the model's checkpointed noise generator, so a resumed run draws the same
interpolation weights and perturbations.

  wgan_gp  (||grad_x D(x_hat)||_2 - 1)^2, x_hat = real + alpha (fake - real), alpha ~ U[0, 1)
           per example (Gulrajani et al. 2017; penalty_lib.py:64-88).
  dragan   (||grad_x D(x_noisy)||_2 - 1)^2, x_noisy = clip(real + std (u - 1/2)),
           u ~ U[0, 1) per pixel, std the standard deviation of the whole real batch
           (Kodali et al. 2017; penalty_lib.py:33-61).
  l2       mean over D's kernels of l2_loss(W) = sum(W^2) / 2; biases excluded
           (penalty_lib.py:91-107). The same value for every example.

As in compare_gan, the norm is sqrt(1e-4 + sum grad^2), and D runs with training=True
inside the gradient penalties: spectral norm runs one power iteration per such call,
which `Penalty.discriminator_calls` declares (SSGAN.power_iterations_per_step).

Units. Our images are in [-1, 1]; compare_gan's are in [0, 1], and each ported D maps
one range to the other at its input, so it is the same function of the image. The
gradient is taken, as compare_gan takes it, with respect to [0, 1] pixels: x = 2 x_01 - 1
makes it twice the gradient w.r.t. our pixels (PIXELS_PER_UNIT_RANGE), so a lambda means
what it meant there (the paper's lambda = 1 and 10). Gulrajani et al.'s own code takes it
w.r.t. [-1, 1] pixels and pushes that norm to 1; here, with g that gradient, it is pushed
to 1/2 (lambda (||2 g|| - 1)^2 = 4 lambda (||g|| - 1/2)^2), so no lambda turns one into
the other. DRAGAN's perturbation scales with the batch std, so it is the same
perturbation in either range, and its clip to [-1, 1] here is compare_gan's clip to
[0, 1].
"""

import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf import losses

METRIC_NAME = "loss/penalty"
# compare_gan penalty_lib.py:55,82: inside the square root of the gradient norm.
GRADIENT_NORM_EPSILON = 1e-4
# d x / d x_01 for our pixels x = 2 x_01 - 1: the gradient w.r.t. compare_gan's [0, 1]
# pixels is this times the gradient w.r.t. ours.
PIXELS_PER_UNIT_RANGE = 2.0


def _gradient_norm(discriminator, images):
  """`[B]` sqrt(1e-4 + ||d logit_i / d pixels_i||^2), the gradient with respect to [0, 1]
  pixels (compare_gan's; twice that w.r.t. our [-1, 1] `images`), D in training mode
  (one call).

  The gradient of the summed logits is each example's own gradient: D has no batch
  norm, so no example's logit depends on another example.
  """
  with tf.GradientTape() as tape:
    tape.watch(images)
    logits = discriminator(images, training=True)["logits"]
  gradients = PIXELS_PER_UNIT_RANGE * tape.gradient(logits, images)
  return tf.sqrt(GRADIENT_NORM_EPSILON
                 + tf.reduce_sum(tf.square(gradients), axis=list(range(1, images.shape.rank))))


def _wgan_gp(discriminator, real, fake, rng):
  alpha = rng.uniform(tf.stack([tf.shape(real)[0], 1, 1, 1]))  # U[0, 1), one per example.
  interpolates = real + alpha * (fake - real)
  return tf.square(_gradient_norm(discriminator, interpolates) - 1.0)


def _dragan(discriminator, real, fake, rng):
  del fake
  # One std over every pixel of this replica's batch (compare_gan: tf.nn.moments over all
  # axes of the per-core batch).
  std = tf.math.reduce_std(real)
  noisy = tf.clip_by_value(real + std * (rng.uniform(tf.shape(real)) - 0.5), -1.0, 1.0)
  return tf.square(_gradient_norm(discriminator, noisy) - 1.0)


def penalized_kernels(discriminator):
  """D's trainable weight matrices and conv kernels (variables named "kernel"): what
  compare_gan's l2_penalty reads (names ending in "/kernel:0"), rotation head included,
  biases not. With spectral norm these are the raw kernels, before W / sigma."""
  return [v for v in discriminator.trainable_variables if v.name == "kernel"]


def _l2(discriminator, real, fake, rng):
  del fake, rng
  kernels = penalized_kernels(discriminator)
  value = tf.add_n([tf.nn.l2_loss(k) for k in kernels]) / len(kernels)
  return tf.fill(tf.shape(real)[:1], value)


def wgan_gp(weight):
  return losses.Penalty(METRIC_NAME, weight, _wgan_gp, discriminator_calls=1)


def dragan(weight):
  return losses.Penalty(METRIC_NAME, weight, _dragan, discriminator_calls=1)


def l2(weight):
  return losses.Penalty(METRIC_NAME, weight, _l2, discriminator_calls=0)


PENALTIES = {"wgan_gp": wgan_gp, "dragan": dragan, "l2": l2}
WEIGHT = 1.0  # lambda: compare_gan's default.


def get_penalty(name, weight):
  """The `losses.Penalty` called `name` with weight lambda = `weight`; None for None.

  Raises:
    ConfigError: an unknown name, or a weight that is not a number >= 0 (a weight other
      than WEIGHT without a penalty is a warning).
  """
  if name is None:
    errors.warn_if_no_effect("ssgan.penalty_weight", weight, WEIGHT, "ssgan.penalty")
    return None
  if name not in PENALTIES:
    raise errors.ConfigError(f"unknown ssgan.penalty {name!r}; choose None or one of "
                             f"{sorted(PENALTIES)}.")
  return PENALTIES[name](errors.check_range("ssgan.penalty_weight", weight, minimum=0))
