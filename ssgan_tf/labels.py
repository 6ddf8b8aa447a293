"""Class labels of the conditional baseline (Cond-GAN): the distribution the fakes' labels
are drawn from, drawing them, and the labels of rotated rows (pure TF; no Keras, no gin).

Labels are int32 `[N]` in 0..num_classes-1 everywhere outside the networks (which one-hot
encode them). A conditional model draws each fake's label i.i.d. from its label
distribution: the class frequencies of the training split (`ssgan.label_distribution =
"train"`, from `ImageSource.label_counts`), or uniform ("uniform", compare_gan's
`label_generator`, modular_gan.py:386-391). compare_gan's other option,
`fit_label_distribution` (modular_gan.py:403-404), gives each fake the label of the real
image in the same row of the batch; i.i.d. draws from the training frequencies have the
same distribution without tying a D step's fakes to its reals.
"""

import numpy as np
import tensorflow as tf

from ssgan_tf import errors


def probabilities(num_classes, counts=None):
  """The label distribution: `[K]` float64 NumPy probabilities, or None for uniform.

  Args:
    num_classes: K >= 1.
    counts: None (uniform), or K non-negative per-class counts with a positive sum.

  Raises:
    ConfigError: counts of the wrong length, negative, or all zero.
  """
  if counts is None:
    return None
  counts = np.asarray(counts, np.float64)
  if counts.shape != (num_classes,) or np.any(counts < 0) or counts.sum() <= 0:
    raise errors.ConfigError(
        f"label counts must be {num_classes} non-negative numbers with a positive sum; got "
        f"shape {counts.shape}.")
  return counts / counts.sum()


def draw_labels(num, num_classes, probs=None, rng=None, seed=None):
  """`[num]` int32 labels in 0..num_classes-1, i.i.d. from `probs` (None: uniform).

  Uniform labels are `uniform int [0, K)` (compare_gan's `label_generator`); others are
  the inverse CDF of one U[0, 1) draw per label (`searchsorted` in the cumulative
  probabilities), so a class of probability 0 is never drawn.

  Exactly one of:
    rng: a `tf.random.Generator` (stateful: each call advances it).
    seed: `[2]` int tensor (stateless: the same seed gives the same labels everywhere).
  """
  shape = tf.reshape(tf.cast(num, tf.int32), [1])
  if probs is None:
    if seed is None:
      return rng.uniform(shape, 0, num_classes, dtype=tf.int32)
    return tf.random.stateless_uniform(shape, seed, 0, num_classes, dtype=tf.int32)
  u = rng.uniform(shape) if seed is None else tf.random.stateless_uniform(shape, seed)
  # float64 CDF: float32 would round cumulative sums of 1000 classes noticeably.
  cdf = tf.constant(np.cumsum(probs), tf.float64)
  drawn = tf.searchsorted(cdf, tf.cast(u, tf.float64), side="right", out_type=tf.int32)
  # u < 1 <= cdf[-1] up to round-off; the clip covers cdf[-1] = 1 - eps.
  return tf.minimum(drawn, num_classes - 1)


def with_rotations(labels, n):
  """The labels of `rotation.with_rotations(images, n)`'s rows: `[B] -> [B + 3n]`, the B
  labels, then the last n repeated for k = 1, 2, 3: a rotated image keeps its label."""
  if n == 0:
    return labels
  return tf.concat([labels, tf.tile(labels[-n:], [3])], axis=0)


def grid_labels(num, num_classes, columns):
  """Fixed labels for a sample grid of `num` images in rows of `columns`: row r shows class
  `r mod K` when K <= rows, else K // rows-spaced classes `r * K // rows` (all rows
  distinct). `[num]` int32."""
  rows = -(-num // columns)
  per_row = (np.arange(rows) % num_classes if num_classes <= rows
             else np.arange(rows) * num_classes // rows)
  return tf.constant(np.repeat(per_row, columns)[:num], tf.int32)


def labels_from_z(z, num_classes, probs=None):
  """A label for each row of `z` `[N, z_dim]`, a function of that row alone: 53 bits of
  its fingerprint (`tf.fingerprint`, a hash of its bytes) as U[0, 1), mapped through the
  inverse CDF of `probs` (None: uniform). For random z these labels follow the label
  distribution; for a given z they never change (in a SavedModel too), so a conditional
  G sampled from z alone stays a function of z. `[N]` int32."""
  bits = tf.bitcast(tf.fingerprint(z), tf.uint64)  # [N, 8] uint8 -> [N].
  u = tf.cast(tf.bitwise.right_shift(bits, tf.constant(11, tf.uint64)), tf.float64) / 2.0**53
  cdf = tf.constant(np.cumsum(probs) if probs is not None
                    else np.arange(1, num_classes + 1) / num_classes, tf.float64)
  drawn = tf.searchsorted(cdf, u, side="right", out_type=tf.int32)
  return tf.minimum(drawn, num_classes - 1)
