"""Tests of rotation.py: rot90 copies of the last n images, block-ordered labels, and the
global vs per-replica batch arithmetic with its readable errors."""

import numpy as np
import pytest
import tensorflow as tf

from ssgan_tf import rotation


def _batch(b=5, h=6, c=3):
  # Distinct values everywhere, so any wrong transpose / flip / row shows.
  return np.arange(b * h * h * c, dtype=np.float32).reshape(b, h, h, c)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_rotated_copies_match_numpy_rot90_of_last_n(n):
  x = _batch()
  expected = np.concatenate([np.rot90(x[-n:], k, axes=(1, 2)) for k in (1, 2, 3)], axis=0)
  np.testing.assert_array_equal(rotation.rotated_copies(tf.constant(x), n).numpy(), expected)


@pytest.mark.parametrize("n", [1, 3])
def test_with_rotations_keeps_upright_batch_and_appends_rot90_blocks(n):
  x = _batch()
  out = rotation.with_rotations(tf.constant(x), n).numpy()
  assert out.shape == (x.shape[0] + 3 * n,) + x.shape[1:]
  np.testing.assert_array_equal(out[:x.shape[0]], x)
  for k in (1, 2, 3):
    block = out[x.shape[0] + (k - 1) * n:x.shape[0] + k * n]
    np.testing.assert_array_equal(block, np.rot90(x[-n:], k, axes=(1, 2)))


def test_last_4n_rows_are_the_rotation_examples_of_their_labels():
  # The rotation loss reads the last 4n rows against rotation_labels(n): row i must be
  # the upright image rotated by labels[i].
  x, n = _batch(), 2
  rows = rotation.with_rotations(tf.constant(x), n).numpy()[-4 * n:]
  labels = rotation.rotation_labels(n).numpy()
  upright = np.concatenate([x[-n:]] * 4, axis=0)
  for row, k, image in zip(rows, labels, upright):
    np.testing.assert_array_equal(row, np.rot90(image, k))


@pytest.mark.parametrize("n", [1, 3])
def test_rotation_labels_are_block_ordered_int32(n):
  labels = rotation.rotation_labels(n)
  assert labels.dtype == tf.int32
  np.testing.assert_array_equal(labels.numpy(), [0] * n + [1] * n + [2] * n + [3] * n)


def test_n_zero_adds_no_rows():
  x = _batch()
  assert rotation.rotated_copies(tf.constant(x), 0).shape == (0,) + x.shape[1:]
  np.testing.assert_array_equal(rotation.with_rotations(tf.constant(x), 0).numpy(), x)
  assert rotation.rotation_labels(0).shape == (0,)


def test_with_rotations_works_inside_tf_function_with_unknown_batch():
  x = _batch()
  fn = tf.function(lambda images: rotation.with_rotations(images, 2),
                   input_signature=[tf.TensorSpec([None, 6, 6, 3], tf.float32)])
  np.testing.assert_array_equal(fn(tf.constant(x)).numpy(),
                                rotation.with_rotations(tf.constant(x), 2).numpy())


def test_non_square_images_raise_readable_error():
  with pytest.raises(ValueError, match="square"):
    rotation.with_rotations(tf.zeros([2, 4, 6, 3]), 1)


def test_non_batched_images_raise_readable_error():
  with pytest.raises(ValueError, match=r"\[batch, height, width, channels\]"):
    rotation.rotated_copies(tf.zeros([4, 4, 3]), 1)


@pytest.mark.parametrize("global_batch, replicas, rotated, per_replica, rot_per_replica, n", [
    (64, 1, 64, 64, 64, 16),   # build_ssgan default (rotated = batch): last quarter rotated
    (64, 2, 64, 32, 32, 8),
    (16, 2, 8, 8, 4, 1),
    (8, 2, 0, 4, 0, 0),        # no rotation loss
    (8, 1, 32, 8, 32, 8),      # every image rotated (the most allowed)
])
def test_batch_sizes_split_global_counts_per_replica(global_batch, replicas, rotated,
                                                     per_replica, rot_per_replica, n):
  sizes = rotation.BatchSizes(global_batch, replicas, rotated)
  assert sizes.per_replica_batch == per_replica
  assert sizes.rotated_per_replica == rot_per_replica
  assert sizes.rotated_per_angle == n


@pytest.mark.parametrize("args, match", [
    ((10, 4, 8), "global batch size 10 is not divisible by the 4 replicas"),
    ((0, 1, 0), "global batch size 0"),
    ((8, 2, 12), r"rotated batch size 12 must be a multiple of 4 x 2 replicas = 8"),
    ((8, 1, 6), r"multiple of 4 x 1 replicas = 4"),
    ((8, 2, 40), r"rotate 5 images, but it has only 4; use at most 4 x global batch size = 32"),
])
def test_batch_sizes_reject_impossible_splits_readably(args, match):
  with pytest.raises(ValueError, match=match):
    rotation.BatchSizes(*args)
