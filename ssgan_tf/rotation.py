"""Stage 2: rotation self-supervision batches (pure TF; no Keras, no gin), and the
global vs per-replica batch arithmetic they need.

compare_gan's scheme (gans/ssgan.py): of a per-replica batch of B upright images, the
last n are rotated by 90, 180 and 270 degrees (`tf.image.rot90` k = 1, 2, 3, i.e.
counter-clockwise) and appended. The rotation loss covers those n upright images
(label 0) plus the 3n rotated ones, so its labels are block-ordered:
`[0]*n + [1]*n + [2]*n + [3]*n`.
"""

import dataclasses

import tensorflow as tf

from ssgan_tf import errors

NUM_ROTATIONS = 4


def rotated_copies(images, n):
  """Rotates the last `n` images by k = 1, 2, 3.

  Args:
    images: `[B, H, H, C]` float, square (rot90 of a non-square batch changes its shape).
    n: Python int, 0 <= n <= B: how many of the last images to rotate.

  Returns:
    `[3n, H, H, C]`: `rot90(images[-n:], 1)`, then k = 2, then k = 3, block-ordered.
  """
  check_square(images)
  if n == 0:
    return images[:0]
  last = images[-n:]
  return tf.concat([tf.image.rot90(last, k) for k in (1, 2, 3)], axis=0)


def rotation_labels(n):
  """Block-ordered labels for the n upright + 3n rotated images: `[4n]` int32 in 0..3."""
  return tf.repeat(tf.range(NUM_ROTATIONS, dtype=tf.int32), n)


def with_rotations(images, n):
  """Appends rotated copies of the last `n` images.

  Args:
    images: `[B, H, H, C]`.
    n: rotated images per angle, 0 <= n <= B.

  Returns:
    `[B + 3n, H, H, C]`: the B upright images, then the 3n rotated ones. The rotation
    loss reads the last 4n rows (n upright, then k = 1, 2, 3) against
    `rotation_labels(n)`.
  """
  return tf.concat([images, rotated_copies(images, n)], axis=0)


def check_square(images):
  """Raises DataError unless `images` is a rank-4 batch of square images."""
  shape = images.shape
  if shape.rank != 4:
    raise errors.DataError(f"images must be [batch, height, width, channels]; got shape {shape}.")
  if shape[1] is not None and shape[2] is not None and shape[1] != shape[2]:
    raise errors.DataError(
        f"rotation self-supervision needs square images; got {shape[1]}x{shape[2]}. "
        "Resize or crop the data to a square resolution.")


@dataclasses.dataclass(frozen=True)
class BatchSizes:
  """Global and per-replica batch sizes, checked once at construction.

  Attributes:
    global_batch_size: real images per D step, over all replicas.
    num_replicas: replicas in sync.
    rotated_batch_size: GLOBAL count of images in each rotation loss (compare_gan's
      `rotated_batch_size`): per replica, n = rotated_per_replica / 4 upright images plus
      their 3n rotations. Must be a multiple of NUM_ROTATIONS x num_replicas.
  """
  global_batch_size: int
  num_replicas: int
  rotated_batch_size: int

  def __post_init__(self):
    if self.global_batch_size < 1 or self.global_batch_size % self.num_replicas:
      raise errors.ConfigError(
          f"global batch size {self.global_batch_size} is not divisible by the "
          f"{self.num_replicas} replicas; choose a multiple of {self.num_replicas}.")
    quantum = NUM_ROTATIONS * self.num_replicas
    if self.rotated_batch_size < 0 or self.rotated_batch_size % quantum:
      raise errors.ConfigError(
          f"rotated batch size {self.rotated_batch_size} must be a multiple of "
          f"{NUM_ROTATIONS} x {self.num_replicas} replicas = {quantum} (each replica rotates "
          "n images by 0, 90, 180 and 270 degrees).")
    if not 0 <= self.rotated_per_angle <= self.per_replica_batch:
      raise errors.ConfigError(
          f"ssgan.rotated_batch_size = {self.rotated_batch_size} asks each replica to "
          f"rotate {self.rotated_per_angle} images, but it has only "
          f"{self.per_replica_batch}; use at most {NUM_ROTATIONS} x global batch size = "
          f"{NUM_ROTATIONS * self.global_batch_size}.")

  @property
  def per_replica_batch(self):
    return self.global_batch_size // self.num_replicas

  @property
  def rotated_per_replica(self):
    return self.rotated_batch_size // self.num_replicas

  @property
  def rotated_per_angle(self):
    """n: images per replica that are rotated by each of k = 1, 2, 3."""
    return self.rotated_per_replica // NUM_ROTATIONS
